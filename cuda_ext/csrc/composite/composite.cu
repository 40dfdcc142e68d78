// Packed compositing on the GPU, one thread per ray. Raw pointers and a stream only (no torch
// headers); the torch glue is composite_cuda.cpp.
#include <cuda_runtime.h>

#include <cstdint>

#include "composite.h"

namespace tensorfields {

namespace {

constexpr int kThreads = 256;

int blocks_for(int64_t num_rays) { return static_cast<int>((num_rays + kThreads - 1) / kThreads); }

template <typename scalar_t>
__global__ void forward_kernel(PackedSamples<scalar_t> samples, const int64_t* info, int64_t num_rays, scalar_t stop_eps,
                               scalar_t* weights, scalar_t* transmittance, scalar_t* rgb, scalar_t* opacity, scalar_t* depth) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= num_rays) return;
  composite_ray_forward(samples, info[2 * r], info[2 * r + 1], stop_eps, weights, transmittance, rgb + 3 * r, opacity + r,
                        depth + r);
}

template <typename scalar_t>
__global__ void backward_kernel(PackedSamples<scalar_t> samples, const int64_t* info, int64_t num_rays, scalar_t stop_eps,
                                const scalar_t* weights, const scalar_t* transmittance, const scalar_t* grad_rgb,
                                const scalar_t* grad_opacity, const scalar_t* grad_depth, scalar_t* grad_sigmas,
                                scalar_t* grad_rgbs) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= num_rays) return;
  composite_ray_backward(samples, info[2 * r], info[2 * r + 1], stop_eps, weights, transmittance, grad_rgb + 3 * r,
                         grad_opacity[r], grad_depth[r], grad_sigmas, grad_rgbs);
}

template <typename scalar_t>
__global__ void transmittance_kernel(const scalar_t* sigmas, const scalar_t* t_starts, const scalar_t* t_ends,
                                     const int64_t* info, int64_t num_rays, scalar_t* transmittance, scalar_t* alphas) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= num_rays) return;
  transmittance_ray(sigmas, t_starts, t_ends, info[2 * r], info[2 * r + 1], transmittance, alphas);
}

}  // namespace

template <typename scalar_t>
cudaError_t launch_composite_forward(PackedSamples<scalar_t> samples, const int64_t* info, int64_t num_rays, scalar_t stop_eps,
                                     scalar_t* weights, scalar_t* transmittance, scalar_t* rgb, scalar_t* opacity,
                                     scalar_t* depth, cudaStream_t stream) {
  if (num_rays == 0) return cudaSuccess;
  forward_kernel<<<blocks_for(num_rays), kThreads, 0, stream>>>(samples, info, num_rays, stop_eps, weights, transmittance,
                                                                rgb, opacity, depth);
  return cudaGetLastError();
}

template <typename scalar_t>
cudaError_t launch_composite_backward(PackedSamples<scalar_t> samples, const int64_t* info, int64_t num_rays,
                                      scalar_t stop_eps, const scalar_t* weights, const scalar_t* transmittance,
                                      const scalar_t* grad_rgb, const scalar_t* grad_opacity, const scalar_t* grad_depth,
                                      scalar_t* grad_sigmas, scalar_t* grad_rgbs, cudaStream_t stream) {
  if (num_rays == 0) return cudaSuccess;
  backward_kernel<<<blocks_for(num_rays), kThreads, 0, stream>>>(samples, info, num_rays, stop_eps, weights, transmittance,
                                                                 grad_rgb, grad_opacity, grad_depth, grad_sigmas, grad_rgbs);
  return cudaGetLastError();
}

template <typename scalar_t>
cudaError_t launch_transmittance(const scalar_t* sigmas, const scalar_t* t_starts, const scalar_t* t_ends, const int64_t* info,
                                 int64_t num_rays, scalar_t* transmittance, scalar_t* alphas, cudaStream_t stream) {
  if (num_rays == 0) return cudaSuccess;
  transmittance_kernel<<<blocks_for(num_rays), kThreads, 0, stream>>>(sigmas, t_starts, t_ends, info, num_rays, transmittance,
                                                                      alphas);
  return cudaGetLastError();
}

#define TENSORFIELDS_INSTANTIATE(scalar_t)                                                                                   \
  template cudaError_t launch_composite_forward<scalar_t>(PackedSamples<scalar_t>, const int64_t*, int64_t, scalar_t,     \
                                                          scalar_t*, scalar_t*, scalar_t*, scalar_t*, scalar_t*,            \
                                                          cudaStream_t);                                                    \
  template cudaError_t launch_composite_backward<scalar_t>(PackedSamples<scalar_t>, const int64_t*, int64_t, scalar_t,    \
                                                           const scalar_t*, const scalar_t*, const scalar_t*,               \
                                                           const scalar_t*, const scalar_t*, scalar_t*, scalar_t*,          \
                                                           cudaStream_t);                                                   \
  template cudaError_t launch_transmittance<scalar_t>(const scalar_t*, const scalar_t*, const scalar_t*, const int64_t*,   \
                                                      int64_t, scalar_t*, scalar_t*, cudaStream_t);
TENSORFIELDS_INSTANTIATE(float)
TENSORFIELDS_INSTANTIATE(double)
#undef TENSORFIELDS_INSTANTIATE

}  // namespace tensorfields
