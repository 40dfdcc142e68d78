// Box intersection and occupancy-grid marching on the CPU (at::parallel_for over rays).
// Marching gathers each block of rays' samples in one pass, then packs them.
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "../ops.h"
#include "march.h"

namespace tensorfields {

OccupancyGridView grid_view(const at::Tensor& occupied, const at::Tensor& aabb) {
  OccupancyGridView grid;
  grid.occupied = occupied.data_ptr<bool>();
  const float* box = aabb.data_ptr<float>();
  for (int a = 0; a < 3; ++a) {
    grid.res[a] = static_cast<int>(occupied.size(a));
    grid.lo[a] = box[a];
    grid.hi[a] = box[3 + a];
  }
  return grid;
}

std::vector<at::Tensor> ray_aabb_intersect_cpu(const at::Tensor& rays_o, const at::Tensor& rays_d, const at::Tensor& aabb,
                                               double near, const at::Tensor& far) {
  const int64_t num_rays = rays_o.size(0);
  at::Tensor t_min = at::empty({num_rays}, rays_o.options());
  at::Tensor t_max = at::empty({num_rays}, rays_o.options());
  at::Tensor hit = at::empty({num_rays}, rays_o.options().dtype(at::kBool));
  const float* o = rays_o.data_ptr<float>();
  const float* d = rays_d.data_ptr<float>();
  const float* box = aabb.data_ptr<float>();
  const float* far_ptr = far.data_ptr<float>();
  float* lo = t_min.data_ptr<float>();
  float* hi = t_max.data_ptr<float>();
  bool* hit_ptr = hit.data_ptr<bool>();
  const float near_f = static_cast<float>(near);
  at::parallel_for(0, num_rays, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      hit_ptr[r] = ray_aabb(o + 3 * r, d + 3 * r, box, box + 3, near_f, far_ptr[r], lo + r, hi + r);
  });
  return {t_min, t_max, hit};
}

namespace {

// Samples of a block of rays, gathered in one pass (the CPU needs no counting pass).
struct SampleBuffer {
  std::vector<float> starts;
  std::vector<float> ends;
  void operator()(float t_start, float t_end) {
    starts.push_back(t_start);
    ends.push_back(t_end);
  }
};

constexpr int64_t kRaysPerBlock = 128;

}  // namespace

std::vector<at::Tensor> march_rays_cpu(const at::Tensor& rays_o, const at::Tensor& rays_d, const at::Tensor& t_min,
                                       const at::Tensor& t_max, const at::Tensor& occupied, const at::Tensor& aabb,
                                       double step, double cone_angle, double max_step, bool contracted, const at::Tensor& jitter) {
  const int64_t num_rays = rays_o.size(0);
  const OccupancyGridView grid = grid_view(occupied, aabb);
  const float* o = rays_o.data_ptr<float>();
  const float* d = rays_d.data_ptr<float>();
  const float* lo = t_min.data_ptr<float>();
  const float* hi = t_max.data_ptr<float>();
  const float* j = jitter.data_ptr<float>();
  const MarchParams params{static_cast<float>(step), static_cast<float>(cone_angle), static_cast<float>(max_step), contracted};

  // one pass into per-block buffers, then a prefix sum and a copy into the packed outputs
  const int64_t num_blocks = (num_rays + kRaysPerBlock - 1) / kRaysPerBlock;
  std::vector<SampleBuffer> blocks(num_blocks);
  at::Tensor counts = at::empty({num_rays}, rays_o.options().dtype(at::kLong));
  int64_t* count_ptr = counts.data_ptr<int64_t>();
  at::parallel_for(0, num_blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      for (int64_t r = b * kRaysPerBlock; r < std::min(num_rays, (b + 1) * kRaysPerBlock); ++r)
        count_ptr[r] = march_ray(grid, o + 3 * r, d + 3 * r, lo[r], hi[r], params, j[r], blocks[b]);
    }
  });
  std::vector<int64_t> block_first(num_blocks + 1, 0);
  for (int64_t b = 0; b < num_blocks; ++b) block_first[b + 1] = block_first[b] + static_cast<int64_t>(blocks[b].starts.size());
  const int64_t total = block_first[num_blocks];
  at::Tensor first = counts.cumsum(0) - counts;
  at::Tensor t_starts = at::empty({total}, rays_o.options());
  at::Tensor t_ends = at::empty({total}, rays_o.options());
  at::Tensor ray_indices = at::empty({total}, rays_o.options().dtype(at::kLong));
  float* start_t = t_starts.data_ptr<float>();
  float* end_t = t_ends.data_ptr<float>();
  int64_t* ray_ptr = ray_indices.data_ptr<int64_t>();
  at::parallel_for(0, num_blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      std::copy(blocks[b].starts.begin(), blocks[b].starts.end(), start_t + block_first[b]);
      std::copy(blocks[b].ends.begin(), blocks[b].ends.end(), end_t + block_first[b]);
      int64_t slot = block_first[b];
      for (int64_t r = b * kRaysPerBlock; r < std::min(num_rays, (b + 1) * kRaysPerBlock); ++r)
        for (int64_t i = 0; i < count_ptr[r]; ++i) ray_ptr[slot++] = r;
    }
  });
  return {ray_indices, t_starts, t_ends, at::stack({first, counts}, -1)};
}

}  // namespace tensorfields
