// One-row products for decode: y = x · Wᵀ over bf16 weights, which makes decode a stream over
// the weights. Each warp owns two output rows and reads them with 16-byte loads; x is read
// through the cache (every warp of the grid reads the same x). Batches cover per-head products
// and, through a device index list, only the experts a token was routed to.
#include "tessera_kernels/gemm.h"

#include "launch_util.cuh"

namespace tessera::kernels {

namespace {

constexpr int kWarps = 4;

struct GemvParams {
    int N, K;
    const void* x;
    long long strideX;
    const bf16* W;
    long long ldw, strideW;
    const int* batchIndex;
    void* y;
    long long strideY;
    const float* bias;
    float beta;
    bool gated;
};

__device__ __forceinline__ void load8(const float* x, float (&v)[8])
{
    const float4 a = __ldg(reinterpret_cast<const float4*>(x));
    const float4 b = __ldg(reinterpret_cast<const float4*>(x) + 1);
    v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
    v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
}

__device__ __forceinline__ void load8(const bf16* x, float (&v)[8])
{
    const uint4 u = __ldg(reinterpret_cast<const uint4*>(x));
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const float2 f = __bfloat1622float2(h[i]);
        v[2 * i] = f.x;
        v[2 * i + 1] = f.y;
    }
}

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

// One output row per warp (kGated: rows r and r + N, combined as silu(·) · (·)). Two
// accumulators per row and an unrolled loop keep several 16-byte loads in flight per lane.
template <typename TX, typename TY, bool kVector, bool kGated>
__global__ __launch_bounds__(kWarps * 32) void gemvKernel(GemvParams p)
{
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int b = blockIdx.y;
    const int r = blockIdx.x * kWarps + warp;
    if (r >= p.N)
        return;
    const long long w = p.batchIndex ? p.batchIndex[b] : b;
    const bf16* W0 = p.W + w * p.strideW + static_cast<long long>(r) * p.ldw;
    const bf16* W1 = W0 + static_cast<long long>(p.N) * p.ldw;  // up row (kGated)
    const TX* x = static_cast<const TX*>(p.x) + b * p.strideX;
    float g0 = 0.f, g1 = 0.f, u0 = 0.f, u1 = 0.f;
    if (kVector) {
        int k = lane * 8;
#pragma unroll 2
        for (; k + 256 < p.K; k += 512) {
            const uint4 wa = __ldg(reinterpret_cast<const uint4*>(W0 + k));
            const uint4 wb = __ldg(reinterpret_cast<const uint4*>(W0 + k + 256));
            uint4 ua, ub;
            if (kGated) {
                ua = __ldg(reinterpret_cast<const uint4*>(W1 + k));
                ub = __ldg(reinterpret_cast<const uint4*>(W1 + k + 256));
            }
            float xa[8], xb[8];
            load8(x + k, xa);
            load8(x + k + 256, xb);
            g0 += dot8(wa, xa);
            g1 += dot8(wb, xb);
            if (kGated) {
                u0 += dot8(ua, xa);
                u1 += dot8(ub, xb);
            }
        }
        if (k < p.K) {
            float xa[8];
            load8(x + k, xa);
            g0 += dot8(__ldg(reinterpret_cast<const uint4*>(W0 + k)), xa);
            if (kGated)
                u0 += dot8(__ldg(reinterpret_cast<const uint4*>(W1 + k)), xa);
        }
    } else {
        for (int k = lane; k < p.K; k += 32) {
            const float xv = toFloat(x[k]);
            g0 = fmaf(__bfloat162float(W0[k]), xv, g0);
            if (kGated)
                u0 = fmaf(__bfloat162float(W1[k]), xv, u0);
        }
    }
    const float g = warpSum(g0 + g1);
    const float u = kGated ? warpSum(u0 + u1) : 0.f;
    if (lane == 0) {
        TY* y = static_cast<TY*>(p.y) + b * p.strideY;
        float o = kGated ? silu(g) * u : g;
        if (p.bias)
            o += p.bias[r];
        if (p.beta != 0.f)
            o += p.beta * toFloat(y[r]);
        y[r] = fromFloat<TY>(o);
    }
}

bool aligned16(const void* p) { return (reinterpret_cast<unsigned long long>(p) & 15u) == 0; }

}  // namespace

Status gemv(const GemvArgs& a, Stream stream)
{
    if (a.N <= 0 || a.batch <= 0)
        return {};
    if (a.beta != 0.f && a.yType != DType::F32)
        return Status::failure("gemv: accumulation (beta) needs an F32 output");
    if (a.batch > 65535)
        return Status::failure("gemv: batch count over 65535");
    const std::size_t xb = dtypeBytes(a.xType);
    const bool vector = a.K % 8 == 0 && a.ldw % 8 == 0 && a.strideW % 8 == 0 && aligned16(a.W) && aligned16(a.x) &&
                        (a.strideX * xb) % 16 == 0;
    GemvParams p{a.N, a.K, a.x, a.strideX, static_cast<const bf16*>(a.W), a.ldw, a.strideW, a.batchIndex,
                 a.y, a.strideY, a.bias, a.beta, a.gatedOutput};
    const dim3 grid((a.N + kWarps - 1) / kWarps, a.batch);
    cudaStream_t s = cuStream(stream);
    TESSERA_DISPATCH_DTYPE(a.xType, TX, TESSERA_DISPATCH_DTYPE(a.yType, TY, {
        if (vector && a.gatedOutput)
            gemvKernel<TX, TY, true, true><<<grid, kWarps * 32, 0, s>>>(p);
        else if (vector)
            gemvKernel<TX, TY, true, false><<<grid, kWarps * 32, 0, s>>>(p);
        else if (a.gatedOutput)
            gemvKernel<TX, TY, false, true><<<grid, kWarps * 32, 0, s>>>(p);
        else
            gemvKernel<TX, TY, false, false><<<grid, kWarps * 32, 0, s>>>(p);
    }));
    return launchStatus("gemv");
}

}  // namespace tessera::kernels
