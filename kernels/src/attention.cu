// Masked soft-max for prefill attention and split-context decode attention (flash-decoding:
// partial max / sum / weighted values per context chunk, then one combine pass).
#include "tessera_kernels/attention.h"

#include "attention_internal.cuh"
#include "launch_util.cuh"
#include "trace.cuh"

namespace tessera::kernels {

namespace {

constexpr int kChunk = kDecodeChunk;
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

__device__ __forceinline__ float2 load2(const float* p) { return *reinterpret_cast<const float2*>(p); }
__device__ __forceinline__ float2 load2(const bf16* p) { return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p)); }

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
    const int context = *a.lengthOnDevice + 1;  // see leaveEarly
    const int j0 = s * kChunk;
    if (j0 >= context)
        return;
    gridDependencyWait();
    allowDependentLaunch();
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

    // Values: each thread owns a pair of value dimensions and a group of rows; eight rows per
    // step keep eight independent loads in flight. Row groups are summed through shared memory.
    const TC* values = static_cast<const TC*>(a.values) + kvh * a.valueHeadStride;
    float* part = a.workspace + (static_cast<long long>(h) * splits + s) * (a.valueDim + 2);
    const int pairs = a.valueDim / 2;
    const int groups = pairs >= kDecodeThreads ? 1 : kDecodeThreads / pairs;
    const int rg = threadIdx.x / max(pairs, 1);
    __shared__ float2 reduce[kDecodeThreads];
    for (int pair0 = 0; pair0 < pairs; pair0 += kDecodeThreads / groups) {
        const int pair = pair0 + threadIdx.x % (kDecodeThreads / groups);
        float2 acc = make_float2(0.f, 0.f);
        if (pair < pairs && rg < groups) {
            const TC* col = values + 2 * pair;
            int j = rg;
            for (; j + 7 * groups < count; j += 8 * groups) {
                float2 v[8];
#pragma unroll
                for (int u = 0; u < 8; ++u)
                    v[u] = load2(col + static_cast<long long>(j0 + j + u * groups) * a.valueLd);
#pragma unroll
                for (int u = 0; u < 8; ++u) {
                    acc.x = fmaf(p[j + u * groups], v[u].x, acc.x);
                    acc.y = fmaf(p[j + u * groups], v[u].y, acc.y);
                }
            }
            for (; j < count; j += groups) {
                const float2 v = load2(col + static_cast<long long>(j0 + j) * a.valueLd);
                acc.x = fmaf(p[j], v.x, acc.x);
                acc.y = fmaf(p[j], v.y, acc.y);
            }
        }
        if (groups > 1) {
            reduce[threadIdx.x] = acc;
            __syncthreads();
            if (rg == 0 && pair < pairs) {
                for (int g = 1; g < groups; ++g) {
                    const float2 o = reduce[g * pairs + threadIdx.x];
                    acc.x += o.x;
                    acc.y += o.y;
                }
            }
            __syncthreads();
        }
        if (rg == 0 && pair < pairs) {
            part[2 + 2 * pair] = acc.x;
            part[2 + 2 * pair + 1] = acc.y;
        }
    }
    if (threadIdx.x == 0) {
        part[0] = mx;
        part[1] = sum;
    }
}

constexpr int kDecodeCombineSmem = (kMaxDecodeSplits + 8 + 33) * static_cast<int>(sizeof(float));

template <typename TO>
__global__ __launch_bounds__(kDecodeThreads) void decodeCombineKernel(DecodeAttentionArgs a, int splits, int chunk)
{
    // Dynamic shared memory only (kDecodeCombineSmem; see gemvTileKernel), not sized by splits: the
    // unrolled loop may load a few entries past `used`.
    extern __shared__ __align__(16) float combineSmem[];
    float* weights = combineSmem;
    float* scratch = combineSmem + kMaxDecodeSplits + 8;
    BlockTrace trace(TraceSite::AttentionCombine);
    gridDependencyWait();
    trace.waited();
    allowDependentLaunch();
    const int context = *a.lengthOnDevice + 1;
    const int used = (context + chunk - 1) / chunk;
    // Blocks (head, slice of kDecodeThreads value dimensions): one value dimension per thread.
    const int d0 = blockIdx.y * blockDim.x;
    combineHeadPartials<TO>(a, splits, used, blockIdx.x, weights, scratch, d0, min(a.valueDim, d0 + static_cast<int>(blockDim.x)));
}

}  // namespace

Status setTraceSinkAttention(const TraceSink& s) { return setThisFilesTraceSink(s); }

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
    // Room for the latent kernel's short splits (setLatentShortSplits) where they are used.
    std::size_t splits = (static_cast<std::size_t>(capacity) + kDecodeMinChunk - 1) / kDecodeMinChunk;
    if (splits > static_cast<std::size_t>(kMaxDecodeSplits))
        splits = (static_cast<std::size_t>(capacity) + kChunk - 1) / kChunk;
    return static_cast<std::size_t>(heads) * splits * (valueDim + 2);
}

bool decodeAttentionFusesPrepare(const DecodeAttentionArgs& args) { return args.fusePrepare && decodePrepareFusable(args); }

Status decodeAttention(const DecodeAttentionArgs& args, Stream stream)
{
    if (args.heads <= 0)
        return {};
    DecodeAttentionArgs a = args;
    if (a.fusePrepare && !decodePrepareFusable(a)) {
        // The rotary embedding and cache write as a launch of their own; then the usual path.
        if (Status r = a.latentPrepare.fused ? mlaPrepare(a.latentPrepare, stream) : mhaPrepare(a.prepare, stream); !r.ok())
            return r;
        a.fusePrepare = false;
    }
    if (a.keyDim % 2 || a.keyLd % 2 || a.keyHeadStride % 2 || a.valueDim % 2 || a.valueLd % 2 || a.valueHeadStride % 2)
        return Status::failure("decode attention: key and value dimensions must be even");
    if (a.valueDim > kDecodeThreads * kMaxValuePerThread)
        return Status::failure("decode attention: value dimension too large");
    int splits = (a.capacity + kChunk - 1) / kChunk, chunk = kChunk;
    if (splits > kMaxDecodeSplits)
        return Status::failure("decode attention: more than 65536 positions of context");
    cudaStream_t s = cuStream(stream);
    Status r;
    bool combined = false;
    if (decodeSharedKvSupported(a)) {
        r = decodeSharedKvPartials(a, splits, chunk, s, combined);
    } else {
        const dim3 grid(splits, a.heads);
        const std::size_t smem = static_cast<std::size_t>(a.keyDim) * sizeof(float);
        TESSERA_DISPATCH_DTYPE(a.qType, TQ, TESSERA_DISPATCH_DTYPE(a.cacheType, TC, r = launchOverlapped("decode attention", decodePartialKernel<TQ, TC>, grid, kDecodeThreads, smem, s, a, splits)));
    }
    if (!r.ok() || combined)
        return r;
    const dim3 grid(a.heads, (a.valueDim + kDecodeThreads - 1) / kDecodeThreads);
    TESSERA_DISPATCH_DTYPE(a.outType, TO, r = launchOverlapped("decode attention combine", decodeCombineKernel<TO>, grid, kDecodeThreads, kDecodeCombineSmem, s, a, splits, chunk));
    return r;
}

}  // namespace tessera::kernels
