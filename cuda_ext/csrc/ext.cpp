// Python bindings: one m.def per op, plus the device dispatch. Kernels live in their op folders.
#include "checks.h"
#include "ops.h"

namespace tensorfields {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> march_rays_fwd(const at::Tensor& rays_o, const at::Tensor& rays_d,
                                                                         const at::Tensor& t_min, const at::Tensor& t_max,
                                                                         const at::Tensor& occupied, const at::Tensor& aabb,
                                                                         double step, const at::Tensor& jitter) {
  CHECK_INPUT_FLOAT(rays_o);
  CHECK_INPUT_FLOAT(rays_d);
  CHECK_INPUT_FLOAT(t_min);
  CHECK_INPUT_FLOAT(t_max);
  CHECK_INPUT_FLOAT(jitter);
  CHECK_CONTIGUOUS(occupied);
  TORCH_CHECK(occupied.scalar_type() == at::kBool && occupied.dim() == 3, "occupied must be a [X, Y, Z] bool grid");
  TORCH_CHECK(step > 0.0, "step must be positive");
  CHECK_SAME_DEVICE(rays_o, occupied);
  if (rays_o.is_cuda()) {
#ifdef TENSORFIELDS_WITH_CUDA
    return march_rays_cuda(rays_o, rays_d, t_min, t_max, occupied, aabb.contiguous().to(at::kFloat), step, jitter);
#else
    TORCH_CHECK(false, "tensorfields native extension was built without CUDA");
#endif
  }
  return march_rays_cpu(rays_o, rays_d, t_min, t_max, occupied, aabb.contiguous().to(at::kFloat), step, jitter);
}

}  // namespace tensorfields

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("march_rays_fwd", &tensorfields::march_rays_fwd, "occupancy-grid marching (packed samples)");
}
