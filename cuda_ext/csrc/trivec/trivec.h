// Per-sample logic of the Strivec tri-vector ops, used by trivec_cpu.cpp and trivec.cu alike.
//
// A scale of a Strivec field is a cloud of T axis-aligned cubes of half-size h around centres
// c_t, each holding a local CP tensor: lines [T, 3, R, L] (tensor, axis x/y/z, component, grid
// point). A lookup table over a regular grid lists, per cell, the tensors whose cube meets the
// cell ([C, M] int32, ascending, padded with -1).
//
// Neighbours: of the tensors listed in a point's cell, those covering it (|x - c|_inf <= h), the K
// nearest by Euclidean distance d (ties: lower index first), weighted w_k = (1 / d_k) / sum_j (1 / d_j)
// with d clamped at 1e-6 h, at local coordinates u = (x - c) / h in [-1, 1]^3.
// Sampling: component r at a point is sum_k w_k a_kr(u_x) b_kr(u_y) c_kr(u_z), each line looked up
// linearly with values at the ends (align_corners, as `factors.h`).
#pragma once

#include <cmath>
#include <cstdint>

#include "../common.h"
#include "../factors/factors.h"

namespace tensorfields {

// The tensors of one scale and their lookup table.
template <typename scalar_t>
struct TriVecCloudView {
  const scalar_t* centers;  // [T, 3]
  int64_t tensors;
  scalar_t half_size;
  const int32_t* table;  // [C, M], C = resolution[0] * resolution[1] * resolution[2]
  int32_t width;         // M
  scalar_t origin[3];    // the grid's lower corner
  scalar_t cell_size;
  int32_t resolution[3];
};

// Flat table row of the cell holding x (x-major), or -1 outside the grid (NaN too).
template <typename scalar_t>
HOST_DEVICE int64_t trivec_cell(const TriVecCloudView<scalar_t>& v, const scalar_t* x) {
  return grid_row(v.origin, v.cell_size, v.resolution, x);
}

// The k nearest tensors covering x, nearest first: index [k] (-1 in empty slots), weights [k] (0 in
// empty slots; they hold the distances while the slots are filled), local [k, 3] (0 in empty slots).
template <typename scalar_t>
HOST_DEVICE void trivec_find(const TriVecCloudView<scalar_t>& v, const scalar_t* x, int32_t k, int64_t* index,
                             scalar_t* weights, scalar_t* local) {
  int32_t found = 0;
  const int64_t cell = trivec_cell(v, x);
  const scalar_t h = v.half_size;
  for (int32_t m = 0; cell >= 0 && m < v.width; ++m) {
    const int64_t t = v.table[cell * v.width + m];
    if (t < 0 || t >= v.tensors) continue;
    const scalar_t* c = v.centers + 3 * t;
    const scalar_t dx = x[0] - c[0], dy = x[1] - c[1], dz = x[2] - c[2];
    if (!(fabs(dx) <= h && fabs(dy) <= h && fabs(dz) <= h)) continue;
    const scalar_t d = sqrt(dx * dx + dy * dy + dz * dz);
    if (found == k && !(d < weights[k - 1])) continue;
    int32_t j = found < k ? found++ : k - 1;  // insertion sort; a full list drops its farthest
    for (; j > 0 && d < weights[j - 1]; --j) {
      weights[j] = weights[j - 1];
      index[j] = index[j - 1];
    }
    weights[j] = d;
    index[j] = t;
  }
  const scalar_t nearest = scalar_t(1e-6) * h;
  scalar_t total = 0;
  for (int32_t j = 0; j < found; ++j) {
    weights[j] = scalar_t(1) / (weights[j] > nearest ? weights[j] : nearest);
    total += weights[j];
  }
  for (int32_t j = 0; j < k; ++j) {
    const bool filled = j < found;
    if (filled) weights[j] /= total;
    const scalar_t* c = v.centers + 3 * (filled ? index[j] : 0);
    for (int a = 0; a < 3; ++a) local[3 * j + a] = filled ? (x[a] - c[a]) / h : scalar_t(0);
    if (!filled) {
      index[j] = -1;
      weights[j] = 0;
    }
  }
}

// Lines of one scale: [T, 3, R, L].
template <typename scalar_t>
struct TriVecLinesView {
  const scalar_t* lines;
  int64_t tensors;
  int32_t components, length;
};

// One neighbour slot of a sample: its tensor (-1: empty), weight and line corners per axis.
template <typename scalar_t>
struct TriVecSlot {
  int64_t tensor;
  scalar_t weight;
  AxisCorners<scalar_t> axis[3];
};

// The slot of neighbour `index` (any value outside [0, T) is empty) at local coordinates `local [3]`.
template <typename scalar_t>
HOST_DEVICE TriVecSlot<scalar_t> trivec_slot(const TriVecLinesView<scalar_t>& f, int64_t index, scalar_t weight,
                                             const scalar_t* local) {
  if (index < 0 || index >= f.tensors) return {-1, scalar_t(0), {}};
  return {index, weight, {axis_corners(local[0], f.length), axis_corners(local[1], f.length), axis_corners(local[2], f.length)}};
}

// Start of the line of tensor `tensor`, axis `axis`, component `r`.
template <typename scalar_t>
HOST_DEVICE int64_t trivec_line_offset(const TriVecLinesView<scalar_t>& f, int64_t tensor, int axis, int64_t r) {
  return ((tensor * 3 + axis) * f.components + r) * f.length;
}

// The three line values of component r in a filled slot.
template <typename scalar_t>
HOST_DEVICE void trivec_values(const TriVecLinesView<scalar_t>& f, const TriVecSlot<scalar_t>& s, int64_t r, scalar_t v[3]) {
  for (int a = 0; a < 3; ++a) v[a] = line_value(f.lines + trivec_line_offset(f, s.tensor, a, r), s.axis[a], axis_step(f.length));
}

// Weighted product of component r in a slot (0 for an empty slot).
template <typename scalar_t>
HOST_DEVICE scalar_t trivec_term(const TriVecLinesView<scalar_t>& f, const TriVecSlot<scalar_t>& s, int64_t r) {
  if (s.tensor < 0) return scalar_t(0);
  scalar_t v[3];
  trivec_values(f, s, r, v);
  return s.weight * (v[0] * v[1] * v[2]);
}

}  // namespace tensorfields
