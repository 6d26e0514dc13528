// A whole MoE layer of one decode token in one cooperative launch. The separate kernels of the
// layer (router, experts' gate/up, experts' down, combine) each pay a launch in the chain of
// dependent kernels and a few round trips to memory; here the blocks stay resident and meet at
// two grid barriers instead:
//   1. every block normalises the residual itself (a few KB from L2) and takes a share of the
//      router logits and of the shared experts' gate/up rows (they do not depend on the routing),
//      then asks L2 for the shared experts' down rows of its slice;
//   — barrier: the logits are complete —
//   2. every block routes from all logits alike (one warp), then takes its share of the routed
//      experts' gate/up rows, and asks L2 for their down rows of its slice;
//   — barrier: the activations are complete —
//   3. a block owns a slice of the hidden rows: the down rows of every chosen expert against the
//      activations, summed in slot order with the routing weights into the residual; it asks L2
//      for its share of what the next kernel reads first, and the last block to finish makes the
//      next layer's normalised input.
// Warps read weights straight from global memory, 16 bytes per lane, several rows and chunks in
// flight at once.
#pragma once
#include "tessera_kernels/moe.h"

#include "dot_util.cuh"
#include "grid_sync.cuh"
#include "launch_util.cuh"
#include "moe_internal.cuh"

#include <algorithm>

