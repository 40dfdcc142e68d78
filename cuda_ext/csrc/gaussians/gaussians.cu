// The Gaussian-mixture op on the GPU. Raw pointers and a stream only: no torch headers, so `nvcc -c`
// checks this file anywhere. One thread per sample, forward and backward alike; the backward adds
// to the Gaussians' gradients with atomicAdd (many samples share a Gaussian) and writes each
// sample's point gradient on its own.
#include <cuda_runtime.h>

#include <cstdint>

#include "../launch.cuh"
#include "gaussians.h"

namespace tensorfields {

namespace {

template <typename scalar_t>
__global__ void fwd_kernel(GaussianMixView<scalar_t> v, const scalar_t* x, int64_t n, scalar_t* density, scalar_t* mixed) {
  for (int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; s < n; s += int64_t{gridDim.x} * blockDim.x)
    density[s] = gaussian_mix_at(v, x + 3 * s, mixed + s * v.channels);
}

// The backward's `add`: the Gaussians' gradients are shared by every thread.
struct AtomicAdd {
  template <typename scalar_t>
  __device__ void operator()(scalar_t* target, scalar_t value) const {
    atomicAdd(target, value);
  }
};

template <typename scalar_t>
__global__ void bwd_kernel(GaussianMixView<scalar_t> v, const scalar_t* x, int64_t n, const scalar_t* grad_density,
                           const scalar_t* grad_mixed, GaussianGradsView<scalar_t> grads, scalar_t* grad_points) {
  for (int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; s < n; s += int64_t{gridDim.x} * blockDim.x)
    gaussian_mix_backward_at(v, x + 3 * s, grad_density[s], grad_mixed + s * v.channels, grads,
                             grad_points == nullptr ? nullptr : grad_points + 3 * s, AtomicAdd{});
}

}  // namespace

// x [n, 3]; density [n] and mixed [n, F] are written for every sample.
template <typename scalar_t>
cudaError_t launch_gaussian_mix_fwd(const GaussianMixView<scalar_t>& v, const scalar_t* x, int64_t n, scalar_t* density,
                                    scalar_t* mixed, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  fwd_kernel<<<grid_stride_blocks(n), kGridStrideThreads, 0, stream>>>(v, x, n, density, mixed);
  return cudaGetLastError();
}

// grad_density [n], grad_mixed [n, F]; the wanted Gaussian gradients zero-filled; grad_points
// [n, 3] (written for every sample) or null.
template <typename scalar_t>
cudaError_t launch_gaussian_mix_bwd(const GaussianMixView<scalar_t>& v, const scalar_t* x, int64_t n, const scalar_t* grad_density,
                                    const scalar_t* grad_mixed, const GaussianGradsView<scalar_t>& grads, scalar_t* grad_points,
                                    cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  bwd_kernel<<<grid_stride_blocks(n), kGridStrideThreads, 0, stream>>>(v, x, n, grad_density, grad_mixed, grads, grad_points);
  return cudaGetLastError();
}

#define TENSORFIELDS_INSTANTIATE_GAUSSIANS(T)                                                                                 \
  template cudaError_t launch_gaussian_mix_fwd<T>(const GaussianMixView<T>&, const T*, int64_t, T*, T*, cudaStream_t);       \
  template cudaError_t launch_gaussian_mix_bwd<T>(const GaussianMixView<T>&, const T*, int64_t, const T*, const T*,          \
                                                  const GaussianGradsView<T>&, T*, cudaStream_t);
TENSORFIELDS_INSTANTIATE_GAUSSIANS(float)
TENSORFIELDS_INSTANTIATE_GAUSSIANS(double)
#undef TENSORFIELDS_INSTANTIATE_GAUSSIANS

}  // namespace tensorfields
