// Per-ray occupancy-grid marching, used by march_cpu.cpp and march.cu alike.
//
// Sample k of a ray spans [t_min + (k + j) * step, t_min + (k + 1 + j) * step] (j: the ray's
// jitter in [0, 1)); it is emitted when its midpoint lies before t_max and in an occupied cell.
// Empty cells are skipped cell by cell (DDA): from an empty cell the march jumps to the last
// sample whose midpoint is still before the cell's exit, so no sample of another cell is missed.
// The float arithmetic follows cuda_ext/reference.py operation by operation.
#pragma once

#include <cstdint>

#include "../common.h"

namespace tensorfields {

struct OccupancyGridView {
  const bool* occupied;  // [X, Y, Z] row-major
  int res[3];
  float lo[3];
  float hi[3];
};

// Flat index of the cell holding point p, or -1 outside the grid.
HOST_DEVICE int64_t grid_cell(const OccupancyGridView& grid, const float p[3], int cell[3]) {
  for (int a = 0; a < 3; ++a) {
    const float u = (p[a] - grid.lo[a]) / (grid.hi[a] - grid.lo[a]) * static_cast<float>(grid.res[a]);
    const float f = floorf(u);
    if (!(f >= 0.0f) || f >= static_cast<float>(grid.res[a])) return -1;
    cell[a] = static_cast<int>(f);
  }
  return (static_cast<int64_t>(cell[0]) * grid.res[1] + cell[1]) * grid.res[2] + cell[2];
}

// Distance along the ray at which it leaves `cell` (slab exit), for the DDA jump.
HOST_DEVICE float cell_exit(const OccupancyGridView& grid, const int cell[3], const float o[3], const float d[3]) {
  float t_exit = 3.402823e38f;
  for (int a = 0; a < 3; ++a) {
    if (d[a] == 0.0f) continue;
    const float size = (grid.hi[a] - grid.lo[a]) / static_cast<float>(grid.res[a]);
    const float bound = grid.lo[a] + size * static_cast<float>(d[a] > 0.0f ? cell[a] + 1 : cell[a]);
    const float t = (bound - o[a]) / d[a];
    t_exit = t < t_exit ? t : t_exit;
  }
  return t_exit;
}

// Marches one ray. Writes the emitted samples' t_starts when `out` is non-null; returns their count.
HOST_DEVICE int64_t march_ray(const OccupancyGridView& grid, const float o[3], const float d[3], float t_min, float t_max,
                              float step, float jitter, float* out) {
  const float span = t_max - t_min > 0.0f ? t_max - t_min : 0.0f;
  const int64_t candidates = static_cast<int64_t>(ceilf(span / step));
  int64_t count = 0;
  int64_t k = 0;
  while (k < candidates) {
    const float t_start = t_min + (static_cast<float>(k) + jitter) * step;
    const float t_mid = t_start + 0.5f * step;
    if (!(t_mid < t_max)) break;
    const float p[3] = {o[0] + d[0] * t_mid, o[1] + d[1] * t_mid, o[2] + d[2] * t_mid};
    int cell[3];
    const int64_t flat = grid_cell(grid, p, cell);
    if (flat >= 0 && grid.occupied[flat]) {
      if (out != nullptr) out[count] = t_start;
      ++count;
      ++k;
    } else if (flat >= 0) {
      // last k whose midpoint is before the exit: t_min + (k + j + 0.5) * step < t_exit
      const float t_exit = cell_exit(grid, cell, o, d);
      // (one sample early, so rounding in t_exit can never skip a sample of the next cell)
      const float last = floorf((t_exit - t_min) / step - jitter - 0.5f) - 1.0f;
      const int64_t jump = static_cast<int64_t>(last);
      k = jump > k ? jump : k + 1;
    } else {
      ++k;
    }
  }
  return count;
}

}  // namespace tensorfields
