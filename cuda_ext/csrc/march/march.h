// Per-ray box intersection and occupancy-grid marching, used by march_cpu.cpp and march.cu alike.
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

// The box and near bound of ray_aabb, by value for kernel launches.
struct RayBox {
  float lo[3];
  float hi[3];
  float near;
};

// Step rule of march_ray, by value for kernel launches.
struct MarchParams {
  float step;
  float cone_angle;
  float max_step;
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

// Slab test of one ray against the box [lo, hi], clipped to [near, far] (reference.ray_aabb_intersect).
HOST_DEVICE bool ray_aabb(const float o[3], const float d[3], const float lo[3], const float hi[3], float near, float far,
                          float* t_min, float* t_max) {
  float t_enter = -3.402823e38f;
  float t_exit = 3.402823e38f;
  for (int a = 0; a < 3; ++a) {
    const float inv = 1.0f / (fabsf(d[a]) < 1e-12f ? 1e-12f : d[a]);
    const float t0 = (lo[a] - o[a]) * inv;
    const float t1 = (hi[a] - o[a]) * inv;
    t_enter = fmaxf(t_enter, fminf(t0, t1));
    t_exit = fminf(t_exit, fmaxf(t0, t1));
  }
  *t_min = fmaxf(t_enter, near);
  *t_max = fminf(t_exit, far);
  return *t_max > *t_min;
}

// Step length of cone stepping at distance t: clamp(t * cone_angle, step, max_step).
HOST_DEVICE float cone_step(float t, float step, float cone_angle, float max_step) {
  return fminf(fmaxf(t * cone_angle, step), max_step);
}

// Counts samples without storing them (the first pass of a two-pass march).
struct CountSamples {
  HOST_DEVICE void operator()(float, float) {}
};

// Writes samples to consecutive slots from `starts`/`ends`.
struct WriteSamples {
  float* starts;
  float* ends;
  HOST_DEVICE void operator()(float t_start, float t_end) {
    *starts++ = t_start;
    *ends++ = t_end;
  }
};

// Marches one ray at a fixed step (cone_angle == 0) or with cone stepping (cone_angle > 0: each
// step is cone_step() of its start, the first one offset by jitter times its length), calling
// emit(t_start, t_end) for every sample whose midpoint is in an occupied cell; returns their count.
template <typename Emit>
HOST_DEVICE int64_t march_ray(const OccupancyGridView& grid, const float o[3], const float d[3], float t_min, float t_max,
                              float step, float cone_angle, float max_step, float jitter, Emit& emit) {
  int64_t count = 0;
  int cell[3];
  if (cone_angle > 0.0f) {
    float t = t_min + jitter * cone_step(t_min, step, cone_angle, max_step);
    while (true) {
      const float dt = cone_step(t, step, cone_angle, max_step);
      const float t_mid = t + 0.5f * dt;
      if (!(t_mid < t_max)) break;
      const float p[3] = {o[0] + d[0] * t_mid, o[1] + d[1] * t_mid, o[2] + d[2] * t_mid};
      const int64_t flat = grid_cell(grid, p, cell);
      if (flat >= 0 && grid.occupied[flat]) {
        emit(t, t + dt);
        ++count;
      }
      t = t + dt;
    }
    return count;
  }
  const float span = t_max - t_min > 0.0f ? t_max - t_min : 0.0f;
  const int64_t candidates = static_cast<int64_t>(ceilf(span / step));
  int64_t empty_cell = -1;  // the empty cell being crossed: its samples need no lookup
  int64_t k = 0;
  while (k < candidates) {
    const float t_start = t_min + (static_cast<float>(k) + jitter) * step;
    const float t_mid = t_start + 0.5f * step;
    if (!(t_mid < t_max)) break;
    const float p[3] = {o[0] + d[0] * t_mid, o[1] + d[1] * t_mid, o[2] + d[2] * t_mid};
    const int64_t flat = grid_cell(grid, p, cell);
    if (flat < 0 || flat == empty_cell) {
      ++k;
    } else if (grid.occupied[flat]) {
      emit(t_start, t_start + step);
      ++count;
      ++k;
    } else {
      // DDA: jump to the last sample whose midpoint is (up to rounding) before the cell's exit;
      // that sample's own cell is looked up, so rounding in t_exit never skips a sample elsewhere
      empty_cell = flat;
      const float t_exit = cell_exit(grid, cell, o, d);
      const int64_t last = static_cast<int64_t>(floorf((t_exit - t_min) / step - jitter - 0.5f));
      k = last > k ? last : k + 1;
    }
  }
  return count;
}

}  // namespace tensorfields
