// Every native op, with shapes. Bound in ext.cpp; CPU kernels in */*_cpu.cpp, CUDA in */*.cu.
#pragma once

#include <torch/extension.h>

#include <tuple>
#include <vector>

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

// TensoRF factor sampling (see factors/factors.h); all tensors float32 or all float64, on one device.
//   VM: planes 3 x [R_i, H_i, W_i], lines 3 x [R_i, L_i], xn [N, 3] in [-1, 1]. The forward returns the
//   products [R_0 + R_1 + R_2, N] (pair 0's components first), or their sum [N] when reduce; the
//   backward takes grad_out shaped like that result and returns the gradients of the 3 planes, then
//   of the 3 lines.
//   CP: lines 3 x [R, L_a], xn [N, 3]. The forward returns [R, N] (or [N] when reduce); the backward
//   the gradients of the 3 lines.
at::Tensor vm_sample_fwd(const std::vector<at::Tensor>& planes, const std::vector<at::Tensor>& lines, const at::Tensor& xn,
                         bool reduce);
std::vector<at::Tensor> vm_sample_bwd(const std::vector<at::Tensor>& planes, const std::vector<at::Tensor>& lines,
                                      const at::Tensor& xn, const at::Tensor& grad_out, bool reduce);
at::Tensor cp_sample_fwd(const std::vector<at::Tensor>& lines, const at::Tensor& xn, bool reduce);
std::vector<at::Tensor> cp_sample_bwd(const std::vector<at::Tensor>& lines, const at::Tensor& xn, const at::Tensor& grad_out,
                                      bool reduce);

at::Tensor vm_sample_fwd_cpu(const std::vector<at::Tensor>& planes, const std::vector<at::Tensor>& lines, const at::Tensor& xn,
                         bool reduce);
std::vector<at::Tensor> vm_sample_bwd_cpu(const std::vector<at::Tensor>& planes, const std::vector<at::Tensor>& lines,
                                      const at::Tensor& xn, const at::Tensor& grad_out, bool reduce);
at::Tensor cp_sample_fwd_cpu(const std::vector<at::Tensor>& lines, const at::Tensor& xn, bool reduce);
std::vector<at::Tensor> cp_sample_bwd_cpu(const std::vector<at::Tensor>& lines, const at::Tensor& xn, const at::Tensor& grad_out,
                                      bool reduce);

#ifdef TENSORFIELDS_WITH_CUDA
at::Tensor vm_sample_fwd_cuda(const std::vector<at::Tensor>& planes, const std::vector<at::Tensor>& lines, const at::Tensor& xn,
                         bool reduce);
std::vector<at::Tensor> vm_sample_bwd_cuda(const std::vector<at::Tensor>& planes, const std::vector<at::Tensor>& lines,
                                      const at::Tensor& xn, const at::Tensor& grad_out, bool reduce);
at::Tensor cp_sample_fwd_cuda(const std::vector<at::Tensor>& lines, const at::Tensor& xn, bool reduce);
std::vector<at::Tensor> cp_sample_bwd_cuda(const std::vector<at::Tensor>& lines, const at::Tensor& xn, const at::Tensor& grad_out,
                                      bool reduce);
#endif

}  // namespace tensorfields
