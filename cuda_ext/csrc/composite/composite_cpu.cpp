// Packed compositing on the CPU: one ray per iteration of at::parallel_for (rays own their samples).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include "../ops.h"
#include "composite.h"
#include "composite_tensors.h"

namespace tensorfields {

std::vector<at::Tensor> composite_forward_cpu(const at::Tensor& sigmas, const at::Tensor& rgbs, const at::Tensor& t_starts,
                                              const at::Tensor& t_ends, const at::Tensor& packed_info, double stop_eps) {
  const int64_t num_rays = packed_info.size(0);
  std::vector<at::Tensor> outputs = composite_outputs(sigmas, num_rays);
  const at::Tensor &rgb = outputs[0], &opacity = outputs[1], &depth = outputs[2], &weights = outputs[3], &transmittance = outputs[4];
  const int64_t* info = packed_info.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES(sigmas.scalar_type(), "composite_forward_cpu", [&] {
    const PackedSamples<scalar_t> samples = packed_samples<scalar_t>(sigmas, rgbs, t_starts, t_ends);
    scalar_t* w = weights.data_ptr<scalar_t>();
    scalar_t* trans = transmittance.data_ptr<scalar_t>();
    scalar_t* out_rgb = rgb.data_ptr<scalar_t>();
    scalar_t* out_opacity = opacity.data_ptr<scalar_t>();
    scalar_t* out_depth = depth.data_ptr<scalar_t>();
    const scalar_t eps = static_cast<scalar_t>(stop_eps);
    at::parallel_for(0, num_rays, 512, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r)
        composite_ray_forward(samples, info[2 * r], info[2 * r + 1], eps, w, trans, out_rgb + 3 * r, out_opacity + r,
                              out_depth + r);
    });
  });
  return outputs;
}

std::vector<at::Tensor> composite_backward_cpu(const at::Tensor& grad_rgb, const at::Tensor& grad_opacity,
                                               const at::Tensor& grad_depth, const at::Tensor& sigmas, const at::Tensor& rgbs,
                                               const at::Tensor& t_starts, const at::Tensor& t_ends,
                                               const at::Tensor& packed_info, const at::Tensor& weights,
                                               const at::Tensor& transmittance, double stop_eps) {
  const int64_t num_rays = packed_info.size(0);
  at::Tensor grad_sigmas = at::empty_like(sigmas);
  at::Tensor grad_rgbs = at::empty_like(rgbs);
  const int64_t* info = packed_info.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES(sigmas.scalar_type(), "composite_backward_cpu", [&] {
    const PackedSamples<scalar_t> samples = packed_samples<scalar_t>(sigmas, rgbs, t_starts, t_ends);
    const scalar_t* g_rgb = grad_rgb.data_ptr<scalar_t>();
    const scalar_t* g_opacity = grad_opacity.data_ptr<scalar_t>();
    const scalar_t* g_depth = grad_depth.data_ptr<scalar_t>();
    const scalar_t* w = weights.data_ptr<scalar_t>();
    const scalar_t* trans = transmittance.data_ptr<scalar_t>();
    scalar_t* out_sigmas = grad_sigmas.data_ptr<scalar_t>();
    scalar_t* out_rgbs = grad_rgbs.data_ptr<scalar_t>();
    const scalar_t eps = static_cast<scalar_t>(stop_eps);
    at::parallel_for(0, num_rays, 512, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r)
        composite_ray_backward(samples, info[2 * r], info[2 * r + 1], eps, w, trans, g_rgb + 3 * r, g_opacity[r], g_depth[r],
                               out_sigmas, out_rgbs);
    });
  });
  return {grad_sigmas, grad_rgbs};
}

std::vector<at::Tensor> transmittance_cpu(const at::Tensor& sigmas, const at::Tensor& t_starts, const at::Tensor& t_ends,
                                          const at::Tensor& packed_info) {
  const int64_t num_rays = packed_info.size(0);
  at::Tensor transmittance = at::empty_like(sigmas);
  at::Tensor alphas = at::empty_like(sigmas);
  const int64_t* info = packed_info.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES(sigmas.scalar_type(), "transmittance_cpu", [&] {
    const scalar_t* s = sigmas.data_ptr<scalar_t>();
    const scalar_t* t0 = t_starts.data_ptr<scalar_t>();
    const scalar_t* t1 = t_ends.data_ptr<scalar_t>();
    scalar_t* trans = transmittance.data_ptr<scalar_t>();
    scalar_t* alpha = alphas.data_ptr<scalar_t>();
    at::parallel_for(0, num_rays, 512, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) transmittance_ray(s, t0, t1, info[2 * r], info[2 * r + 1], trans, alpha);
    });
  });
  return {transmittance, alphas};
}

}  // namespace tensorfields
