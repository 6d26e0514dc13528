// Masked soft-max for prefill attention and split-context decode attention (flash-decoding:
// partial max / sum / weighted values per context chunk, then one combine pass).
#include "tessera_kernels/attention.h"

#include "launch_util.cuh"

namespace tessera::kernels {

namespace {

constexpr int kChunk = 64;        // context positions per decode block
constexpr int kDecodeThreads = 128;
constexpr int kMaxValuePerThread = 8;  // valueDim ≤ 1024

template <typename TO>
__global__ void softmaxKernel(SoftmaxArgs a)
{
    __shared__ float scratch[33];
    const long long r = blockIdx.x;
    const float* row = a.scores + r * a.ld;
    TO* out = static_cast<TO*>(a.out) + r * a.ldo;
    const int token = static_cast<int>((r / a.tokenDiv) % a.tokenMod);
    const int visible = min(a.context, a.firstVisible + token + 1);
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < visible; j += blockDim.x)
        mx = fmaxf(mx, row[j] * a.scale);
    mx = blockMax(mx, scratch);
    float sum = 0.f;
    for (int j = threadIdx.x; j < visible; j += blockDim.x)
        sum += expf(row[j] * a.scale - mx);
    sum = blockSum(sum, scratch);
    const float inv = 1.f / sum;
    // Reads of `row` above finish before these writes for every thread (blockSum synchronises),
    // so out may alias row.
    for (int j = threadIdx.x; j < a.context; j += blockDim.x)
        out[j] = fromFloat<TO>(j < visible ? expf(row[j] * a.scale - mx) * inv : 0.f);
}

__device__ __forceinline__ float dotRow(const float* q, const float* k, int dim, int lane)
{
    float s = 0.f;
    for (int d = lane * 2; d < dim; d += 64) {
        const float2 kv = *reinterpret_cast<const float2*>(k + d);
        s = fmaf(q[d], kv.x, s);
        s = fmaf(q[d + 1], kv.y, s);
    }
    return s;
}

__device__ __forceinline__ float dotRow(const float* q, const bf16* k, int dim, int lane)
{
    float s = 0.f;
    for (int d = lane * 2; d < dim; d += 64) {
        const float2 kv = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(k + d));
        s = fmaf(q[d], kv.x, s);
        s = fmaf(q[d + 1], kv.y, s);
    }
    return s;
}

template <typename TQ, typename TC>
__global__ __launch_bounds__(kDecodeThreads) void decodePartialKernel(DecodeAttentionArgs a, int splits)
{
    extern __shared__ float qs[];  // keyDim floats
    __shared__ float p[kChunk];
    __shared__ float scratch[33];
    const int s = blockIdx.x, h = blockIdx.y;
    const int context = *a.lengthOnDevice + 1;
    const int j0 = s * kChunk;
    if (j0 >= context)
        return;
    const int j1 = min(context, j0 + kChunk);
    const int kvh = h / a.headsPerKv;
    const TQ* q = static_cast<const TQ*>(a.q) + h * a.qHeadStride;
    for (int d = threadIdx.x; d < a.keyDim; d += blockDim.x)
        qs[d] = toFloat(q[d]);
    __syncthreads();

    const TC* keys = static_cast<const TC*>(a.keys) + kvh * a.keyHeadStride;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int j = j0 + warp; j < j1; j += kDecodeThreads / 32) {
        const float d = warpSum(dotRow(qs, keys + static_cast<long long>(j) * a.keyLd, a.keyDim, lane));
        if (lane == 0)
            p[j - j0] = d * a.scale;
    }
    __syncthreads();
    const int count = j1 - j0;
    float mx = threadIdx.x < count ? p[threadIdx.x] : -INFINITY;
    mx = blockMax(mx, scratch);
    float e = 0.f;
    if (threadIdx.x < count) {
        e = expf(p[threadIdx.x] - mx);
    }
    const float sum = blockSum(e, scratch);
    if (threadIdx.x < count)
        p[threadIdx.x] = e;
    __syncthreads();

    const TC* values = static_cast<const TC*>(a.values) + kvh * a.valueHeadStride;
    float* part = a.workspace + (static_cast<long long>(h) * splits + s) * (a.valueDim + 2);
    for (int d = threadIdx.x; d < a.valueDim; d += blockDim.x) {
        float acc = 0.f;
        for (int j = 0; j < count; ++j)
            acc = fmaf(p[j], toFloat(values[static_cast<long long>(j0 + j) * a.valueLd + d]), acc);
        part[2 + d] = acc;
    }
    if (threadIdx.x == 0) {
        part[0] = mx;
        part[1] = sum;
    }
}

