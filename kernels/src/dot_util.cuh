#pragma once
// Pieces of the one-row products (gemv.cu, moe_decode.cu): eight bf16 weights against eight
// floats, eight activations from shared memory, SiLU.
#include "launch_util.cuh"

namespace tessera::kernels {

namespace {

__device__ __forceinline__ float dot8(const uint4& w, const float (&x)[8])
{
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&w);
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const float2 f = __bfloat1622float2(h[i]);
        s = fmaf(f.x, x[2 * i], s);
        s = fmaf(f.y, x[2 * i + 1], s);
    }
    return s;
}

__device__ __forceinline__ float silu(float g) { return g / (1.f + expf(-g)); }

__device__ __forceinline__ void loadShared8(const float* x, float (&v)[8])
{
    const float4 a = *reinterpret_cast<const float4*>(x);
    const float4 b = *reinterpret_cast<const float4*>(x + 4);
    v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
    v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
}

__device__ __forceinline__ void loadShared8(const bf16* x, float (&v)[8])
{
    const uint4 u = *reinterpret_cast<const uint4*>(x);
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const float2 f = __bfloat1622float2(h[i]);
        v[2 * i] = f.x;
        v[2 * i + 1] = f.y;
    }
}

}  // namespace

}  // namespace tessera::kernels
