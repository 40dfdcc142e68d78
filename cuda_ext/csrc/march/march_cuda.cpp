// Torch glue for march.cu: allocation, the prefix sum between the two marching passes, error checks.
#include <ATen/cuda/CUDAContext.h>

#include "../ops.h"
#include "march.h"

namespace tensorfields {

OccupancyGridView grid_view(const at::Tensor& occupied, const at::Tensor& aabb);

cudaError_t launch_ray_aabb(const float* o, const float* d, RayBox box, const float* far, int64_t num_rays, float* t_min,
                            float* t_max, bool* hit, cudaStream_t stream);
cudaError_t launch_march(const OccupancyGridView& grid, MarchParams params, const float* o, const float* d, const float* t_min,
                         const float* t_max, const float* jitter, int64_t num_rays, const int64_t* first, int64_t* counts,
                         float* t_starts, float* t_ends, int64_t* ray_indices, cudaStream_t stream);

std::vector<at::Tensor> ray_aabb_intersect_cuda(const at::Tensor& rays_o, const at::Tensor& rays_d, const at::Tensor& aabb,
                                                double near, const at::Tensor& far) {
  const int64_t num_rays = rays_o.size(0);
  at::Tensor t_min = at::empty({num_rays}, rays_o.options());
  at::Tensor t_max = at::empty({num_rays}, rays_o.options());
  at::Tensor hit = at::empty({num_rays}, rays_o.options().dtype(at::kBool));
  const at::Tensor box_cpu = aabb.cpu();  // the box travels by value
  RayBox box;
  for (int a = 0; a < 3; ++a) {
    box.lo[a] = box_cpu.data_ptr<float>()[a];
    box.hi[a] = box_cpu.data_ptr<float>()[3 + a];
  }
  box.near = static_cast<float>(near);
  TORCH_CHECK(launch_ray_aabb(rays_o.data_ptr<float>(), rays_d.data_ptr<float>(), box, far.data_ptr<float>(), num_rays,
                              t_min.data_ptr<float>(), t_max.data_ptr<float>(), hit.data_ptr<bool>(),
                              at::cuda::getCurrentCUDAStream()) == cudaSuccess,
              "ray/box kernel failed");
  return {t_min, t_max, hit};
}

std::vector<at::Tensor> march_rays_cuda(const at::Tensor& rays_o, const at::Tensor& rays_d, const at::Tensor& t_min,
                                        const at::Tensor& t_max, const at::Tensor& occupied, const at::Tensor& aabb,
                                        double step, double cone_angle, double max_step, bool contracted, const at::Tensor& jitter) {
  const int64_t num_rays = rays_o.size(0);
  const OccupancyGridView grid = grid_view(occupied, aabb.cpu());  // box values by value, grid pointer on the GPU
  const MarchParams params{static_cast<float>(step), static_cast<float>(cone_angle), static_cast<float>(max_step), contracted};
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  at::Tensor counts = at::empty({num_rays}, rays_o.options().dtype(at::kLong));
  TORCH_CHECK(launch_march(grid, params, rays_o.data_ptr<float>(), rays_d.data_ptr<float>(), t_min.data_ptr<float>(),
                           t_max.data_ptr<float>(), jitter.data_ptr<float>(), num_rays, nullptr, counts.data_ptr<int64_t>(),
                           nullptr, nullptr, nullptr, stream) == cudaSuccess,
              "march count kernel failed");
  at::Tensor first = counts.cumsum(0) - counts;
  const int64_t total = num_rays > 0 ? counts.sum().item<int64_t>() : 0;
  at::Tensor t_starts = at::empty({total}, rays_o.options());
  at::Tensor t_ends = at::empty({total}, rays_o.options());
  at::Tensor ray_indices = at::empty({total}, rays_o.options().dtype(at::kLong));
  TORCH_CHECK(launch_march(grid, params, rays_o.data_ptr<float>(), rays_d.data_ptr<float>(), t_min.data_ptr<float>(),
                           t_max.data_ptr<float>(), jitter.data_ptr<float>(), num_rays, first.data_ptr<int64_t>(),
                           counts.data_ptr<int64_t>(), t_starts.data_ptr<float>(), t_ends.data_ptr<float>(),
                           ray_indices.data_ptr<int64_t>(), stream) == cudaSuccess,
              "march fill kernel failed");
  return {ray_indices, t_starts, t_ends, at::stack({first, counts}, -1)};
}

}  // namespace tensorfields
