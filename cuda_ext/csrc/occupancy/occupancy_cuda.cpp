// Torch glue for occupancy.cu.
#include <ATen/cuda/CUDAContext.h>

#include "../ops.h"

namespace tensorfields {

cudaError_t launch_update_occupancy(float* density_ema, const int64_t* cells, const float* density, int64_t count, float decay,
                                    cudaStream_t stream);

void update_occupancy_cuda(at::Tensor& density_ema, const at::Tensor& cell_indices, const at::Tensor& new_density,
                           double decay) {
  TORCH_CHECK(launch_update_occupancy(density_ema.data_ptr<float>(), cell_indices.data_ptr<int64_t>(),
                                      new_density.data_ptr<float>(), cell_indices.size(0), static_cast<float>(decay),
                                      at::cuda::getCurrentCUDAStream()) == cudaSuccess,
              "occupancy update kernel failed");
}

}  // namespace tensorfields
