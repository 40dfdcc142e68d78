// Per-sample logic of the Gaussian-mixture op, used by gaussians_cpu.cpp and gaussians.cu alike.
//
// N Gaussians: means mu_i [N, 3], precision factors P_i [N, 3, 3] (P_i^T P_i is the inverse
// covariance), peaks [N], features [N, F]. At x, Gaussian i weighs w_i = peak_i exp(-q / 2) with
// q = |P_i (x - mu_i)|^2, and 0 where q > cutoff^2. A lookup grid of cubic cells lists, per cell,
// the Gaussians to visit (CSR: cell c lists cell_gaussians[cell_start[c] .. cell_start[c + 1]]);
// a point outside the grid visits none. density(x) = sum_i w_i, mixed(x) = sum_i w_i features_i.
//
// Backward, per visited pair (x, i) inside the cutoff, with e = exp(-q / 2), w = peak_i e,
// d = x - mu_i, u = P_i d and upstream gradients g_d (density), g_m [F] (mixed):
//   gw = g_d + g_m . f_i;  grad f_i += w g_m;  grad peak_i += gw e;
//   g_u = -gw w u;  grad P_i += g_u d^T;  grad x += P_i^T g_u;  grad mu_i -= P_i^T g_u.
#pragma once

#include <cstdint>

#include "../common.h"

