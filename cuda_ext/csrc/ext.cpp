// Python bindings: the last checks before a kernel (the Python layer validates first and says
// more), then the device dispatch. Kernels live in their op folders.
#include "checks.h"
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
                                   double cone_angle, double max_step, const at::Tensor& jitter) {
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
                   jitter);
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
}
