// Router (one warp per token), expert grouping and combine.
#include "tessera_kernels/moe.h"

#include "launch_util.cuh"
#include "moe_internal.cuh"

namespace tessera::kernels {

namespace {

__global__ void routeKernel(RouteArgs a)
{
    const int warpsPerBlock = blockDim.x / 32;
    const int t = blockIdx.x * warpsPerBlock + threadIdx.x / 32;
    if (t >= a.n)
        return;
    routeRow(a, t, a.scores + static_cast<long long>(t) * a.experts, threadIdx.x & 31);
}

// Decode: RMSNorm of the residual, the router product and the routing of one token in one
// launch. Blocks of 8 warps each own 8 experts' rows (spread over the GPU, pulled into L2 before
// the wait); every block makes the normalised x itself (block 0 also stores it for the experts'
// product); the last block to finish routes from the logits of all.
constexpr int kRouteWarps = 8;

template <typename TX>
__global__ __launch_bounds__(kRouteWarps * 32) void routeDecodeKernel(RouteArgs a, RouteDecodeArgs d)
{
    extern __shared__ float xs[];  // hidden floats, then the logits of every expert
    __shared__ float scratch[33];
    __shared__ bool last;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int e = blockIdx.x * kRouteWarps + warp;
    const bf16* w = reinterpret_cast<const bf16*>(d.routerWeight);
    const bf16* row = w + static_cast<long long>(e) * d.hidden;
    if (e < a.experts)
        for (int l = lane; l * 64 < d.hidden; l += 32)
            prefetchL2(row + l * 64);
    gridDependencyWait();
    allowDependentLaunch();
    float ss = 0.f;
    for (int k = threadIdx.x; k < d.hidden; k += blockDim.x)
        ss = fmaf(d.residual[k], d.residual[k], ss);
    ss = blockSum(ss, scratch);
    const float inv = rsqrtf(ss / d.hidden + d.eps);
    TX* normOut = static_cast<TX*>(d.normOut);
    for (int k = threadIdx.x; k < d.hidden; k += blockDim.x) {
        const TX v = fromFloat<TX>(d.normWeight[k] * (d.residual[k] * inv));
        xs[k] = toFloat(v);
        if (blockIdx.x == 0)
            normOut[k] = v;
    }
    __syncthreads();
    if (e < a.experts) {
        float acc = 0.f;
        if (d.hidden % 8 == 0) {
            for (int k = lane * 8; k < d.hidden; k += 256) {
                const uint4 u = __ldg(reinterpret_cast<const uint4*>(row + k));
                const __nv_bfloat162* h2 = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    const float2 wv = __bfloat1622float2(h2[i]);
                    acc = fmaf(wv.x, xs[k + 2 * i], acc);
                    acc = fmaf(wv.y, xs[k + 2 * i + 1], acc);
                }
            }
        } else {
            for (int k = lane; k < d.hidden; k += 32)
                acc = fmaf(__bfloat162float(row[k]), xs[k], acc);
        }
        acc = warpSum(acc);
        if (lane == 0)
            d.logits[e] = acc;
    }
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0)
        last = atomicAdd(d.counter, 1) == static_cast<int>(gridDim.x) - 1;
    __syncthreads();
    if (!last)
        return;
    __threadfence();
    float* logits = xs + d.hidden;
    for (int i = threadIdx.x; i < a.experts; i += blockDim.x)
        logits[i] = __ldcg(d.logits + i);
    __syncthreads();
    if (warp == 0)
        routeRow(a, 0, logits, lane);
    if (threadIdx.x == 0)
        *d.counter = 0;  // ready for the next launch
}

__global__ void countKernel(const int* idx, int total, int* counts)
{
    for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += gridDim.x * blockDim.x)
        atomicAdd(&counts[idx[e]], 1);
}

__global__ void scanKernel(const int* counts, int experts, int tileRows, int* offsets, int* tileOffsets, int* fill)
{
    if (threadIdx.x != 0)
        return;
    int o = 0, t = 0;
    offsets[0] = 0;
    tileOffsets[0] = 0;
    for (int e = 0; e < experts; ++e) {
        o += counts[e];
        t += (counts[e] + tileRows - 1) / tileRows;
        offsets[e + 1] = o;
        tileOffsets[e + 1] = t;
        fill[e] = 0;
    }
}

