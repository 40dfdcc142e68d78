// Strivec tri-vector ops on the CPU. The neighbour search and the forward run in parallel over
// samples; the backward in parallel over components: component r's gradient lives in the lines
// [t, a, r, :] of every tensor, which no other component touches, so it needs neither atomics nor
// per-thread buffers. Each neighbour slot's line corners are computed once, then its tensor's
// components are walked in memory order (lines [T, 3, R, L]: a tensor's R lines per axis are
// consecutive).
#include <ATen/Parallel.h>

#include <algorithm>
#include <numeric>
#include <vector>

#include "../ops.h"
#include "trivec.h"
#include "views.h"

namespace tensorfields {

namespace {

constexpr int64_t kBlock = 256;

// Neighbour slots of n samples, k each: index [n, k], weights [n, k], local [n, k, 3].
template <typename scalar_t>
struct SlotInputs {
  const int64_t* index;
  const scalar_t* weights;
  const scalar_t* local;
  int64_t n, k;
};

template <typename scalar_t>
SlotInputs<scalar_t> slot_inputs(const at::Tensor& index, const at::Tensor& weights, const at::Tensor& local) {
  return {index.data_ptr<int64_t>(), weights.data_ptr<scalar_t>(), local.data_ptr<scalar_t>(), index.size(0), index.size(1)};
}

// Calls block(begin, end, slots) for blocks of kBlock samples of [begin, end); `slots` holds the
// block's (end - begin) * k slots, sample-major.
template <typename scalar_t, typename Block>
void for_each_block(const TriVecLinesView<scalar_t>& f, const SlotInputs<scalar_t>& in, int64_t begin, int64_t end, Block block) {
  std::vector<TriVecSlot<scalar_t>> slots(kBlock * in.k);
  for (int64_t first = begin; first < end; first += kBlock) {
    const int64_t last = std::min(first + kBlock, end);
    for (int64_t i = first * in.k; i < last * in.k; ++i)
      slots[i - first * in.k] = trivec_slot(f, in.index[i], in.weights[i], in.local + 3 * i);
    block(first, last, slots.data());
  }
}

}  // namespace

std::vector<at::Tensor> trivec_neighbors_cpu(const at::Tensor& points, const at::Tensor& centers, double half_size,
                                             const at::Tensor& table, const std::vector<double>& origin, double cell_size,
                                             const std::vector<int64_t>& resolution, int64_t k) {
  std::vector<at::Tensor> out = neighbor_outputs(points, k);
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "trivec_neighbors_cpu", [&] {
    const TriVecCloudView<scalar_t> v = cloud_view<scalar_t>(centers, half_size, table, origin, cell_size, resolution);
    const scalar_t* x = points.data_ptr<scalar_t>();
    int64_t* index = out[0].data_ptr<int64_t>();
    scalar_t* weights = out[1].data_ptr<scalar_t>();
    scalar_t* local = out[2].data_ptr<scalar_t>();
    at::parallel_for(0, points.size(0), 1024, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p)
        trivec_find(v, x + 3 * p, static_cast<int32_t>(k), index + p * k, weights + p * k, local + 3 * p * k);
    });
  });
  return out;
}

at::Tensor trivec_sample_fwd_cpu(const at::Tensor& lines, const at::Tensor& index, const at::Tensor& weights,
                                 const at::Tensor& local, bool reduce) {
  const int64_t n = index.size(0), components = lines.size(2);
  at::Tensor out = reduce ? at::empty({n}, lines.options()) : at::empty({components, n}, lines.options());
  AT_DISPATCH_FLOATING_TYPES(lines.scalar_type(), "trivec_sample_fwd_cpu", [&] {
    const TriVecLinesView<scalar_t> f = lines_view<scalar_t>(lines);
    const SlotInputs<scalar_t> in = slot_inputs<scalar_t>(index, weights, local);
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, n, kBlock, [&](int64_t begin, int64_t end) {
      std::vector<scalar_t> sums(components);  // one sample's components
      for_each_block(f, in, begin, end, [&](int64_t first, int64_t last, const TriVecSlot<scalar_t>* slots) {
        for (int64_t s = first; s < last; ++s) {
          std::fill(sums.begin(), sums.end(), scalar_t(0));
          for (int64_t j = 0; j < in.k; ++j) {
            const TriVecSlot<scalar_t>& slot = slots[(s - first) * in.k + j];
            if (slot.tensor < 0) continue;
            for (int64_t r = 0; r < components; ++r) sums[r] += trivec_term(f, slot, r);  // consecutive lines
          }
          if (reduce)
            o[s] = std::accumulate(sums.begin(), sums.end(), scalar_t(0));
          else
            for (int64_t r = 0; r < components; ++r) o[r * n + s] = sums[r];
        }
      });
    });
  });
  return out;
}

at::Tensor trivec_sample_bwd_cpu(const at::Tensor& lines, const at::Tensor& index, const at::Tensor& weights,
                                 const at::Tensor& local, const at::Tensor& grad_out, bool reduce) {
  at::Tensor grad_lines = at::zeros_like(lines);
  AT_DISPATCH_FLOATING_TYPES(lines.scalar_type(), "trivec_sample_bwd_cpu", [&] {
    const TriVecLinesView<scalar_t> f = lines_view<scalar_t>(lines);
    const SlotInputs<scalar_t> in = slot_inputs<scalar_t>(index, weights, local);
    const scalar_t* g = grad_out.data_ptr<scalar_t>();
    scalar_t* grad = grad_lines.data_ptr<scalar_t>();
    const int32_t step = axis_step(f.length);
    at::parallel_for(0, f.components, 1, [&](int64_t r0, int64_t r1) {
      const auto scatter = [&](int64_t first, int64_t last, const TriVecSlot<scalar_t>* slots) {
        for (int64_t i = 0; i < (last - first) * in.k; ++i) {
          const TriVecSlot<scalar_t>& slot = slots[i];
          if (slot.tensor < 0) continue;
          const int64_t s = first + i / in.k;
          for (int64_t r = r0; r < r1; ++r) {  // consecutive lines of the slot's tensor
            scalar_t v[3];
            trivec_values(f, slot, r, v);
            const scalar_t gw = g[reduce ? s : r * in.n + s] * slot.weight;
            const scalar_t others[3] = {v[1] * v[2], v[0] * v[2], v[0] * v[1]};
            for (int a = 0; a < 3; ++a) {
              scalar_t* line = grad + trivec_line_offset(f, slot.tensor, a, r);
              line[slot.axis[a].index] += slot.axis[a].w0 * gw * others[a];
              line[slot.axis[a].index + step] += slot.axis[a].w1 * gw * others[a];
            }
          }
        }
      };
      // Neighbouring components' lines share cache lines: threads start at different samples (by
      // their first component), so that they rarely write to the same tensor at the same time.
      const int64_t start = in.n * r0 / f.components;
      for_each_block(f, in, start, in.n, scatter);
      for_each_block(f, in, 0, start, scatter);
    });
  });
  return grad_lines;
}

}  // namespace tensorfields
