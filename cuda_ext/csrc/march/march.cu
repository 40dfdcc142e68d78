// Box intersection and occupancy-grid marching on the GPU, one thread per ray. Raw pointers and
// a stream only: no torch headers, so `nvcc -c` checks this file anywhere. The torch glue
// (allocation, the prefix sum between the two marching passes) is march_cuda.cpp.
#include <cuda_runtime.h>

#include <cstdint>

#include "march.h"

namespace tensorfields {

namespace {

constexpr int kThreads = 256;

int blocks_for(int64_t num_rays) { return static_cast<int>((num_rays + kThreads - 1) / kThreads); }

__global__ void ray_aabb_kernel(const float* o, const float* d, RayBox box, const float* far, int64_t num_rays, float* t_min,
                                float* t_max, bool* hit) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= num_rays) return;
  hit[r] = ray_aabb(o + 3 * r, d + 3 * r, box.lo, box.hi, box.near, far[r], t_min + r, t_max + r);
}

__global__ void march_kernel(OccupancyGridView grid, MarchParams params, const float* o, const float* d, const float* t_min,
                             const float* t_max, const float* jitter, int64_t num_rays, const int64_t* first, int64_t* counts,
                             float* t_starts, float* t_ends, int64_t* ray_indices) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= num_rays) return;
  if (first == nullptr) {
    CountSamples count;
    counts[r] = march_ray(grid, o + 3 * r, d + 3 * r, t_min[r], t_max[r], params, jitter[r], count);
    return;
  }
  WriteSamples write{t_starts + first[r], t_ends + first[r]};
  const int64_t n = march_ray(grid, o + 3 * r, d + 3 * r, t_min[r], t_max[r], params, jitter[r], write);
  for (int64_t i = 0; i < n; ++i) ray_indices[first[r] + i] = r;
}

}  // namespace

cudaError_t launch_ray_aabb(const float* o, const float* d, RayBox box, const float* far, int64_t num_rays, float* t_min,
                            float* t_max, bool* hit, cudaStream_t stream) {
  if (num_rays == 0) return cudaSuccess;
  ray_aabb_kernel<<<blocks_for(num_rays), kThreads, 0, stream>>>(o, d, box, far, num_rays, t_min, t_max, hit);
  return cudaGetLastError();
}

// Pass 1 (first == nullptr): counts[r] = samples of ray r. Pass 2: fill t_starts/t_ends/ray_indices from first[r].
cudaError_t launch_march(const OccupancyGridView& grid, MarchParams params, const float* o, const float* d, const float* t_min,
                         const float* t_max, const float* jitter, int64_t num_rays, const int64_t* first, int64_t* counts,
                         float* t_starts, float* t_ends, int64_t* ray_indices, cudaStream_t stream) {
  if (num_rays == 0) return cudaSuccess;
  march_kernel<<<blocks_for(num_rays), kThreads, 0, stream>>>(grid, params, o, d, t_min, t_max, jitter, num_rays, first, counts,
                                                              t_starts, t_ends, ray_indices);
  return cudaGetLastError();
}

}  // namespace tensorfields
