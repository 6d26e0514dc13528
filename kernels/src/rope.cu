// Rotary embedding + cache writes.
#include "tessera_kernels/rope.h"

#include "launch_util.cuh"

namespace tessera::kernels {

namespace {

// Items of a token: the rotary pairs of q, those of k, then the values; one per thread, blocks of
// kPrepareThreads along y, so that a token's work is one round trip to memory.
constexpr int kPrepareThreads = 256;

template <typename TI, typename TQ, typename TC>
__global__ __launch_bounds__(kPrepareThreads) void mhaPrepareKernel(MhaPrepareArgs a)
{
    gridDependencyWait();
    allowDependentLaunch();
    const int t = blockIdx.x;
    const int hd = a.headDim, half = hd / 2;
    const int qw = a.heads * hd, kw = a.kvHeads * hd;
    const int qPairs = a.heads * half, kPairs = a.kvHeads * half;
    const int e = blockIdx.y * blockDim.x + threadIdx.x;
    if (e >= qPairs + kPairs + kw)
        return;
    const int pos = (a.startOnDevice ? *a.startOnDevice : a.start) + t;
    const TI* __restrict__ row = static_cast<const TI*>(a.qkv) + static_cast<long long>(t) * (qw + 2 * kw);
    if (e >= qPairs + kPairs) {
        const int i = e - qPairs - kPairs;
        static_cast<TC*>(a.values)[static_cast<long long>(pos) * kw + i] = fromFloat<TC>(toFloat(row[qw + kw + i]));
        return;
    }
    const bool key = e >= qPairs;
    const int p = key ? e - qPairs : e;
    const int h = p / half, i = p % half;
    const TI* in = row + (key ? qw : 0) + h * hd;
    const float x0 = toFloat(in[i]), x1 = toFloat(in[half + i]);
    const float c = a.rotary.cos[static_cast<long long>(pos) * half + i], sn = a.rotary.sin[static_cast<long long>(pos) * half + i];
    const float2 y = rotatePair(x0, x1, c, sn);
    const float y0 = y.x, y1 = y.y;
    if (key) {
        TC* k = static_cast<TC*>(a.keys) + static_cast<long long>(pos) * kw + h * hd;
        k[i] = fromFloat<TC>(y0);
        k[half + i] = fromFloat<TC>(y1);
    } else {
        TQ* q = static_cast<TQ*>(a.q) + static_cast<long long>(t) * qw + h * hd;
        q[i] = fromFloat<TQ>(y0);
        q[half + i] = fromFloat<TQ>(y1);
    }
}

// One block of kMlaPrepareThreads per token: the rotary parts of q and of the latent row first
// (independent loads and stores), then the latent norm, each usually one pass of the block.
constexpr int kMlaPrepareThreads = 512;

template <typename TI, typename TQ, typename TC>
__global__ __launch_bounds__(kMlaPrepareThreads) void mlaPrepareKernel(MlaPrepareArgs a)
{
    __shared__ float sumSquares;
    gridDependencyWait();
    allowDependentLaunch();
    const int t = blockIdx.x;
    const int pos = (a.startOnDevice ? *a.startOnDevice : a.start) + t;
    const int qhd = a.nope + a.rope, half = a.rope / 2;
    const int qw = a.heads * qhd;
    const int width = a.rank + a.rope;
    const TI* __restrict__ row = static_cast<const TI*>(a.fused) + static_cast<long long>(t) * (qw + width);
    const TI* __restrict__ kv = row + qw;
    const float* c = a.rotary.cos + static_cast<long long>(pos) * half;
    const float* s = a.rotary.sin + static_cast<long long>(pos) * half;
    TC* __restrict__ cache = static_cast<TC*>(a.cache) + static_cast<long long>(pos) * width;
    TQ* __restrict__ qcat = static_cast<TQ*>(a.qcat) + static_cast<long long>(t) * a.heads * width;

    // The rope halves are stored interleaved (pairs) and rotated NeoX-style after de-interleaving.
    for (int e = threadIdx.x; e < (a.heads + 1) * half; e += blockDim.x) {
        const int h = e / half, i = e % half;
        const bool latent = h == a.heads;
        const TI* in = latent ? kv + a.rank : row + h * qhd + a.nope;
        const float2 y = rotatePair(toFloat(in[2 * i]), toFloat(in[2 * i + 1]), c[i], s[i]);
        const float y0 = y.x, y1 = y.y;
        if (latent) {
            cache[a.rank + i] = fromFloat<TC>(y0);
            cache[a.rank + half + i] = fromFloat<TC>(y1);
        } else {
            TQ* out = qcat + static_cast<long long>(h) * width + a.rank;
            out[i] = fromFloat<TQ>(y0);
            out[half + i] = fromFloat<TQ>(y1);
        }
    }
    if (threadIdx.x < 32) {
        const float ss = warpSumSquares(kv, a.rank);
        if (threadIdx.x == 0)
            sumSquares = ss;
    }
    __syncthreads();
    const float inv = rsqrtf(sumSquares / a.rank + a.eps);
    for (int i = threadIdx.x; i < a.rank; i += blockDim.x)
        cache[i] = fromFloat<TC>(a.kvNorm[i] * (toFloat(kv[i]) * inv));
}

}  // namespace

Status mhaPrepare(const MhaPrepareArgs& a, Stream stream)
{
    if (a.n <= 0)
        return {};
    if (a.headDim % 2 || a.rotary.dim != a.headDim)
        return Status::failure("mha rope: rotary table does not match the head dimension");
    Status r;
    const int items = (a.heads + a.kvHeads) * (a.headDim / 2) + a.kvHeads * a.headDim;
    const dim3 grid(a.n, (items + kPrepareThreads - 1) / kPrepareThreads);
    TESSERA_DISPATCH_DTYPE(a.qkvType, TI, TESSERA_DISPATCH_DTYPE(a.qType, TQ, TESSERA_DISPATCH_DTYPE(a.cacheType, TC, r = launchOverlapped("mha rope + cache write", mhaPrepareKernel<TI, TQ, TC>, grid, kPrepareThreads, 0, cuStream(stream), a))));
    return r;
}

Status mlaPrepare(const MlaPrepareArgs& a, Stream stream)
{
    if (a.n <= 0)
        return {};
    if (a.rope % 2 || a.rotary.dim != a.rope)
        return Status::failure("mla rope: rotary table does not match qk_rope_head_dim");
    Status r;
    TESSERA_DISPATCH_DTYPE(a.fusedType, TI, TESSERA_DISPATCH_DTYPE(a.qType, TQ, TESSERA_DISPATCH_DTYPE(a.cacheType, TC, r = launchOverlapped("mla rope + latent norm + cache write", mlaPrepareKernel<TI, TQ, TC>, a.n, kMlaPrepareThreads, 0, cuStream(stream), a))));
    return r;
}

}  // namespace tessera::kernels
