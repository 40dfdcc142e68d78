// Corner indices and weights of TensoRF factor lookups, used by factors_cpu.cpp and factors.cu alike.
//
// Lookups follow F.grid_sample(mode="bilinear", align_corners=True, padding_mode="zeros"): along an
// axis of n grid points a normalized coordinate u sits at pos = (u + 1) / 2 * (n - 1); the corners
// i0 = floor(pos) and i0 + 1 weigh (i0 + 1 - pos) and (pos - i0), and a corner outside [0, n - 1]
// reads zero. Here such a corner gets weight 0 and an index moved inside, so that every read and
// write stays in the factor and the two corners of an axis are always `index` and `index + step`
// (step = 1, or 0 on an axis of one grid point).
#pragma once

#include <cmath>
#include <cstdint>

#include "../common.h"

namespace tensorfields {

// Two corners along one axis: elements `index` and `index + step`, weights w0 and w1.
template <typename scalar_t>
struct AxisCorners {
  int32_t index;
  scalar_t w0, w1;
};

// Four corners of a plane lookup: offset, offset + dx, offset + dy, offset + dy + dx, i.e. (x0, y0),
// (x1, y0), (x0, y1), (x1, y1) with x along W and y along H; weights w[0..3] in that order.
template <typename scalar_t>
struct PlaneCorners {
  int32_t offset;
  scalar_t w[4];
};

HOST_DEVICE int32_t axis_step(int32_t n) { return n > 1 ? 1 : 0; }

// Grid position of normalized u on an axis of n grid points.
template <typename scalar_t>
HOST_DEVICE scalar_t axis_position(scalar_t u, int32_t n) {
  return (u + scalar_t(1)) / scalar_t(2) * static_cast<scalar_t>(n - 1);
}

// Grid points f = floor(pos) and f + 1 carrying a0 and a1, as two in-range corners (see the top).
template <typename scalar_t>
HOST_DEVICE AxisCorners<scalar_t> place_corners(scalar_t f, int32_t n, scalar_t a0, scalar_t a1) {
  const scalar_t last = static_cast<scalar_t>(n - 1);
  const bool in0 = f >= scalar_t(0) && f <= last;  // false for NaN
  const bool in1 = f >= scalar_t(-1) && f <= last - scalar_t(1);
  if (in0 && in1) return {static_cast<int32_t>(f), a0, a1};
  if (in0) return n > 1 ? AxisCorners<scalar_t>{n - 2, scalar_t(0), a0} : AxisCorners<scalar_t>{0, a0, scalar_t(0)};
  if (in1) return {0, a1, scalar_t(0)};  // f == -1: only grid point 0, as the second corner
  return {0, scalar_t(0), scalar_t(0)};
}

// Corners of the linear lookup at normalized u on an axis of n >= 1 grid points.
template <typename scalar_t>
HOST_DEVICE AxisCorners<scalar_t> axis_corners(scalar_t u, int32_t n) {
  const scalar_t pos = axis_position(u, n);
  const scalar_t f = floor(pos);
  return place_corners(f, n, (f + scalar_t(1)) - pos, pos - f);
}

// The same corners with the weights' derivatives w.r.t. u, d(w0, w1)/du = (-1, 1) (n - 1) / 2:
// a lookup through them is the derivative of the lookup (grid_sample's gradient w.r.t. its grid).
template <typename scalar_t>
HOST_DEVICE AxisCorners<scalar_t> axis_slopes(scalar_t u, int32_t n) {
  const scalar_t half_span = static_cast<scalar_t>(n - 1) / scalar_t(2);
  return place_corners(floor(axis_position(u, n)), n, -half_span, half_span);
}

// Corners of the bilinear lookup at (u along W, v along H) in an [H, W] plane.
template <typename scalar_t>
HOST_DEVICE PlaneCorners<scalar_t> plane_corners(scalar_t u, scalar_t v, int32_t height, int32_t width) {
  const AxisCorners<scalar_t> x = axis_corners(u, width);
  const AxisCorners<scalar_t> y = axis_corners(v, height);
  return {y.index * width + x.index, {x.w0 * y.w0, x.w1 * y.w0, x.w0 * y.w1, x.w1 * y.w1}};
}

// Derivatives of the bilinear lookup at (u, v) w.r.t. u (`du`) and v (`dv`): the corners of
// plane_corners with the weights' derivatives.
template <typename scalar_t>
struct PlaneSlopes {
  PlaneCorners<scalar_t> du, dv;
};

template <typename scalar_t>
HOST_DEVICE PlaneSlopes<scalar_t> plane_slopes(scalar_t u, scalar_t v, int32_t height, int32_t width) {
  const AxisCorners<scalar_t> x = axis_corners(u, width), y = axis_corners(v, height);
  const AxisCorners<scalar_t> sx = axis_slopes(u, width), sy = axis_slopes(v, height);
  const int32_t offset = y.index * width + x.index;
  return {{offset, {sx.w0 * y.w0, sx.w1 * y.w0, sx.w0 * y.w1, sx.w1 * y.w1}},
          {offset, {x.w0 * sy.w0, x.w1 * sy.w0, x.w0 * sy.w1, x.w1 * sy.w1}}};
}

template <typename scalar_t>
HOST_DEVICE scalar_t line_value(const scalar_t* line, const AxisCorners<scalar_t>& c, int32_t step) {
  return line[c.index] * c.w0 + line[c.index + step] * c.w1;
}

template <typename scalar_t>
HOST_DEVICE scalar_t plane_value(const scalar_t* plane, const PlaneCorners<scalar_t>& c, int32_t dx, int32_t dy) {
  const scalar_t* p = plane + c.offset;
  return p[0] * c.w[0] + p[dx] * c.w[1] + p[dy] * c.w[2] + p[dy + dx] * c.w[3];
}

// Gradients of the factors, same shapes as the factors (CP uses the lines only).
template <typename scalar_t>
struct FactorGrads {
  scalar_t* planes[3];
  scalar_t* lines[3];
};

// --- TensoRF-VM ------------------------------------------------------------------------------------
// Pair i multiplies plane i [R_i, H_i, W_i], looked up at (x[a_i] along W, x[b_i] along H), by
// line i [R_i, L_i] at x[c_i]: (a, b) = ((0, 1), (0, 2), (1, 2)), c = (2, 1, 0) (reference.VM_PLANE_AXES,
// VM_LINE_AXES). Components are numbered pair by pair: pair i owns [first[i], first[i + 1]).

template <typename scalar_t>
struct VMFactorsView {
  const scalar_t* planes[3];
  const scalar_t* lines[3];
  int32_t height[3], width[3], length[3];
  int64_t first[4];
};

HOST_DEVICE int vm_plane_u_axis(int pair) { return pair == 2 ? 1 : 0; }
HOST_DEVICE int vm_plane_v_axis(int pair) { return pair == 0 ? 1 : 2; }
HOST_DEVICE int vm_line_axis(int pair) { return 2 - pair; }

template <typename scalar_t>
HOST_DEVICE int vm_pair_of(const VMFactorsView<scalar_t>& f, int64_t component) {
  return component < f.first[1] ? 0 : (component < f.first[2] ? 1 : 2);
}

// Corners of one sample's lookups in pair `pair`.
template <typename scalar_t>
struct VMCorners {
  PlaneCorners<scalar_t> plane;
  AxisCorners<scalar_t> line;
};

template <typename scalar_t>
HOST_DEVICE VMCorners<scalar_t> vm_corners(const VMFactorsView<scalar_t>& f, int pair, const scalar_t* x) {
  return {plane_corners(x[vm_plane_u_axis(pair)], x[vm_plane_v_axis(pair)], f.height[pair], f.width[pair]),
          axis_corners(x[vm_line_axis(pair)], f.length[pair])};
}

// Start of component `component`'s [H, W] plane slice and [L] line slice (of pair `pair`).
template <typename scalar_t>
HOST_DEVICE int64_t vm_plane_offset(const VMFactorsView<scalar_t>& f, int pair, int64_t component) {
  return (component - f.first[pair]) * f.height[pair] * f.width[pair];
}

template <typename scalar_t>
HOST_DEVICE int64_t vm_line_offset(const VMFactorsView<scalar_t>& f, int pair, int64_t component) {
  return (component - f.first[pair]) * f.length[pair];
}

// Component `r`'s product (in pair `pair`) at a sample with corners `c`.
template <typename scalar_t>
HOST_DEVICE scalar_t vm_value(const VMFactorsView<scalar_t>& f, int pair, int64_t r, const VMCorners<scalar_t>& c) {
  const int32_t dx = axis_step(f.width[pair]), dy = axis_step(f.height[pair]) * f.width[pair];
  return plane_value(f.planes[pair] + vm_plane_offset(f, pair, r), c.plane, dx, dy) *
         line_value(f.lines[pair] + vm_line_offset(f, pair, r), c.line, axis_step(f.length[pair]));
}

// Adds pair `pair`'s part of the gradient w.r.t. one sample's point x [3] to grad [3]: g[j * g_stride]
// is the gradient of component first[pair] + j's product (g_stride = 0: one gradient for all, reduce).
template <typename scalar_t>
HOST_DEVICE void vm_point_grad(const VMFactorsView<scalar_t>& f, int pair, const scalar_t* x, const scalar_t* g, int64_t g_stride,
                               scalar_t grad[3]) {
  const int u_axis = vm_plane_u_axis(pair), v_axis = vm_plane_v_axis(pair), l_axis = vm_line_axis(pair);
  const VMCorners<scalar_t> c = vm_corners(f, pair, x);
  const PlaneSlopes<scalar_t> ps = plane_slopes(x[u_axis], x[v_axis], f.height[pair], f.width[pair]);
  const AxisCorners<scalar_t> ls = axis_slopes(x[l_axis], f.length[pair]);
  const int32_t dx = axis_step(f.width[pair]), dy = axis_step(f.height[pair]) * f.width[pair];
  const int32_t dl = axis_step(f.length[pair]);
  const int64_t plane_size = int64_t{f.height[pair]} * f.width[pair];
  const int64_t components = f.first[pair + 1] - f.first[pair];
  const scalar_t* plane = f.planes[pair];
  const scalar_t* line = f.lines[pair];
  scalar_t du = 0, dv = 0, dlen = 0;
  for (int64_t j = 0; j < components; ++j, plane += plane_size, line += f.length[pair]) {
    const scalar_t gj = g[j * g_stride];
    const scalar_t plane_v = plane_value(plane, c.plane, dx, dy), line_v = line_value(line, c.line, dl);
    du += gj * plane_value(plane, ps.du, dx, dy) * line_v;
    dv += gj * plane_value(plane, ps.dv, dx, dy) * line_v;
    dlen += gj * plane_v * line_value(line, ls, dl);
  }
  grad[u_axis] += du;
  grad[v_axis] += dv;
  grad[l_axis] += dlen;
}

// --- TensoRF-CP ------------------------------------------------------------------------------------
// Component r multiplies lines[0][r] at x[0], lines[1][r] at x[1] and lines[2][r] at x[2]; lines [R, L_a].

template <typename scalar_t>
struct CPFactorsView {
  const scalar_t* lines[3];
  int32_t length[3];
  int64_t components;
};

template <typename scalar_t>
struct CPCorners {
  AxisCorners<scalar_t> axis[3];
};

template <typename scalar_t>
HOST_DEVICE CPCorners<scalar_t> cp_corners(const CPFactorsView<scalar_t>& f, const scalar_t* x) {
  return {{axis_corners(x[0], f.length[0]), axis_corners(x[1], f.length[1]), axis_corners(x[2], f.length[2])}};
}

// The three line lookups of component `component` at corners `c`.
template <typename scalar_t>
HOST_DEVICE void cp_values(const CPFactorsView<scalar_t>& f, int64_t component, const CPCorners<scalar_t>& c, scalar_t v[3]) {
  for (int a = 0; a < 3; ++a) v[a] = line_value(f.lines[a] + component * f.length[a], c.axis[a], axis_step(f.length[a]));
}

// The gradient w.r.t. one sample's point x [3], written to grad [3]: g[r * g_stride] is the gradient
// of component r's product (g_stride = 0: one gradient for all, reduce).
template <typename scalar_t>
HOST_DEVICE void cp_point_grad(const CPFactorsView<scalar_t>& f, const scalar_t* x, const scalar_t* g, int64_t g_stride,
                               scalar_t grad[3]) {
  const CPCorners<scalar_t> c = cp_corners(f, x);
  const CPCorners<scalar_t> s = {{axis_slopes(x[0], f.length[0]), axis_slopes(x[1], f.length[1]), axis_slopes(x[2], f.length[2])}};
  grad[0] = grad[1] = grad[2] = 0;
  for (int64_t r = 0; r < f.components; ++r) {
    scalar_t v[3], d[3];
    cp_values(f, r, c, v);
    cp_values(f, r, s, d);
    const scalar_t gr = g[r * g_stride];
    grad[0] += gr * d[0] * v[1] * v[2];
    grad[1] += gr * v[0] * d[1] * v[2];
    grad[2] += gr * v[0] * v[1] * d[2];
  }
}

}  // namespace tensorfields
