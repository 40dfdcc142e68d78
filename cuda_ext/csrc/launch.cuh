// Launch geometry shared by the grid-stride CUDA kernels (no torch headers).
#pragma once

#include <cstdint>

namespace tensorfields {

constexpr int kGridStrideThreads = 256;

// Blocks for `count` work items, capped: the kernels' grid-stride loops cover the rest.
inline int grid_stride_blocks(int64_t count) {
  const int64_t blocks = (count + kGridStrideThreads - 1) / kGridStrideThreads;
  return static_cast<int>(blocks < 65535 * 16 ? blocks : 65535 * 16);
}

}  // namespace tensorfields
