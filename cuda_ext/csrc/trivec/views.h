// Torch tensors -> the raw views of trivec.h (shared by trivec_cpu.cpp and trivec_cuda.cpp).
#pragma once

#include <torch/extension.h>

#include <vector>

#include "trivec.h"

namespace tensorfields {

// centers [T, 3] and table [C, M] int32 of one scale, its grid's origin (3 values) and resolution
// (3 values), all checked in ext.cpp.
template <typename scalar_t>
TriVecCloudView<scalar_t> cloud_view(const at::Tensor& centers, double half_size, const at::Tensor& table,
                                     const std::vector<double>& origin, double cell_size, const std::vector<int64_t>& resolution) {
  TriVecCloudView<scalar_t> v;
  v.centers = centers.data_ptr<scalar_t>();
  v.tensors = centers.size(0);
  v.half_size = static_cast<scalar_t>(half_size);
  v.table = table.data_ptr<int32_t>();
  v.width = static_cast<int32_t>(table.size(1));
  v.cell_size = static_cast<scalar_t>(cell_size);
  for (int a = 0; a < 3; ++a) {
    v.origin[a] = static_cast<scalar_t>(origin[a]);
    v.resolution[a] = static_cast<int32_t>(resolution[a]);
  }
  return v;
}

// lines [T, 3, R, L] (checked in ext.cpp).
template <typename scalar_t>
TriVecLinesView<scalar_t> lines_view(const at::Tensor& lines) {
  return {lines.data_ptr<scalar_t>(), lines.size(0), static_cast<int32_t>(lines.size(2)), static_cast<int32_t>(lines.size(3))};
}

// The outputs of trivec_neighbors for `n` points and `k` slots: index [n, k] int64, weights [n, k], local [n, k, 3].
inline std::vector<at::Tensor> neighbor_outputs(const at::Tensor& points, int64_t k) {
  const int64_t n = points.size(0);
  return {at::empty({n, k}, points.options().dtype(at::kLong)), at::empty({n, k}, points.options()),
          at::empty({n, k, 3}, points.options())};
}

}  // namespace tensorfields