namespace tessera::kernels {

namespace {

namespace moe_fused {

constexpr int kThreads = kCoopThreads, kWarps = kCoopWarps;
constexpr int kMaxSlots = kMaxK + 8;
constexpr int kMaxSmem = kCoopMaxSmem;

struct Params {
    RouteArgs route;
    float* h;
    const float* postNorm;
    const float* nextNorm;
    float eps;
    int H, I;
    const bf16* router;
    const bf16* gateUp;
    const bf16* down;
    void* normOut;
    float* logits;
    void* act;
    float* partials;
    unsigned* sync;
    const void* prefetchNext;
    long long prefetchNextBytes;
    bool vec;  // 16-byte loads: H and I multiples of 8, weights 16-byte aligned
};

// Gate/up rows of the slots [slot0, slot0 + slots): units (slot, row i) split evenly over the
// blocks, warps taking their block's units in turn. act[slot·I + i] = silu(gate · x) · (up · x).
template <typename TX>
__device__ __forceinline__ void gateUpRows(const Params& p, int slot0, int slots, const int* matrixOfSlot, const float* xs)
{
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const long long units = static_cast<long long>(slots) * p.I;
    const long long begin = units * blockIdx.x / gridDim.x, end = units * (blockIdx.x + 1) / gridDim.x;
    TX* act = static_cast<TX*>(p.act);
    for (long long u = begin + warp; u < end; u += kWarps) {
        const int s = slot0 + static_cast<int>(u / p.I), i = static_cast<int>(u % p.I);
        const bf16* gate = p.gateUp + static_cast<long long>(matrixOfSlot[s]) * 2 * p.I * p.H + static_cast<long long>(i) * p.H;
        const bf16* const rows[2] = {gate, gate + static_cast<long long>(p.I) * p.H};
        const float* const x[2] = {xs, xs};
        float d[2];
        warpDots<2, 8>(rows, x, p.H, p.vec, d);
        if (lane == 0)
            act[static_cast<long long>(s) * p.I + i] = fromFloat<TX>(silu(d[0]) * d[1]);
    }
}

template <typename TX>
__device__ __forceinline__ void moeLayer(const Params& p, float* smem)
{
    __shared__ float scratch[33];
    __shared__ int matrixOfSlot[kMaxSlots];
    __shared__ float weightOfSlot[kMaxSlots];
    const int E = p.route.experts, K = p.route.k, S = p.route.sharedExperts, KS = K + S;
    const int H = p.H, I = p.I;
    const int G = gridDim.x, b = blockIdx.x;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    // Shared memory: x (phases 1–2), then the activations as floats (phase 3); the logits; the
    // down products of this block's rows per slot.
    float* xs = smem;
    float* acts = smem;
    float* logits = smem + max(H, KS * I);
    float* partial = logits + E;
    const int j0 = static_cast<int>(static_cast<long long>(H) * b / G), j1 = static_cast<int>(static_cast<long long>(H) * (b + 1) / G);

    if (threadIdx.x >= K && threadIdx.x < KS) {
        matrixOfSlot[threadIdx.x] = E + threadIdx.x - K;  // the shared experts; the routing fills the rest
        weightOfSlot[threadIdx.x] = 1.f;
    }
    gridDependencyWait();

    // 1. x = TX(postNorm · RMSNorm(h)) in every block; a share of the router logits and of the
    //    shared experts' gate/up rows.
    float ss = 0.f;
    for (int k = threadIdx.x; k < H; k += kThreads) {
        const float v = __ldcg(p.h + k);
        ss = fmaf(v, v, ss);
    }
    ss = blockSum(ss, scratch);
    const float inv = rsqrtf(ss / H + p.eps);
    for (int k = threadIdx.x; k < H; k += kThreads)
        xs[k] = toFloat(fromFloat<TX>(p.postNorm[k] * (__ldcg(p.h + k) * inv)));
    __syncthreads();
    for (int e = b + G * warp; e < E; e += G * kWarps) {
        const bf16* const row[1] = {p.router + static_cast<long long>(e) * H};
        const float* const x[1] = {xs};
        float d[1];
        warpDots<1, 8>(row, x, H, p.vec, d);
        if (lane == 0)
            p.logits[e] = d[0];
    }
    gateUpRows<TX>(p, K, S, matrixOfSlot, xs);
    // The shared experts' down rows this block reads in phase 3, into L2 while the routing waits.
    const long long sliceBytes = static_cast<long long>(j1 - j0) * I * 2;
    for (int s = K; s < KS; ++s)
        prefetchBytesL2(p.down + (static_cast<long long>(matrixOfSlot[s]) * H + j0) * I, sliceBytes);
    if (K > 0)  // a dense MLP (no routed experts) has no routing to wait for
        gridSync(p.sync);

    // 2. Routing (every block alike), the routed experts' gate/up rows.
    for (int e = threadIdx.x; e < E; e += kThreads)
        logits[e] = __ldcg(p.logits + e);
    __syncthreads();
    if (warp == 0 && K > 0) {
        RouteArgs r = p.route;
        r.idx = matrixOfSlot;
        r.weight = weightOfSlot;
        routeRow(r, 0, logits, lane);
    }
    __syncthreads();
    if (b == 0 && threadIdx.x < KS && p.route.idx && p.route.weight) {
        p.route.idx[threadIdx.x] = matrixOfSlot[threadIdx.x];
        p.route.weight[threadIdx.x] = weightOfSlot[threadIdx.x];
    }
    gateUpRows<TX>(p, 0, K, matrixOfSlot, xs);
    // The routed experts' down rows this block reads after the barrier, into L2 while the others
    // finish.
    for (int s = 0; s < K; ++s)
        prefetchBytesL2(p.down + (static_cast<long long>(matrixOfSlot[s]) * H + j0) * I, sliceBytes);
    gridSync(p.sync);
    allowDependentLaunch();

    // 3. Down rows [j0, j1) of every slot, summed in slot order into the residual.
    const TX* act = static_cast<const TX*>(p.act);
    for (int k = threadIdx.x; k < KS * I; k += kThreads)
        acts[k] = loadL2(act + k);
    __syncthreads();
    // Items (row jr, slot s) in the order jr·KS + s, two per warp at a time (also two rows of a
    // dense MLP, whose one slot would leave a pair of slots half empty).
    const int rows = j1 - j0, items = rows * KS;
    for (int t0 = 2 * warp; t0 < items; t0 += 2 * kWarps) {
        const int t1 = min(t0 + 1, items - 1);
        const int r0 = t0 / KS, s0 = t0 - r0 * KS, r1 = t1 / KS, s1 = t1 - r1 * KS;
        const bf16* const w[2] = {p.down + (static_cast<long long>(matrixOfSlot[s0]) * H + j0 + r0) * I,
                                  p.down + (static_cast<long long>(matrixOfSlot[s1]) * H + j0 + r1) * I};
        const float* const x[2] = {acts + s0 * I, acts + s1 * I};
        float d[2];
        warpDots<2, 8>(w, x, I, p.vec, d);
        if (lane == 0) {
            partial[t0] = d[0];
            if (t1 != t0)
                partial[t1] = d[1];
        }
    }
    __syncthreads();
    float ssRows = 0.f;
    for (int jr = threadIdx.x; jr < rows; jr += kThreads) {
        float acc = 0.f;
        for (int s = 0; s < KS; ++s)
            acc += partial[jr * KS + s] * weightOfSlot[s];
        const float v = __ldcg(p.h + j0 + jr) + acc;
        p.h[j0 + jr] = v;
        ssRows = fmaf(v, v, ssRows);
    }
    // This block's share of what the next kernel reads first (the next layer's input product).
    if (p.prefetchNext) {
        const long long share = (p.prefetchNextBytes + G - 1) / G, from = share * b;
        prefetchBytesL2(static_cast<const char*>(p.prefetchNext) + from, max(0ll, min(share, p.prefetchNextBytes - from)));
    }
    if (!p.nextNorm)
        return;
    ssRows = blockSum(ssRows, scratch);
    if (threadIdx.x == 0)
        p.partials[b] = ssRows;
    if (!lastToArrive(p.sync))
        return;

    // The next layer's input: TX(nextNorm · RMSNorm(h)), by the last block.
    float total = 0.f;
    for (int i = threadIdx.x; i < G; i += kThreads)
        total += __ldcg(p.partials + i);
    total = blockSum(total, scratch);
    const float invNext = rsqrtf(total / H + p.eps);
    TX* out = static_cast<TX*>(p.normOut);
    for (int k = threadIdx.x; k < H; k += kThreads)
        out[k] = fromFloat<TX>(p.nextNorm[k] * (__ldcg(p.h + k) * invNext));
}

// Host side: the kernel's parameters, and its shared memory on a grid of `blocks`.
inline Params makeParams(const MoeDecodeArgs& a)
{
    return Params{a.route, a.residual, a.postNorm, a.nextNorm, a.eps, a.hidden, a.inter,
                  reinterpret_cast<const bf16*>(a.routerWeight), reinterpret_cast<const bf16*>(a.gateUp),
                  reinterpret_cast<const bf16*>(a.down), a.normOut, a.logits, a.act, a.partials, a.sync,
                  a.prefetchNext, a.prefetchNext ? static_cast<long long>(a.prefetchNextBytes) : 0ll,
                  a.hidden % 8 == 0 && a.inter % 8 == 0 && aligned16(a.routerWeight) && aligned16(a.gateUp) && aligned16(a.down)};
}

inline std::size_t smemBytes(const MoeDecodeArgs& a, int blocks)
{
    const int slots = a.route.k + a.route.sharedExperts;
    const int rows = (a.hidden + blocks - 1) / blocks;
    return (static_cast<std::size_t>(std::max(a.hidden, slots * a.inter)) + a.route.experts + static_cast<std::size_t>(rows) * slots) *
           sizeof(float);
}

}  // namespace moe_fused

}  // namespace

}  // namespace tessera::kernels
