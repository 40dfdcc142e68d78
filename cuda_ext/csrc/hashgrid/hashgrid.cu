// Hash encoding on the GPU, feature-major ([L * F, N]). Raw pointers and a stream only: no torch
// headers, so `nvcc -c` checks this file anywhere. One thread per (level, point), consecutive threads
// on consecutive points of one level (they read the same level's slice of the table, which stays in
// L2, and write or read consecutive elements of each feature row); the backward scatters
// each corner's share with atomicAdd (corners of different points, and colliding corners of one
// point at a hashed level, may share a row).
#include <cuda_runtime.h>

#include <cstdint>

#include "../launch.cuh"
#include "hashgrid.h"

namespace tensorfields {

namespace {

template <typename scalar_t>
__global__ void fwd_kernel(HashGridView<scalar_t> g, const scalar_t* x, int64_t n, scalar_t* out) {
  const int64_t total = int64_t{g.levels} * n;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int32_t level = static_cast<int32_t>(i / n);
    const int64_t p = i % n;
    hash_level_features(g, level, x + 3 * p, out + int64_t{level} * g.features * n + p, n);
  }
}

// grad_features [L * F, n]; grad: zero-filled, the table's shape.
template <typename scalar_t>
__global__ void bwd_kernel(HashGridView<scalar_t> g, const scalar_t* x, int64_t n, const scalar_t* grad_features, scalar_t* grad) {
  const int64_t total = int64_t{g.levels} * n;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int32_t level = static_cast<int32_t>(i / n);
    const int64_t p = i % n;
    const HashCorners<scalar_t> c = hash_corners(g, level, x + 3 * p);
    const scalar_t* rows = grad_features + int64_t{level} * g.features * n + p;
    scalar_t* slice = grad + hash_level_offset(g, level);
    for (int32_t f = 0; f < g.features; ++f) {
      const scalar_t gp = rows[f * n];
      for (int corner = 0; corner < 8; ++corner) atomicAdd(slice + int64_t{c.row[corner]} * g.features + f, c.weight[corner] * gp);
    }
  }
}

}  // namespace

// out: [L * F, n].
template <typename scalar_t>
cudaError_t launch_hash_encode_fwd(const HashGridView<scalar_t>& g, const scalar_t* x, int64_t n, scalar_t* out, cudaStream_t stream) {
  const int64_t count = int64_t{g.levels} * n;
  if (count == 0) return cudaSuccess;
  fwd_kernel<<<grid_stride_blocks(count), kGridStrideThreads, 0, stream>>>(g, x, n, out);
  return cudaGetLastError();
}

template <typename scalar_t>
cudaError_t launch_hash_encode_bwd(const HashGridView<scalar_t>& g, const scalar_t* x, int64_t n, const scalar_t* grad_features,
                                   scalar_t* grad, cudaStream_t stream) {
  const int64_t count = int64_t{g.levels} * n;
  if (count == 0) return cudaSuccess;
  bwd_kernel<<<grid_stride_blocks(count), kGridStrideThreads, 0, stream>>>(g, x, n, grad_features, grad);
  return cudaGetLastError();
}

#define TENSORFIELDS_INSTANTIATE_HASHGRID(T)                                                                          \
  template cudaError_t launch_hash_encode_fwd<T>(const HashGridView<T>&, const T*, int64_t, T*, cudaStream_t);        \
  template cudaError_t launch_hash_encode_bwd<T>(const HashGridView<T>&, const T*, int64_t, const T*, T*, cudaStream_t);
TENSORFIELDS_INSTANTIATE_HASHGRID(float)
TENSORFIELDS_INSTANTIATE_HASHGRID(double)
#undef TENSORFIELDS_INSTANTIATE_HASHGRID

}  // namespace tensorfields
