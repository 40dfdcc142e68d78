// Occupancy-grid update on the CPU (at::parallel_for over the evaluated cells, which are unique).
#include <ATen/Parallel.h>

#include "../ops.h"
#include "occupancy.h"

namespace tensorfields {

void update_occupancy_cpu(at::Tensor& density_ema, const at::Tensor& cell_indices, const at::Tensor& new_density,
                          double decay) {
  float* ema = density_ema.data_ptr<float>();
  const int64_t* cells = cell_indices.data_ptr<int64_t>();
  const float* density = new_density.data_ptr<float>();
  const float decay_f = static_cast<float>(decay);
  at::parallel_for(0, cell_indices.size(0), 4096, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) update_cell(ema, cells[i], density[i], decay_f);
  });
}

}  // namespace tensorfields
