// Router (one warp per token), expert grouping and combine.
#include "tessera_kernels/moe.h"
#include "tessera_kernels/runtime.h"

#include "dot_util.cuh"
#include "launch_util.cuh"
#include "mbarrier.cuh"
#include "moe_internal.cuh"
#include "trace.cuh"

#include <cooperative_groups.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

namespace tessera::kernels {

namespace {

__global__ void routeKernel(RouteArgs a, bool keyed, bool fixedK)
{
    const int warpsPerBlock = blockDim.x / 32;
    const int t = blockIdx.x * warpsPerBlock + threadIdx.x / 32;
    if (t >= a.n)
        return;
    routeRow(a, t, a.scores + static_cast<long long>(t) * a.experts, threadIdx.x & 31, keyed, fixedK);
}

// Decode: RMSNorm of the residual, the router product and the routing of one token in one
// launch. Blocks of warps each own as many experts' rows (spread over the GPU, pulled into L2
// before the wait); every block makes the normalised x itself (block 0 also stores it for the
// experts' product). Then either the last block to finish routes from the logits of all, read back
// through global memory, or (kCluster) the blocks form one thread-block cluster, write their
// logits straight into the first block's shared memory and meet at the cluster barrier (no
// counter, fence or read-back; TESSERA_ROUTER_CLUSTER=1).
constexpr int kRouteWarps = 8;
constexpr int kRouteRegs = 16;  // residual values a thread holds: hidden up to 16 · blockDim in one pass
// The cluster variant uses the same blocks (so the same norm and products, bit for bit); up to 16
// of them in a cluster (a size the H100 / H200 allow beyond the portable 8): 128 experts.
constexpr int kMaxClusterBlocks = 16;
constexpr int kRouteMaxSmem = 80 * 1024;
// routeDecodeKernel's barrier (asyncStores): after its floats, 8-byte aligned.
__host__ __device__ constexpr unsigned routeBarrierOffset(int hidden, int experts)
{
    return (static_cast<unsigned>(hidden + experts + 34) * 4 + 7) / 8 * 8;
}

// One router row against x (shared memory), reduced over the warp. staged: the row is in shared
// memory (n a multiple of 8); the same sums in the same order as from global memory.
__device__ __forceinline__ float rowDot(const bf16* row, const float* xs, int n, bool vec, const uint4* staged = nullptr)
{
    if (staged) {
        float acc = 0.f;
        for (int c = threadIdx.x & 31; c < n / 8; c += 32) {
            float x[8];
            loadShared8(xs + c * 8, x);
            acc += dot8(staged[c], x);
        }
        return warpSum(acc);
    }
    const bf16* const rows[1] = {row};
    const float* const x[1] = {xs};
    float dot[1];
    warpDots<1, 16>(rows, x, n, vec, dot);
    return dot[0];
}

// asyncStores (kCluster, setClusterAsyncStores): the blocks store their logits into block 0 with
// storeToCluster(), completing on a barrier of block 0 that only its routing warp waits for,
// instead of meeting at a cluster barrier.
template <typename TX, bool kCluster>
__global__ __launch_bounds__(kRouteWarps * 32) void routeDecodeKernel(RouteArgs a, RouteDecodeArgs d, int stagedOffset, bool keyed, bool fixedK,
                                                                      bool asyncStores)
{
    // Dynamic shared memory only (see gemvTileKernel): hidden floats, the logits of every expert,
    // a reduction scratch of 33 floats, the last-block flag and (8-byte aligned) asyncStores'
    // barrier; with stagedOffset > 0, there, the warps' router rows (routerRowsStagedEnabled()).
    extern __shared__ __align__(16) float xs[];
    BlockTrace trace(TraceSite::Router);
    float* scratch = xs + d.hidden + a.experts;
    int& last = *reinterpret_cast<int*>(scratch + 33);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int e = blockIdx.x * kRouteWarps + warp;
    const bf16* w = reinterpret_cast<const bf16*>(d.routerWeight);
    const bf16* row = w + static_cast<long long>(e) * d.hidden;
    uint4* staged = stagedOffset > 0 && e < a.experts
                        ? reinterpret_cast<uint4*>(reinterpret_cast<unsigned char*>(xs) + stagedOffset) + warp * (d.hidden / 8)
                        : nullptr;
    if (staged) {
        // The row into shared memory while the kernel before runs (it comes from no earlier kernel).
        for (int c = lane; c < d.hidden / 8; c += 32)
            copyAsync16(staged + c, reinterpret_cast<const uint4*>(row) + c);
        copyAsyncCommit();
    } else if (e < a.experts) {
        for (int l = lane; l * 64 < d.hidden; l += 32)
            prefetchL2(row + l * 64);
    }
    const unsigned bar = static_cast<unsigned>(__cvta_generic_to_shared(xs)) + routeBarrierOffset(d.hidden, a.experts);
    if (kCluster && asyncStores && blockIdx.x == 0 && threadIdx.x == 0) {
        mbarInit(bar, 1);
        mbarInitFence();
        mbarArriveExpectTx(bar, static_cast<unsigned>(a.experts) * 4);
    }
    // The norm's weights (constant) into registers before the wait: after it only the residual's
    // loads wait on memory. Measured on one H200, medians of 3 against them after the wait: tiny
    // +0.3 %, small +0.2 %, base +0.4 %, the rounds' ranges apart.
    float nw[kRouteRegs];
#pragma unroll
    for (int i = 0; i < kRouteRegs; ++i) {
        const int k = threadIdx.x + i * blockDim.x;
        nw[i] = k < d.hidden ? d.normWeight[k] : 0.f;
    }
    gridDependencyWait();
    trace.waited();
    allowDependentLaunch();
    if constexpr (kCluster)
        clusterArrive();  // waited for before the first store into block 0 (every block has started)
    // The residual into registers, every load in flight at once (a second pass only past
    // kRouteRegs · blockDim columns).
    const float* __restrict__ residual = d.residual;
    float r[kRouteRegs];
    float ss = 0.f;
#pragma unroll
    for (int i = 0; i < kRouteRegs; ++i) {
        const int k = threadIdx.x + i * blockDim.x;
        r[i] = k < d.hidden ? residual[k] : 0.f;
    }
#pragma unroll
    for (int i = 0; i < kRouteRegs; ++i)
        ss = fmaf(r[i], r[i], ss);
    for (int k = threadIdx.x + kRouteRegs * blockDim.x; k < d.hidden; k += blockDim.x)
        ss = fmaf(residual[k], residual[k], ss);
    ss = blockSum(ss, scratch);
    const float inv = rsqrtf(ss / d.hidden + d.eps);
    TX* __restrict__ normOut = static_cast<TX*>(d.normOut);
    auto put = [&](int k, float value, float weight) {
        const TX v = fromFloat<TX>(weight * (value * inv));
        xs[k] = toFloat(v);
        if (blockIdx.x == 0)
            normOut[k] = v;
    };
#pragma unroll
    for (int i = 0; i < kRouteRegs; ++i) {
        const int k = threadIdx.x + i * blockDim.x;
        if (k < d.hidden)
            put(k, r[i], nw[i]);
    }
    for (int k = threadIdx.x + kRouteRegs * blockDim.x; k < d.hidden; k += blockDim.x)
        put(k, residual[k], d.normWeight[k]);
    if (stagedOffset > 0)
        copyAsyncWaitAll();  // the barrier below makes every lane's pieces of the row visible
    __syncthreads();
    trace.mark(0);  // x normalised in shared memory
    float* logits = xs + d.hidden;
    const bool vec = d.hidden % 8 == 0 && reinterpret_cast<std::uintptr_t>(w) % 16 == 0;
    if constexpr (kCluster) {
        const float dot = e < a.experts ? rowDot(row, xs, d.hidden, vec, staged) : 0.f;
        clusterWait();
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
        namespace cg = cooperative_groups;
        cg::cluster_group cluster = cg::this_cluster();
        if (asyncStores) {
            if (e < a.experts && lane == 0)
                storeToCluster(clusterSharedAddress(static_cast<unsigned>(__cvta_generic_to_shared(logits + e)), 0), dot,
                               clusterSharedAddress(bar, 0));
            if (cluster.block_rank() != 0 || warp != 0)
                return;
            mbarWaitCluster(bar, 0);
            trace.mark(1);
            routeRow(a, 0, logits, lane, keyed, fixedK);
            return;
        }
        if (e < a.experts && lane == 0)
            cluster.map_shared_rank(logits, 0)[e] = dot;
        cluster.sync();  // every logit in block 0's shared memory, visible there
        trace.mark(1);
        if (cluster.block_rank() == 0 && warp == 0)
            routeRow(a, 0, logits, lane, keyed, fixedK);
#else
        (void)dot;
        __trap();  // a build without sm_90 code has no clusters (the variant is opt-in)
#endif
        return;
    }
    if (e < a.experts) {
        const float dot = rowDot(row, xs, d.hidden, vec, staged);
        if (lane == 0)
            d.logits[e] = dot;
    }
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0)
        last = atomicAdd(d.counter, 1) == static_cast<int>(gridDim.x) - 1 ? 1 : 0;
    __syncthreads();
    if (!last)
        return;
    __threadfence();
    for (int i = threadIdx.x; i < a.experts; i += blockDim.x)
        logits[i] = __ldcg(d.logits + i);
    __syncthreads();
    if (warp == 0)
        routeRow(a, 0, logits, lane, keyed, fixedK);
    if (threadIdx.x == 0)
        *d.counter = 0;  // ready for the next launch
}

// The dispatch's bookkeeping in one block: the pairs per expert (shared-memory counters), then one
// warp's running sums of rows and row tiles, 32 experts at a time.
constexpr int kCountThreads = 1024;
__global__ __launch_bounds__(kCountThreads) void countScanKernel(DispatchArgs a, int total)
{
    extern __shared__ int perExpert[];  // a.experts
    for (int e = threadIdx.x; e < a.experts; e += blockDim.x)
        perExpert[e] = 0;
    __syncthreads();
    for (int i = threadIdx.x; i < total; i += blockDim.x)
        atomicAdd(&perExpert[a.idx[i]], 1);
    __syncthreads();
    if (threadIdx.x >= 32)
        return;
    const int lane = threadIdx.x;
    if (lane == 0) {
        a.offsets[0] = 0;
        a.tileOffsets[0] = 0;
    }
    int rows = 0, tiles = 0;  // before this group of 32 experts
    for (int base = 0; base < a.experts; base += 32) {
        const int e = base + lane;
        const int count = e < a.experts ? perExpert[e] : 0;
        int r = count, t = (count + a.tileRows - 1) / a.tileRows;
        for (int o = 1; o < 32; o <<= 1) {
            const int ur = __shfl_up_sync(0xffffffffu, r, o), ut = __shfl_up_sync(0xffffffffu, t, o);
            if (lane >= o) {
                r += ur;
                t += ut;
            }
        }
        if (e < a.experts) {
            a.counts[e] = count;
            a.offsets[e + 1] = rows + r;
            a.tileOffsets[e + 1] = tiles + t;
            a.fill[e] = 0;
        }
        rows += __shfl_sync(0xffffffffu, r, 31);
        tiles += __shfl_sync(0xffffffffu, t, 31);
    }
}

// One block per token: its row to its k slots (the first free one of each expert), read once;
// 16-byte pieces where the rows allow (kVec), else elements.
template <typename T, bool kVec>
__global__ void scatterKernel(DispatchArgs a)
{
    __shared__ int pos[kMaxK + 8];
    const int t = blockIdx.x;
    if (threadIdx.x < a.k) {
        const int e = a.idx[static_cast<long long>(t) * a.k + threadIdx.x];
        const int p = a.offsets[e] + atomicAdd(&a.fill[e], 1);
        pos[threadIdx.x] = p;
        a.pairRows[static_cast<long long>(t) * a.k + threadIdx.x] = p;
    }
    __syncthreads();
    using Piece = std::conditional_t<kVec, uint4, T>;
    const int pieces = kVec ? a.width * static_cast<int>(sizeof(T)) / 16 : a.width;
    const Piece* src = reinterpret_cast<const Piece*>(static_cast<const T*>(a.x) + static_cast<long long>(t) * a.width);
    Piece* rows = reinterpret_cast<Piece*>(a.gathered);
    for (int c = threadIdx.x; c < pieces; c += blockDim.x) {
        const Piece v = src[c];
        for (int i = 0; i < a.k; ++i)
            rows[static_cast<long long>(pos[i]) * pieces + c] = v;
    }
}

// One block per token. Every thread owns up to kCombineIters groups of V adjacent columns (V = 4:
// float4 loads, when the width allows) and keeps their new residual values in registers for the
// norm, so that all of a thread's loads are issued before its first store: one round trip to
// memory for the sum, one for the norm's output, whatever the width.
constexpr int kCombineIters = 4;
constexpr int kCombineMaxThreads = 1024;

template <int V>
struct Cols;
template <>
struct Cols<4> {
    using T = float4;
    __device__ static float get(const T& v, int i) { return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w; }
};
template <>
struct Cols<1> {
    using T = float;
    __device__ static float get(const T& v, int) { return v; }
};

// V adjacent columns of an expert output row as floats.
template <int V, typename TE>
__device__ __forceinline__ typename Cols<V>::T expertCols(const TE* row, int g)
{
    if constexpr (V == 4)
        return load4(row + 4 * g);
    else
        return toFloat(row[g]);
}

constexpr int kCombineSmem = (kMaxK + 8) * static_cast<int>(sizeof(long long) + sizeof(float)) + 33 * static_cast<int>(sizeof(float));

template <typename TN, typename TE, int V>
__global__ __launch_bounds__(kCombineMaxThreads) void combineKernel(CombineArgs a)
{
    using C = Cols<V>;
    using T = typename C::T;
    // Dynamic shared memory only (kCombineSmem; see gemvTileKernel).
    extern __shared__ __align__(16) long long slots[];  // kMaxK + 8, then the weights and a scratch
    BlockTrace trace(TraceSite::Combine);
    float* weights = reinterpret_cast<float*>(slots + kMaxK + 8);
    float* scratch = weights + kMaxK + 8;
    gridDependencyWait();
    trace.waited();
    allowDependentLaunch();
    const int t = blockIdx.x;
    if (threadIdx.x < a.k) {
        const long long pair = static_cast<long long>(t) * a.k + threadIdx.x;
        slots[threadIdx.x] = a.pairRows ? a.pairRows[pair] : pair;
        weights[threadIdx.x] = a.weight[pair];
    }
    __syncthreads();
    const int groups = a.width / V;
    const TE* __restrict__ expert = static_cast<const TE*>(a.expertOut);
    const T* __restrict__ shared = a.shared ? reinterpret_cast<const T*>(a.shared + static_cast<long long>(t) * a.width) : nullptr;
    T* __restrict__ h = reinterpret_cast<T*>(a.residual + static_cast<long long>(t) * a.width);
    float v[kCombineIters][V];
    float ss = 0.f;
#pragma unroll
    for (int it = 0; it < kCombineIters; ++it) {
        const int g = threadIdx.x + it * blockDim.x;
        if (g >= groups)
            break;
        float acc[V] = {};
        for (int i = 0; i < a.k; ++i) {
            const T e = expertCols<V>(expert + slots[i] * a.width, g);
#pragma unroll
            for (int j = 0; j < V; ++j)
                acc[j] += C::get(e, j) * weights[i];
        }
        const T sh = shared ? shared[g] : T{};
        const T old = h[g];
        T out;
        float* o = reinterpret_cast<float*>(&out);
#pragma unroll
        for (int j = 0; j < V; ++j) {
            if (shared)
                acc[j] += C::get(sh, j);
            o[j] = v[it][j] = C::get(old, j) + acc[j];
            ss = fmaf(v[it][j], v[it][j], ss);
        }
        h[g] = out;
    }
    if (!a.normWeight)
        return;
    ss = blockSum(ss, scratch);
    const float inv = rsqrtf(ss / a.width + a.normEps);
    TN* out = static_cast<TN*>(a.normOut) + static_cast<long long>(t) * a.width;
#pragma unroll
    for (int it = 0; it < kCombineIters; ++it) {
        const int g = threadIdx.x + it * blockDim.x;
        if (g >= groups)
            break;
#pragma unroll
        for (int j = 0; j < V; ++j)
            out[g * V + j] = fromFloat<TN>(a.normWeight[g * V + j] * (v[it][j] * inv));
    }
}

// Decode (one token, slots t·k + i, no pair list, at most kCombineOneSlots slots, one float4
// column group per thread): combineKernel's arithmetic with every load of the token in one round
// trip to memory. The next norm's weights are read before the wait (they come from no earlier
// kernel); after it, each thread reads the routing weights, its columns of every slot's row and
// of the residual at once, where combineKernel reads the weights into shared memory first and
// the norm's weights after its reduction (three round trips).
constexpr int kCombineOneSlots = 8;

template <typename TN, typename TE>
__global__ __launch_bounds__(kCombineMaxThreads) void combineOneKernel(CombineArgs a, bool triggerFirst)
{
    extern __shared__ __align__(16) float combineOneScratch[];  // 33 floats
    BlockTrace trace(TraceSite::CombineOne);
    const int g = threadIdx.x, groups = a.width / 4;
    const bool mine = g < groups;
    const float4 nw = a.normWeight && mine ? load4(a.normWeight + 4 * g) : make_float4(0.f, 0.f, 0.f, 0.f);
    if (triggerFirst)
        allowDependentLaunch();
    gridDependencyWait();
    trace.waited();
    if (!triggerFirst)
        allowDependentLaunch();
    const TE* __restrict__ expert = static_cast<const TE*>(a.expertOut);
    float4 e[kCombineOneSlots];
    float w[kCombineOneSlots];
    float4 old = make_float4(0.f, 0.f, 0.f, 0.f);
    if (mine) {
#pragma unroll
        for (int i = 0; i < kCombineOneSlots; ++i)
            if (i < a.k) {
                e[i] = expertCols<4>(expert + static_cast<long long>(i) * a.width, g);
                w[i] = a.weight[i];
            }
        old = load4(a.residual + 4 * g);
    }
    float v[4] = {};
    float ss = 0.f;
    if (mine) {
        float acc[4] = {};
#pragma unroll
        for (int i = 0; i < kCombineOneSlots; ++i)
            if (i < a.k)
#pragma unroll
                for (int j = 0; j < 4; ++j)
                    acc[j] += Cols<4>::get(e[i], j) * w[i];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            v[j] = Cols<4>::get(old, j) + acc[j];
            ss = fmaf(v[j], v[j], ss);
        }
    }
    if (mine)
        store4(a.residual + 4 * g, make_float4(v[0], v[1], v[2], v[3]));
    trace.mark(0);  // thread 0's loads arrived
    if (!a.normWeight)
        return;
    ss = blockSum(ss, combineOneScratch);
    const float inv = rsqrtf(ss / a.width + a.normEps);
    if (mine) {
        TN* out = static_cast<TN*>(a.normOut) + 4 * g;
        out[0] = fromFloat<TN>(nw.x * (v[0] * inv));
        out[1] = fromFloat<TN>(nw.y * (v[1] * inv));
        out[2] = fromFloat<TN>(nw.z * (v[2] * inv));
        out[3] = fromFloat<TN>(nw.w * (v[3] * inv));
    }
}

}  // namespace

