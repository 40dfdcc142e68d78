// Factor sampling on the GPU. Raw pointers and a stream only: no torch headers, so `nvcc -c` checks
// this file anywhere. Products: one thread per (component, sample), consecutive threads on
// consecutive samples of one component (coalesced writes); sums over components: one thread per
// sample (no atomics, deterministic); gradients: one thread per (component, sample), atomicAdd;
// gradients w.r.t. the points: one thread per sample.
#include <cuda_runtime.h>

#include <cstdint>

#include "../launch.cuh"
#include "factors.h"

namespace tensorfields {

namespace {

template <typename scalar_t>
__global__ void vm_fwd_kernel(VMFactorsView<scalar_t> f, const scalar_t* xn, int64_t n, scalar_t* out) {
  const int64_t total = f.first[3] * n;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / n;
    const int pair = vm_pair_of(f, r);
    out[i] = vm_value(f, pair, r, vm_corners(f, pair, xn + 3 * (i % n)));
  }
}

template <typename scalar_t>
__global__ void vm_fwd_reduce_kernel(VMFactorsView<scalar_t> f, const scalar_t* xn, int64_t n, scalar_t* out) {
  for (int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; s < n; s += int64_t{gridDim.x} * blockDim.x) {
    scalar_t sum = 0;
    for (int pair = 0; pair < 3; ++pair) {
      const VMCorners<scalar_t> c = vm_corners(f, pair, xn + 3 * s);
      for (int64_t r = f.first[pair]; r < f.first[pair + 1]; ++r) sum += vm_value(f, pair, r, c);
    }
    out[s] = sum;
  }
}

template <typename scalar_t>
__device__ void line_scatter(scalar_t* grad, const AxisCorners<scalar_t>& c, int32_t step, scalar_t g) {
  atomicAdd(grad + c.index, c.w0 * g);
  atomicAdd(grad + c.index + step, c.w1 * g);
}

template <typename scalar_t>
__device__ void plane_scatter(scalar_t* grad, const PlaneCorners<scalar_t>& c, int32_t dx, int32_t dy, scalar_t g) {
  scalar_t* p = grad + c.offset;
  atomicAdd(p, c.w[0] * g);
  atomicAdd(p + dx, c.w[1] * g);
  atomicAdd(p + dy, c.w[2] * g);
  atomicAdd(p + dy + dx, c.w[3] * g);
}

// grad_out: [components, n], or [n] shared by all components when `reduce`.
template <typename scalar_t>
__global__ void vm_bwd_kernel(VMFactorsView<scalar_t> f, FactorGrads<scalar_t> grads, const scalar_t* xn, int64_t n,
                              const scalar_t* grad_out, bool reduce) {
  const int64_t total = f.first[3] * n;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / n, s = i % n;
    const int pair = vm_pair_of(f, r);
    const VMCorners<scalar_t> c = vm_corners(f, pair, xn + 3 * s);
    const int32_t dx = axis_step(f.width[pair]), dy = axis_step(f.height[pair]) * f.width[pair];
    const int32_t dl = axis_step(f.length[pair]);
    const int64_t plane_at = vm_plane_offset(f, pair, r), line_at = vm_line_offset(f, pair, r);
    const scalar_t g = grad_out[reduce ? s : i];
    const scalar_t plane_v = plane_value(f.planes[pair] + plane_at, c.plane, dx, dy);
    const scalar_t line_v = line_value(f.lines[pair] + line_at, c.line, dl);
    plane_scatter(grads.planes[pair] + plane_at, c.plane, dx, dy, g * line_v);
    line_scatter(grads.lines[pair] + line_at, c.line, dl, g * plane_v);
  }
}

template <typename scalar_t>
__device__ scalar_t cp_product(const CPFactorsView<scalar_t>& f, int64_t r, const CPCorners<scalar_t>& c) {
  scalar_t v[3];
  cp_values(f, r, c, v);
  return v[0] * v[1] * v[2];
}

