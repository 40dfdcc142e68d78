// Torch glue for trivec.cu: allocation, views, error checks.
#include <ATen/cuda/CUDAContext.h>

#include "../ops.h"
#include "trivec.h"
#include "views.h"

namespace tensorfields {

template <typename scalar_t>
cudaError_t launch_trivec_neighbors(const TriVecCloudView<scalar_t>& v, const scalar_t* x, int64_t n, int32_t k, int64_t* index,
                                    scalar_t* weights, scalar_t* local, cudaStream_t stream);
template <typename scalar_t>
cudaError_t launch_trivec_sample_fwd(const TriVecLinesView<scalar_t>& f, const int64_t* index, const scalar_t* weights,
                                     const scalar_t* local, int64_t n, int64_t k, bool reduce, scalar_t* out, cudaStream_t stream);
template <typename scalar_t>
cudaError_t launch_trivec_sample_bwd(const TriVecLinesView<scalar_t>& f, const int64_t* index, const scalar_t* weights,
                                     const scalar_t* local, int64_t n, int64_t k, const scalar_t* grad_out, bool reduce,
                                     scalar_t* grad, cudaStream_t stream);

std::vector<at::Tensor> trivec_neighbors_cuda(const at::Tensor& points, const at::Tensor& centers, double half_size,
                                              const at::Tensor& table, const std::vector<double>& origin, double cell_size,
                                              const std::vector<int64_t>& resolution, int64_t k) {
  std::vector<at::Tensor> out = neighbor_outputs(points, k);
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "trivec_neighbors_cuda", [&] {
    TORCH_CHECK(launch_trivec_neighbors(cloud_view<scalar_t>(centers, half_size, table, origin, cell_size, resolution),
                                        points.data_ptr<scalar_t>(), points.size(0), static_cast<int32_t>(k),
                                        out[0].data_ptr<int64_t>(), out[1].data_ptr<scalar_t>(), out[2].data_ptr<scalar_t>(),
                                        at::cuda::getCurrentCUDAStream()) == cudaSuccess,
                "trivec_neighbors kernel failed");
  });
  return out;
}

at::Tensor trivec_sample_fwd_cuda(const at::Tensor& lines, const at::Tensor& index, const at::Tensor& weights,
                                  const at::Tensor& local, bool reduce) {
  const int64_t n = index.size(0);
  at::Tensor out = reduce ? at::empty({n}, lines.options()) : at::empty({lines.size(2), n}, lines.options());
  AT_DISPATCH_FLOATING_TYPES(lines.scalar_type(), "trivec_sample_fwd_cuda", [&] {
    TORCH_CHECK(launch_trivec_sample_fwd(lines_view<scalar_t>(lines), index.data_ptr<int64_t>(), weights.data_ptr<scalar_t>(),
                                         local.data_ptr<scalar_t>(), n, index.size(1), reduce, out.data_ptr<scalar_t>(),
                                         at::cuda::getCurrentCUDAStream()) == cudaSuccess,
                "trivec_sample forward kernel failed");
  });
  return out;
}

at::Tensor trivec_sample_bwd_cuda(const at::Tensor& lines, const at::Tensor& index, const at::Tensor& weights,
                                  const at::Tensor& local, const at::Tensor& grad_out, bool reduce) {
  at::Tensor grad_lines = at::zeros_like(lines);
  AT_DISPATCH_FLOATING_TYPES(lines.scalar_type(), "trivec_sample_bwd_cuda", [&] {
    TORCH_CHECK(launch_trivec_sample_bwd(lines_view<scalar_t>(lines), index.data_ptr<int64_t>(), weights.data_ptr<scalar_t>(),
                                         local.data_ptr<scalar_t>(), index.size(0), index.size(1), grad_out.data_ptr<scalar_t>(),
                                         reduce, grad_lines.data_ptr<scalar_t>(), at::cuda::getCurrentCUDAStream()) == cudaSuccess,
                "trivec_sample backward kernel failed");
  });
  return grad_lines;
}

}  // namespace tensorfields