namespace tensorfields {

// The Gaussians and their lookup grid.
template <typename scalar_t>
struct GaussianMixView {
  const scalar_t* means;  // [N, 3]
  const scalar_t* precision;  // [N, 3, 3], row-major
  const scalar_t* peaks;  // [N]
  const scalar_t* features;  // [N, F]
  int64_t channels;  // F
  const int64_t* cell_start;  // [C + 1], C = resolution[0] * resolution[1] * resolution[2]
  const int32_t* cell_gaussians;  // [L], indices in [0, N)
  scalar_t origin[3];  // the grid's lower corner
  scalar_t cell_size;
  int32_t resolution[3];
  scalar_t cutoff_squared;  // in units of q
};

// Gradient arrays of the Gaussians' inputs, each null when not wanted: means [N, 3],
// precision [N, 3, 3], peaks [N], features [N, F].
template <typename scalar_t>
struct GaussianGradsView {
  scalar_t* means;
  scalar_t* precision;
  scalar_t* peaks;
  scalar_t* features;
};

// The offsets [first, last) into cell_gaussians of the Gaussians x visits (empty outside the grid).
struct GaussianRange {
  int64_t first, last;
};

template <typename scalar_t>
HOST_DEVICE GaussianRange gaussian_range(const GaussianMixView<scalar_t>& v, const scalar_t* x) {
  const int64_t row = grid_row(v.origin, v.cell_size, v.resolution, x);
  if (row < 0) return {0, 0};
  return {v.cell_start[row], v.cell_start[row + 1]};
}

// One (point, Gaussian) pair inside the cutoff: d = x - mu [3], u = P d [3], e = exp(-q / 2).
template <typename scalar_t>
struct GaussianPair {
  scalar_t d[3], u[3], e;
};

// Whether x lies within the cutoff of Gaussian i (false for NaN too); fills `pair` when it does.
template <typename scalar_t>
HOST_DEVICE bool gaussian_pair(const GaussianMixView<scalar_t>& v, int64_t i, const scalar_t* x, GaussianPair<scalar_t>& pair) {
  const scalar_t* mu = v.means + 3 * i;
  const scalar_t* p = v.precision + 9 * i;
  for (int a = 0; a < 3; ++a) pair.d[a] = x[a] - mu[a];
  scalar_t q = 0;
  for (int a = 0; a < 3; ++a) {
    pair.u[a] = p[3 * a] * pair.d[0] + p[3 * a + 1] * pair.d[1] + p[3 * a + 2] * pair.d[2];
    q += pair.u[a] * pair.u[a];
  }
  if (!(q <= v.cutoff_squared)) return false;
  pair.e = exp_of(scalar_t(-0.5) * q);
  return true;
}

// density at x (returned) and mixed [F] (written).
template <typename scalar_t>
HOST_DEVICE scalar_t gaussian_mix_at(const GaussianMixView<scalar_t>& v, const scalar_t* x, scalar_t* mixed) {
  for (int64_t c = 0; c < v.channels; ++c) mixed[c] = scalar_t(0);
  scalar_t density = 0;
  const GaussianRange range = gaussian_range(v, x);
  for (int64_t k = range.first; k < range.last; ++k) {
    const int64_t i = v.cell_gaussians[k];
    GaussianPair<scalar_t> pair;
    if (!gaussian_pair(v, i, x, pair)) continue;
    const scalar_t w = v.peaks[i] * pair.e;
    const scalar_t* f = v.features + i * v.channels;
    density += w;
    for (int64_t c = 0; c < v.channels; ++c) mixed[c] += w * f[c];
  }
  return density;
}

// Adds one pair's gradients to Gaussian i's wanted entries of `grads` through add(scalar_t* target,
// scalar_t value) (a plain += into a private buffer on the CPU, atomicAdd on the GPU) and P_i^T g_u
// to grad_x [3]; grad_mixed [F] is the sample's upstream gradient of mixed, gw its total weight gradient.
template <typename scalar_t, typename Add>
HOST_DEVICE void gaussian_pair_backward(const GaussianMixView<scalar_t>& v, int64_t i, const GaussianPair<scalar_t>& pair,
                                        scalar_t w, scalar_t gw, const scalar_t* grad_mixed,
                                        const GaussianGradsView<scalar_t>& grads, scalar_t grad_x[3], Add add) {
  if (grads.features != nullptr)
    for (int64_t c = 0; c < v.channels; ++c) add(grads.features + i * v.channels + c, w * grad_mixed[c]);
  if (grads.peaks != nullptr) add(grads.peaks + i, gw * pair.e);
  const scalar_t scale = -gw * w;
  const scalar_t g_u[3] = {scale * pair.u[0], scale * pair.u[1], scale * pair.u[2]};
  if (grads.precision != nullptr)
    for (int a = 0; a < 3; ++a)
      for (int b = 0; b < 3; ++b) add(grads.precision + 9 * i + 3 * a + b, g_u[a] * pair.d[b]);
  const scalar_t* p = v.precision + 9 * i;
  for (int b = 0; b < 3; ++b) {
    const scalar_t g_d = p[b] * g_u[0] + p[3 + b] * g_u[1] + p[6 + b] * g_u[2];  // (P^T g_u)_b
    grad_x[b] += g_d;
    if (grads.means != nullptr) add(grads.means + 3 * i + b, -g_d);
  }
}

// Backward of gaussian_mix_at at x for upstream gradients grad_density and grad_mixed [F]:
// adds to the wanted Gaussian gradients through `add` (see gaussian_pair_backward) and writes the
// gradient w.r.t. x to grad_x [3] unless it is null.
template <typename scalar_t, typename Add>
HOST_DEVICE void gaussian_mix_backward_at(const GaussianMixView<scalar_t>& v, const scalar_t* x, scalar_t grad_density,
                                          const scalar_t* grad_mixed, const GaussianGradsView<scalar_t>& grads,
                                          scalar_t* grad_x, Add add) {
  scalar_t gx[3] = {0, 0, 0};
  const GaussianRange range = gaussian_range(v, x);
  for (int64_t k = range.first; k < range.last; ++k) {
    const int64_t i = v.cell_gaussians[k];
    GaussianPair<scalar_t> pair;
    if (!gaussian_pair(v, i, x, pair)) continue;
    const scalar_t w = v.peaks[i] * pair.e;
    const scalar_t* f = v.features + i * v.channels;
    scalar_t gw = grad_density;
    for (int64_t c = 0; c < v.channels; ++c) gw += grad_mixed[c] * f[c];
    gaussian_pair_backward(v, i, pair, w, gw, grad_mixed, grads, gx, add);
  }
  if (grad_x != nullptr)
    for (int a = 0; a < 3; ++a) grad_x[a] = gx[a];
}

}  // namespace tensorfields
