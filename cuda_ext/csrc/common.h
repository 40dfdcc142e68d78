// Shared by the C++ CPU kernels and the CUDA kernels: no torch headers here.
#pragma once

#ifdef __CUDACC__
#define HOST_DEVICE __host__ __device__ __forceinline__
#else
#define HOST_DEVICE inline
#endif
