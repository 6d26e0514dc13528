// Rotary embedding + cache writes. One block per token.
#include "tessera_kernels/rope.h"

#include "launch_util.cuh"

namespace tessera::kernels {

namespace {

template <typename TI, typename TQ, typename TC>
__global__ void mhaPrepareKernel(MhaPrepareArgs a)
{
    gridDependencyWait();
    allowDependentLaunch();
    const int t = blockIdx.x;
    const int pos = (a.startOnDevice ? *a.startOnDevice : a.start) + t;
    const int hd = a.headDim, half = hd / 2;
    const int qw = a.heads * hd, kw = a.kvHeads * hd;
    const TI* row = static_cast<const TI*>(a.qkv) + static_cast<long long>(t) * (qw + 2 * kw);
    const float* c = a.rotary.cos + static_cast<long long>(pos) * half;
    const float* s = a.rotary.sin + static_cast<long long>(pos) * half;
    TQ* q = static_cast<TQ*>(a.q) + static_cast<long long>(t) * qw;
    TC* k = static_cast<TC*>(a.keys) + static_cast<long long>(pos) * kw;
    TC* v = static_cast<TC*>(a.values) + static_cast<long long>(pos) * kw;
    for (int e = threadIdx.x; e < a.heads * half; e += blockDim.x) {
        const int h = e / half, i = e % half;
        const float x0 = toFloat(row[h * hd + i]), x1 = toFloat(row[h * hd + half + i]);
        q[h * hd + i] = fromFloat<TQ>(x0 * c[i] - x1 * s[i]);
        q[h * hd + half + i] = fromFloat<TQ>(x1 * c[i] + x0 * s[i]);
    }
    for (int e = threadIdx.x; e < a.kvHeads * half; e += blockDim.x) {
        const int h = e / half, i = e % half;
        const float x0 = toFloat(row[qw + h * hd + i]), x1 = toFloat(row[qw + h * hd + half + i]);
        k[h * hd + i] = fromFloat<TC>(x0 * c[i] - x1 * s[i]);
        k[h * hd + half + i] = fromFloat<TC>(x1 * c[i] + x0 * s[i]);
    }
    for (int e = threadIdx.x; e < kw; e += blockDim.x)
        v[e] = fromFloat<TC>(toFloat(row[qw + kw + e]));
}

template <typename TI, typename TQ, typename TC>
__global__ void mlaPrepareKernel(MlaPrepareArgs a)
{
    __shared__ float scratch[33];
    gridDependencyWait();
    allowDependentLaunch();
    const int t = blockIdx.x;
    const int pos = (a.startOnDevice ? *a.startOnDevice : a.start) + t;
    const int qhd = a.nope + a.rope, half = a.rope / 2;
    const int qw = a.heads * qhd;
    const int width = a.rank + a.rope;
    const TI* row = static_cast<const TI*>(a.fused) + static_cast<long long>(t) * (qw + width);
    const TI* kv = row + qw;
    const float* c = a.rotary.cos + static_cast<long long>(pos) * half;
    const float* s = a.rotary.sin + static_cast<long long>(pos) * half;
    TC* cache = static_cast<TC*>(a.cache) + static_cast<long long>(pos) * width;
    TQ* qcat = static_cast<TQ*>(a.qcat) + static_cast<long long>(t) * a.heads * width;

    float ss = 0.f;
    for (int i = threadIdx.x; i < a.rank; i += blockDim.x)
        ss = fmaf(toFloat(kv[i]), toFloat(kv[i]), ss);
    ss = blockSum(ss, scratch);
    const float inv = rsqrtf(ss / a.rank + a.eps);
    for (int i = threadIdx.x; i < a.rank; i += blockDim.x)
        cache[i] = fromFloat<TC>(a.kvNorm[i] * (toFloat(kv[i]) * inv));
    // The rope halves are stored interleaved (pairs) and rotated NeoX-style after de-interleaving.
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        const float x0 = toFloat(kv[a.rank + 2 * i]), x1 = toFloat(kv[a.rank + 2 * i + 1]);
        cache[a.rank + i] = fromFloat<TC>(x0 * c[i] - x1 * s[i]);
        cache[a.rank + half + i] = fromFloat<TC>(x1 * c[i] + x0 * s[i]);
    }
    for (int e = threadIdx.x; e < a.heads * half; e += blockDim.x) {
        const int h = e / half, i = e % half;
        const TI* qp = row + h * qhd + a.nope;
        const float x0 = toFloat(qp[2 * i]), x1 = toFloat(qp[2 * i + 1]);
        TQ* out = qcat + static_cast<long long>(h) * width + a.rank;
        out[i] = fromFloat<TQ>(x0 * c[i] - x1 * s[i]);
        out[half + i] = fromFloat<TQ>(x1 * c[i] + x0 * s[i]);
    }
}

}  // namespace

Status mhaPrepare(const MhaPrepareArgs& a, Stream stream)
{
    if (a.n <= 0)
        return {};
    if (a.headDim % 2 || a.rotary.dim != a.headDim)
        return Status::failure("mha rope: rotary table does not match the head dimension");
    Status r;
    TESSERA_DISPATCH_DTYPE(a.qkvType, TI, TESSERA_DISPATCH_DTYPE(a.qType, TQ, TESSERA_DISPATCH_DTYPE(a.cacheType, TC, r = launchOverlapped("mha rope + cache write", mhaPrepareKernel<TI, TQ, TC>, a.n, 128, 0, cuStream(stream), a))));
    return r;
}

Status mlaPrepare(const MlaPrepareArgs& a, Stream stream)
{
    if (a.n <= 0)
        return {};
    if (a.rope % 2 || a.rotary.dim != a.rope)
        return Status::failure("mla rope: rotary table does not match qk_rope_head_dim");
    Status r;
    TESSERA_DISPATCH_DTYPE(a.fusedType, TI, TESSERA_DISPATCH_DTYPE(a.qType, TQ, TESSERA_DISPATCH_DTYPE(a.cacheType, TC, r = launchOverlapped("mla rope + latent norm + cache write", mlaPrepareKernel<TI, TQ, TC>, a.n, 128, 0, cuStream(stream), a))));
    return r;
}

}  // namespace tessera::kernels
