// Shared by the C++ CPU kernels and the CUDA kernels: no torch headers here.
#pragma once

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define HOST_DEVICE __host__ __device__ __forceinline__
#else
#define HOST_DEVICE inline
#endif

namespace tensorfields {

// exp in the precision of its argument, on host and device alike (templated kernels call this).
HOST_DEVICE float exp_of(float x) { return expf(x); }
HOST_DEVICE double exp_of(double x) { return exp(x); }

// Row of the cell holding x [3] in a grid of cubic cells (lower corner origin [3], side cell_size,
// resolution [3] cells): (i * Y + j) * Z + l for cell (i, j, l); -1 outside the grid (NaN too).
template <typename scalar_t>
HOST_DEVICE int64_t grid_row(const scalar_t* origin, scalar_t cell_size, const int32_t* resolution, const scalar_t* x) {
  int64_t row = 0;
  for (int a = 0; a < 3; ++a) {
    const scalar_t pos = (x[a] - origin[a]) / cell_size;
    if (!(pos >= scalar_t(0) && pos < static_cast<scalar_t>(resolution[a]))) return -1;
    row = row * resolution[a] + static_cast<int64_t>(pos);
  }
  return row;
}

}  // namespace tensorfields
