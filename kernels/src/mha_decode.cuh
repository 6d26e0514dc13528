// The attention half of an MHA layer for one decode token in one cooperative launch, in place of
// the q/k/v product, the rotary + cache-write kernel, decode attention and o_proj:
//   1. the q/k/v rows in pairs (i, i + headDim/2) of a head, split over the blocks: each pair is
//      rotated as it is made; q goes to a scratch row, k and v into the cache at the new position;
//   — barrier —
//   2. one block per (head, slice of the context): scores, their soft-max partial, the weighted
//      values, as a partial (max, sum, values);
//   — barrier —
//   3. every block merges the partials of every head into the attention output (in shared memory)
//      and adds its slice of o_proj rows to the residual.
// Numbers are rounded where the separate kernels store them (the q/k/v row, q, the cache, the
// attention output); in fp32 the two paths differ only in summation order.
#pragma once
#include "tessera_kernels/attention.h"

#include "dot_util.cuh"
#include "grid_sync.cuh"
#include "launch_util.cuh"

#include <algorithm>

namespace tessera::kernels {

namespace {

namespace mha_fused {

constexpr int kThreads = kCoopThreads, kWarps = kCoopWarps;
constexpr int kMaxSmem = kCoopMaxSmem;
constexpr int kRowBatch = 8;  // key rows a warp scores at once

struct Params {
    MhaDecodeArgs a;
    int splits;    // context slices per head
    int maxChunk;  // positions of the longest slice (at full capacity)
    bool vec;      // 16-byte weight loads
};

template <typename T>
__device__ __forceinline__ void mhaAttentionHalf(const Params& p, float* smem)
{
    __shared__ float scratch[33];
    const MhaDecodeArgs& a = p.a;
    const int H = a.hidden, hd = a.headDim, half = hd / 2;
    const int kvw = a.kvHeads * hd, qw = a.heads * hd;
    const int G = gridDim.x, b = blockIdx.x;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const bf16* Wqkv = reinterpret_cast<const bf16*>(a.qkvWeight);
    const bf16* Wo = reinterpret_cast<const bf16*>(a.outWeight);
    T* keys = static_cast<T*>(a.keys);
    T* values = static_cast<T*>(a.values);
    T* q = static_cast<T*>(a.q);
    const int j0 = static_cast<int>(static_cast<long long>(H) * b / G), j1 = static_cast<int>(static_cast<long long>(H) * (b + 1) / G);

    // This block's o_proj rows do not depend on anything before: into L2 now.
    prefetchBytesL2(Wo + static_cast<long long>(j0) * qw, static_cast<long long>(j1 - j0) * qw * 2);
    gridDependencyWait();
    const int pos = *a.lengthOnDevice;  // the new token's position
    const int context = pos + 1;
    // Slices of `chunk` positions; `used` of them hold any (a short context leaves the rest out).
    const int chunk = (context + p.splits - 1) / p.splits, used = (context + chunk - 1) / chunk;
    // The cache rows this block's first slice reads in phase 2 (all but the new one are there
    // already): into L2 while the q/k/v rows are made.
    if (b < a.heads * used) {
        const int kvh = (b / used) / (a.heads / a.kvHeads), t0 = (b % used) * chunk, t1 = min(pos, t0 + chunk);
        const int lines = (hd * static_cast<int>(sizeof(T)) + 127) / 128;
        for (int i = threadIdx.x; i < max(0, t1 - t0) * lines; i += kThreads) {
            const long long at = static_cast<long long>(t0 + i / lines) * kvw + kvh * hd + (i % lines) * (128 / static_cast<int>(sizeof(T)));
            prefetchL2(keys + at);
            prefetchL2(values + at);
        }
    }

    // 1. q/k/v in rotary pairs.
    float* xs = smem;
    const T* x = static_cast<const T*>(a.x);
    for (int k = threadIdx.x; k < H; k += kThreads)
        xs[k] = loadL2(x + k);
    __syncthreads();
    {
        const float* c = a.cos + static_cast<long long>(pos) * half;
        const float* s = a.sin + static_cast<long long>(pos) * half;
        const long long units = static_cast<long long>(a.heads + 2 * a.kvHeads) * half;
        const long long begin = units * b / G, end = units * (b + 1) / G;
        for (long long u = begin + warp; u < end; u += kWarps) {
            const int head = static_cast<int>(u / half), i = static_cast<int>(u % half);
            const bf16* r0 = Wqkv + (static_cast<long long>(head) * hd + i) * H;
            const bf16* const rows[2] = {r0, r0 + static_cast<long long>(half) * H};
            const float* const xr[2] = {xs, xs};
            float d[2];
            warpDots<2, 8>(rows, xr, H, p.vec, d);
            if (lane == 0) {
                const float x0 = toFloat(fromFloat<T>(d[0])), x1 = toFloat(fromFloat<T>(d[1]));  // the stored q/k/v row
                if (head < a.heads + a.kvHeads) {
                    T* dst = head < a.heads ? q + head * hd : keys + static_cast<long long>(pos) * kvw + (head - a.heads) * hd;
                    dst[i] = fromFloat<T>(x0 * c[i] - x1 * s[i]);
                    dst[half + i] = fromFloat<T>(x1 * c[i] + x0 * s[i]);
                } else {
                    T* dst = values + static_cast<long long>(pos) * kvw + (head - a.heads - a.kvHeads) * hd;
                    dst[i] = fromFloat<T>(x0);
                    dst[half + i] = fromFloat<T>(x1);
                }
            }
        }
    }
    gridSync(a.sync);

    // 2. Partials per (head, slice).
    const int stride = hd + 2;
    for (int unit = b; unit < a.heads * used; unit += G) {
        const int h = unit / used, sp = unit % used, kvh = h / (a.heads / a.kvHeads);
        const int t0 = min(context, sp * chunk), t1 = min(context, t0 + chunk), count = t1 - t0;
        float* qs = smem;
        float* score = qs + hd;
        float* reduce = score + p.maxChunk;
        for (int d = threadIdx.x; d < hd; d += kThreads)
            qs[d] = loadL2(q + h * hd + d);
        __syncthreads();
        // Scores: a warp takes rows warp, warp + 16, ... kRowBatch of them at once, lanes over
        // element pairs, so that several rows' loads are in flight.
        const T* kbase = keys + kvh * hd;
        const int pairs = hd / 2;
        for (int t = t0 + warp; t < t1; t += kWarps * kRowBatch) {
            float acc[kRowBatch];
#pragma unroll
            for (int r = 0; r < kRowBatch; ++r)
                acc[r] = 0.f;
            for (int c = lane; c < pairs; c += 32) {
                float2 kv[kRowBatch];
#pragma unroll
                for (int r = 0; r < kRowBatch; ++r) {
                    const int row = t + r * kWarps;
                    kv[r] = row < t1 ? loadPairL2(kbase + static_cast<long long>(row) * kvw + 2 * c) : make_float2(0.f, 0.f);
                }
#pragma unroll
                for (int r = 0; r < kRowBatch; ++r) {
                    acc[r] = fmaf(qs[2 * c], kv[r].x, acc[r]);
                    acc[r] = fmaf(qs[2 * c + 1], kv[r].y, acc[r]);
                }
            }
#pragma unroll
            for (int r = 0; r < kRowBatch; ++r) {
                const float d = warpSum(acc[r]);
                if (lane == 0 && t + r * kWarps < t1)
                    score[t + r * kWarps - t0] = d * a.scale;
            }
        }
        __syncthreads();
        float mx = -INFINITY;
        for (int t = threadIdx.x; t < count; t += kThreads)
            mx = fmaxf(mx, score[t]);
        mx = blockMax(mx, scratch);
        float sum = 0.f;
        for (int t = threadIdx.x; t < count; t += kThreads) {
            const float e = expf(score[t] - mx);
            score[t] = e;
            sum += e;
        }
        sum = blockSum(sum, scratch);  // also orders the score[] writes before the reads below
        // Values: a thread owns dimension d of row group g (rows t ≡ g mod groups), eight rows'
        // loads in flight at a time.
        const int groups = max(1, kThreads / hd);
        const int d = threadIdx.x % hd, g = threadIdx.x / hd;
        const T* vcol = values + kvh * hd + d;
        float acc = 0.f;
        if (threadIdx.x < groups * hd) {
            for (int t = g; t < count; t += 8 * groups) {
                float v[8];
#pragma unroll
                for (int u = 0; u < 8; ++u)
                    v[u] = t + u * groups < count ? loadL2(vcol + static_cast<long long>(t0 + t + u * groups) * kvw) : 0.f;
#pragma unroll
                for (int u = 0; u < 8; ++u)
                    if (t + u * groups < count)
                        acc = fmaf(score[t + u * groups], v[u], acc);
            }
            reduce[threadIdx.x] = acc;
        }
        __syncthreads();
        float* part = a.partials + static_cast<long long>(h * p.splits + sp) * stride;
        for (int e = threadIdx.x; e < hd; e += kThreads) {
            float v = 0.f;
            for (int gg = 0; gg < groups; ++gg)
                v += reduce[gg * hd + e];
            part[2 + e] = v;
        }
        if (threadIdx.x == 0) {
            part[0] = mx;
            part[1] = sum;
        }
        __syncthreads();  // smem is reused by the next unit
    }
    gridSync(a.sync);
    allowDependentLaunch();

    // 3. Every head's output from its partials (in every block), then this block's o_proj rows.
    float* ctx = smem;
    float* weights = ctx + qw;  // [heads][splits]
    for (int i = threadIdx.x; i < a.heads * used; i += kThreads) {
        const int at = (i / used) * p.splits + i % used;
        weights[at] = __ldcg(a.partials + static_cast<long long>(at) * stride);  // the slice maxima, for now
    }
    __syncthreads();
    for (int h = threadIdx.x; h < a.heads; h += kThreads) {
        float m = -INFINITY;
        for (int sp = 0; sp < used; ++sp)
            m = fmaxf(m, weights[h * p.splits + sp]);
        float total = 0.f;
        for (int sp = 0; sp < used; ++sp) {
            const float w = expf(weights[h * p.splits + sp] - m);
            weights[h * p.splits + sp] = w;
            total += __ldcg(a.partials + static_cast<long long>(h * p.splits + sp) * stride + 1) * w;
        }
        weights[a.heads * p.splits + h] = 1.f / total;
    }
    __syncthreads();
    for (int i = threadIdx.x; i < qw; i += kThreads) {
        const int h = i / hd, e = i % hd;
        float acc = 0.f;
#pragma unroll 8  // independent loads in flight; the sums are in order
        for (int sp = 0; sp < used; ++sp)
            acc = fmaf(__ldcg(a.partials + static_cast<long long>(h * p.splits + sp) * stride + 2 + e), weights[h * p.splits + sp], acc);
        ctx[i] = toFloat(fromFloat<T>(acc * weights[a.heads * p.splits + h]));  // the stored attention output
    }
    __syncthreads();
    addRowProducts(Wo, qw, ctx, j0, j1, a.residual, p.vec);
}

// Host side: the kernel's parameters; planGrid settles those that depend on a grid of `blocks` and
// returns the shared memory that grid needs.
inline Params makeParams(const MhaDecodeArgs& a)
{
    const int qw = a.heads * a.headDim;
    return Params{a, 1, 1, a.hidden % 8 == 0 && qw % 8 == 0 && aligned16(a.qkvWeight) && aligned16(a.outWeight)};
}

inline std::size_t planGrid(const MhaDecodeArgs& a, int blocks, Params& p)
{
    const int hd = a.headDim, qw = a.heads * hd;
    p.splits = std::clamp(blocks / a.heads, 1, kMhaDecodeMaxSplits);
    p.maxChunk = (a.capacity + p.splits - 1) / p.splits;
    const int groups = std::max(1, kThreads / hd);
    const std::size_t phase1 = a.hidden;
    const std::size_t phase2 = static_cast<std::size_t>(hd) + p.maxChunk + static_cast<std::size_t>(groups) * hd;
    const std::size_t phase3 = static_cast<std::size_t>(qw) + static_cast<std::size_t>(a.heads) * p.splits + a.heads;
    return std::max({phase1, phase2, phase3}) * sizeof(float);
}

}  // namespace mha_fused

}  // namespace

}  // namespace tessera::kernels
