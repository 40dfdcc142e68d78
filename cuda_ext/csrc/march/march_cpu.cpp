// Box intersection and occupancy-grid marching on the CPU (at::parallel_for over rays).
// Marching runs twice: count per ray, prefix sum, fill.
#include <ATen/Parallel.h>

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

std::vector<at::Tensor> march_rays_cpu(const at::Tensor& rays_o, const at::Tensor& rays_d, const at::Tensor& t_min,
                                       const at::Tensor& t_max, const at::Tensor& occupied, const at::Tensor& aabb,
                                       double step, double cone_angle, double max_step, const at::Tensor& jitter) {
  const int64_t num_rays = rays_o.size(0);
  const OccupancyGridView grid = grid_view(occupied, aabb);
  const float* o = rays_o.data_ptr<float>();
  const float* d = rays_d.data_ptr<float>();
  const float* lo = t_min.data_ptr<float>();
  const float* hi = t_max.data_ptr<float>();
  const float* j = jitter.data_ptr<float>();
  const float step_f = static_cast<float>(step);
  const float cone_f = static_cast<float>(cone_angle);
  const float max_step_f = static_cast<float>(max_step);

  at::Tensor counts = at::empty({num_rays}, rays_o.options().dtype(at::kLong));
  int64_t* count_ptr = counts.data_ptr<int64_t>();
  at::parallel_for(0, num_rays, 256, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      count_ptr[r] = march_ray(grid, o + 3 * r, d + 3 * r, lo[r], hi[r], step_f, cone_f, max_step_f, j[r], nullptr, nullptr);
  });
  at::Tensor starts = counts.cumsum(0) - counts;
  const int64_t total = num_rays > 0 ? (starts[num_rays - 1] + counts[num_rays - 1]).item<int64_t>() : 0;
  at::Tensor t_starts = at::empty({total}, rays_o.options());
  at::Tensor t_ends = at::empty({total}, rays_o.options());
  at::Tensor ray_indices = at::empty({total}, rays_o.options().dtype(at::kLong));
  float* start_t = t_starts.data_ptr<float>();
  float* end_t = t_ends.data_ptr<float>();
  int64_t* ray_ptr = ray_indices.data_ptr<int64_t>();
  const int64_t* first = starts.data_ptr<int64_t>();
  at::parallel_for(0, num_rays, 256, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t n = march_ray(grid, o + 3 * r, d + 3 * r, lo[r], hi[r], step_f, cone_f, max_step_f, j[r],
                                  start_t + first[r], end_t + first[r]);
      for (int64_t i = 0; i < n; ++i) ray_ptr[first[r] + i] = r;
    }
  });
  return {ray_indices, t_starts, t_ends, at::stack({starts, counts}, -1)};
}

}  // namespace tensorfields
