// Torch tensors -> the raw views of gaussians.h (shared by gaussians_cpu.cpp and gaussians_cuda.cpp).
#pragma once

#include <torch/extension.h>

#include <vector>

#include "gaussians.h"

namespace tensorfields {

// The inputs of gaussian_mix (checked in ext.cpp): means [N, 3], precision_factors [N, 3, 3],
// peaks [N], features [N, F], cell_start [C + 1] int64, cell_gaussians [L] int32, the grid's
// origin (3 values), cell size and resolution (3 values), the cutoff in standard deviations.
template <typename scalar_t>
GaussianMixView<scalar_t> gaussian_mix_view(const at::Tensor& means, const at::Tensor& precision_factors, const at::Tensor& peaks,
                                            const at::Tensor& features, const at::Tensor& cell_start,
                                            const at::Tensor& cell_gaussians, const std::vector<double>& origin, double cell_size,
                                            const std::vector<int64_t>& resolution, double cutoff) {
  GaussianMixView<scalar_t> v;
  v.means = means.data_ptr<scalar_t>();
  v.precision = precision_factors.data_ptr<scalar_t>();
  v.peaks = peaks.data_ptr<scalar_t>();
  v.features = features.data_ptr<scalar_t>();
  v.channels = features.size(1);
  v.cell_start = cell_start.data_ptr<int64_t>();
  v.cell_gaussians = cell_gaussians.data_ptr<int32_t>();
  v.cell_size = static_cast<scalar_t>(cell_size);
  for (int a = 0; a < 3; ++a) {
    v.origin[a] = static_cast<scalar_t>(origin[a]);
    v.resolution[a] = static_cast<int32_t>(resolution[a]);
  }
  v.cutoff_squared = static_cast<scalar_t>(cutoff * cutoff);  // as the reference's `q <= cutoff * cutoff`
  return v;
}

// The forward's outputs for `points [S, 3]`: density [S], mixed [S, F].
inline std::vector<at::Tensor> gaussian_mix_outputs(const at::Tensor& points, const at::Tensor& features) {
  const int64_t samples = points.size(0);
  return {at::empty({samples}, points.options()), at::empty({samples, features.size(1)}, points.options())};
}

// Views into the wanted ones of grads = {means, precision_factors, peaks, features} gradients
// (undefined tensors: not wanted, null pointers).
template <typename scalar_t>
GaussianGradsView<scalar_t> gaussian_grads_view(const std::vector<at::Tensor>& grads) {
  const auto ptr = [](const at::Tensor& t) { return t.defined() ? t.data_ptr<scalar_t>() : nullptr; };
  return {ptr(grads[0]), ptr(grads[1]), ptr(grads[2]), ptr(grads[3])};
}

}  // namespace tensorfields
