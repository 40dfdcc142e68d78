// Torch glue for hashgrid.cu: allocation, views, error checks.
#include <ATen/cuda/CUDAContext.h>

#include "../ops.h"
#include "hashgrid.h"
#include "views.h"

namespace tensorfields {

template <typename scalar_t>
cudaError_t launch_hash_encode_fwd(const HashGridView<scalar_t>& g, const scalar_t* x, int64_t n, scalar_t* out, cudaStream_t stream);
template <typename scalar_t>
cudaError_t launch_hash_encode_bwd(const HashGridView<scalar_t>& g, const scalar_t* x, int64_t n, const scalar_t* grad_features,
                                   scalar_t* grad, cudaStream_t stream);

at::Tensor hash_encode_fwd_cuda(const at::Tensor& points, const at::Tensor& table, const std::vector<int64_t>& resolutions) {
  at::Tensor out = at::empty({table.size(0) * table.size(2), points.size(0)}, points.options());
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "hash_encode_fwd_cuda", [&] {
    TORCH_CHECK(launch_hash_encode_fwd(hash_grid_view<scalar_t>(table, resolutions), points.data_ptr<scalar_t>(), points.size(0),
                                       out.data_ptr<scalar_t>(), at::cuda::getCurrentCUDAStream()) == cudaSuccess,
                "hash_encode forward kernel failed");
  });
  return out;
}

at::Tensor hash_encode_bwd_cuda(const at::Tensor& points, const at::Tensor& table, const std::vector<int64_t>& resolutions,
                                const at::Tensor& grad_features) {
  at::Tensor grad_table = at::zeros_like(table);
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "hash_encode_bwd_cuda", [&] {
    TORCH_CHECK(launch_hash_encode_bwd(hash_grid_view<scalar_t>(table, resolutions), points.data_ptr<scalar_t>(), points.size(0),
                                       grad_features.data_ptr<scalar_t>(), grad_table.data_ptr<scalar_t>(),
                                       at::cuda::getCurrentCUDAStream()) == cudaSuccess,
                "hash_encode backward kernel failed");
  });
  return grad_table;
}

}  // namespace tensorfields
