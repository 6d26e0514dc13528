#pragma once
// Pieces of the one-row products (gemv.cu and the cooperative decode kernels): eight bf16 weights
// against eight floats, eight activations from shared memory, SiLU, loads through L2, and a warp's
// dot products of several weight rows against vectors in shared memory.
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


__device__ __forceinline__ float loadL2(const float* p) { return __ldcg(p); }
__device__ __forceinline__ float loadL2(const bf16* p)
{
    return __bfloat162float(__ushort_as_bfloat16(__ldcg(reinterpret_cast<const unsigned short*>(p))));
}

__device__ __forceinline__ float2 loadPairL2(const float* p) { return __ldcg(reinterpret_cast<const float2*>(p)); }
__device__ __forceinline__ float2 loadPairL2(const bf16* p)
{
    const unsigned u = __ldcg(reinterpret_cast<const unsigned*>(p));
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&u));
}

// out[r] = Σ_k rows[r][k] · xs[r][k] over k < n (xs in shared memory), reduced over the warp: every
// lane gets every sum. A lane reads 16-byte chunks lane, lane + 32, ... of each row, up to kUnroll
// chunks of each of the kRows rows in flight before it multiplies.
template <int kRows, int kUnroll>
__device__ __forceinline__ void warpDots(const bf16* const (&rows)[kRows], const float* const (&xs)[kRows], int n, bool vec,
                                         float (&out)[kRows])
{
    const int lane = threadIdx.x & 31;
    float acc[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r)
        acc[r] = 0.f;
    if (vec) {
        const int chunks = n / 8;
        for (int c0 = lane; c0 < chunks; c0 += 32 * kUnroll) {
            uint4 w[kRows][kUnroll];
#pragma unroll
            for (int j = 0; j < kUnroll; ++j)
#pragma unroll
                for (int r = 0; r < kRows; ++r)
                    w[r][j] = c0 + 32 * j < chunks ? __ldg(reinterpret_cast<const uint4*>(rows[r]) + c0 + 32 * j) : make_uint4(0, 0, 0, 0);
#pragma unroll
            for (int j = 0; j < kUnroll; ++j) {
                const int c = c0 + 32 * j;
                if (c < chunks) {
#pragma unroll
                    for (int r = 0; r < kRows; ++r) {
                        float x[8];
                        loadShared8(xs[r] + c * 8, x);
                        acc[r] += dot8(w[r][j], x);
                    }
                }
            }
        }
    } else {
        for (int k = lane; k < n; k += 32)
#pragma unroll
            for (int r = 0; r < kRows; ++r)
                acc[r] = fmaf(__bfloat162float(rows[r][k]), xs[r][k], acc[r]);
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r)
        out[r] = warpSum(acc[r]);
}

// residual[j] += W[j] · xs for the rows j in [j0, j1) (W bf16 rows of `cols`, xs floats in shared
// memory); the block's warps take pairs of rows in turn.
__device__ __forceinline__ void addRowProducts(const bf16* W, int cols, const float* xs, int j0, int j1, float* residual, bool vec)
{
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    const int rows = j1 - j0;
    for (int r = 2 * warp; r < rows; r += 2 * warps) {
        const int r1 = min(r + 1, rows - 1);
        const bf16* const w[2] = {W + static_cast<long long>(j0 + r) * cols, W + static_cast<long long>(j0 + r1) * cols};
        const float* const xr[2] = {xs, xs};
        float d[2];
        warpDots<2, 8>(w, xr, cols, vec, d);
        if (lane == 0) {
            residual[j0 + r] += d[0];
            if (r1 != r)
                residual[j0 + r1] += d[1];
        }
    }
}

}  // namespace

}  // namespace tessera::kernels
