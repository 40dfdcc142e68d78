// The Gaussian-mixture op on the CPU, in parallel over samples. The forward writes each sample's
// own outputs. In the backward many samples add to one Gaussian's gradients: the samples are cut
// into at most one part per thread, each part adds into its own zero-filled gradient buffers
// (no atomics, no locks), and the buffers are summed at the end, in a fixed order (the result does
// not depend on which thread ran which part). The gradient w.r.t. a point is the sample's own.
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "../ops.h"
#include "gaussians.h"
#include "views.h"

namespace tensorfields {

namespace {

constexpr int64_t kForwardGrain = 256;
// The backward cuts no part smaller than this (each part zeroes and sums a buffer per Gaussian input).
constexpr int64_t kMinSamplesPerPart = 4096;

// One zero-filled buffer [parts, *input.shape] per wanted Gaussian input (means, precision_factors,
// peaks, features: wanted[1..4]); undefined where not wanted.
std::vector<at::Tensor> part_buffers(const std::vector<at::Tensor>& inputs, const std::vector<bool>& wanted, int64_t parts) {
  std::vector<at::Tensor> buffers;
  for (size_t k = 0; k < inputs.size(); ++k) {
    std::vector<int64_t> shape = {parts};
    shape.insert(shape.end(), inputs[k].sizes().begin(), inputs[k].sizes().end());
    buffers.push_back(wanted[k + 1] ? at::zeros(shape, inputs[k].options()) : at::Tensor());
  }
  return buffers;
}

// Part p's slice of every buffer (undefined stays undefined).
std::vector<at::Tensor> part_slices(const std::vector<at::Tensor>& buffers, int64_t p) {
  std::vector<at::Tensor> slices;
  for (const at::Tensor& buffer : buffers) slices.push_back(buffer.defined() ? buffer[p] : at::Tensor());
  return slices;
}

// The sum of a buffer's parts (undefined stays undefined).
at::Tensor sum_parts(const at::Tensor& buffer) {
  if (!buffer.defined()) return buffer;
  return buffer.size(0) == 1 ? buffer[0] : buffer.sum(0);
}

}  // namespace

std::vector<at::Tensor> gaussian_mix_fwd_cpu(TENSORFIELDS_GAUSSIAN_MIX_FORWARD_ARGS) {
  std::vector<at::Tensor> out = gaussian_mix_outputs(points, features);
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "gaussian_mix_fwd_cpu", [&] {
    const GaussianMixView<scalar_t> v = gaussian_mix_view<scalar_t>(means, precision_factors, peaks, features, cell_start,
                                                                     cell_gaussians, origin, cell_size, resolution, cutoff);
    const scalar_t* x = points.data_ptr<scalar_t>();
    scalar_t* density = out[0].data_ptr<scalar_t>();
    scalar_t* mixed = out[1].data_ptr<scalar_t>();
    at::parallel_for(0, points.size(0), kForwardGrain, [&](int64_t begin, int64_t end) {
      for (int64_t s = begin; s < end; ++s) density[s] = gaussian_mix_at(v, x + 3 * s, mixed + s * v.channels);
    });
  });
  return out;
}

std::vector<at::Tensor> gaussian_mix_bwd_cpu(TENSORFIELDS_GAUSSIAN_MIX_BACKWARD_ARGS) {
  const int64_t samples = points.size(0);
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), samples / kMinSamplesPerPart));
  const std::vector<at::Tensor> buffers = part_buffers({means, precision_factors, peaks, features}, wanted, parts);
  at::Tensor grad_points = wanted[0] ? at::empty_like(points) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "gaussian_mix_bwd_cpu", [&] {
    const GaussianMixView<scalar_t> v = gaussian_mix_view<scalar_t>(means, precision_factors, peaks, features, cell_start,
                                                                     cell_gaussians, origin, cell_size, resolution, cutoff);
    std::vector<GaussianGradsView<scalar_t>> part_grads;
    for (int64_t p = 0; p < parts; ++p) part_grads.push_back(gaussian_grads_view<scalar_t>(part_slices(buffers, p)));
    const scalar_t* x = points.data_ptr<scalar_t>();
    const scalar_t* g_density = grad_density.data_ptr<scalar_t>();
    const scalar_t* g_mixed = grad_mixed.data_ptr<scalar_t>();
    scalar_t* g_points = grad_points.defined() ? grad_points.data_ptr<scalar_t>() : nullptr;
    const auto add = [](scalar_t* target, scalar_t value) { *target += value; };  // into the part's own buffer
    at::parallel_for(0, parts, 1, [&](int64_t first_part, int64_t last_part) {
      for (int64_t p = first_part; p < last_part; ++p)
        for (int64_t s = samples * p / parts; s < samples * (p + 1) / parts; ++s)
          gaussian_mix_backward_at(v, x + 3 * s, g_density[s], g_mixed + s * v.channels, part_grads[p],
                                   g_points == nullptr ? nullptr : g_points + 3 * s, add);
    });
  });
  std::vector<at::Tensor> grads = {grad_points};
  for (const at::Tensor& buffer : buffers) grads.push_back(sum_parts(buffer));
  return grads;
}

}  // namespace tensorfields
