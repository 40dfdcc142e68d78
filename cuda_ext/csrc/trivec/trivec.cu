// Strivec tri-vector ops on the GPU. Raw pointers and a stream only: no torch headers, so `nvcc -c`
// checks this file anywhere. Neighbours and sums over components: one thread per sample;
// products: one thread per (component, sample), consecutive threads on consecutive samples of one
// component (coalesced writes); gradients: one thread per (component, sample), atomicAdd.
#include <cuda_runtime.h>

#include <cstdint>

#include "../launch.cuh"
#include "trivec.h"

namespace tensorfields {

namespace {

template <typename scalar_t>
__global__ void neighbors_kernel(TriVecCloudView<scalar_t> v, const scalar_t* x, int64_t n, int32_t k, int64_t* index,
                                 scalar_t* weights, scalar_t* local) {
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < n; p += int64_t{gridDim.x} * blockDim.x)
    trivec_find(v, x + 3 * p, k, index + p * k, weights + p * k, local + 3 * p * k);
}

// Slot j of sample s.
template <typename scalar_t>
__device__ TriVecSlot<scalar_t> slot_of(const TriVecLinesView<scalar_t>& f, const int64_t* index, const scalar_t* weights,
                                        const scalar_t* local, int64_t k, int64_t s, int64_t j) {
  const int64_t i = s * k + j;
  return trivec_slot(f, index[i], weights[i], local + 3 * i);
}

template <typename scalar_t>
__global__ void fwd_reduce_kernel(TriVecLinesView<scalar_t> f, const int64_t* index, const scalar_t* weights,
                                  const scalar_t* local, int64_t n, int64_t k, scalar_t* out) {
  for (int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; s < n; s += int64_t{gridDim.x} * blockDim.x) {
    scalar_t sum = 0;
    for (int64_t j = 0; j < k; ++j) {
      const TriVecSlot<scalar_t> slot = slot_of(f, index, weights, local, k, s, j);
      for (int64_t r = 0; r < f.components; ++r) sum += trivec_term(f, slot, r);
    }
    out[s] = sum;
  }
}

template <typename scalar_t>
__global__ void fwd_kernel(TriVecLinesView<scalar_t> f, const int64_t* index, const scalar_t* weights, const scalar_t* local,
                           int64_t n, int64_t k, scalar_t* out) {
  const int64_t total = f.components * n;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / n, s = i % n;
    scalar_t sum = 0;
    for (int64_t j = 0; j < k; ++j) sum += trivec_term(f, slot_of(f, index, weights, local, k, s, j), r);
    out[i] = sum;
  }
}

// grad_out: [components, n], or [n] shared by all components when `reduce`.
template <typename scalar_t>
__global__ void bwd_kernel(TriVecLinesView<scalar_t> f, const int64_t* index, const scalar_t* weights, const scalar_t* local,
                           int64_t n, int64_t k, const scalar_t* grad_out, bool reduce, scalar_t* grad) {
  const int64_t total = f.components * n;
  const int32_t step = axis_step(f.length);
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / n, s = i % n;
    const scalar_t grad_sample = grad_out[reduce ? s : i];
    for (int64_t j = 0; j < k; ++j) {
      const TriVecSlot<scalar_t> slot = slot_of(f, index, weights, local, k, s, j);
      if (slot.tensor < 0) continue;
      scalar_t v[3];
      trivec_values(f, slot, r, v);
      const scalar_t gw = grad_sample * slot.weight;
      const scalar_t others[3] = {v[1] * v[2], v[0] * v[2], v[0] * v[1]};
      for (int a = 0; a < 3; ++a) {
        scalar_t* line = grad + trivec_line_offset(f, slot.tensor, a, r);
        atomicAdd(line + slot.axis[a].index, slot.axis[a].w0 * gw * others[a]);
        atomicAdd(line + slot.axis[a].index + step, slot.axis[a].w1 * gw * others[a]);
      }
    }
  }
}

}  // namespace

// index [n, k], weights [n, k], local [n, k, 3]: filled for every point.
template <typename scalar_t>
cudaError_t launch_trivec_neighbors(const TriVecCloudView<scalar_t>& v, const scalar_t* x, int64_t n, int32_t k, int64_t* index,
                                    scalar_t* weights, scalar_t* local, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  neighbors_kernel<<<grid_stride_blocks(n), kGridStrideThreads, 0, stream>>>(v, x, n, k, index, weights, local);
  return cudaGetLastError();
}

// out: [components, n] products, or [n] sums when `reduce`.
template <typename scalar_t>
cudaError_t launch_trivec_sample_fwd(const TriVecLinesView<scalar_t>& f, const int64_t* index, const scalar_t* weights,
                                     const scalar_t* local, int64_t n, int64_t k, bool reduce, scalar_t* out, cudaStream_t stream) {
  const int64_t count = reduce ? n : f.components * n;
  if (count == 0) return cudaSuccess;
  if (reduce)
    fwd_reduce_kernel<<<grid_stride_blocks(count), kGridStrideThreads, 0, stream>>>(f, index, weights, local, n, k, out);
  else
    fwd_kernel<<<grid_stride_blocks(count), kGridStrideThreads, 0, stream>>>(f, index, weights, local, n, k, out);
  return cudaGetLastError();
}

// grad: zero-filled, the lines' shape.
template <typename scalar_t>
cudaError_t launch_trivec_sample_bwd(const TriVecLinesView<scalar_t>& f, const int64_t* index, const scalar_t* weights,
                                     const scalar_t* local, int64_t n, int64_t k, const scalar_t* grad_out, bool reduce,
                                     scalar_t* grad, cudaStream_t stream) {
  const int64_t count = f.components * n;
  if (count == 0) return cudaSuccess;
  bwd_kernel<<<grid_stride_blocks(count), kGridStrideThreads, 0, stream>>>(f, index, weights, local, n, k, grad_out, reduce, grad);
  return cudaGetLastError();
}

#define TENSORFIELDS_INSTANTIATE_TRIVEC(T)                                                                                      \
  template cudaError_t launch_trivec_neighbors<T>(const TriVecCloudView<T>&, const T*, int64_t, int32_t, int64_t*, T*, T*,       \
                                                  cudaStream_t);                                                                \
  template cudaError_t launch_trivec_sample_fwd<T>(const TriVecLinesView<T>&, const int64_t*, const T*, const T*, int64_t,      \
                                                   int64_t, bool, T*, cudaStream_t);                                            \
  template cudaError_t launch_trivec_sample_bwd<T>(const TriVecLinesView<T>&, const int64_t*, const T*, const T*, int64_t,      \
                                                   int64_t, const T*, bool, T*, cudaStream_t);
TENSORFIELDS_INSTANTIATE_TRIVEC(float)
TENSORFIELDS_INSTANTIATE_TRIVEC(double)
#undef TENSORFIELDS_INSTANTIATE_TRIVEC

}  // namespace tensorfields
