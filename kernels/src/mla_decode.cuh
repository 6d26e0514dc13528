// The attention half of an MLA layer for one decode token in one cooperative launch, in place of
// the q_proj | kv_a product, mlaPrepare, the query absorption, decode attention over the latent
// cache, the value expansion and o_proj (six launches):
//   1. the q_proj | kv_a rows in pairs of adjacent rows, split over the blocks; the rotary pairs of
//      q_pe and k_pe are rotated as they are made (into the absorbed query rows and the cache);
//   — barrier —
//   2. one block normalises the new latent row into the cache; all take a share of the absorbed
//      query rows (q_nope · W_ukᵀ per head);
//   — barrier —
//   3. one block per (slice of the context, group of up to eight heads): scores of those heads
//      against each latent row (read once for all of them), their soft-max partials and weighted
//      latent rows;
//   — barrier —
//   4. blocks per head merge its partials and expand them through W_uv (a slice of rows each);
//   — barrier —
//   5. every block adds its slice of o_proj rows (prefetched into L2 at the start) to the residual.
// Values are rounded where the separate kernels store them; in fp32 the two paths differ only in
// summation order.
#pragma once
#include "tessera_kernels/attention.h"

#include "dot_util.cuh"
#include "grid_sync.cuh"
#include "launch_util.cuh"

#include <algorithm>

