// Python bindings: the last checks before a kernel (the Python layer validates first and says
// more), then the device dispatch. Kernels live in their op folders.
#include <algorithm>

#include "checks.h"
#include "hashgrid/hashgrid.h"
#include "ops.h"

namespace tensorfields {

namespace {

// Whether `t` lives on the GPU; an error when it does and this build has no CUDA kernels.
bool on_cuda(const at::Tensor& t) {
#ifdef TENSORFIELDS_WITH_CUDA
  return t.is_cuda();
#else
  TORCH_CHECK(!t.is_cuda(), "tensorfields native extension was built without CUDA");
  return false;
#endif
}

#ifdef TENSORFIELDS_WITH_CUDA
#define ON_DEVICE(t, op, ...) (on_cuda(t) ? op##_cuda(__VA_ARGS__) : op##_cpu(__VA_ARGS__))
#else
#define ON_DEVICE(t, op, ...) (on_cuda(t), op##_cpu(__VA_ARGS__))
#endif

// The box as four-byte floats on the CPU, read by value by every kernel.
at::Tensor box_values(const at::Tensor& aabb) {
  TORCH_CHECK(aabb.numel() == 6, "aabb must hold 6 values");
  return aabb.detach().to(at::kCPU, at::kFloat).contiguous();
}

std::vector<at::Tensor> ray_aabb_intersect(const at::Tensor& rays_o, const at::Tensor& rays_d, const at::Tensor& aabb,
                                           double near, const at::Tensor& far) {
  CHECK_INPUT_FLOAT(rays_o);
  CHECK_INPUT_FLOAT(rays_d);
  CHECK_INPUT_FLOAT(far);
  CHECK_SAME_DEVICE(rays_o, far);
  return ON_DEVICE(rays_o, ray_aabb_intersect, rays_o, rays_d, box_values(aabb), near, far);
}

std::vector<at::Tensor> march_rays(const at::Tensor& rays_o, const at::Tensor& rays_d, const at::Tensor& t_min,
                                   const at::Tensor& t_max, const at::Tensor& occupied, const at::Tensor& aabb, double step,
                                   double cone_angle, double max_step, bool contracted, const at::Tensor& jitter) {
  CHECK_INPUT_FLOAT(rays_o);
  CHECK_INPUT_FLOAT(rays_d);
  CHECK_INPUT_FLOAT(t_min);
  CHECK_INPUT_FLOAT(t_max);
  CHECK_INPUT_FLOAT(jitter);
  CHECK_CONTIGUOUS(occupied);
  TORCH_CHECK(occupied.scalar_type() == at::kBool && occupied.dim() == 3, "occupied must be a [X, Y, Z] bool grid");
  TORCH_CHECK(step > 0.0 && cone_angle >= 0.0 && max_step >= step, "need step > 0, cone_angle >= 0, max_step >= step");
  CHECK_SAME_DEVICE(rays_o, occupied);
  return ON_DEVICE(rays_o, march_rays, rays_o, rays_d, t_min, t_max, occupied, box_values(aabb), step, cone_angle, max_step,
                   contracted, jitter);
}

void check_packed(const at::Tensor& sigmas, const at::Tensor& packed_info) {
  CHECK_CONTIGUOUS(sigmas);
  CHECK_CONTIGUOUS(packed_info);
  TORCH_CHECK(packed_info.scalar_type() == at::kLong && packed_info.dim() == 2 && packed_info.size(1) == 2,
              "packed_info must be [R, 2] int64");
  CHECK_SAME_DEVICE(sigmas, packed_info);
}

std::vector<at::Tensor> composite_forward(const at::Tensor& sigmas, const at::Tensor& rgbs, const at::Tensor& t_starts,
                                          const at::Tensor& t_ends, const at::Tensor& packed_info, double stop_eps) {
  check_packed(sigmas, packed_info);
  CHECK_CONTIGUOUS(rgbs);
  CHECK_CONTIGUOUS(t_starts);
  CHECK_CONTIGUOUS(t_ends);
  return ON_DEVICE(sigmas, composite_forward, sigmas, rgbs, t_starts, t_ends, packed_info, stop_eps);
}

std::vector<at::Tensor> composite_backward(const at::Tensor& grad_rgb, const at::Tensor& grad_opacity,
                                           const at::Tensor& grad_depth, const at::Tensor& sigmas, const at::Tensor& rgbs,
                                           const at::Tensor& t_starts, const at::Tensor& t_ends, const at::Tensor& packed_info,
                                           const at::Tensor& weights, const at::Tensor& transmittance, double stop_eps) {
  check_packed(sigmas, packed_info);
  CHECK_CONTIGUOUS(grad_rgb);
  CHECK_CONTIGUOUS(grad_opacity);
  CHECK_CONTIGUOUS(grad_depth);
  return ON_DEVICE(sigmas, composite_backward, grad_rgb, grad_opacity, grad_depth, sigmas, rgbs, t_starts, t_ends, packed_info,
                   weights, transmittance, stop_eps);
}

std::vector<at::Tensor> transmittance(const at::Tensor& sigmas, const at::Tensor& t_starts, const at::Tensor& t_ends,
                                      const at::Tensor& packed_info) {
  check_packed(sigmas, packed_info);
  CHECK_CONTIGUOUS(t_starts);
  CHECK_CONTIGUOUS(t_ends);
  return ON_DEVICE(sigmas, transmittance, sigmas, t_starts, t_ends, packed_info);
}

void update_occupancy(at::Tensor& density_ema, const at::Tensor& cell_indices, const at::Tensor& new_density, double decay) {
  CHECK_INPUT_FLOAT(density_ema);
  CHECK_INPUT_FLOAT(new_density);
  CHECK_CONTIGUOUS(cell_indices);
  TORCH_CHECK(cell_indices.scalar_type() == at::kLong, "cell_indices must be int64");
  CHECK_SAME_DEVICE(density_ema, cell_indices);
  ON_DEVICE(density_ema, update_occupancy, density_ema, cell_indices, new_density, decay);
}

// xn [N, 3], float32 or float64, contiguous.
void check_points(const at::Tensor& xn) {
  CHECK_CONTIGUOUS(xn);
  TORCH_CHECK(xn.scalar_type() == at::kFloat || xn.scalar_type() == at::kDouble, "xn must be float32 or float64");
  TORCH_CHECK(xn.dim() == 2 && xn.size(1) == 3, "xn must be [N, 3]");
}

// Three contiguous factors of `dims` dimensions, xn's dtype and device, at most 2^31 elements per component.
void check_factors(const std::vector<at::Tensor>& factors, const at::Tensor& xn, int64_t dims, const char* name) {
  TORCH_CHECK(factors.size() == 3, name, " must hold 3 tensors");
  for (const at::Tensor& factor : factors) {
    CHECK_CONTIGUOUS(factor);
    TORCH_CHECK(factor.dim() == dims, name, " must be ", dims, "-d tensors");
    TORCH_CHECK(factor.scalar_type() == xn.scalar_type(), name, " must have xn's dtype");
    CHECK_SAME_DEVICE(factor, xn);
    TORCH_CHECK(factor.numel() / std::max<int64_t>(factor.size(0), 1) < (int64_t{1} << 31), name, ": a component is too large");
  }
}

void check_vm(const std::vector<at::Tensor>& planes, const std::vector<at::Tensor>& lines, const at::Tensor& xn) {
  check_points(xn);
  check_factors(planes, xn, 3, "planes");
  check_factors(lines, xn, 2, "lines");
  for (int i = 0; i < 3; ++i) TORCH_CHECK(planes[i].size(0) == lines[i].size(0), "plane and line ", i, " have different ranks");
}

void check_cp(const std::vector<at::Tensor>& lines, const at::Tensor& xn) {
  check_points(xn);
  check_factors(lines, xn, 2, "lines");
  TORCH_CHECK(lines[1].size(0) == lines[0].size(0) && lines[2].size(0) == lines[0].size(0), "lines have different ranks");
}

// grad_out: [components, N], or [N] when reduce; xn's dtype and device.
void check_grad_out(const at::Tensor& grad_out, const at::Tensor& xn, int64_t components, bool reduce) {
  CHECK_CONTIGUOUS(grad_out);
  TORCH_CHECK(grad_out.scalar_type() == xn.scalar_type(), "grad_out must have xn's dtype");
  CHECK_SAME_DEVICE(grad_out, xn);
  const bool ok = reduce ? grad_out.dim() == 1 && grad_out.size(0) == xn.size(0)
                         : grad_out.dim() == 2 && grad_out.size(0) == components && grad_out.size(1) == xn.size(0);
  TORCH_CHECK(ok, "grad_out must have the forward result's shape");
}

int64_t vm_components(const std::vector<at::Tensor>& planes) { return planes[0].size(0) + planes[1].size(0) + planes[2].size(0); }

at::Tensor vm_sample_fwd(const std::vector<at::Tensor>& planes, const std::vector<at::Tensor>& lines, const at::Tensor& xn,
                         bool reduce) {
  check_vm(planes, lines, xn);
  return ON_DEVICE(xn, vm_sample_fwd, planes, lines, xn, reduce);
}

std::vector<at::Tensor> vm_sample_bwd(const std::vector<at::Tensor>& planes, const std::vector<at::Tensor>& lines,
                                      const at::Tensor& xn, const at::Tensor& grad_out, bool reduce) {
  check_vm(planes, lines, xn);
  check_grad_out(grad_out, xn, vm_components(planes), reduce);
  return ON_DEVICE(xn, vm_sample_bwd, planes, lines, xn, grad_out, reduce);
}

at::Tensor cp_sample_fwd(const std::vector<at::Tensor>& lines, const at::Tensor& xn, bool reduce) {
  check_cp(lines, xn);
  return ON_DEVICE(xn, cp_sample_fwd, lines, xn, reduce);
}

std::vector<at::Tensor> cp_sample_bwd(const std::vector<at::Tensor>& lines, const at::Tensor& xn, const at::Tensor& grad_out,
                                      bool reduce) {
  check_cp(lines, xn);
  check_grad_out(grad_out, xn, lines[0].size(0), reduce);
  return ON_DEVICE(xn, cp_sample_bwd, lines, xn, grad_out, reduce);
}

at::Tensor vm_sample_bwd_points(const std::vector<at::Tensor>& planes, const std::vector<at::Tensor>& lines, const at::Tensor& xn,
                                const at::Tensor& grad_out, bool reduce) {
  check_vm(planes, lines, xn);
  check_grad_out(grad_out, xn, vm_components(planes), reduce);
  return ON_DEVICE(xn, vm_sample_bwd_points, planes, lines, xn, grad_out, reduce);
}

at::Tensor cp_sample_bwd_points(const std::vector<at::Tensor>& lines, const at::Tensor& xn, const at::Tensor& grad_out, bool reduce) {
  check_cp(lines, xn);
  check_grad_out(grad_out, xn, lines[0].size(0), reduce);
  return ON_DEVICE(xn, cp_sample_bwd_points, lines, xn, grad_out, reduce);
}

// points [N, 3], centers [T, 3] of points' float dtype and device; table [C, M] int32 with a row per
// cell of a grid of `resolution` cells; k >= 1.
void check_trivec_cloud(const at::Tensor& points, const at::Tensor& centers, double half_size, const at::Tensor& table,
                        const std::vector<double>& origin, double cell_size, const std::vector<int64_t>& resolution,
                        int64_t k) {
  CHECK_CONTIGUOUS(points);
  CHECK_CONTIGUOUS(centers);
  CHECK_CONTIGUOUS(table);
  TORCH_CHECK(points.scalar_type() == at::kFloat || points.scalar_type() == at::kDouble, "points must be float32 or float64");
  TORCH_CHECK(points.dim() == 2 && points.size(1) == 3, "points must be [N, 3]");
  TORCH_CHECK(centers.scalar_type() == points.scalar_type() && centers.dim() == 2 && centers.size(1) == 3,
              "centers must be [T, 3] of points' dtype");
  TORCH_CHECK(table.scalar_type() == at::kInt && table.dim() == 2, "table must be [C, M] int32");
  CHECK_SAME_DEVICE(points, centers);
  CHECK_SAME_DEVICE(points, table);
  TORCH_CHECK(origin.size() == 3 && resolution.size() == 3, "origin and resolution must hold 3 values");
  int64_t cells = 1;
  for (int64_t r : resolution) {
    TORCH_CHECK(r >= 1 && r < (int64_t{1} << 31), "resolution must be positive");
    cells *= r;
  }
  TORCH_CHECK(table.size(0) == cells, "table must have a row per grid cell");
  TORCH_CHECK(half_size > 0.0 && cell_size > 0.0 && k >= 1, "need half_size > 0, cell_size > 0, k >= 1");
}

// lines [T, 3, R, L] float32/float64; index [N, K] int64; weights [N, K] and local [N, K, 3] of the lines' dtype.
void check_trivec_slots(const at::Tensor& lines, const at::Tensor& index, const at::Tensor& weights, const at::Tensor& local) {
  CHECK_CONTIGUOUS(lines);
  CHECK_CONTIGUOUS(index);
  CHECK_CONTIGUOUS(weights);
  CHECK_CONTIGUOUS(local);
  TORCH_CHECK(lines.scalar_type() == at::kFloat || lines.scalar_type() == at::kDouble, "lines must be float32 or float64");
  TORCH_CHECK(lines.dim() == 4 && lines.size(1) == 3 && lines.size(3) >= 1, "lines must be [T, 3, R, L]");
  TORCH_CHECK(lines.size(2) < (int64_t{1} << 31) && lines.size(3) < (int64_t{1} << 31), "lines: too many components or grid points");
  TORCH_CHECK(index.scalar_type() == at::kLong && index.dim() == 2, "index must be [N, K] int64");
  TORCH_CHECK(weights.scalar_type() == lines.scalar_type() && weights.sizes() == index.sizes(), "weights must be [N, K] of the lines' dtype");
  TORCH_CHECK(local.scalar_type() == lines.scalar_type() && local.dim() == 3 && local.size(0) == index.size(0) &&
                  local.size(1) == index.size(1) && local.size(2) == 3,
              "local must be [N, K, 3] of the lines' dtype");
  CHECK_SAME_DEVICE(lines, index);
  CHECK_SAME_DEVICE(lines, weights);
  CHECK_SAME_DEVICE(lines, local);
}

std::vector<at::Tensor> trivec_neighbors(const at::Tensor& points, const at::Tensor& centers, double half_size,
                                         const at::Tensor& table, const std::vector<double>& origin, double cell_size,
                                         const std::vector<int64_t>& resolution, int64_t k) {
  check_trivec_cloud(points, centers, half_size, table, origin, cell_size, resolution, k);
  return ON_DEVICE(points, trivec_neighbors, points, centers, half_size, table, origin, cell_size, resolution, k);
}

at::Tensor trivec_sample_fwd(const at::Tensor& lines, const at::Tensor& index, const at::Tensor& weights, const at::Tensor& local,
                             bool reduce) {
  check_trivec_slots(lines, index, weights, local);
  return ON_DEVICE(lines, trivec_sample_fwd, lines, index, weights, local, reduce);
}

at::Tensor trivec_sample_bwd(const at::Tensor& lines, const at::Tensor& index, const at::Tensor& weights, const at::Tensor& local,
                             const at::Tensor& grad_out, bool reduce) {
  check_trivec_slots(lines, index, weights, local);
  check_grad_out(grad_out, weights, lines.size(2), reduce);
  return ON_DEVICE(lines, trivec_sample_bwd, lines, index, weights, local, grad_out, reduce);
}

// `t` is contiguous, of `dtype`, on the points' device.
void check_gaussian_tensor(const at::Tensor& t, const char* name, at::ScalarType dtype, const at::Tensor& points) {
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
  TORCH_CHECK(t.scalar_type() == dtype, name, " must be ", dtype);
  TORCH_CHECK(t.device() == points.device(), name, " must be on the points' device");
}

// Shapes and types of ops.h's TENSORFIELDS_GAUSSIAN_MIX_FORWARD_ARGS.
void check_gaussian_mix(TENSORFIELDS_GAUSSIAN_MIX_FORWARD_ARGS) {
  TORCH_CHECK(points.scalar_type() == at::kFloat || points.scalar_type() == at::kDouble, "points must be float32 or float64");
  const at::ScalarType dtype = points.scalar_type();
  check_gaussian_tensor(points, "points", dtype, points);
  check_gaussian_tensor(means, "means", dtype, points);
  check_gaussian_tensor(precision_factors, "precision_factors", dtype, points);
  check_gaussian_tensor(peaks, "peaks", dtype, points);
  check_gaussian_tensor(features, "features", dtype, points);
  check_gaussian_tensor(cell_start, "cell_start", at::kLong, points);
  check_gaussian_tensor(cell_gaussians, "cell_gaussians", at::kInt, points);
  TORCH_CHECK(points.dim() == 2 && points.size(1) == 3, "points must be [S, 3]");
  TORCH_CHECK(means.dim() == 2 && means.size(1) == 3, "means must be [N, 3]");
  const int64_t n = means.size(0);
  TORCH_CHECK(precision_factors.dim() == 3 && precision_factors.size(0) == n && precision_factors.size(1) == 3 &&
                  precision_factors.size(2) == 3,
              "precision_factors must be [N, 3, 3]");
  TORCH_CHECK(peaks.dim() == 1 && peaks.size(0) == n, "peaks must be [N]");
  TORCH_CHECK(features.dim() == 2 && features.size(0) == n, "features must be [N, F]");
  TORCH_CHECK(cell_gaussians.dim() == 1, "cell_gaussians must be [L]");
  TORCH_CHECK(origin.size() == 3 && resolution.size() == 3, "origin and resolution must hold 3 values");
  int64_t cells = 1;
  for (int64_t r : resolution) {
    TORCH_CHECK(r >= 1 && r < (int64_t{1} << 31), "resolution must be positive");
    cells *= r;
  }
  TORCH_CHECK(cell_start.dim() == 1 && cell_start.size(0) == cells + 1, "cell_start must be [C + 1], C = the number of cells");
  TORCH_CHECK(cell_size > 0.0 && cutoff > 0.0, "need cell_size > 0, cutoff > 0");
}

std::vector<at::Tensor> gaussian_mix_fwd(TENSORFIELDS_GAUSSIAN_MIX_FORWARD_ARGS) {
  check_gaussian_mix(points, means, precision_factors, peaks, features, cell_start, cell_gaussians, origin, cell_size, resolution,
                     cutoff);
  return ON_DEVICE(points, gaussian_mix_fwd, points, means, precision_factors, peaks, features, cell_start, cell_gaussians, origin,
                   cell_size, resolution, cutoff);
}

std::vector<at::Tensor> gaussian_mix_bwd(TENSORFIELDS_GAUSSIAN_MIX_BACKWARD_ARGS) {
  check_gaussian_mix(points, means, precision_factors, peaks, features, cell_start, cell_gaussians, origin, cell_size, resolution,
                     cutoff);
  check_gaussian_tensor(grad_density, "grad_density", points.scalar_type(), points);
  check_gaussian_tensor(grad_mixed, "grad_mixed", points.scalar_type(), points);
  TORCH_CHECK(grad_density.dim() == 1 && grad_density.size(0) == points.size(0), "grad_density must be [S]");
  TORCH_CHECK(grad_mixed.dim() == 2 && grad_mixed.size(0) == points.size(0) && grad_mixed.size(1) == features.size(1),
              "grad_mixed must be [S, F]");
  TORCH_CHECK(wanted.size() == 5, "wanted must hold 5 flags (points, means, precision_factors, peaks, features)");
  return ON_DEVICE(points, gaussian_mix_bwd, points, means, precision_factors, peaks, features, cell_start, cell_gaussians, origin,
                   cell_size, resolution, cutoff, grad_density, grad_mixed, wanted);
}

// points [N, 3] float32/float64; table [L, T, F] of points' dtype and device, 1 <= L <= kHashMaxLevels, T a
// power of two <= 2^31, F >= 1; resolutions: L values in [1, 2^20].
void check_hash_encode(TENSORFIELDS_HASH_ENCODE_FORWARD_ARGS) {
  CHECK_CONTIGUOUS(points);
  CHECK_CONTIGUOUS(table);
  TORCH_CHECK(points.scalar_type() == at::kFloat || points.scalar_type() == at::kDouble, "points must be float32 or float64");
  TORCH_CHECK(points.dim() == 2 && points.size(1) == 3, "points must be [N, 3]");
  TORCH_CHECK(table.scalar_type() == points.scalar_type() && table.dim() == 3, "table must be [L, T, F] of points' dtype");
  CHECK_SAME_DEVICE(points, table);
  const int64_t levels = table.size(0), size = table.size(1);
  TORCH_CHECK(levels >= 1 && levels <= kHashMaxLevels, "table must have 1 to ", kHashMaxLevels, " levels");
  TORCH_CHECK(size >= 1 && size <= (int64_t{1} << 31) && (size & (size - 1)) == 0, "table must have 2^k entries per level, k <= 31");
  TORCH_CHECK(table.size(2) >= 1 && table.size(2) < (int64_t{1} << 31), "table must have at least 1 feature per entry");
  TORCH_CHECK(static_cast<int64_t>(resolutions.size()) == levels, "resolutions must hold one value per level");
  for (int64_t r : resolutions) TORCH_CHECK(r >= 1 && r <= (int64_t{1} << 20), "resolutions must lie in [1, 2^20]");
}

at::Tensor hash_encode_fwd(TENSORFIELDS_HASH_ENCODE_FORWARD_ARGS) {
  check_hash_encode(points, table, resolutions);
  return ON_DEVICE(points, hash_encode_fwd, points, table, resolutions);
}

at::Tensor hash_encode_bwd(TENSORFIELDS_HASH_ENCODE_BACKWARD_ARGS) {
  check_hash_encode(points, table, resolutions);
  CHECK_CONTIGUOUS(grad_features);
  TORCH_CHECK(grad_features.scalar_type() == points.scalar_type() && grad_features.dim() == 2 &&
                  grad_features.size(0) == table.size(0) * table.size(2) && grad_features.size(1) == points.size(0),
              "grad_features must be [L * F, N] of points' dtype");
  CHECK_SAME_DEVICE(points, grad_features);
  return ON_DEVICE(points, hash_encode_bwd, points, table, resolutions, grad_features);
}

}  // namespace

}  // namespace tensorfields

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  using namespace tensorfields;
  m.def("ray_aabb_intersect", &ray_aabb_intersect, "ray/box slab test");
  m.def("march_rays", &march_rays, "occupancy-grid marching (packed samples)");
  m.def("composite_forward", &composite_forward, "packed volume compositing");
  m.def("composite_backward", &composite_backward, "gradients of packed volume compositing");
  m.def("transmittance", &transmittance, "transmittance and alpha of packed samples");
  m.def("update_occupancy", &update_occupancy, "decaying-maximum occupancy update, in place");
  m.def("vm_sample_fwd", &vm_sample_fwd, "TensoRF-VM plane x line products at points (or their sum)");
  m.def("vm_sample_bwd", &vm_sample_bwd, "gradients of vm_sample_fwd w.r.t. the planes and lines");
  m.def("cp_sample_fwd", &cp_sample_fwd, "TensoRF-CP line x line x line products at points (or their sum)");
  m.def("cp_sample_bwd", &cp_sample_bwd, "gradients of cp_sample_fwd w.r.t. the lines");
  m.def("vm_sample_bwd_points", &vm_sample_bwd_points, "gradient of vm_sample_fwd w.r.t. the points");
  m.def("cp_sample_bwd_points", &cp_sample_bwd_points, "gradient of cp_sample_fwd w.r.t. the points");
  m.def("trivec_neighbors", &trivec_neighbors, "Strivec: the K nearest covering tensors of points, weights, local coordinates");
  m.def("trivec_sample_fwd", &trivec_sample_fwd, "Strivec: weighted tri-vector products at neighbour slots (or their sum)");
  m.def("trivec_sample_bwd", &trivec_sample_bwd, "gradients of trivec_sample_fwd w.r.t. the lines");
  m.def("gaussian_mix_fwd", &gaussian_mix_fwd, "density and density-weighted features of 3D Gaussians at points (lookup grid)");
  m.def("gaussian_mix_bwd", &gaussian_mix_bwd, "gradients of gaussian_mix_fwd w.r.t. the points and Gaussians (those wanted)");
  m.def("hash_encode_fwd", &hash_encode_fwd, "multiresolution hash encoding of points (instant-ngp)");
  m.def("hash_encode_bwd", &hash_encode_bwd, "gradient of hash_encode_fwd w.r.t. the table");
}
