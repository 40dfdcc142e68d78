// Occupancy-grid marching on the GPU. Raw pointers and a stream only: no torch headers, so
// `nvcc -c` checks this file anywhere. The torch glue (allocation, prefix sum) is in ext.cpp.
#include <cuda_runtime.h>

#include <cstdint>

#include "march.h"

namespace tensorfields {

namespace {

__global__ void march_kernel(OccupancyGridView grid, const float* o, const float* d, const float* t_min, const float* t_max,
                             const float* jitter, float step, int64_t num_rays, const int64_t* starts, int64_t* counts,
                             float* t_starts, int64_t* ray_indices) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= num_rays) return;
  if (starts == nullptr) {
    counts[r] = march_ray(grid, o + 3 * r, d + 3 * r, t_min[r], t_max[r], step, jitter[r], nullptr);
    return;
  }
  const int64_t n = march_ray(grid, o + 3 * r, d + 3 * r, t_min[r], t_max[r], step, jitter[r], t_starts + starts[r]);
  for (int64_t i = 0; i < n; ++i) ray_indices[starts[r] + i] = r;
}

}  // namespace

// Pass 1 (starts == nullptr): counts[r] = samples of ray r. Pass 2: fill t_starts/ray_indices at starts[r].
cudaError_t launch_march(const OccupancyGridView& grid, const float* o, const float* d, const float* t_min, const float* t_max,
                         const float* jitter, float step, int64_t num_rays, const int64_t* starts, int64_t* counts,
                         float* t_starts, int64_t* ray_indices, cudaStream_t stream) {
  if (num_rays == 0) return cudaSuccess;
  const int threads = 256;
  const int blocks = static_cast<int>((num_rays + threads - 1) / threads);
  march_kernel<<<blocks, threads, 0, stream>>>(grid, o, d, t_min, t_max, jitter, step, num_rays, starts, counts, t_starts,
                                               ray_indices);
  return cudaGetLastError();
}

}  // namespace tensorfields
