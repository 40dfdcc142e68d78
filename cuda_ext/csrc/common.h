// Shared by the C++ CPU kernels and the CUDA kernels: no torch headers here.
#pragma once

#include <math.h>

#ifdef __CUDACC__
#define HOST_DEVICE __host__ __device__ __forceinline__
#else
#define HOST_DEVICE inline
#endif

namespace tensorfields {

// exp in the precision of its argument, on host and device alike (templated kernels call this).
HOST_DEVICE float exp_of(float x) { return expf(x); }
HOST_DEVICE double exp_of(double x) { return exp(x); }

}  // namespace tensorfields