Status setTraceSinkMoe(const TraceSink& s) { return setThisFilesTraceSink(s); }

Status routeTokens(const RouteArgs& a, Stream stream)
{
    if (a.n <= 0)
        return {};
    if (a.experts <= 0 || a.experts > kMaxExperts)
        return Status::failure("router: the CUDA router handles 1 to 256 experts");
    if (a.k <= 0 || a.k > kMaxK || a.k > a.experts)
        return Status::failure("router: num_experts_per_tok must be between 1 and 16");
    if (a.k + a.sharedExperts > kMaxK + 8)
        return Status::failure("router: too many routed + shared experts per token");
    if (a.routing == Routing::NoAuxTc && (a.groups > 32 || a.groups <= 0 || a.experts % a.groups))
        return Status::failure("router: n_group must divide the experts into at most 32 groups");
    const int warps = 4;
    routeKernel<<<(a.n + warps - 1) / warps, warps * 32, 0, cuStream(stream)>>>(a, routerKeyedTopKEnabled(), routerFixedKEnabled());
    return launchStatus("moe router");
}

Status routeDecode(const RouteArgs& a, const RouteDecodeArgs& d, Stream stream)
{
    if (a.experts <= 0 || a.experts > kMaxExperts || a.k <= 0 || a.k > kMaxK || a.k + a.sharedExperts > kMaxK + 8)
        return Status::failure("router: unsupported shape for the one-token router");
    if (a.routing == Routing::NoAuxTc && (a.groups > 32 || a.groups <= 0 || a.experts % a.groups))
        return Status::failure("router: n_group must divide the experts into at most 32 groups");
    if (d.hidden <= 0 || d.hidden > 16384)
        return Status::failure("router: hidden size out of range");
    std::size_t smem = routeBarrierOffset(d.hidden, a.experts) + 8;
    const int blocks = (a.experts + kRouteWarps - 1) / kRouteWarps;
    // The warps' router rows staged in shared memory where they fit (16-byte pieces).
    const std::size_t stagedOffset = (smem + 15) / 16 * 16, stagedBytes = static_cast<std::size_t>(kRouteWarps) * d.hidden * 2;
    const bool stage = routerRowsStagedEnabled() && d.hidden % 8 == 0 && reinterpret_cast<std::uintptr_t>(d.routerWeight) % 16 == 0 &&
                       stagedOffset + stagedBytes <= kRouteMaxSmem;
    if (stage)
        smem = stagedOffset + stagedBytes;
    const bool cluster = clusterRoutingEnabled() && blocks <= kMaxClusterBlocks;
    const bool asyncStores = clusterAsyncStoresEnabled() && blocks > 1;  // st.async needs a cluster of two or more
    Status r;
    TESSERA_DISPATCH_DTYPE(d.xType, TX, {
        static const Status attribute = allowSharedMemory("moe router", kRouteMaxSmem, routeDecodeKernel<TX, false>, routeDecodeKernel<TX, true>);
        if (!attribute.ok())
            return attribute;
        if (cluster) {
            static const Status clusterSize =
                cudaStatus(cudaFuncSetAttribute(routeDecodeKernel<TX, true>, cudaFuncAttributeNonPortableClusterSizeAllowed, 1),
                           "moe router: cluster size attribute");
            if (!clusterSize.ok())
                return clusterSize;
        }
        if (cluster)
            r = launchCluster("moe router (one token, one cluster)", routeDecodeKernel<TX, true>, blocks, kRouteWarps * 32, smem,
                              cuStream(stream), a, d, stage ? static_cast<int>(stagedOffset) : 0, routerKeyedTopKEnabled(), routerFixedKEnabled(),
                              asyncStores);
        else
            r = launchOverlapped("moe router (one token)", routeDecodeKernel<TX, false>, blocks, kRouteWarps * 32, smem,
                                 cuStream(stream), a, d, stage ? static_cast<int>(stagedOffset) : 0, routerKeyedTopKEnabled(), routerFixedKEnabled(),
                              asyncStores);
    });
    return r;
}

