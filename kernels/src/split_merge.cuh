#pragma once
// The split partials of decode attention and their merge. A split s of a head leaves
// (m_s, l_s, v_s[0 .. valueDim)): the running maximum and sum of its softmax and its unnormalised
// value sums, `valueDim + 2` floats apart. The merged output is
//   out[d] = type(Σ_s v_s[d]·w_s · 1 / Σ_s l_s·w_s),  w_s = exp(m_s − max_s m_s),
// each sum in ascending s. The combine kernels (attention_internal.cuh) and the one-token product
// that merges its x while loading it (gemv.cu, DecodeAttentionArgs::expansion) both go through
// these functions, so both give the same bits.
#include "launch_util.cuh"

#include <cmath>

namespace tessera::kernels {

// Called by the 32 lanes of one warp: weights[s] = w_s for s < used (shared memory); returns
// 1 / Σ l_s·w_s on every lane. Reads through L2 (__ldcg): the partials come from other blocks.
__device__ __forceinline__ float splitWeights(const float* part, int stride, int used, float* weights, int lane)
{
    auto pairOf = [&](int s) {
        return s < used ? __ldcg(reinterpret_cast<const float2*>(part + static_cast<long long>(s) * stride)) : make_float2(-INFINITY, 0.f);
    };
    const float2 p0 = pairOf(lane), p1 = pairOf(lane + 32);
    float mx = fmaxf(p0.x, p1.x);
    for (int s = lane + 64; s < used; s += 32)
        mx = fmaxf(mx, __ldcg(part + static_cast<long long>(s) * stride));
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
    return 1.f / warpSum(total);
}

// A head's merged value columns [0, K) (K even) into x, as type TX, by every thread of the block.
// weights: shared, used + 1 floats. Each thread takes column pairs g and g + blockDim.x: the loads
// of their first kFirst splits are in flight while warp 0 computes the weights, the rest
// 2·kChunk loads at a time.
template <typename TX>
__device__ __forceinline__ void mergeSplits(const float* part, int stride, int used, int K, TX* x, float* weights)
{
    constexpr int kFirst = 16, kChunk = 16;
    const int pairs = K / 2, T = static_cast<int>(blockDim.x);
    auto load = [&](int s, int g) {
        return g < pairs ? __ldcg(reinterpret_cast<const float2*>(part + static_cast<long long>(s) * stride + 2) + g) : make_float2(0.f, 0.f);
    };
    float2 first[2][kFirst];
    auto loadFirst = [&](int g0) {
#pragma unroll
        for (int s = 0; s < kFirst; ++s) {
            first[0][s] = s < used ? load(s, g0) : make_float2(0.f, 0.f);
            first[1][s] = s < used ? load(s, g0 + T) : make_float2(0.f, 0.f);
        }
    };
    loadFirst(threadIdx.x);
    if (threadIdx.x < 32) {
        const float inv = splitWeights(part, stride, used, weights, threadIdx.x);
        if (threadIdx.x == 0)
            weights[used] = inv;
    }
    __syncthreads();
    for (int g0 = threadIdx.x; g0 < pairs; g0 += 2 * T) {
        const int g1 = g0 + T;
        if (g0 != static_cast<int>(threadIdx.x))
            loadFirst(g0);
        float acc[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
        for (int s = 0; s < kFirst; ++s) {
            if (s < used) {
                const float w = weights[s];
                acc[0] = fmaf(first[0][s].x, w, acc[0]);
                acc[1] = fmaf(first[0][s].y, w, acc[1]);
                acc[2] = fmaf(first[1][s].x, w, acc[2]);
                acc[3] = fmaf(first[1][s].y, w, acc[3]);
            }
        }
        for (int s0 = kFirst; s0 < used; s0 += kChunk) {
            float2 v[2][kChunk];
#pragma unroll
            for (int i = 0; i < kChunk; ++i) {
                v[0][i] = s0 + i < used ? load(s0 + i, g0) : make_float2(0.f, 0.f);
                v[1][i] = s0 + i < used ? load(s0 + i, g1) : make_float2(0.f, 0.f);
            }
#pragma unroll
            for (int i = 0; i < kChunk; ++i) {
                if (s0 + i < used) {
                    const float w = weights[s0 + i];
                    acc[0] = fmaf(v[0][i].x, w, acc[0]);
                    acc[1] = fmaf(v[0][i].y, w, acc[1]);
                    acc[2] = fmaf(v[1][i].x, w, acc[2]);
                    acc[3] = fmaf(v[1][i].y, w, acc[3]);
                }
            }
        }
        const float inv = weights[used];
        x[2 * g0] = fromFloat<TX>(acc[0] * inv);
        x[2 * g0 + 1] = fromFloat<TX>(acc[1] * inv);
        if (g1 < pairs) {
            x[2 * g1] = fromFloat<TX>(acc[2] * inv);
            x[2 * g1 + 1] = fromFloat<TX>(acc[3] * inv);
        }
    }
}

}  // namespace tessera::kernels
