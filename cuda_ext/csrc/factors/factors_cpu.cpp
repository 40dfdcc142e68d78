// Factor sampling on the CPU. Corner indices and weights are computed once per sample (and VM
// pair); then at::parallel_for runs over components: one component's plane slice stays in cache
// while every sample reads it, and gradients of different components never collide, so the
// backward needs neither atomics nor per-thread buffers (each task also zeroes its own gradient
// slices, in cache just before it scatters into them). Reductions over components sum one
// partial row per thread, in a fixed order.
// Gradients w.r.t. the points run over samples instead: each sample owns its three values.
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "../checks.h"
#include "../ops.h"
#include "factors.h"
#include "views.h"

namespace tensorfields {

namespace {

// One sample's corners in one pair, and which sample it is.
template <typename scalar_t>
struct VMSampleCorners {
  VMCorners<scalar_t> corners;
  int64_t sample;
};

// Planes of one pair larger than this (bytes, all components) do not stay in cache: sort their samples.
constexpr int64_t kSortAbovePlaneBytes = int64_t{4} << 20;

// Stable counting sort of `n` samples' corners by the row of their plane corner (`height` rows of `width`).
template <typename scalar_t>
void sort_by_plane_row(VMSampleCorners<scalar_t>* corners, int64_t n, int32_t height, int32_t width) {
  std::vector<int64_t> next(height + 1, 0);  // per row: first slot of its samples
  for (int64_t s = 0; s < n; ++s) ++next[corners[s].corners.plane.offset / width + 1];
  for (int32_t row = 0; row < height; ++row) next[row + 1] += next[row];
  std::vector<VMSampleCorners<scalar_t>> unsorted(corners, corners + n);
  for (const VMSampleCorners<scalar_t>& c : unsorted) corners[next[c.corners.plane.offset / width]++] = c;
}

// Corners of every sample in every pair, [3 * N] pair-major. Where a pair's planes outgrow the
// cache, its samples are sorted by plane row (a counting sort), so that every component pass walks
// its plane slice in order instead of at random and the hardware prefetcher hides the memory
// latency; smaller planes stay cached and the sort would cost more than it saves.
template <typename scalar_t>
std::vector<VMSampleCorners<scalar_t>> vm_all_corners(const VMFactorsView<scalar_t>& f, const scalar_t* xn, int64_t n) {
  std::vector<VMSampleCorners<scalar_t>> sorted(3 * n);
  for (int pair = 0; pair < 3; ++pair) {
    VMSampleCorners<scalar_t>* out = sorted.data() + pair * n;
    at::parallel_for(0, n, 2048, [&](int64_t begin, int64_t end) {
      for (int64_t s = begin; s < end; ++s) out[s] = {vm_corners(f, pair, xn + 3 * s), s};
    });
    const int64_t plane_bytes = (f.first[pair + 1] - f.first[pair]) * f.height[pair] * f.width[pair] * int64_t{sizeof(scalar_t)};
    if (plane_bytes > kSortAbovePlaneBytes) sort_by_plane_row(out, n, f.height[pair], f.width[pair]);
  }
  return sorted;
}

template <typename scalar_t>
std::vector<CPCorners<scalar_t>> cp_all_corners(const CPFactorsView<scalar_t>& f, const scalar_t* xn, int64_t n) {
  std::vector<CPCorners<scalar_t>> corners(n);
  at::parallel_for(0, n, 2048, [&](int64_t begin, int64_t end) {
    for (int64_t s = begin; s < end; ++s) corners[s] = cp_corners(f, xn + 3 * s);
  });
  return corners;
}

// Component `r`'s products at all n samples, written to `row [n]` (or added to it when `accumulate`).
template <bool accumulate, typename scalar_t>
void vm_component_fwd(const VMFactorsView<scalar_t>& f, const VMSampleCorners<scalar_t>* corners, int64_t n, int64_t r,
                      scalar_t* row) {
  const int pair = vm_pair_of(f, r);
  const scalar_t* plane = f.planes[pair] + vm_plane_offset(f, pair, r);
  const scalar_t* line = f.lines[pair] + vm_line_offset(f, pair, r);
  const VMSampleCorners<scalar_t>* c = corners + pair * n;
  const int32_t dx = axis_step(f.width[pair]), dy = axis_step(f.height[pair]) * f.width[pair];
  const int32_t dl = axis_step(f.length[pair]);
  for (int64_t s = 0; s < n; ++s) {
    const VMCorners<scalar_t>& cs = c[s].corners;
    const scalar_t value = plane_value(plane, cs.plane, dx, dy) * line_value(line, cs.line, dl);
    if constexpr (accumulate)
      row[c[s].sample] += value;
    else
      row[c[s].sample] = value;
  }
}

template <bool accumulate, typename scalar_t>
void cp_component_fwd(const CPFactorsView<scalar_t>& f, const CPCorners<scalar_t>* corners, int64_t n, int64_t r, scalar_t* row) {
  for (int64_t s = 0; s < n; ++s) {
    scalar_t v[3];
    cp_values(f, r, corners[s], v);
    const scalar_t value = v[0] * v[1] * v[2];
    if constexpr (accumulate)
      row[s] += value;
    else
      row[s] = value;
  }
}

// out [components, n] = component_fwd(r, row, false) per row, or out [n] = their sum when `reduce`
// (component_fwd(r, row, accumulate) writes or, when accumulating, adds component r's products to row [n]).
template <typename scalar_t, typename ComponentFwd>
at::Tensor components_fwd(int64_t components, int64_t n, bool reduce, const at::TensorOptions& options, ComponentFwd component_fwd) {
  if (!reduce) {
    at::Tensor out = at::empty({components, n}, options);
    scalar_t* ptr = out.data_ptr<scalar_t>();
    at::parallel_for(0, components, 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) component_fwd(r, ptr + r * n, false);
    });
    return out;
  }
  if (components == 0) return at::zeros({n}, options);
  // part p sums components [p * components / parts, (p + 1) * components / parts): at least one each
  const int64_t parts = std::min<int64_t>(at::get_num_threads(), components);
  at::Tensor partial = at::empty({parts, n}, options);
  scalar_t* ptr = partial.data_ptr<scalar_t>();
  at::parallel_for(0, parts, 1, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p)
      for (int64_t r = p * components / parts; r < (p + 1) * components / parts; ++r)
        component_fwd(r, ptr + p * n, r > p * components / parts);
  });
  return parts == 1 ? partial[0] : partial.sum(0);
}

