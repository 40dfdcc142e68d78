// Torch tensors -> the raw view of hashgrid.h (shared by hashgrid_cpu.cpp and hashgrid_cuda.cpp).
#pragma once

#include <torch/extension.h>

#include <vector>

#include "hashgrid.h"

namespace tensorfields {

// table [L, T, F] and its L level resolutions (checked in ext.cpp).
template <typename scalar_t>
HashGridView<scalar_t> hash_grid_view(const at::Tensor& table, const std::vector<int64_t>& resolutions) {
  HashGridView<scalar_t> g{};
  g.table = table.data_ptr<scalar_t>();
  g.levels = static_cast<int32_t>(table.size(0));
  g.size = table.size(1);
  g.features = static_cast<int32_t>(table.size(2));
  for (int32_t l = 0; l < g.levels; ++l) g.resolution[l] = static_cast<int32_t>(resolutions[l]);
  return g;
}

}  // namespace tensorfields