template <typename scalar_t>
__global__ void cp_fwd_kernel(CPFactorsView<scalar_t> f, const scalar_t* xn, int64_t n, scalar_t* out) {
  const int64_t total = f.components * n;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x)
    out[i] = cp_product(f, i / n, cp_corners(f, xn + 3 * (i % n)));
}

template <typename scalar_t>
__global__ void cp_fwd_reduce_kernel(CPFactorsView<scalar_t> f, const scalar_t* xn, int64_t n, scalar_t* out) {
  for (int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; s < n; s += int64_t{gridDim.x} * blockDim.x) {
    const CPCorners<scalar_t> c = cp_corners(f, xn + 3 * s);
    scalar_t sum = 0;
    for (int64_t r = 0; r < f.components; ++r) sum += cp_product(f, r, c);
    out[s] = sum;
  }
}

template <typename scalar_t>
__global__ void cp_bwd_kernel(CPFactorsView<scalar_t> f, FactorGrads<scalar_t> grads, const scalar_t* xn, int64_t n,
                              const scalar_t* grad_out, bool reduce) {
  const int64_t total = f.components * n;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / n, s = i % n;
    const CPCorners<scalar_t> c = cp_corners(f, xn + 3 * s);
    scalar_t v[3];
    cp_values(f, r, c, v);
    const scalar_t g = grad_out[reduce ? s : i];
    const scalar_t others[3] = {v[1] * v[2], v[0] * v[2], v[0] * v[1]};
    for (int a = 0; a < 3; ++a)
      line_scatter(grads.lines[a] + r * f.length[a], c.axis[a], axis_step(f.length[a]), g * others[a]);
  }
}

// Gradient w.r.t. the points: one thread per sample, its components summed in registers (no atomics).
template <typename scalar_t>
__global__ void vm_points_bwd_kernel(VMFactorsView<scalar_t> f, const scalar_t* xn, int64_t n, const scalar_t* grad_out, bool reduce,
                                     scalar_t* grad_xn) {
  for (int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; s < n; s += int64_t{gridDim.x} * blockDim.x) {
    scalar_t grad[3] = {0, 0, 0};
    for (int pair = 0; pair < 3; ++pair)
      vm_point_grad(f, pair, xn + 3 * s, reduce ? grad_out + s : grad_out + f.first[pair] * n + s, reduce ? 0 : n, grad);
    for (int a = 0; a < 3; ++a) grad_xn[3 * s + a] = grad[a];
  }
}

template <typename scalar_t>
__global__ void cp_points_bwd_kernel(CPFactorsView<scalar_t> f, const scalar_t* xn, int64_t n, const scalar_t* grad_out, bool reduce,
                                     scalar_t* grad_xn) {
  for (int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; s < n; s += int64_t{gridDim.x} * blockDim.x)
    cp_point_grad(f, xn + 3 * s, grad_out + s, reduce ? 0 : n, grad_xn + 3 * s);
}

}  // namespace

// out: [components, n] products, or [n] sums when `reduce`.
template <typename scalar_t>
cudaError_t launch_vm_sample_fwd(const VMFactorsView<scalar_t>& f, const scalar_t* xn, int64_t n, bool reduce, scalar_t* out,
                                 cudaStream_t stream) {
  const int64_t count = reduce ? n : f.first[3] * n;
  if (count == 0) return cudaSuccess;
  if (reduce)
    vm_fwd_reduce_kernel<<<grid_stride_blocks(count), kGridStrideThreads, 0, stream>>>(f, xn, n, out);
  else
    vm_fwd_kernel<<<grid_stride_blocks(count), kGridStrideThreads, 0, stream>>>(f, xn, n, out);
  return cudaGetLastError();
}

// grads: zero-filled, the factors' shapes.
template <typename scalar_t>
cudaError_t launch_vm_sample_bwd(const VMFactorsView<scalar_t>& f, const FactorGrads<scalar_t>& grads, const scalar_t* xn,
                                 int64_t n, const scalar_t* grad_out, bool reduce, cudaStream_t stream) {
  const int64_t count = f.first[3] * n;
  if (count == 0) return cudaSuccess;
  vm_bwd_kernel<<<grid_stride_blocks(count), kGridStrideThreads, 0, stream>>>(f, grads, xn, n, grad_out, reduce);
  return cudaGetLastError();
}

