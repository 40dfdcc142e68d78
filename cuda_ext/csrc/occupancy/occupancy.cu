// Occupancy-grid update on the GPU, one thread per evaluated cell. No torch headers; the torch
// glue is occupancy_cuda.cpp.
#include <cuda_runtime.h>

#include <cstdint>

#include "occupancy.h"

namespace tensorfields {

namespace {

__global__ void update_kernel(float* density_ema, const int64_t* cells, const float* density, int64_t count, float decay) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  update_cell(density_ema, cells[i], density[i], decay);
}

}  // namespace

cudaError_t launch_update_occupancy(float* density_ema, const int64_t* cells, const float* density, int64_t count, float decay,
                                    cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  const int threads = 256;
  update_kernel<<<static_cast<int>((count + threads - 1) / threads), threads, 0, stream>>>(density_ema, cells, density, count,
                                                                                           decay);
  return cudaGetLastError();
}

}  // namespace tensorfields
