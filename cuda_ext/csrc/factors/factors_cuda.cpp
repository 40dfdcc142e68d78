// Torch glue for factors.cu: allocation, views, error checks.
#include <ATen/cuda/CUDAContext.h>

#include "../checks.h"
#include "../ops.h"
#include "factors.h"
#include "views.h"

namespace tensorfields {

template <typename scalar_t>
cudaError_t launch_vm_sample_fwd(const VMFactorsView<scalar_t>& f, const scalar_t* xn, int64_t n, bool reduce, scalar_t* out,
                                 cudaStream_t stream);
template <typename scalar_t>
cudaError_t launch_vm_sample_bwd(const VMFactorsView<scalar_t>& f, const FactorGrads<scalar_t>& grads, const scalar_t* xn,
                                 int64_t n, const scalar_t* grad_out, bool reduce, cudaStream_t stream);
template <typename scalar_t>
cudaError_t launch_cp_sample_fwd(const CPFactorsView<scalar_t>& f, const scalar_t* xn, int64_t n, bool reduce, scalar_t* out,
                                 cudaStream_t stream);
template <typename scalar_t>
cudaError_t launch_cp_sample_bwd(const CPFactorsView<scalar_t>& f, const FactorGrads<scalar_t>& grads, const scalar_t* xn,
                                 int64_t n, const scalar_t* grad_out, bool reduce, cudaStream_t stream);

template <typename scalar_t>
cudaError_t launch_vm_sample_bwd_points(const VMFactorsView<scalar_t>& f, const scalar_t* xn, int64_t n, const scalar_t* grad_out,
                                        bool reduce, scalar_t* grad_xn, cudaStream_t stream);
template <typename scalar_t>
cudaError_t launch_cp_sample_bwd_points(const CPFactorsView<scalar_t>& f, const scalar_t* xn, int64_t n, const scalar_t* grad_out,
                                        bool reduce, scalar_t* grad_xn, cudaStream_t stream);

at::Tensor vm_sample_fwd_cuda(const std::vector<at::Tensor>& planes, const std::vector<at::Tensor>& lines, const at::Tensor& xn,
                              bool reduce) {
  const int64_t n = xn.size(0);
  const int64_t components = planes[0].size(0) + planes[1].size(0) + planes[2].size(0);
  at::Tensor out = reduce ? at::empty({n}, xn.options()) : at::empty({components, n}, xn.options());
  AT_DISPATCH_FLOATING_TYPES(xn.scalar_type(), "vm_sample_fwd_cuda", [&] {
    TORCH_CHECK(launch_vm_sample_fwd(vm_view<scalar_t>(planes, lines), xn.data_ptr<scalar_t>(), n, reduce, out.data_ptr<scalar_t>(),
                                     at::cuda::getCurrentCUDAStream()) == cudaSuccess,
                "vm_sample forward kernel failed");
  });
  return out;
}

std::vector<at::Tensor> vm_sample_bwd_cuda(const std::vector<at::Tensor>& planes, const std::vector<at::Tensor>& lines,
                                           const at::Tensor& xn, const at::Tensor& grad_out, bool reduce) {
  std::vector<at::Tensor> grad_planes = zeros_like_each(planes), grad_lines = zeros_like_each(lines);
  AT_DISPATCH_FLOATING_TYPES(xn.scalar_type(), "vm_sample_bwd_cuda", [&] {
    TORCH_CHECK(launch_vm_sample_bwd(vm_view<scalar_t>(planes, lines), grads_view<scalar_t>(grad_planes, grad_lines),
                                     xn.data_ptr<scalar_t>(), xn.size(0), grad_out.data_ptr<scalar_t>(), reduce,
                                     at::cuda::getCurrentCUDAStream()) == cudaSuccess,
                "vm_sample backward kernel failed");
  });
  grad_planes.insert(grad_planes.end(), grad_lines.begin(), grad_lines.end());
  return grad_planes;
}

at::Tensor cp_sample_fwd_cuda(const std::vector<at::Tensor>& lines, const at::Tensor& xn, bool reduce) {
  const int64_t n = xn.size(0);
  at::Tensor out = reduce ? at::empty({n}, xn.options()) : at::empty({lines[0].size(0), n}, xn.options());
  AT_DISPATCH_FLOATING_TYPES(xn.scalar_type(), "cp_sample_fwd_cuda", [&] {
    TORCH_CHECK(launch_cp_sample_fwd(cp_view<scalar_t>(lines), xn.data_ptr<scalar_t>(), n, reduce, out.data_ptr<scalar_t>(),
                                     at::cuda::getCurrentCUDAStream()) == cudaSuccess,
                "cp_sample forward kernel failed");
  });
  return out;
}

std::vector<at::Tensor> cp_sample_bwd_cuda(const std::vector<at::Tensor>& lines, const at::Tensor& xn, const at::Tensor& grad_out,
                                           bool reduce) {
  std::vector<at::Tensor> grad_lines = zeros_like_each(lines);
  AT_DISPATCH_FLOATING_TYPES(xn.scalar_type(), "cp_sample_bwd_cuda", [&] {
    TORCH_CHECK(launch_cp_sample_bwd(cp_view<scalar_t>(lines), grads_view<scalar_t>({}, grad_lines), xn.data_ptr<scalar_t>(),
                                     xn.size(0), grad_out.data_ptr<scalar_t>(), reduce, at::cuda::getCurrentCUDAStream()) == cudaSuccess,
                "cp_sample backward kernel failed");
  });
  return grad_lines;
}

at::Tensor vm_sample_bwd_points_cuda(const std::vector<at::Tensor>& planes, const std::vector<at::Tensor>& lines,
                                   const at::Tensor& xn, const at::Tensor& grad_out, bool reduce) {
  at::Tensor grad_xn = at::empty_like(xn);
  AT_DISPATCH_FLOATING_TYPES(xn.scalar_type(), "vm_sample_bwd_points_cuda", [&] {
    TORCH_CHECK(launch_vm_sample_bwd_points(vm_view<scalar_t>(planes, lines), xn.data_ptr<scalar_t>(), xn.size(0),
                                            grad_out.data_ptr<scalar_t>(), reduce, grad_xn.data_ptr<scalar_t>(),
                                            at::cuda::getCurrentCUDAStream()) == cudaSuccess,
                "vm_sample points backward kernel failed");
  });
  return grad_xn;
}

at::Tensor cp_sample_bwd_points_cuda(const std::vector<at::Tensor>& lines, const at::Tensor& xn, const at::Tensor& grad_out,
                                   bool reduce) {
  at::Tensor grad_xn = at::empty_like(xn);
  AT_DISPATCH_FLOATING_TYPES(xn.scalar_type(), "cp_sample_bwd_points_cuda", [&] {
    TORCH_CHECK(launch_cp_sample_bwd_points(cp_view<scalar_t>(lines), xn.data_ptr<scalar_t>(), xn.size(0),
                                            grad_out.data_ptr<scalar_t>(), reduce, grad_xn.data_ptr<scalar_t>(),
                                            at::cuda::getCurrentCUDAStream()) == cudaSuccess,
                "cp_sample points backward kernel failed");
  });
  return grad_xn;
}

}  // namespace tensorfields
