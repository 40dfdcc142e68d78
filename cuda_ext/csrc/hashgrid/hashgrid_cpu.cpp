// Hash encoding on the CPU, feature-major ([L * F, N]: every level's features of consecutive points
// are written, and their gradients read, in order). The forward runs in parallel over points; each
// thread walks its points level by level, so that one level's [T, F] slice (512 KiB at T = 2^16, F = 2
// in float32) stays in cache while all of them read it. The backward runs in parallel over levels:
// level l's gradient lives in its own slice, which no other level touches, so it needs neither
// atomics nor per-thread buffers (each task zeroes its slice just before it scatters into it).
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "../ops.h"
#include "hashgrid.h"
#include "views.h"

namespace tensorfields {

at::Tensor hash_encode_fwd_cpu(const at::Tensor& points, const at::Tensor& table, const std::vector<int64_t>& resolutions) {
  const int64_t n = points.size(0);
  at::Tensor out = at::empty({table.size(0) * table.size(2), n}, points.options());
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "hash_encode_fwd_cpu", [&] {
    const HashGridView<scalar_t> g = hash_grid_view<scalar_t>(table, resolutions);
    const scalar_t* x = points.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, n, 1024, [&](int64_t begin, int64_t end) {
      for (int32_t level = 0; level < g.levels; ++level) {
        scalar_t* rows = o + int64_t{level} * g.features * n;
        for (int64_t p = begin; p < end; ++p) hash_level_features(g, level, x + 3 * p, rows + p, n);
      }
    });
  });
  return out;
}

at::Tensor hash_encode_bwd_cpu(const at::Tensor& points, const at::Tensor& table, const std::vector<int64_t>& resolutions,
                               const at::Tensor& grad_features) {
  at::Tensor grad_table = at::empty_like(table);
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "hash_encode_bwd_cpu", [&] {
    const HashGridView<scalar_t> g = hash_grid_view<scalar_t>(table, resolutions);
    const scalar_t* x = points.data_ptr<scalar_t>();
    const scalar_t* gf = grad_features.data_ptr<scalar_t>();
    scalar_t* grad = grad_table.data_ptr<scalar_t>();
    const int64_t n = points.size(0);
    at::parallel_for(0, g.levels, 1, [&](int64_t first, int64_t last) {
      for (int32_t level = static_cast<int32_t>(first); level < last; ++level) {
        scalar_t* slice = grad + hash_level_offset(g, level);
        const scalar_t* rows = gf + int64_t{level} * g.features * n;
        std::fill_n(slice, g.size * g.features, scalar_t(0));
        for (int64_t p = 0; p < n; ++p) {
          const HashCorners<scalar_t> c = hash_corners(g, level, x + 3 * p);
          for (int32_t f = 0; f < g.features; ++f) {
            const scalar_t gp = rows[f * n + p];
            for (int corner = 0; corner < 8; ++corner) slice[int64_t{c.row[corner]} * g.features + f] += c.weight[corner] * gp;
          }
        }
      }
    });
  });
  return grad_table;
}

}  // namespace tensorfields
