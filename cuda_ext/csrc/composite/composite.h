// Per-ray volume compositing, forward and backward, used by composite_cpu.cpp and composite.cu.
//
// For the samples i of one ray (packed: first, count), with delta_i = t1_i - t0_i:
//   T_i = exp(-sum_{j<i} sigma_j delta_j), alpha_i = 1 - exp(-sigma_i delta_i), w_i = T_i alpha_i,
//   rgb = sum w_i c_i, opacity = sum w_i, depth = sum w_i (t0_i + t1_i) / 2.
// With stop_eps > 0 the ray terminates early: samples whose T_i is below stop_eps get w_i = 0.
// Backward (as nerfacc's): with g_i = <dL/drgb, c_i> + dL/dopacity + dL/ddepth * mid_i,
//   dL/dc_i = w_i dL/drgb and dL/dsigma_i = delta_i (T_{i+1} g_i - sum_{k>i} w_k g_k).
#pragma once

#include <cstdint>

#include "../common.h"

namespace tensorfields {

template <typename scalar_t>
struct PackedSamples {
  const scalar_t* sigmas;   // [S]
  const scalar_t* rgbs;     // [S, 3]
  const scalar_t* t_starts; // [S]
  const scalar_t* t_ends;   // [S]
};

// Forward for one ray. Writes weights[i] and transmittance[i] of its samples, rgb[3], opacity, depth.
template <typename scalar_t>
HOST_DEVICE void composite_ray_forward(const PackedSamples<scalar_t>& s, int64_t first, int64_t count, scalar_t stop_eps,
                                       scalar_t* weights, scalar_t* transmittance, scalar_t* rgb, scalar_t* opacity,
                                       scalar_t* depth) {
  scalar_t optical = 0;  // sum_{j<i} sigma_j delta_j
  scalar_t acc[5] = {0, 0, 0, 0, 0};
  for (int64_t i = first; i < first + count; ++i) {
    const scalar_t delta = s.t_ends[i] - s.t_starts[i];
    const scalar_t trans = exp_of(-optical);
    const scalar_t tau = s.sigmas[i] * delta;
    const scalar_t weight = trans < stop_eps ? scalar_t(0) : trans * (scalar_t(1) - exp_of(-tau));
    weights[i] = weight;
    transmittance[i] = trans;
    acc[0] += weight * s.rgbs[3 * i];
    acc[1] += weight * s.rgbs[3 * i + 1];
    acc[2] += weight * s.rgbs[3 * i + 2];
    acc[3] += weight;
    acc[4] += weight * scalar_t(0.5) * (s.t_starts[i] + s.t_ends[i]);
    optical += tau;
  }
  rgb[0] = acc[0];
  rgb[1] = acc[1];
  rgb[2] = acc[2];
  *opacity = acc[3];
  *depth = acc[4];
}

// Backward for one ray, from the forward's weights and transmittance and the ray's output gradients
// grad_rgb[3], grad_opacity, grad_depth (and the forward's stop_eps). Writes grad_sigmas[i] and grad_rgbs[3 i..3 i+2].
template <typename scalar_t>
HOST_DEVICE void composite_ray_backward(const PackedSamples<scalar_t>& s, int64_t first, int64_t count,
                                        scalar_t stop_eps, const scalar_t* weights, const scalar_t* transmittance,
                                        const scalar_t* grad_rgb, scalar_t grad_opacity, scalar_t grad_depth,
                                        scalar_t* grad_sigmas,
                                        scalar_t* grad_rgbs) {
  // total = sum_k w_k g_k; the suffix sum_{k>i} w_k g_k is total minus the running prefix
  scalar_t total = 0;
  for (int64_t i = first; i < first + count; ++i) {
    const scalar_t mid = scalar_t(0.5) * (s.t_starts[i] + s.t_ends[i]);
    const scalar_t g = grad_rgb[0] * s.rgbs[3 * i] + grad_rgb[1] * s.rgbs[3 * i + 1] + grad_rgb[2] * s.rgbs[3 * i + 2] +
                       grad_opacity + grad_depth * mid;
    total += weights[i] * g;
  }
  scalar_t prefix = 0;
  for (int64_t i = first; i < first + count; ++i) {
    const scalar_t delta = s.t_ends[i] - s.t_starts[i];
    const scalar_t mid = scalar_t(0.5) * (s.t_starts[i] + s.t_ends[i]);
    const scalar_t g = grad_rgb[0] * s.rgbs[3 * i] + grad_rgb[1] * s.rgbs[3 * i + 1] + grad_rgb[2] * s.rgbs[3 * i + 2] +
                       grad_opacity + grad_depth * mid;
    prefix += weights[i] * g;
    // a terminated sample (weight forced to 0) passes no gradient, nor do the samples after it
    const bool live = !(transmittance[i] < stop_eps);
    const scalar_t trans_after = transmittance[i] - weights[i];  // T_{i+1} = T_i (1 - alpha_i)
    grad_sigmas[i] = live ? delta * (trans_after * g - (total - prefix)) : scalar_t(0);
    grad_rgbs[3 * i] = weights[i] * grad_rgb[0];
    grad_rgbs[3 * i + 1] = weights[i] * grad_rgb[1];
    grad_rgbs[3 * i + 2] = weights[i] * grad_rgb[2];
  }
}

// Transmittance before each sample of one ray and the sample's alpha (no colours needed).
template <typename scalar_t>
HOST_DEVICE void transmittance_ray(const scalar_t* sigmas, const scalar_t* t_starts, const scalar_t* t_ends, int64_t first,
                                   int64_t count, scalar_t* transmittance, scalar_t* alphas) {
  scalar_t optical = 0;
  for (int64_t i = first; i < first + count; ++i) {
    const scalar_t tau = sigmas[i] * (t_ends[i] - t_starts[i]);
    transmittance[i] = exp_of(-optical);
    alphas[i] = scalar_t(1) - exp_of(-tau);
    optical += tau;
  }
}

}  // namespace tensorfields