// Sum over all components `[n]`, sample by sample: in plane-row order a block of samples reads the
// same few rows of every component's plane, so the sum stays in a register and each sample is
// written once per pair (samples are unique within a pair, so blocks never collide).
template <typename scalar_t>
at::Tensor vm_sum_fwd(const VMFactorsView<scalar_t>& f, const VMSampleCorners<scalar_t>* corners, int64_t n,
                      const at::TensorOptions& options) {
  at::Tensor out = at::zeros({n}, options);
  scalar_t* sum = out.data_ptr<scalar_t>();
  for (int pair = 0; pair < 3; ++pair) {
    const VMSampleCorners<scalar_t>* c = corners + pair * n;
    const int32_t dx = axis_step(f.width[pair]), dy = axis_step(f.height[pair]) * f.width[pair];
    const int32_t dl = axis_step(f.length[pair]);
    const int64_t plane_size = int64_t{f.height[pair]} * f.width[pair];
    const int64_t components = f.first[pair + 1] - f.first[pair];
    at::parallel_for(0, n, 256, [&](int64_t begin, int64_t end) {
      for (int64_t s = begin; s < end; ++s) {
        const VMCorners<scalar_t>& cs = c[s].corners;
        const scalar_t* plane = f.planes[pair];
        const scalar_t* line = f.lines[pair];
        scalar_t acc = 0;
        for (int64_t r = 0; r < components; ++r, plane += plane_size, line += f.length[pair])
          acc += plane_value(plane, cs.plane, dx, dy) * line_value(line, cs.line, dl);
        sum[c[s].sample] += acc;
      }
    });
  }
  return out;
}

template <typename scalar_t>
void line_scatter(scalar_t* grad, const AxisCorners<scalar_t>& c, int32_t step, scalar_t g) {
  grad[c.index] += c.w0 * g;
  grad[c.index + step] += c.w1 * g;
}

template <typename scalar_t>
void plane_scatter(scalar_t* grad, const PlaneCorners<scalar_t>& c, int32_t dx, int32_t dy, scalar_t g) {
  scalar_t* p = grad + c.offset;
  p[0] += c.w[0] * g;
  p[dx] += c.w[1] * g;
  p[dy] += c.w[2] * g;
  p[dy + dx] += c.w[3] * g;
}

