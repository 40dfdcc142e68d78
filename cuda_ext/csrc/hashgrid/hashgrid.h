// Per-point logic of the multiresolution hash encoding (instant-ngp), used by hashgrid_cpu.cpp and
// hashgrid.cu alike.
//
// A table [L, T, F] holds L levels of T entries (T a power of two) of F features. Level l is a grid
// of resolution R_l cells per axis over the unit cube, (R_l + 1)^3 vertices; a point x in [0, 1]^3
// (clamped there; NaN reads as 0) sits at pos = x R_l, between the vertices i0 = min(floor(pos), R_l - 1)
// and i0 + 1 along each axis, weighted (1 - w, w) with w = pos - i0 (so x = 1 is the last vertex).
// A vertex (i, j, k) is the table row i + (R + 1) (j + (R + 1) k) of a dense level ((R + 1)^3 <= T),
// else instant-ngp's spatial hash (i * 1 ^ j * 2654435761 ^ k * 805459861) mod T, in uint32 arithmetic.
// Level l's output features are the trilinear sum over the 8 corners of w_corner * table[l, row, :];
// the kernels write them feature-major, [L * F, N] (row l * F + f: feature f of level l).
#pragma once

#include <cmath>
#include <cstdint>

#include "../common.h"

namespace tensorfields {

// Most levels a table may have (the resolutions travel by value in the view).
constexpr int kHashMaxLevels = 64;

// The table and its levels' resolutions.
template <typename scalar_t>
struct HashGridView {
  const scalar_t* table;  // [L, T, F]
  int64_t size;           // T, a power of two <= 2^31
  int32_t levels, features;
  int32_t resolution[kHashMaxLevels];  // R_l >= 1
};

// The 8 corners of a point at one level: rows of the level's [T, F] slice and trilinear weights;
// corner c is the vertex i0 + ((c >> 0) & 1, (c >> 1) & 1, (c >> 2) & 1).
template <typename scalar_t>
struct HashCorners {
  uint32_t row[8];
  scalar_t weight[8];
};

// Whether a level of `resolution` cells per axis fits a table of `size` rows densely.
HOST_DEVICE bool hash_level_dense(int32_t resolution, int64_t size) {
  const int64_t side = int64_t{resolution} + 1;
  return side * side * side <= size;
}

// Table row of vertex (i, j, k) of a level with `side` vertices per axis (see the top).
HOST_DEVICE uint32_t hash_row(uint32_t i, uint32_t j, uint32_t k, uint32_t side, bool dense, uint32_t mask) {
  if (dense) return i + side * (j + side * k);
  return (i ^ (j * 2654435761u) ^ (k * 805459861u)) & mask;
}

// x clamped to [0, 1], NaN to 0.
template <typename scalar_t>
HOST_DEVICE scalar_t unit_clamp(scalar_t x) {
  return x > scalar_t(0) ? (x < scalar_t(1) ? x : scalar_t(1)) : scalar_t(0);
}

// Corners of point x [3] at level `level`.
template <typename scalar_t>
HOST_DEVICE HashCorners<scalar_t> hash_corners(const HashGridView<scalar_t>& g, int32_t level, const scalar_t* x) {
  const int32_t res = g.resolution[level];
  const bool dense = hash_level_dense(res, g.size);
  const uint32_t side = static_cast<uint32_t>(res) + 1u, mask = static_cast<uint32_t>(g.size - 1);
  uint32_t first[3];
  scalar_t w1[3];
  for (int a = 0; a < 3; ++a) {
    const scalar_t pos = unit_clamp(x[a]) * static_cast<scalar_t>(res);
    const uint32_t i = static_cast<uint32_t>(pos);  // pos >= 0: truncation is floor
    first[a] = i < side - 2u ? i : side - 2u;       // min(floor(pos), R - 1)
    w1[a] = pos - static_cast<scalar_t>(first[a]);
  }
  HashCorners<scalar_t> c;
  for (int corner = 0; corner < 8; ++corner) {
    const uint32_t bx = corner & 1, by = (corner >> 1) & 1, bz = (corner >> 2) & 1;
    c.row[corner] = hash_row(first[0] + bx, first[1] + by, first[2] + bz, side, dense, mask);
    c.weight[corner] = (bx ? w1[0] : scalar_t(1) - w1[0]) * (by ? w1[1] : scalar_t(1) - w1[1]) * (bz ? w1[2] : scalar_t(1) - w1[2]);
  }
  return c;
}

// Start of level `level`'s [T, F] slice in a table (or its gradient) of the view's shape.
template <typename scalar_t>
HOST_DEVICE int64_t hash_level_offset(const HashGridView<scalar_t>& g, int32_t level) {
  return int64_t{level} * g.size * g.features;
}

// Level `level`'s F features at point x [3], written to out[f * stride] (feature-major outputs [L * F, N]
// take stride N).
template <typename scalar_t>
HOST_DEVICE void hash_level_features(const HashGridView<scalar_t>& g, int32_t level, const scalar_t* x, scalar_t* out,
                                     int64_t stride) {
  const HashCorners<scalar_t> c = hash_corners(g, level, x);
  const scalar_t* slice = g.table + hash_level_offset(g, level);
  for (int32_t f = 0; f < g.features; ++f) {  // each sum in a register
    scalar_t sum = 0;
    for (int corner = 0; corner < 8; ++corner) sum += c.weight[corner] * slice[int64_t{c.row[corner]} * g.features + f];
    out[f * stride] = sum;
  }
}

}  // namespace tensorfields