template <typename TO>
__global__ __launch_bounds__(kDecodeThreads) void decodeCombineKernel(DecodeAttentionArgs a, int splits)
{
    const int h = blockIdx.x;
    const int context = *a.lengthOnDevice + 1;
    const int used = (context + kChunk - 1) / kChunk;
    const float* part = a.workspace + static_cast<long long>(h) * splits * (a.valueDim + 2);
    float mx = -INFINITY;
    for (int s = 0; s < used; ++s)
        mx = fmaxf(mx, part[s * (a.valueDim + 2)]);
    float total = 0.f;
    for (int s = 0; s < used; ++s)
        total += part[s * (a.valueDim + 2) + 1] * expf(part[s * (a.valueDim + 2)] - mx);
    const float inv = 1.f / total;
    TO* out = static_cast<TO*>(a.out) + h * a.outHeadStride;
    for (int d = threadIdx.x; d < a.valueDim; d += blockDim.x) {
        float acc = 0.f;
        for (int s = 0; s < used; ++s) {
            const float* ps = part + s * (a.valueDim + 2);
            acc = fmaf(ps[2 + d], expf(ps[0] - mx), acc);
        }
        out[d] = fromFloat<TO>(acc * inv);
    }
}

}  // namespace

Status causalSoftmax(const SoftmaxArgs& a, Stream stream)
{
    if (a.rows <= 0 || a.context <= 0)
        return {};
    const int threads = a.context >= 1024 ? 256 : a.context >= 256 ? 128 : 64;
    TESSERA_DISPATCH_DTYPE(a.outType, TO, softmaxKernel<TO><<<a.rows, threads, 0, cuStream(stream)>>>(a));
    return launchStatus("attention softmax");
}

std::size_t decodeAttentionWorkspaceFloats(int heads, int valueDim, int capacity)
{
    const std::size_t splits = (static_cast<std::size_t>(capacity) + kChunk - 1) / kChunk;
    return static_cast<std::size_t>(heads) * splits * (valueDim + 2);
}

Status decodeAttention(const DecodeAttentionArgs& a, Stream stream)
{
    if (a.heads <= 0)
        return {};
    if (a.keyDim % 2 || a.keyLd % 2 || a.keyHeadStride % 2)
        return Status::failure("decode attention: key dimensions must be even");
    if (a.valueDim > kDecodeThreads * kMaxValuePerThread)
        return Status::failure("decode attention: value dimension too large");
    const int splits = (a.capacity + kChunk - 1) / kChunk;
    cudaStream_t s = cuStream(stream);
    const dim3 grid(splits, a.heads);
    const std::size_t smem = static_cast<std::size_t>(a.keyDim) * sizeof(float);
    TESSERA_DISPATCH_DTYPE(a.qType, TQ, TESSERA_DISPATCH_DTYPE(a.cacheType, TC, decodePartialKernel<TQ, TC><<<grid, kDecodeThreads, smem, s>>>(a, splits)));
    Status r = launchStatus("decode attention");
    if (!r.ok())
        return r;
    TESSERA_DISPATCH_DTYPE(a.outType, TO, decodeCombineKernel<TO><<<a.heads, kDecodeThreads, 0, s>>>(a, splits));
    return launchStatus("decode attention combine");
}

}  // namespace tessera::kernels