Status dispatchTokens(const DispatchArgs& a, Stream stream)
{
    if (a.n <= 0)
        return {};
    if (a.k > kMaxK + 8 || a.k > 128)
        return Status::failure("moe dispatch: too many experts per token");
    if (a.experts <= 0 || a.experts > kMaxExperts + kMaxK + 8 || a.tileRows <= 0)  // routed + shared experts
        return Status::failure("moe dispatch: expert count or tile height out of range");
    cudaStream_t s = cuStream(stream);
    countScanKernel<<<1, kCountThreads, sizeof(int) * a.experts, s>>>(a, a.n * a.k);
    const std::size_t rowBytes = static_cast<std::size_t>(a.width) * dtypeBytes(a.xType);
    const bool vec = rowBytes % 16 == 0 && reinterpret_cast<std::uintptr_t>(a.x) % 16 == 0 &&
                     reinterpret_cast<std::uintptr_t>(a.gathered) % 16 == 0;
    TESSERA_DISPATCH_DTYPE(a.xType, T, {
        if (vec)
            scatterKernel<T, true><<<a.n, 256, 0, s>>>(a);
        else
            scatterKernel<T, false><<<a.n, 256, 0, s>>>(a);
    });
    return launchStatus("moe dispatch");
}

Status combineExperts(const CombineArgs& a, Stream stream)
{
    if (a.n <= 0)
        return {};
    if (a.k > kMaxK + 8)
        return Status::failure("moe combine: too many experts per token");
    if (a.width <= 0)
        return Status::failure("moe combine: empty rows");
    // float4 columns when every row starts 16-byte aligned, else single columns; a thread per group
    // up to 1024 threads, then up to kCombineIters groups each.
    const bool vec = a.width % 4 == 0 && reinterpret_cast<std::uintptr_t>(a.expertOut) % (4 * dtypeBytes(a.expertType)) == 0 &&
                     reinterpret_cast<std::uintptr_t>(a.residual) % 16 == 0 && reinterpret_cast<std::uintptr_t>(a.shared) % 16 == 0;
    const int groups = vec ? a.width / 4 : a.width;
    const int threads = std::min(kCombineMaxThreads, std::max(64, (groups + 31) / 32 * 32));
    if (groups > threads * kCombineIters)
        return Status::failure("moe combine: hidden size too large for one block");
    Status r;
    if (vec && a.n == 1 && !a.pairRows && !a.shared && a.k <= kCombineOneSlots && aligned16(a.normWeight) && combineOneEnabled()) {
        TESSERA_DISPATCH_DTYPE(a.normType, TN, TESSERA_DISPATCH_DTYPE(a.expertType, TE, r = launchOverlapped("moe combine (one token)", combineOneKernel<TN, TE>, 1, threads, 33 * sizeof(float), cuStream(stream), a, combineTriggerFirstEnabled())));
    } else if (vec) {
        TESSERA_DISPATCH_DTYPE(a.normType, TN, TESSERA_DISPATCH_DTYPE(a.expertType, TE, r = launchOverlapped("moe combine", combineKernel<TN, TE, 4>, a.n, threads, kCombineSmem, cuStream(stream), a)));
    } else {
        TESSERA_DISPATCH_DTYPE(a.normType, TN, TESSERA_DISPATCH_DTYPE(a.expertType, TE, r = launchOverlapped("moe combine", combineKernel<TN, TE, 1>, a.n, threads, kCombineSmem, cuStream(stream), a)));
    }
    return r;
}

}  // namespace tessera::kernels
