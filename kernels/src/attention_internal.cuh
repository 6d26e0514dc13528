#pragma once
// Between attention.cu (decode attention, combine) and decode_attention_mma.cu (its tensor-core kernels).
#include "tessera_kernels/attention.h"

#include "launch_util.cuh"

#include <cuda_runtime.h>

namespace tessera::kernels {

inline constexpr int kDecodeChunk = 64;  // context positions per decode split
inline constexpr int kDecodeMinChunk = 32;  // the latent kernel's short splits (setLatentShortSplits)
inline constexpr int kMaxDecodeSplits = 1024;  // capacity up to 65536 positions

// leaveEarly: the grids cover the cache's capacity, most of whose splits hold no position yet.
// The context length is written at the end of the previous step, so a block can read it before
// gridDependencyWait() and, with nothing to do, leave at once instead of holding its shared
// memory until the kernel before has finished.

// Merges the `used` split partials (max, sum, values) of head h into its output dimensions
// [d0, d1). Every thread first puts the loads of its first dimension over the first
// kCombineRegSplits splits in flight; meanwhile warp 0 turns the splits' maxima and sums into the
// weights exp(m_s − M) (into `weights`, shared, ≥ used + 8 floats) and 1 / Σ l_s·w_s (into
// scratch[0]); one barrier, then each thread sums its dimension over the splits. The partials
// are read through L2 (__ldcg): they may come from other blocks of the running grid. Every thread
// of the block calls it.
inline constexpr int kCombineRegSplits = 32;

template <typename TO>
__device__ void combineHeadPartials(const DecodeAttentionArgs& a, int splits, int used, int h, float* weights, float* scratch, int d0,
                                    int d1)
{
    const int stride = a.valueDim + 2;  // even: (max, sum) pairs are 8-byte aligned
    const float* part = a.workspace + static_cast<long long>(h) * splits * stride;
    const int dFirst = d0 + static_cast<int>(threadIdx.x);
    float first[kCombineRegSplits];
#pragma unroll
    for (int s = 0; s < kCombineRegSplits; ++s)
        first[s] = s < used && dFirst < d1 ? __ldcg(part + s * stride + 2 + dFirst) : 0.f;
    if (threadIdx.x < 32) {
        const int lane = threadIdx.x;
        auto pairOf = [&](int s) {
            return s < used ? __ldcg(reinterpret_cast<const float2*>(part + s * stride)) : make_float2(-INFINITY, 0.f);
        };
        const float2 p0 = pairOf(lane), p1 = pairOf(lane + 32);
        float mx = fmaxf(p0.x, p1.x);
        for (int s = lane + 64; s < used; s += 32)
            mx = fmaxf(mx, __ldcg(part + s * stride));
        mx = warpMax(mx);
        float total = 0.f;
        auto weigh = [&](int s, float2 ml) {
            const float w = expf(ml.x - mx);
            weights[s] = w;
            total += ml.y * w;
        };
        if (lane < used)
            weigh(lane, p0);
        if (lane + 32 < used)
            weigh(lane + 32, p1);
        for (int s = lane + 64; s < used; s += 32)
            weigh(s, pairOf(s));
        total = warpSum(total);
        if (lane == 0)
            scratch[0] = 1.f / total;
    }
    __syncthreads();
    const float inv = scratch[0];
    TO* out = static_cast<TO*>(a.out) + h * a.outHeadStride;
    for (int d = dFirst; d < d1; d += blockDim.x) {
        float acc = 0.f;
        int s = 0;
        if (d == dFirst) {
#pragma unroll
            for (int i = 0; i < kCombineRegSplits; ++i)
                if (i < used)
                    acc = fmaf(first[i], weights[i], acc);
            s = kCombineRegSplits;
        }
#pragma unroll 16
        for (; s < used; ++s)
            acc = fmaf(__ldcg(part + s * stride + 2 + d), weights[s], acc);
        out[d] = fromFloat<TO>(acc * inv);
    }
    __syncthreads();  // weights[] and scratch may be reused by the caller
}

// Decode partials on the tensor cores (bf16): one block per (split, kv head) computes every head of
// that kv head (all of them for MLA's shared latent rows). Same partial layout as the CUDA-core
// kernel, which runs whatever this one does not support (fp32, odd sizes).
// combined: set when the launch also merged the partials (the last block of each kv head does it,
// when a.counters is given); otherwise a combine pass must follow.
bool decodeSharedKvSupported(const DecodeAttentionArgs& a);
// splits and chunk (positions per split) come in as kDecodeChunk's and go out as the launch's.
Status decodeSharedKvPartials(const DecodeAttentionArgs& a, int& splits, int& chunk, cudaStream_t stream, bool& combined);
// Whether the tensor-core kernel takes a.prepare on itself (DecodeAttentionArgs::fusePrepare).
bool decodePrepareFusable(const DecodeAttentionArgs& a);

}  // namespace tessera::kernels