template <typename scalar_t>
cudaError_t launch_cp_sample_fwd(const CPFactorsView<scalar_t>& f, const scalar_t* xn, int64_t n, bool reduce, scalar_t* out,
                                 cudaStream_t stream) {
  const int64_t count = reduce ? n : f.components * n;
  if (count == 0) return cudaSuccess;
  if (reduce)
    cp_fwd_reduce_kernel<<<grid_stride_blocks(count), kGridStrideThreads, 0, stream>>>(f, xn, n, out);
  else
    cp_fwd_kernel<<<grid_stride_blocks(count), kGridStrideThreads, 0, stream>>>(f, xn, n, out);
  return cudaGetLastError();
}

template <typename scalar_t>
cudaError_t launch_cp_sample_bwd(const CPFactorsView<scalar_t>& f, const FactorGrads<scalar_t>& grads, const scalar_t* xn,
                                 int64_t n, const scalar_t* grad_out, bool reduce, cudaStream_t stream) {
  const int64_t count = f.components * n;
  if (count == 0) return cudaSuccess;
  cp_bwd_kernel<<<grid_stride_blocks(count), kGridStrideThreads, 0, stream>>>(f, grads, xn, n, grad_out, reduce);
  return cudaGetLastError();
}

// grad_xn: [n, 3], overwritten.
template <typename scalar_t>
cudaError_t launch_vm_sample_bwd_points(const VMFactorsView<scalar_t>& f, const scalar_t* xn, int64_t n, const scalar_t* grad_out,
                                        bool reduce, scalar_t* grad_xn, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  vm_points_bwd_kernel<<<grid_stride_blocks(n), kGridStrideThreads, 0, stream>>>(f, xn, n, grad_out, reduce, grad_xn);
  return cudaGetLastError();
}

template <typename scalar_t>
cudaError_t launch_cp_sample_bwd_points(const CPFactorsView<scalar_t>& f, const scalar_t* xn, int64_t n, const scalar_t* grad_out,
                                        bool reduce, scalar_t* grad_xn, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  cp_points_bwd_kernel<<<grid_stride_blocks(n), kGridStrideThreads, 0, stream>>>(f, xn, n, grad_out, reduce, grad_xn);
  return cudaGetLastError();
}

#define TENSORFIELDS_INSTANTIATE_FACTORS(T)                                                                                    \
  template cudaError_t launch_vm_sample_fwd<T>(const VMFactorsView<T>&, const T*, int64_t, bool, T*, cudaStream_t);           \
  template cudaError_t launch_vm_sample_bwd<T>(const VMFactorsView<T>&, const FactorGrads<T>&, const T*, int64_t, const T*,  \
                                               bool, cudaStream_t);                                                           \
  template cudaError_t launch_cp_sample_fwd<T>(const CPFactorsView<T>&, const T*, int64_t, bool, T*, cudaStream_t);           \
  template cudaError_t launch_cp_sample_bwd<T>(const CPFactorsView<T>&, const FactorGrads<T>&, const T*, int64_t, const T*,  \
                                               bool, cudaStream_t);                                                           \
  template cudaError_t launch_vm_sample_bwd_points<T>(const VMFactorsView<T>&, const T*, int64_t, const T*, bool, T*,         \
                                                      cudaStream_t);                                                          \
  template cudaError_t launch_cp_sample_bwd_points<T>(const CPFactorsView<T>&, const T*, int64_t, const T*, bool, T*,         \
                                                      cudaStream_t);
TENSORFIELDS_INSTANTIATE_FACTORS(float)
TENSORFIELDS_INSTANTIATE_FACTORS(double)
#undef TENSORFIELDS_INSTANTIATE_FACTORS

}  // namespace tensorfields
