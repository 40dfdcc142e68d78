// Per-cell occupancy-grid update, used by occupancy_cpu.cpp and occupancy.cu alike.
#pragma once

#include <cstdint>

#include "../common.h"

namespace tensorfields {

// Decaying running maximum of one evaluated cell: ema[cell] = max(ema[cell] * decay, density).
HOST_DEVICE void update_cell(float* density_ema, int64_t cell, float density, float decay) {
  const float decayed = density_ema[cell] * decay;
  density_ema[cell] = decayed > density ? decayed : density;
}

}  // namespace tensorfields
