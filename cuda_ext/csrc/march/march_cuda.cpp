// Torch glue for march.cu: allocation, the prefix sum between the two passes, error checks.
#include <ATen/cuda/CUDAContext.h>

#include "../checks.h"
#include "../ops.h"
#include "march.h"

namespace tensorfields {

OccupancyGridView grid_view(const at::Tensor& occupied, const at::Tensor& aabb);

cudaError_t launch_march(const OccupancyGridView& grid, const float* o, const float* d, const float* t_min, const float* t_max,
                         const float* jitter, float step, int64_t num_rays, const int64_t* starts, int64_t* counts,
                         float* t_starts, int64_t* ray_indices, cudaStream_t stream);

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> march_rays_cuda(const at::Tensor& rays_o, const at::Tensor& rays_d,
                                                                          const at::Tensor& t_min, const at::Tensor& t_max,
                                                                          const at::Tensor& occupied, const at::Tensor& aabb,
                                                                          double step, const at::Tensor& jitter) {
  const int64_t num_rays = rays_o.size(0);
  OccupancyGridView grid = grid_view(occupied, aabb.cpu());  // box values by value, grid pointer on the GPU
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const float step_f = static_cast<float>(step);
  at::Tensor counts = at::zeros({num_rays}, rays_o.options().dtype(at::kLong));
  TORCH_CHECK(launch_march(grid, rays_o.data_ptr<float>(), rays_d.data_ptr<float>(), t_min.data_ptr<float>(),
                           t_max.data_ptr<float>(), jitter.data_ptr<float>(), step_f, num_rays, nullptr,
                           counts.data_ptr<int64_t>(), nullptr, nullptr, stream) == cudaSuccess,
              "march count kernel failed");
  at::Tensor starts = counts.cumsum(0) - counts;
  const int64_t total = num_rays > 0 ? counts.sum().item<int64_t>() : 0;
  at::Tensor t_starts = at::empty({total}, rays_o.options());
  at::Tensor ray_indices = at::empty({total}, rays_o.options().dtype(at::kLong));
  TORCH_CHECK(launch_march(grid, rays_o.data_ptr<float>(), rays_d.data_ptr<float>(), t_min.data_ptr<float>(),
                           t_max.data_ptr<float>(), jitter.data_ptr<float>(), step_f, num_rays, starts.data_ptr<int64_t>(),
                           counts.data_ptr<int64_t>(), t_starts.data_ptr<float>(), ray_indices.data_ptr<int64_t>(),
                           stream) == cudaSuccess,
              "march fill kernel failed");
  return {ray_indices, t_starts, t_starts + step_f, at::stack({starts, counts}, -1)};
}

}  // namespace tensorfields
