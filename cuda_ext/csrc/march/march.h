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

// Step rule of march_ray, by value for kernel launches. contracted: the grid spans mip-NeRF 360's
// contracted space (see contract_point), and steps are stretched by contraction_stretch.
struct MarchParams {
  float step;
  float cone_angle;
  float max_step;
  bool contracted;
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

// mip-NeRF 360's contraction (reference.contract): p inside the unit ball stays, p outside goes to
// (2 - 1 / |p|) p / |p|, inside the ball of radius 2.
HOST_DEVICE void contract_point(const float p[3], float q[3]) {
  const float r2 = p[0] * p[0] + p[1] * p[1] + p[2] * p[2];
  if (r2 <= 1.0f) {
    q[0] = p[0], q[1] = p[1], q[2] = p[2];
    return;
  }
  const float r = sqrtf(r2);
  const float scale = (2.0f - 1.0f / r) / r;
  q[0] = p[0] * scale, q[1] = p[1] * scale, q[2] = p[2] * scale;
}

// How much longer a step from p along the unit direction d is than the step it makes in
// contracted space (1 / |J d|, J the contraction's Jacobian at p; reference.contraction_stretch):
// 1 inside the unit ball; outside, |p|^2 / sqrt(cos^2 + sin^2 (2 |p| - 1)^2) with cos the cosine
// between p and d (|p|^2 going straight out, about |p| / 2 going across).
HOST_DEVICE float contraction_stretch(const float p[3], const float d[3]) {
  const float r2 = p[0] * p[0] + p[1] * p[1] + p[2] * p[2];
  if (r2 <= 1.0f) return 1.0f;
  const float r = sqrtf(r2);
  const float cos_angle = (p[0] * d[0] + p[1] * d[1] + p[2] * d[2]) / r;
  const float sin2 = fmaxf(1.0f - cos_angle * cos_angle, 0.0f);
  const float across = 2.0f * r - 1.0f;
  return r2 / sqrtf(cos_angle * cos_angle + sin2 * across * across);
}

// Length of the step that starts at t: cone_step, stretched in contracted space.
HOST_DEVICE float step_at(const MarchParams& params, const float o[3], const float d[3], float t) {
  const float dt = cone_step(t, params.step, params.cone_angle, params.max_step);
  if (!params.contracted) return dt;
  const float p[3] = {o[0] + d[0] * t, o[1] + d[1] * t, o[2] + d[2] * t};
  return dt * contraction_stretch(p, d);
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

// Marches one ray at a fixed step (cone_angle == 0, not contracted) or step by step (cone_angle
// > 0 or contracted: each step is step_at() its start, the first one offset by jitter times its
// length; contracted, the cell of a sample is that of its contracted midpoint), calling
// emit(t_start, t_end) for every sample whose midpoint is in an occupied cell; returns their count.
template <typename Emit>
HOST_DEVICE int64_t march_ray(const OccupancyGridView& grid, const float o[3], const float d[3], float t_min, float t_max,
                              const MarchParams& params, float jitter, Emit& emit) {
  int64_t count = 0;
  int cell[3];
  const float step = params.step;
  if (params.cone_angle > 0.0f || params.contracted) {
    float t = t_min + jitter * step_at(params, o, d, t_min);
    while (true) {
      const float dt = step_at(params, o, d, t);
      const float t_mid = t + 0.5f * dt;
      if (!(t_mid < t_max)) break;
      float p[3] = {o[0] + d[0] * t_mid, o[1] + d[1] * t_mid, o[2] + d[2] * t_mid};
      if (params.contracted) contract_point(p, p);
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
