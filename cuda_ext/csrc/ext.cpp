// Python bindings: one m.def per op, plus the device dispatch. Kernels live in their op folders.
#include "checks.h"
#include "ops.h"

#include <algorithm>

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

namespace {

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

}  // namespace

at::Tensor vm_sample_fwd(const std::vector<at::Tensor>& planes, const std::vector<at::Tensor>& lines, const at::Tensor& xn,
                         bool reduce) {
  check_vm(planes, lines, xn);
  if (xn.is_cuda()) {
#ifdef TENSORFIELDS_WITH_CUDA
    return vm_sample_fwd_cuda(planes, lines, xn, reduce);
#else
    TORCH_CHECK(false, "tensorfields native extension was built without CUDA");
#endif
  }
  return vm_sample_fwd_cpu(planes, lines, xn, reduce);
}

std::vector<at::Tensor> vm_sample_bwd(const std::vector<at::Tensor>& planes, const std::vector<at::Tensor>& lines,
                                      const at::Tensor& xn, const at::Tensor& grad_out, bool reduce) {
  check_vm(planes, lines, xn);
  check_grad_out(grad_out, xn, vm_components(planes), reduce);
  if (xn.is_cuda()) {
#ifdef TENSORFIELDS_WITH_CUDA
    return vm_sample_bwd_cuda(planes, lines, xn, grad_out, reduce);
#else
    TORCH_CHECK(false, "tensorfields native extension was built without CUDA");
#endif
  }
  return vm_sample_bwd_cpu(planes, lines, xn, grad_out, reduce);
}

at::Tensor cp_sample_fwd(const std::vector<at::Tensor>& lines, const at::Tensor& xn, bool reduce) {
  check_cp(lines, xn);
  if (xn.is_cuda()) {
#ifdef TENSORFIELDS_WITH_CUDA
    return cp_sample_fwd_cuda(lines, xn, reduce);
#else
    TORCH_CHECK(false, "tensorfields native extension was built without CUDA");
#endif
  }
  return cp_sample_fwd_cpu(lines, xn, reduce);
}

std::vector<at::Tensor> cp_sample_bwd(const std::vector<at::Tensor>& lines, const at::Tensor& xn, const at::Tensor& grad_out,
                                      bool reduce) {
  check_cp(lines, xn);
  check_grad_out(grad_out, xn, lines[0].size(0), reduce);
  if (xn.is_cuda()) {
#ifdef TENSORFIELDS_WITH_CUDA
    return cp_sample_bwd_cuda(lines, xn, grad_out, reduce);
#else
    TORCH_CHECK(false, "tensorfields native extension was built without CUDA");
#endif
  }
  return cp_sample_bwd_cpu(lines, xn, grad_out, reduce);
}

}  // namespace tensorfields

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("march_rays_fwd", &tensorfields::march_rays_fwd, "occupancy-grid marching (packed samples)");
  m.def("vm_sample_fwd", &tensorfields::vm_sample_fwd, "TensoRF-VM plane x line products at points (or their sum)");
  m.def("vm_sample_bwd", &tensorfields::vm_sample_bwd, "gradients of vm_sample_fwd w.r.t. the planes and lines");
  m.def("cp_sample_fwd", &tensorfields::cp_sample_fwd, "TensoRF-CP line x line x line products at points (or their sum)");
  m.def("cp_sample_bwd", &tensorfields::cp_sample_bwd, "gradients of cp_sample_fwd w.r.t. the lines");
}
