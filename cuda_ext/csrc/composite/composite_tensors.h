// Torch-side helpers shared by composite_cpu.cpp and composite_cuda.cpp (not by composite.cu).
#pragma once

#include <torch/extension.h>

#include <vector>

#include "composite.h"

namespace tensorfields {

// The forward's outputs, like `sigmas [S]`: rgb [R, 3], opacity [R], depth [R], weights [S], transmittance [S].
inline std::vector<at::Tensor> composite_outputs(const at::Tensor& sigmas, int64_t num_rays) {
  return {at::empty({num_rays, 3}, sigmas.options()), at::empty({num_rays}, sigmas.options()),
          at::empty({num_rays}, sigmas.options()), at::empty_like(sigmas), at::empty_like(sigmas)};
}

template <typename scalar_t>
PackedSamples<scalar_t> packed_samples(const at::Tensor& sigmas, const at::Tensor& rgbs, const at::Tensor& t_starts,
                                       const at::Tensor& t_ends) {
  return {sigmas.data_ptr<scalar_t>(), rgbs.data_ptr<scalar_t>(), t_starts.data_ptr<scalar_t>(), t_ends.data_ptr<scalar_t>()};
}

}  // namespace tensorfields
