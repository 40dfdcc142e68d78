// Torch glue for composite.cu: allocation, dtype dispatch, launch error checks.
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>

#include "../ops.h"
#include "composite.h"
#include "composite_tensors.h"

namespace tensorfields {

template <typename scalar_t>
cudaError_t launch_composite_forward(PackedSamples<scalar_t> samples, const int64_t* info, int64_t num_rays, scalar_t stop_eps,
                                     scalar_t* weights, scalar_t* transmittance, scalar_t* rgb, scalar_t* opacity,
                                     scalar_t* depth, cudaStream_t stream);
template <typename scalar_t>
cudaError_t launch_composite_backward(PackedSamples<scalar_t> samples, const int64_t* info, int64_t num_rays,
                                      scalar_t stop_eps, const scalar_t* weights, const scalar_t* transmittance,
                                      const scalar_t* grad_rgb, const scalar_t* grad_opacity, const scalar_t* grad_depth,
                                      scalar_t* grad_sigmas, scalar_t* grad_rgbs, cudaStream_t stream);
template <typename scalar_t>
cudaError_t launch_transmittance(const scalar_t* sigmas, const scalar_t* t_starts, const scalar_t* t_ends, const int64_t* info,
                                 int64_t num_rays, scalar_t* transmittance, scalar_t* alphas, cudaStream_t stream);

std::vector<at::Tensor> composite_forward_cuda(const at::Tensor& sigmas, const at::Tensor& rgbs, const at::Tensor& t_starts,
                                               const at::Tensor& t_ends, const at::Tensor& packed_info, double stop_eps) {
  const int64_t num_rays = packed_info.size(0);
  std::vector<at::Tensor> outputs = composite_outputs(sigmas, num_rays);
  const at::Tensor &rgb = outputs[0], &opacity = outputs[1], &depth = outputs[2], &weights = outputs[3], &transmittance = outputs[4];
  AT_DISPATCH_FLOATING_TYPES(sigmas.scalar_type(), "composite_forward_cuda", [&] {
    const PackedSamples<scalar_t> samples = packed_samples<scalar_t>(sigmas, rgbs, t_starts, t_ends);
    TORCH_CHECK(launch_composite_forward<scalar_t>(samples, packed_info.data_ptr<int64_t>(), num_rays,
                                                   static_cast<scalar_t>(stop_eps), weights.data_ptr<scalar_t>(),
                                                   transmittance.data_ptr<scalar_t>(), rgb.data_ptr<scalar_t>(),
                                                   opacity.data_ptr<scalar_t>(), depth.data_ptr<scalar_t>(),
                                                   at::cuda::getCurrentCUDAStream()) == cudaSuccess,
                "composite forward kernel failed");
  });
  return outputs;
}

std::vector<at::Tensor> composite_backward_cuda(const at::Tensor& grad_rgb, const at::Tensor& grad_opacity,
                                                const at::Tensor& grad_depth, const at::Tensor& sigmas, const at::Tensor& rgbs,
                                                const at::Tensor& t_starts, const at::Tensor& t_ends,
                                                const at::Tensor& packed_info, const at::Tensor& weights,
                                                const at::Tensor& transmittance, double stop_eps) {
  at::Tensor grad_sigmas = at::empty_like(sigmas);
  at::Tensor grad_rgbs = at::empty_like(rgbs);
  AT_DISPATCH_FLOATING_TYPES(sigmas.scalar_type(), "composite_backward_cuda", [&] {
    const PackedSamples<scalar_t> samples = packed_samples<scalar_t>(sigmas, rgbs, t_starts, t_ends);
    TORCH_CHECK(launch_composite_backward<scalar_t>(
                    samples, packed_info.data_ptr<int64_t>(), packed_info.size(0), static_cast<scalar_t>(stop_eps),
                    weights.data_ptr<scalar_t>(), transmittance.data_ptr<scalar_t>(), grad_rgb.data_ptr<scalar_t>(),
                    grad_opacity.data_ptr<scalar_t>(), grad_depth.data_ptr<scalar_t>(), grad_sigmas.data_ptr<scalar_t>(),
                    grad_rgbs.data_ptr<scalar_t>(), at::cuda::getCurrentCUDAStream()) == cudaSuccess,
                "composite backward kernel failed");
  });
  return {grad_sigmas, grad_rgbs};
}

std::vector<at::Tensor> transmittance_cuda(const at::Tensor& sigmas, const at::Tensor& t_starts, const at::Tensor& t_ends,
                                           const at::Tensor& packed_info) {
  at::Tensor transmittance = at::empty_like(sigmas);
  at::Tensor alphas = at::empty_like(sigmas);
  AT_DISPATCH_FLOATING_TYPES(sigmas.scalar_type(), "transmittance_cuda", [&] {
    TORCH_CHECK(launch_transmittance<scalar_t>(sigmas.data_ptr<scalar_t>(), t_starts.data_ptr<scalar_t>(),
                                               t_ends.data_ptr<scalar_t>(), packed_info.data_ptr<int64_t>(),
                                               packed_info.size(0), transmittance.data_ptr<scalar_t>(),
                                               alphas.data_ptr<scalar_t>(), at::cuda::getCurrentCUDAStream()) == cudaSuccess,
                "transmittance kernel failed");
  });
  return {transmittance, alphas};
}

}  // namespace tensorfields
