// Every native op, with shapes. Bound in ext.cpp; CPU kernels in */*_cpu.cpp, CUDA in */*.cu.
#pragma once

#include <torch/extension.h>

#include <tuple>

namespace tensorfields {

// Occupancy-grid marching (see march/march.h).
//   rays_o, rays_d [R, 3] float32; t_min, t_max, jitter [R] float32; occupied [X, Y, Z] bool;
//   aabb [2, 3] float32 (on the CPU). Returns ray_indices [S] int64, t_starts [S], t_ends [S],
//   packed_info [R, 2] int64 (first sample, count).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> march_rays_fwd(const at::Tensor& rays_o, const at::Tensor& rays_d,
                                                                         const at::Tensor& t_min, const at::Tensor& t_max,
                                                                         const at::Tensor& occupied, const at::Tensor& aabb,
                                                                         double step, const at::Tensor& jitter);

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> march_rays_cpu(const at::Tensor& rays_o, const at::Tensor& rays_d,
                                                                         const at::Tensor& t_min, const at::Tensor& t_max,
                                                                         const at::Tensor& occupied, const at::Tensor& aabb,
                                                                         double step, const at::Tensor& jitter);

#ifdef TENSORFIELDS_WITH_CUDA
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> march_rays_cuda(const at::Tensor& rays_o, const at::Tensor& rays_d,
                                                                          const at::Tensor& t_min, const at::Tensor& t_max,
                                                                          const at::Tensor& occupied, const at::Tensor& aabb,
                                                                          double step, const at::Tensor& jitter);
#endif

}  // namespace tensorfields
