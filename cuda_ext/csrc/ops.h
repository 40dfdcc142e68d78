// Every native op, with shapes. Bound in ext.cpp; CPU kernels in */*_cpu.cpp, CUDA in */*.cu with
// their torch glue in */*_cuda.cpp. Inputs reach these functions checked (ext.cpp) and contiguous.
#pragma once

#include <torch/extension.h>

#include <vector>

namespace tensorfields {

// Ray/box slab test (see march/march.h).
//   rays_o, rays_d [R, 3] float32; aabb [2, 3] float32; far [R] float32.
//   Returns t_min [R], t_max [R], hit [R] bool.
#define TENSORFIELDS_RAY_AABB_ARGS \
  const at::Tensor &rays_o, const at::Tensor &rays_d, const at::Tensor &aabb, double near, const at::Tensor &far

// Occupancy-grid marching (see march/march.h).
//   rays_o, rays_d [R, 3] float32; t_min, t_max, jitter [R] float32; occupied [X, Y, Z] bool;
//   aabb [2, 3] float32 (of contracted space when `contracted`). Returns ray_indices [S] int64,
//   t_starts [S], t_ends [S], packed_info [R, 2] int64 (first sample, count).
#define TENSORFIELDS_MARCH_ARGS                                                                                 \
  const at::Tensor &rays_o, const at::Tensor &rays_d, const at::Tensor &t_min, const at::Tensor &t_max,         \
      const at::Tensor &occupied, const at::Tensor &aabb, double step, double cone_angle, double max_step, \
      bool contracted, const at::Tensor &jitter

// Packed compositing (see composite/composite.h), float32 or float64.
//   forward: sigmas, t_starts, t_ends [S]; rgbs [S, 3]; packed_info [R, 2] int64.
//     Returns rgb [R, 3], opacity [R], depth [R], weights [S], transmittance [S].
//   backward: grad_rgb [R, 3], grad_opacity, grad_depth [R], the forward's inputs and its weights
//     and transmittance. Returns grad_sigmas [S], grad_rgbs [S, 3].
//   transmittance: Returns transmittance [S], alphas [S].
#define TENSORFIELDS_COMPOSITE_FORWARD_ARGS                                                                      \
  const at::Tensor &sigmas, const at::Tensor &rgbs, const at::Tensor &t_starts, const at::Tensor &t_ends, \
      const at::Tensor &packed_info, double stop_eps
#define TENSORFIELDS_COMPOSITE_BACKWARD_ARGS                                                                        \
  const at::Tensor &grad_rgb, const at::Tensor &grad_opacity, const at::Tensor &grad_depth, const at::Tensor &sigmas, \
      const at::Tensor &rgbs, const at::Tensor &t_starts, const at::Tensor &t_ends, const at::Tensor &packed_info,    \
      const at::Tensor &weights, const at::Tensor &transmittance, double stop_eps
#define TENSORFIELDS_TRANSMITTANCE_ARGS \
  const at::Tensor &sigmas, const at::Tensor &t_starts, const at::Tensor &t_ends, const at::Tensor &packed_info

// Occupancy-grid update in place (see occupancy/occupancy.h).
//   density_ema [C] float32; cell_indices [M] int64, unique, in [0, C); new_density [M] float32.
#define TENSORFIELDS_UPDATE_OCCUPANCY_ARGS \
  at::Tensor &density_ema, const at::Tensor &cell_indices, const at::Tensor &new_density, double decay

// TensoRF factor sampling (see factors/factors.h); all tensors float32 or all float64, on one device.
//   VM: planes 3 x [R_i, H_i, W_i], lines 3 x [R_i, L_i], xn [N, 3] in [-1, 1]. The forward returns the
//   products [R_0 + R_1 + R_2, N] (pair 0's components first), or their sum [N] when reduce; the
//   backward takes grad_out shaped like that result and returns the gradients of the 3 planes, then
//   of the 3 lines; the points backward (same arguments) returns the gradient w.r.t. xn [N, 3].
//   CP: lines 3 x [R, L_a], xn [N, 3]. The forward returns [R, N] (or [N] when reduce); the backward
//   the gradients of the 3 lines; the points backward the gradient w.r.t. xn [N, 3].
#define TENSORFIELDS_VM_FORWARD_ARGS \
  const std::vector<at::Tensor> &planes, const std::vector<at::Tensor> &lines, const at::Tensor &xn, bool reduce
#define TENSORFIELDS_VM_BACKWARD_ARGS                                                                       \
  const std::vector<at::Tensor> &planes, const std::vector<at::Tensor> &lines, const at::Tensor &xn, \
      const at::Tensor &grad_out, bool reduce
#define TENSORFIELDS_CP_FORWARD_ARGS const std::vector<at::Tensor> &lines, const at::Tensor &xn, bool reduce
#define TENSORFIELDS_CP_BACKWARD_ARGS \
  const std::vector<at::Tensor> &lines, const at::Tensor &xn, const at::Tensor &grad_out, bool reduce

// Strivec tri-vector ops (see trivec/trivec.h); points, centers, lines, weights, local all float32 or
// all float64, on one device.
//   neighbors: points [N, 3], centers [T, 3], table [C, M] int32 (C = the product of resolution),
//   origin (3 values), resolution (3 values), k >= 1. Returns index [N, k] int64 (-1 in empty slots),
//   weights [N, k], local [N, k, 3].
//   sample: lines [T, 3, R, L], index [N, K] int64, weights [N, K], local [N, K, 3]. The forward
//   returns [R, N] (or [N] when reduce); the backward takes grad_out shaped like that result and
//   returns the gradient of the lines.
#define TENSORFIELDS_TRIVEC_NEIGHBORS_ARGS                                                                       \
  const at::Tensor &points, const at::Tensor &centers, double half_size, const at::Tensor &table,             \
      const std::vector<double> &origin, double cell_size, const std::vector<int64_t> &resolution, int64_t k
#define TENSORFIELDS_TRIVEC_FORWARD_ARGS \
  const at::Tensor &lines, const at::Tensor &index, const at::Tensor &weights, const at::Tensor &local, bool reduce
#define TENSORFIELDS_TRIVEC_BACKWARD_ARGS                                                                  \
  const at::Tensor &lines, const at::Tensor &index, const at::Tensor &weights, const at::Tensor &local, \
      const at::Tensor &grad_out, bool reduce

// Gaussian mixture (see gaussians/gaussians.h); points, means, precision_factors, peaks, features
// all float32 or all float64, on one device.
//   forward: points [S, 3], means [N, 3], precision_factors [N, 3, 3], peaks [N], features [N, F],
//   cell_start [C + 1] int64 (C = the product of resolution), cell_gaussians [L] int32 in [0, N),
//   origin (3 values), cell_size, resolution (3 values), cutoff (standard deviations).
//   Returns density [S], mixed [S, F].
//   backward: the forward's arguments, grad_density [S], grad_mixed [S, F] and wanted (5 flags:
//   points, means, precision_factors, peaks, features). Returns those 5 gradients, shaped like
//   their inputs, undefined where not wanted.
#define TENSORFIELDS_GAUSSIAN_MIX_FORWARD_ARGS                                                                    \
  const at::Tensor &points, const at::Tensor &means, const at::Tensor &precision_factors, const at::Tensor &peaks, \
      const at::Tensor &features, const at::Tensor &cell_start, const at::Tensor &cell_gaussians,                  \
      const std::vector<double> &origin, double cell_size, const std::vector<int64_t> &resolution, double cutoff
#define TENSORFIELDS_GAUSSIAN_MIX_BACKWARD_ARGS                                                                 \
  TENSORFIELDS_GAUSSIAN_MIX_FORWARD_ARGS, const at::Tensor &grad_density, const at::Tensor &grad_mixed, \
      const std::vector<bool> &wanted

// Multiresolution hash encoding (see hashgrid/hashgrid.h); points and table float32 or float64, on one device.
//   forward: points [N, 3] in [0, 1] (clamped), table [L, T, F] (T a power of two), resolutions (L values,
//   cells per axis of each level). Returns the features feature-major, [L * F, N] (row l * F + f:
//   feature f of level l; cuda_ext.hash_encode returns its transpose).
//   backward: the forward's arguments and grad_features [L * F, N]. Returns the gradient of the table
//   [L, T, F] (the points get none).
#define TENSORFIELDS_HASH_ENCODE_FORWARD_ARGS \
  const at::Tensor &points, const at::Tensor &table, const std::vector<int64_t> &resolutions
#define TENSORFIELDS_HASH_ENCODE_BACKWARD_ARGS TENSORFIELDS_HASH_ENCODE_FORWARD_ARGS, const at::Tensor &grad_features

std::vector<at::Tensor> ray_aabb_intersect_cpu(TENSORFIELDS_RAY_AABB_ARGS);
std::vector<at::Tensor> march_rays_cpu(TENSORFIELDS_MARCH_ARGS);
std::vector<at::Tensor> composite_forward_cpu(TENSORFIELDS_COMPOSITE_FORWARD_ARGS);
std::vector<at::Tensor> composite_backward_cpu(TENSORFIELDS_COMPOSITE_BACKWARD_ARGS);
std::vector<at::Tensor> transmittance_cpu(TENSORFIELDS_TRANSMITTANCE_ARGS);
void update_occupancy_cpu(TENSORFIELDS_UPDATE_OCCUPANCY_ARGS);
at::Tensor vm_sample_fwd_cpu(TENSORFIELDS_VM_FORWARD_ARGS);
std::vector<at::Tensor> vm_sample_bwd_cpu(TENSORFIELDS_VM_BACKWARD_ARGS);
at::Tensor vm_sample_bwd_points_cpu(TENSORFIELDS_VM_BACKWARD_ARGS);
at::Tensor cp_sample_fwd_cpu(TENSORFIELDS_CP_FORWARD_ARGS);
std::vector<at::Tensor> cp_sample_bwd_cpu(TENSORFIELDS_CP_BACKWARD_ARGS);
at::Tensor cp_sample_bwd_points_cpu(TENSORFIELDS_CP_BACKWARD_ARGS);
std::vector<at::Tensor> trivec_neighbors_cpu(TENSORFIELDS_TRIVEC_NEIGHBORS_ARGS);
at::Tensor trivec_sample_fwd_cpu(TENSORFIELDS_TRIVEC_FORWARD_ARGS);
at::Tensor trivec_sample_bwd_cpu(TENSORFIELDS_TRIVEC_BACKWARD_ARGS);
std::vector<at::Tensor> gaussian_mix_fwd_cpu(TENSORFIELDS_GAUSSIAN_MIX_FORWARD_ARGS);
std::vector<at::Tensor> gaussian_mix_bwd_cpu(TENSORFIELDS_GAUSSIAN_MIX_BACKWARD_ARGS);
at::Tensor hash_encode_fwd_cpu(TENSORFIELDS_HASH_ENCODE_FORWARD_ARGS);
at::Tensor hash_encode_bwd_cpu(TENSORFIELDS_HASH_ENCODE_BACKWARD_ARGS);

#ifdef TENSORFIELDS_WITH_CUDA
std::vector<at::Tensor> ray_aabb_intersect_cuda(TENSORFIELDS_RAY_AABB_ARGS);
std::vector<at::Tensor> march_rays_cuda(TENSORFIELDS_MARCH_ARGS);
std::vector<at::Tensor> composite_forward_cuda(TENSORFIELDS_COMPOSITE_FORWARD_ARGS);
std::vector<at::Tensor> composite_backward_cuda(TENSORFIELDS_COMPOSITE_BACKWARD_ARGS);
std::vector<at::Tensor> transmittance_cuda(TENSORFIELDS_TRANSMITTANCE_ARGS);
void update_occupancy_cuda(TENSORFIELDS_UPDATE_OCCUPANCY_ARGS);
at::Tensor vm_sample_fwd_cuda(TENSORFIELDS_VM_FORWARD_ARGS);
std::vector<at::Tensor> vm_sample_bwd_cuda(TENSORFIELDS_VM_BACKWARD_ARGS);
at::Tensor vm_sample_bwd_points_cuda(TENSORFIELDS_VM_BACKWARD_ARGS);
at::Tensor cp_sample_fwd_cuda(TENSORFIELDS_CP_FORWARD_ARGS);
std::vector<at::Tensor> cp_sample_bwd_cuda(TENSORFIELDS_CP_BACKWARD_ARGS);
at::Tensor cp_sample_bwd_points_cuda(TENSORFIELDS_CP_BACKWARD_ARGS);
std::vector<at::Tensor> trivec_neighbors_cuda(TENSORFIELDS_TRIVEC_NEIGHBORS_ARGS);
at::Tensor trivec_sample_fwd_cuda(TENSORFIELDS_TRIVEC_FORWARD_ARGS);
at::Tensor trivec_sample_bwd_cuda(TENSORFIELDS_TRIVEC_BACKWARD_ARGS);
std::vector<at::Tensor> gaussian_mix_fwd_cuda(TENSORFIELDS_GAUSSIAN_MIX_FORWARD_ARGS);
std::vector<at::Tensor> gaussian_mix_bwd_cuda(TENSORFIELDS_GAUSSIAN_MIX_BACKWARD_ARGS);
at::Tensor hash_encode_fwd_cuda(TENSORFIELDS_HASH_ENCODE_FORWARD_ARGS);
at::Tensor hash_encode_bwd_cuda(TENSORFIELDS_HASH_ENCODE_BACKWARD_ARGS);
#endif

}  // namespace tensorfields
