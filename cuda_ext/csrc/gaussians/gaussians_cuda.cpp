// Torch glue for gaussians.cu: allocation, views, error checks.
#include <ATen/cuda/CUDAContext.h>

#include "../ops.h"
#include "gaussians.h"
#include "views.h"

namespace tensorfields {

template <typename scalar_t>
cudaError_t launch_gaussian_mix_fwd(const GaussianMixView<scalar_t>& v, const scalar_t* x, int64_t n, scalar_t* density,
                                    scalar_t* mixed, cudaStream_t stream);
template <typename scalar_t>
cudaError_t launch_gaussian_mix_bwd(const GaussianMixView<scalar_t>& v, const scalar_t* x, int64_t n, const scalar_t* grad_density,
                                    const scalar_t* grad_mixed, const GaussianGradsView<scalar_t>& grads, scalar_t* grad_points,
                                    cudaStream_t stream);

std::vector<at::Tensor> gaussian_mix_fwd_cuda(TENSORFIELDS_GAUSSIAN_MIX_FORWARD_ARGS) {
  std::vector<at::Tensor> out = gaussian_mix_outputs(points, features);
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "gaussian_mix_fwd_cuda", [&] {
    TORCH_CHECK(launch_gaussian_mix_fwd(gaussian_mix_view<scalar_t>(means, precision_factors, peaks, features, cell_start,
                                                                    cell_gaussians, origin, cell_size, resolution, cutoff),
                                        points.data_ptr<scalar_t>(), points.size(0), out[0].data_ptr<scalar_t>(),
                                        out[1].data_ptr<scalar_t>(), at::cuda::getCurrentCUDAStream()) == cudaSuccess,
                "gaussian_mix forward kernel failed");
  });
  return out;
}

std::vector<at::Tensor> gaussian_mix_bwd_cuda(TENSORFIELDS_GAUSSIAN_MIX_BACKWARD_ARGS) {
  // the Gaussians' gradients are added to (zero-filled); the points' are written
  const std::vector<at::Tensor> inputs = {means, precision_factors, peaks, features};
  std::vector<at::Tensor> gaussian_grads;
  for (size_t k = 0; k < inputs.size(); ++k) gaussian_grads.push_back(wanted[k + 1] ? at::zeros_like(inputs[k]) : at::Tensor());
  at::Tensor grad_points = wanted[0] ? at::empty_like(points) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "gaussian_mix_bwd_cuda", [&] {
    TORCH_CHECK(launch_gaussian_mix_bwd(gaussian_mix_view<scalar_t>(means, precision_factors, peaks, features, cell_start,
                                                                    cell_gaussians, origin, cell_size, resolution, cutoff),
                                        points.data_ptr<scalar_t>(), points.size(0), grad_density.data_ptr<scalar_t>(),
                                        grad_mixed.data_ptr<scalar_t>(), gaussian_grads_view<scalar_t>(gaussian_grads),
                                        grad_points.defined() ? grad_points.data_ptr<scalar_t>() : nullptr,
                                        at::cuda::getCurrentCUDAStream()) == cudaSuccess,
                "gaussian_mix backward kernel failed");
  });
  std::vector<at::Tensor> grads = {grad_points};
  grads.insert(grads.end(), gaussian_grads.begin(), gaussian_grads.end());
  return grads;
}

}  // namespace tensorfields
