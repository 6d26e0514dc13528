#pragma once
// Shared by the .cu files: CUDA error → Status, bf16 loads and stores, block reductions, and the
// compile-time dispatch over element types, kept in one place.
#include "tessera_kernels/common.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <string>

namespace tessera::kernels {

inline Status cudaStatus(cudaError_t err, const char* what)
{
    if (err == cudaSuccess)
        return {};
    cudaGetLastError();  // clear a non-sticky error so later calls start clean
    return Status::failure(std::string(what) + ": " + cudaGetErrorString(err));
}

// After a kernel launch: a bad configuration shows up here; faults show up at the next sync.
inline Status launchStatus(const char* op)
{
    const cudaError_t err = cudaGetLastError();
    if (err == cudaSuccess)
        return {};
    return Status::failure(std::string(op) + " kernel launch: " + cudaGetErrorString(err));
}

using bf16 = __nv_bfloat16;

__device__ __forceinline__ float toFloat(float v) { return v; }
__device__ __forceinline__ float toFloat(bf16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T fromFloat(float v);
template <>
__device__ __forceinline__ float fromFloat<float>(float v) { return v; }
template <>
__device__ __forceinline__ bf16 fromFloat<bf16>(float v) { return __float2bfloat16_rn(v); }

__device__ __forceinline__ float warpSum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ double warpSumD(double v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warpMax(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
__device__ __forceinline__ float blockSum(float v, float* scratch /* 33 floats */)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    v = warpSum(v);
    __syncthreads();  // scratch may still be read by a previous reduction
    if (lane == 0)
        scratch[warp] = v;
    __syncthreads();
    float t = lane < warps ? scratch[lane] : 0.f;
    t = warpSum(t);
    return t;
}

__device__ __forceinline__ float blockMax(float v, float* scratch /* 33 floats */)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    v = warpMax(v);
    __syncthreads();
    if (lane == 0)
        scratch[warp] = v;
    __syncthreads();
    float t = lane < warps ? scratch[lane] : -INFINITY;
    t = warpMax(t);
    return t;
}

inline cudaStream_t cuStream(Stream s) { return static_cast<cudaStream_t>(s); }

}  // namespace tessera::kernels

// Calls BODY with `using T = float` or `using T = bf16` according to a DType value.
#define TESSERA_DISPATCH_DTYPE(dtype, T, ...)          \
    do {                                               \
        if ((dtype) == ::tessera::kernels::DType::F32) { \
            using T = float;                           \
            __VA_ARGS__;                               \
        } else {                                       \
            using T = ::tessera::kernels::bf16;        \
            __VA_ARGS__;                               \
        }                                              \
    } while (0)