template <typename T>
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
    const T* src = static_cast<const T*>(a.x) + static_cast<long long>(t) * a.width;
    for (int i = 0; i < a.k; ++i) {
        T* dst = static_cast<T*>(a.gathered) + static_cast<long long>(pos[i]) * a.width;
        for (int c = threadIdx.x; c < a.width; c += blockDim.x)
            dst[c] = src[c];
    }
}

template <typename TN>
__global__ void combineKernel(CombineArgs a)
{
    __shared__ float scratch[33];
    __shared__ long long slots[kMaxK + 8];
    __shared__ float weights[kMaxK + 8];
    gridDependencyWait();
    allowDependentLaunch();
    const int t = blockIdx.x;
    if (threadIdx.x < a.k) {
        const long long pair = static_cast<long long>(t) * a.k + threadIdx.x;
        slots[threadIdx.x] = a.pairRows ? a.pairRows[pair] : pair;
        weights[threadIdx.x] = a.weight[pair];
    }
    __syncthreads();
    float* h = a.residual + static_cast<long long>(t) * a.width;
    float ss = 0.f;
    for (int c = threadIdx.x; c < a.width; c += blockDim.x) {
        float acc = 0.f;
        for (int i = 0; i < a.k; ++i)
            acc += a.expertOut[slots[i] * a.width + c] * weights[i];
        if (a.shared)
            acc += a.shared[static_cast<long long>(t) * a.width + c];
        const float v = h[c] + acc;
        h[c] = v;
        ss = fmaf(v, v, ss);
    }
    if (!a.normWeight)
        return;
    ss = blockSum(ss, scratch);
    const float inv = rsqrtf(ss / a.width + a.normEps);
    TN* out = static_cast<TN*>(a.normOut) + static_cast<long long>(t) * a.width;
    for (int c = threadIdx.x; c < a.width; c += blockDim.x)
        out[c] = fromFloat<TN>(a.normWeight[c] * (h[c] * inv));
}

}  // namespace

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
    routeKernel<<<(a.n + warps - 1) / warps, warps * 32, 0, cuStream(stream)>>>(a);
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
    const int blocks = (a.experts + kRouteWarps - 1) / kRouteWarps;
    const std::size_t smem = static_cast<std::size_t>(d.hidden + a.experts) * sizeof(float);
    Status r;
    TESSERA_DISPATCH_DTYPE(d.xType, TX, {
        static const Status attribute = allowSharedMemory("moe router", 80 * 1024, routeDecodeKernel<TX>);
        if (!attribute.ok())
            return attribute;
        r = launchOverlapped("moe router (one token)", routeDecodeKernel<TX>, blocks, kRouteWarps * 32, smem, cuStream(stream), a, d);
    });
    return r;
}

Status dispatchTokens(const DispatchArgs& a, Stream stream)
{
    if (a.n <= 0)
        return {};
    if (a.k > kMaxK + 8 || a.k > 128)
        return Status::failure("moe dispatch: too many experts per token");
    cudaStream_t s = cuStream(stream);
    Status r = cudaStatus(cudaMemsetAsync(a.counts, 0, sizeof(int) * a.experts, s), "moe dispatch: cudaMemsetAsync");
    if (!r.ok())
        return r;
    const int total = a.n * a.k;
    countKernel<<<(total + 255) / 256, 256, 0, s>>>(a.idx, total, a.counts);
    scanKernel<<<1, 32, 0, s>>>(a.counts, a.experts, a.tileRows, a.offsets, a.tileOffsets, a.fill);
    TESSERA_DISPATCH_DTYPE(a.xType, T, scatterKernel<T><<<a.n, 128, 0, s>>>(a));
    return launchStatus("moe dispatch");
}

Status combineExperts(const CombineArgs& a, Stream stream)
{
    if (a.n <= 0)
        return {};
    if (a.k > kMaxK + 8)
        return Status::failure("moe combine: too many experts per token");
    Status r;
    TESSERA_DISPATCH_DTYPE(a.normType, TN, r = launchOverlapped("moe combine", combineKernel<TN>, a.n, 256, 0, cuStream(stream), a));
    return r;
}

}  // namespace tessera::kernels