// Gradients of component `r`'s plane and line slices (overwritten) from the gradients `g [n]` of its products.
template <typename scalar_t>
void vm_component_bwd(const VMFactorsView<scalar_t>& f, const FactorGrads<scalar_t>& grads,
                      const VMSampleCorners<scalar_t>* corners, int64_t n, int64_t r, const scalar_t* g) {
  const int pair = vm_pair_of(f, r);
  const scalar_t* plane = f.planes[pair] + vm_plane_offset(f, pair, r);
  const scalar_t* line = f.lines[pair] + vm_line_offset(f, pair, r);
  scalar_t* grad_plane = grads.planes[pair] + vm_plane_offset(f, pair, r);
  scalar_t* grad_line = grads.lines[pair] + vm_line_offset(f, pair, r);
  std::fill_n(grad_plane, int64_t{f.height[pair]} * f.width[pair], scalar_t(0));
  std::fill_n(grad_line, f.length[pair], scalar_t(0));
  const VMSampleCorners<scalar_t>* c = corners + pair * n;
  const int32_t dx = axis_step(f.width[pair]), dy = axis_step(f.height[pair]) * f.width[pair];
  const int32_t dl = axis_step(f.length[pair]);
  for (int64_t s = 0; s < n; ++s) {
    const VMCorners<scalar_t>& cs = c[s].corners;
    const scalar_t grad_out = g[c[s].sample];
    const scalar_t plane_v = plane_value(plane, cs.plane, dx, dy);
    const scalar_t line_v = line_value(line, cs.line, dl);
    plane_scatter(grad_plane, cs.plane, dx, dy, grad_out * line_v);
    line_scatter(grad_line, cs.line, dl, grad_out * plane_v);
  }
}

template <typename scalar_t>
void cp_component_bwd(const CPFactorsView<scalar_t>& f, const FactorGrads<scalar_t>& grads, const CPCorners<scalar_t>* corners,
                      int64_t n, int64_t r, const scalar_t* g) {
  for (int a = 0; a < 3; ++a) std::fill_n(grads.lines[a] + r * f.length[a], f.length[a], scalar_t(0));
  for (int64_t s = 0; s < n; ++s) {
    scalar_t v[3];
    cp_values(f, r, corners[s], v);
    const scalar_t grad_out = g[s];
    const scalar_t others[3] = {v[1] * v[2], v[0] * v[2], v[0] * v[1]};
    for (int a = 0; a < 3; ++a)
      line_scatter(grads.lines[a] + r * f.length[a], corners[s].axis[a], axis_step(f.length[a]), grad_out * others[a]);
  }
}

// Runs component_bwd(r, g [n]) for every component in parallel; grad_out is [components, n], or [n] shared by all when reduced.
template <typename scalar_t, typename ComponentBwd>
void components_bwd(int64_t components, int64_t n, bool reduce, const at::Tensor& grad_out, ComponentBwd component_bwd) {
  const scalar_t* g = grad_out.data_ptr<scalar_t>();
  at::parallel_for(0, components, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) component_bwd(r, reduce ? g : g + r * n);
  });
}

// Gradient w.r.t. the points [n, 3] from grad_out ([components, n], or [n] when reduce). Pair by
// pair in the forward's (plane-row) sample order, each sample's components summed in registers;
// samples are unique within a pair, so blocks never collide.
template <typename scalar_t>
at::Tensor vm_points_bwd(const VMFactorsView<scalar_t>& f, const VMSampleCorners<scalar_t>* corners, const scalar_t* xn, int64_t n,
                         const scalar_t* g, bool reduce, const at::TensorOptions& options) {
  at::Tensor out = at::zeros({n, 3}, options);
  scalar_t* grad = out.data_ptr<scalar_t>();
  for (int pair = 0; pair < 3; ++pair) {
    const VMSampleCorners<scalar_t>* c = corners + pair * n;
    at::parallel_for(0, n, 256, [&](int64_t begin, int64_t end) {
      for (int64_t k = begin; k < end; ++k) {
        const int64_t s = c[k].sample;
        const scalar_t* gs = reduce ? g + s : g + f.first[pair] * n + s;
        vm_point_grad(f, pair, xn + 3 * s, gs, reduce ? 0 : n, grad + 3 * s);
      }
    });
  }
  return out;
}

}  // namespace

at::Tensor vm_sample_fwd_cpu(const std::vector<at::Tensor>& planes, const std::vector<at::Tensor>& lines, const at::Tensor& xn,
                         bool reduce) {
  const int64_t n = xn.size(0);
  return AT_DISPATCH_FLOATING_TYPES(xn.scalar_type(), "vm_sample_fwd_cpu", [&] {
    const VMFactorsView<scalar_t> f = vm_view<scalar_t>(planes, lines);
    const std::vector<VMSampleCorners<scalar_t>> corners = vm_all_corners(f, xn.data_ptr<scalar_t>(), n);
    if (reduce) return vm_sum_fwd(f, corners.data(), n, xn.options());
    return components_fwd<scalar_t>(f.first[3], n, reduce, xn.options(), [&](int64_t r, scalar_t* row, bool accumulate) {
      (accumulate ? vm_component_fwd<true, scalar_t> : vm_component_fwd<false, scalar_t>)(f, corners.data(), n, r, row);
    });
  });
}