namespace tessera::kernels {

namespace {

namespace mla_fused {

constexpr int kThreads = kCoopThreads, kWarps = kCoopWarps;
constexpr int kMaxSmem = kCoopMaxSmem;
constexpr int kHeadsPerGroup = 8;

struct Params {
    MlaDecodeArgs a;
    int splits;    // context slices
    int groups;    // head groups per slice
    int maxChunk;  // positions of the longest slice (at full capacity)
    bool vec;
};

template <typename T>
__device__ __forceinline__ float rounded(float v) { return toFloat(fromFloat<T>(v)); }

template <typename T>
__device__ __forceinline__ void mlaAttentionHalf(const Params& p, float* smem)
{
    __shared__ float scratch[33];
    __shared__ float headMax[kHeadsPerGroup], headSum[kHeadsPerGroup];
    const MlaDecodeArgs& a = p.a;
    const int H = a.hidden, heads = a.heads, nope = a.nope, half = a.rope / 2, rank = a.rank, vDim = a.vDim;
    const int qhd = nope + a.rope, qw = heads * qhd, width = rank + a.rope, cw = heads * vDim;
    const int G = gridDim.x, b = blockIdx.x;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    T* proj = static_cast<T*>(a.proj);
    T* qcat = static_cast<T*>(a.qcat);
    T* cache = static_cast<T*>(a.cache);
    T* ctxOut = static_cast<T*>(a.ctx);
    const bf16* Win = reinterpret_cast<const bf16*>(a.inWeight);
    const bf16* Wuk = reinterpret_cast<const bf16*>(a.wUkT);
    const bf16* Wuv = reinterpret_cast<const bf16*>(a.wUv);
    const bf16* Wo = reinterpret_cast<const bf16*>(a.outWeight);
    const int j0 = static_cast<int>(static_cast<long long>(H) * b / G), j1 = static_cast<int>(static_cast<long long>(H) * (b + 1) / G);
    prefetchBytesL2(Wo + static_cast<long long>(j0) * cw, static_cast<long long>(j1 - j0) * cw * 2);  // this block's o_proj rows
    gridDependencyWait();
    const int pos = *a.lengthOnDevice;  // the new token's position
    const int context = pos + 1;
    T* newRow = cache + static_cast<long long>(pos) * width;
    // Slices of `chunk` positions; `used` of them hold any (a short context leaves the rest out).
    const int chunk = (context + p.splits - 1) / p.splits, used = (context + chunk - 1) / chunk;
    // The latent rows this block's first slice reads in phase 3 (all but the new one are there
    // already): into L2 while phases 1 and 2 run.
    if (b < used * p.groups) {
        const int t0 = (b / p.groups) * chunk, t1 = min(pos, t0 + chunk);
        prefetchBytesL2(cache + static_cast<long long>(t0) * width, static_cast<long long>(max(0, t1 - t0)) * width * sizeof(T));
    }

    // 1. q_proj | kv_a rows, two adjacent rows per unit.
    {
        float* xs = smem;
        const T* x = static_cast<const T*>(a.x);
        for (int k = threadIdx.x; k < H; k += kThreads)
            xs[k] = loadL2(x + k);
        __syncthreads();
        const float* c = a.cos + static_cast<long long>(pos) * half;
        const float* s = a.sin + static_cast<long long>(pos) * half;
        const long long units = (qw + width) / 2;
        const long long begin = units * b / G, end = units * (b + 1) / G;
        for (long long u = begin + warp; u < end; u += kWarps) {
            const int r0 = static_cast<int>(2 * u);
            const bf16* const rows[2] = {Win + static_cast<long long>(r0) * H, Win + static_cast<long long>(r0 + 1) * H};
            const float* const xr[2] = {xs, xs};
            float d[2];
            warpDots<2, 8>(rows, xr, H, p.vec, d);
            if (lane == 0) {
                const float x0 = rounded<T>(d[0]), x1 = rounded<T>(d[1]);  // the stored q / kv_a row
                proj[r0] = fromFloat<T>(x0);
                proj[r0 + 1] = fromFloat<T>(x1);
                // Rotary pairs are interleaved in the weights; rotated NeoX-style into halves.
                T* dst = nullptr;
                int i = 0;
                if (r0 < qw) {
                    const int h = r0 / qhd, e = r0 % qhd;
                    if (e >= nope) {
                        i = (e - nope) / 2;
                        dst = qcat + static_cast<long long>(h) * width + rank;
                    }
                } else if (r0 - qw >= rank) {
                    i = (r0 - qw - rank) / 2;
                    dst = newRow + rank;
                }
                if (dst) {
                    dst[i] = fromFloat<T>(x0 * c[i] - x1 * s[i]);
                    dst[half + i] = fromFloat<T>(x1 * c[i] + x0 * s[i]);
                }
            }
        }
    }
    gridSync(a.sync);

    // 2. The new latent row, normalised, into the cache (the last block); the absorbed queries.
    if (b == G - 1) {
        const T* raw = proj + qw;
        float ss = 0.f;
        for (int i = threadIdx.x; i < rank; i += kThreads) {
            const float v = loadL2(raw + i);
            ss = fmaf(v, v, ss);
        }
        ss = blockSum(ss, scratch);
        const float inv = rsqrtf(ss / rank + a.kvEps);
        for (int i = threadIdx.x; i < rank; i += kThreads)
            newRow[i] = fromFloat<T>(a.kvNorm[i] * (loadL2(raw + i) * inv));
    }
    {
        float* qn = smem;  // every head's q_nope
        for (int i = threadIdx.x; i < heads * nope; i += kThreads)
            qn[i] = loadL2(proj + (i / nope) * qhd + i % nope);
        __syncthreads();
        const long long units = static_cast<long long>(heads) * rank;
        const long long begin = units * b / G, end = units * (b + 1) / G;
        for (long long u = begin + 4 * warp; u < end; u += 4 * kWarps) {
            long long r[4];
#pragma unroll
            for (int k = 0; k < 4; ++k)
                r[k] = min(u + k, end - 1);  // rows past the share repeat the last one, unstored
            const bf16* const rows[4] = {Wuk + r[0] * nope, Wuk + r[1] * nope, Wuk + r[2] * nope, Wuk + r[3] * nope};
            const float* const xr[4] = {qn + (r[0] / rank) * nope, qn + (r[1] / rank) * nope, qn + (r[2] / rank) * nope,
                                        qn + (r[3] / rank) * nope};
            float d[4];
            warpDots<4, 2>(rows, xr, nope, p.vec, d);
            if (lane == 0)
#pragma unroll
                for (int k = 0; k < 4; ++k)
                    if (u + k < end)
                        qcat[(r[k] / rank) * width + r[k] % rank] = fromFloat<T>(d[k]);
        }
    }
    gridSync(a.sync);

    // 3. Partials per (slice, head group).
    const int hpg = (heads + p.groups - 1) / p.groups;
    const int stride = rank + 2;
    for (int unit = b; unit < used * p.groups; unit += G) {
        const int sp = unit / p.groups, hg = unit % p.groups;
        const int h0 = hg * hpg, nh = min(hpg, heads - h0);
        const int t0 = min(context, sp * chunk), t1 = min(context, t0 + chunk), count = t1 - t0;
        float* qs = smem;                         // [nh][width]
        float* score = qs + hpg * width;          // [nh][maxChunk]
        for (int i = threadIdx.x; i < nh * width; i += kThreads)
            qs[i] = loadL2(qcat + static_cast<long long>(h0) * width + i);
        __syncthreads();
        const int pairs = width / 2;
        for (int t = t0 + warp; t < t1; t += kWarps) {
            const T* row = cache + static_cast<long long>(t) * width;
            float acc[kHeadsPerGroup];
#pragma unroll
            for (int k = 0; k < kHeadsPerGroup; ++k)
                acc[k] = 0.f;
#pragma unroll 3
            for (int cix = lane; cix < pairs; cix += 32) {
                const float2 v = loadPairL2(row + 2 * cix);
#pragma unroll
                for (int k = 0; k < kHeadsPerGroup; ++k)
                    if (k < nh) {
                        const float2 q2 = reinterpret_cast<const float2*>(qs + k * width)[cix];  // width is even
                        acc[k] = fmaf(q2.x, v.x, acc[k]);
                        acc[k] = fmaf(q2.y, v.y, acc[k]);
                    }
            }
#pragma unroll
            for (int k = 0; k < kHeadsPerGroup; ++k) {
                const float sum = warpSum(acc[k]);
                if (lane == 0 && k < nh)
                    score[k * p.maxChunk + (t - t0)] = sum * a.scale;
            }
        }
        __syncthreads();
        if (warp < nh) {
            float* sc = score + warp * p.maxChunk;
            float m = -INFINITY;
            for (int t = lane; t < count; t += 32)
                m = fmaxf(m, sc[t]);
            m = warpMax(m);
            float sum = 0.f;
            for (int t = lane; t < count; t += 32) {
                const float e = expf(sc[t] - m);
                sc[t] = e;
                sum += e;
            }
            sum = warpSum(sum);
            if (lane == 0) {
                headMax[warp] = m;
                headSum[warp] = sum;
            }
        }
        __syncthreads();
        for (int r = threadIdx.x; r < rank; r += kThreads) {
            float acc[kHeadsPerGroup];
#pragma unroll
            for (int k = 0; k < kHeadsPerGroup; ++k)
                acc[k] = 0.f;
            const T* col = cache + static_cast<long long>(t0) * width + r;
#pragma unroll 8
            for (int t = 0; t < count; ++t) {
                const float v = loadL2(col + static_cast<long long>(t) * width);
#pragma unroll
                for (int k = 0; k < kHeadsPerGroup; ++k)
                    if (k < nh)
                        acc[k] = fmaf(score[k * p.maxChunk + t], v, acc[k]);
            }
#pragma unroll
            for (int k = 0; k < kHeadsPerGroup; ++k)
                if (k < nh)
                    a.partials[(static_cast<long long>(sp) * heads + h0 + k) * stride + 2 + r] = acc[k];
        }
        if (threadIdx.x < nh) {
            float* part = a.partials + (static_cast<long long>(sp) * heads + h0 + threadIdx.x) * stride;
            part[0] = headMax[threadIdx.x];
            part[1] = headSum[threadIdx.x];
        }
        __syncthreads();  // smem is reused by the next unit
    }
    gridSync(a.sync);

    // 4. Per head: the merged latent output, expanded through W_uv (a slice of its rows per block).
    {
        const int perHead = max(1, G / heads);
        float* weights = smem;                 // [splits]
        float* olat = smem + ((p.splits + 3) & ~3);  // [rank], 16-byte aligned
        for (int unit = b; unit < heads * perHead; unit += G) {
            const int h = unit / perHead, slice = unit % perHead;
            const int v0 = vDim * slice / perHead, v1 = vDim * (slice + 1) / perHead;
            float m = -INFINITY;
            for (int sp = threadIdx.x; sp < used; sp += kThreads)
                m = fmaxf(m, __ldcg(a.partials + (static_cast<long long>(sp) * heads + h) * stride));
            m = blockMax(m, scratch);
            float total = 0.f;
            for (int sp = threadIdx.x; sp < used; sp += kThreads) {
                const float* part = a.partials + (static_cast<long long>(sp) * heads + h) * stride;
                const float w = expf(__ldcg(part) - m);
                weights[sp] = w;
                total += __ldcg(part + 1) * w;
            }
            total = blockSum(total, scratch);  // also orders the weights[] writes before the reads below
            const float inv = 1.f / total;
            for (int r = threadIdx.x; r < rank; r += kThreads) {
                float acc = 0.f;
#pragma unroll 8  // independent loads in flight; the sums are in order
                for (int sp = 0; sp < used; ++sp)
                    acc = fmaf(__ldcg(a.partials + (static_cast<long long>(sp) * heads + h) * stride + 2 + r), weights[sp], acc);
                olat[r] = rounded<T>(acc * inv);  // the stored latent output
            }
            __syncthreads();
            for (int v = v0 + 2 * warp; v < v1; v += 2 * kWarps) {
                const int vb = min(v + 1, v1 - 1);
                const bf16* const rows[2] = {Wuv + (static_cast<long long>(h) * vDim + v) * rank,
                                             Wuv + (static_cast<long long>(h) * vDim + vb) * rank};
                const float* const xr[2] = {olat, olat};
                float d[2];
                warpDots<2, 8>(rows, xr, rank, p.vec, d);
                if (lane == 0) {
                    ctxOut[h * vDim + v] = fromFloat<T>(d[0]);
                    if (vb != v)
                        ctxOut[h * vDim + vb] = fromFloat<T>(d[1]);
                }
            }
            __syncthreads();  // smem is reused by the next unit
        }
    }
    gridSync(a.sync);
    allowDependentLaunch();

    // 5. This block's o_proj rows.
    float* ctx = smem;
    for (int i = threadIdx.x; i < cw; i += kThreads)
        ctx[i] = loadL2(ctxOut + i);
    __syncthreads();
    addRowProducts(Wo, cw, ctx, j0, j1, a.residual, p.vec);
}

// Host side: the kernel's parameters; planGrid settles those that depend on a grid of `blocks` and
// returns the shared memory that grid needs.
inline Params makeParams(const MlaDecodeArgs& a)
{
    const int cw = a.heads * a.vDim;
    return Params{a, 1, 1, 1,
                  a.hidden % 8 == 0 && a.nope % 8 == 0 && a.rank % 8 == 0 && cw % 8 == 0 && aligned16(a.inWeight) && aligned16(a.wUkT) &&
                      aligned16(a.wUv) && aligned16(a.outWeight)};
}

inline std::size_t planGrid(const MlaDecodeArgs& a, int blocks, Params& p)
{
    const int width = a.rank + a.rope, cw = a.heads * a.vDim;
    p.groups = (a.heads + kHeadsPerGroup - 1) / kHeadsPerGroup;
    p.splits = std::clamp(blocks / p.groups, 1, kMlaDecodeMaxSplits);
    p.maxChunk = (a.capacity + p.splits - 1) / p.splits;
    const int hpg = (a.heads + p.groups - 1) / p.groups;
    const std::size_t phase1 = a.hidden;
    const std::size_t phase2 = static_cast<std::size_t>(a.heads) * a.nope;
    const std::size_t phase3 = static_cast<std::size_t>(hpg) * width + static_cast<std::size_t>(hpg) * p.maxChunk;
    const std::size_t phase4 = static_cast<std::size_t>((p.splits + 3) & ~3) + a.rank;
    const std::size_t phase5 = cw;
    return std::max({phase1, phase2, phase3, phase4, phase5}) * sizeof(float);
}

}  // namespace mla_fused

}  // namespace

}  // namespace tessera::kernels