std::vector<at::Tensor> vm_sample_bwd_cpu(const std::vector<at::Tensor>& planes, const std::vector<at::Tensor>& lines,
                                          const at::Tensor& xn, const at::Tensor& grad_out, bool reduce) {
  const int64_t n = xn.size(0);
  std::vector<at::Tensor> grad_planes = empty_like_each(planes), grad_lines = empty_like_each(lines);
  AT_DISPATCH_FLOATING_TYPES(xn.scalar_type(), "vm_sample_bwd_cpu", [&] {
    const VMFactorsView<scalar_t> f = vm_view<scalar_t>(planes, lines);
    const FactorGrads<scalar_t> grads = grads_view<scalar_t>(grad_planes, grad_lines);
    const std::vector<VMSampleCorners<scalar_t>> corners = vm_all_corners(f, xn.data_ptr<scalar_t>(), n);
    components_bwd<scalar_t>(f.first[3], n, reduce, grad_out, [&](int64_t r, const scalar_t* g) {
      vm_component_bwd(f, grads, corners.data(), n, r, g);
    });
  });
  grad_planes.insert(grad_planes.end(), grad_lines.begin(), grad_lines.end());
  return grad_planes;
}

at::Tensor cp_sample_fwd_cpu(const std::vector<at::Tensor>& lines, const at::Tensor& xn, bool reduce) {
  const int64_t n = xn.size(0);
  return AT_DISPATCH_FLOATING_TYPES(xn.scalar_type(), "cp_sample_fwd_cpu", [&] {
    const CPFactorsView<scalar_t> f = cp_view<scalar_t>(lines);
    const std::vector<CPCorners<scalar_t>> corners = cp_all_corners(f, xn.data_ptr<scalar_t>(), n);
    return components_fwd<scalar_t>(f.components, n, reduce, xn.options(), [&](int64_t r, scalar_t* row, bool accumulate) {
      (accumulate ? cp_component_fwd<true, scalar_t> : cp_component_fwd<false, scalar_t>)(f, corners.data(), n, r, row);
    });
  });
}

std::vector<at::Tensor> cp_sample_bwd_cpu(const std::vector<at::Tensor>& lines, const at::Tensor& xn, const at::Tensor& grad_out,
                                          bool reduce) {
  const int64_t n = xn.size(0);
  std::vector<at::Tensor> grad_lines = empty_like_each(lines);
  AT_DISPATCH_FLOATING_TYPES(xn.scalar_type(), "cp_sample_bwd_cpu", [&] {
    const CPFactorsView<scalar_t> f = cp_view<scalar_t>(lines);
    const FactorGrads<scalar_t> grads = grads_view<scalar_t>({}, grad_lines);
    const std::vector<CPCorners<scalar_t>> corners = cp_all_corners(f, xn.data_ptr<scalar_t>(), n);
    components_bwd<scalar_t>(f.components, n, reduce, grad_out, [&](int64_t r, const scalar_t* g) {
      cp_component_bwd(f, grads, corners.data(), n, r, g);
    });
  });
  return grad_lines;
}

at::Tensor vm_sample_bwd_points_cpu(const std::vector<at::Tensor>& planes, const std::vector<at::Tensor>& lines, const at::Tensor& xn,
                                  const at::Tensor& grad_out, bool reduce) {
  const int64_t n = xn.size(0);
  return AT_DISPATCH_FLOATING_TYPES(xn.scalar_type(), "vm_sample_bwd_points_cpu", [&] {
    const VMFactorsView<scalar_t> f = vm_view<scalar_t>(planes, lines);
    const std::vector<VMSampleCorners<scalar_t>> corners = vm_all_corners(f, xn.data_ptr<scalar_t>(), n);
    return vm_points_bwd(f, corners.data(), xn.data_ptr<scalar_t>(), n, grad_out.data_ptr<scalar_t>(), reduce, xn.options());
  });
}

at::Tensor cp_sample_bwd_points_cpu(const std::vector<at::Tensor>& lines, const at::Tensor& xn, const at::Tensor& grad_out, bool reduce) {
  const int64_t n = xn.size(0);
  at::Tensor out = at::empty({n, 3}, xn.options());
  AT_DISPATCH_FLOATING_TYPES(xn.scalar_type(), "cp_sample_bwd_points_cpu", [&] {
    const CPFactorsView<scalar_t> f = cp_view<scalar_t>(lines);
    const scalar_t* x = xn.data_ptr<scalar_t>();
    const scalar_t* g = grad_out.data_ptr<scalar_t>();
    scalar_t* grad = out.data_ptr<scalar_t>();
    at::parallel_for(0, n, 256, [&](int64_t begin, int64_t end) {
      for (int64_t s = begin; s < end; ++s) cp_point_grad(f, x + 3 * s, g + s, reduce ? 0 : n, grad + 3 * s);
    });
  });
  return out;
}

}  // namespace tensorfields
