// RMSNorm and LayerNorm, fp32 statistics (LayerNorm in two passes so that the variance does not
// cancel): a block per row, or for LayerNorm of rows up to 2048 wide a warp per row.
#include "tessera_kernels/norm.h"

#include "launch_util.cuh"
#include "trace.cuh"

namespace tessera::kernels {

namespace {

int threadsFor(int n) { return n >= 1024 ? 256 : n >= 256 ? 128 : 64; }

// A row of up to kNormRegs · blockDim values is held in registers: every load of a thread in flight
// at once, the weights read before the wait (a decode row of 1280 took five dependent round trips
// to memory, then five more). Longer rows loop. The same sums in the same order either way.
constexpr int kNormRegs = 8;

// With kEmbed, row r is the embedding row ids[r] of the bf16 table instead of x's row r (x is not
// read), widened and also stored into row r of `rows` (n floats a row): the embedding and the
// first norm of a decode step in one launch, with the same sums as embedRows and then rmsNorm.
struct EmbedSource {
    const bf16* table = nullptr;
    const int* ids = nullptr;
    float* rows = nullptr;
};

template <typename TO, bool kEmbed>
__global__ void rmsNormKernel(const float* __restrict__ x, long long ldx, int n, const float* __restrict__ w, float eps,
                              TO* __restrict__ out, long long ldo, EmbedSource embed)
{
    __shared__ float scratch[33];
    BlockTrace trace(TraceSite::RmsNorm);
    const bool held = n <= kNormRegs * static_cast<int>(blockDim.x);
    float xv[kNormRegs], wv[kNormRegs];
    if (held) {
#pragma unroll
        for (int j = 0; j < kNormRegs; ++j) {
            const int i = threadIdx.x + j * blockDim.x;
            wv[j] = i < n ? w[i] : 0.f;
        }
    }
    gridDependencyWait();
    trace.waited();
    allowDependentLaunch();
    const float* xr = x + blockIdx.x * ldx;
    TO* o = out + blockIdx.x * ldo;
    float ss = 0.f;
    const bf16* __restrict__ src = kEmbed ? embed.table + static_cast<long long>(embed.ids[blockIdx.x]) * n : nullptr;
    float* __restrict__ xw = kEmbed ? embed.rows + static_cast<long long>(blockIdx.x) * n : nullptr;
    if (held) {
        if constexpr (kEmbed) {
#pragma unroll
            for (int j = 0; j < kNormRegs; ++j) {
                const int i = threadIdx.x + j * blockDim.x;
                xv[j] = i < n ? __bfloat162float(src[i]) : 0.f;
            }
#pragma unroll
            for (int j = 0; j < kNormRegs; ++j) {
                const int i = threadIdx.x + j * blockDim.x;
                if (i < n)
                    xw[i] = xv[j];
            }
        } else {
#pragma unroll
            for (int j = 0; j < kNormRegs; ++j) {
                const int i = threadIdx.x + j * blockDim.x;
                xv[j] = i < n ? xr[i] : 0.f;
            }
        }
#pragma unroll
        for (int j = 0; j < kNormRegs; ++j)
            if (threadIdx.x + j * blockDim.x < n)
                ss = fmaf(xv[j], xv[j], ss);
    } else {
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            float v;
            if constexpr (kEmbed) {
                v = __bfloat162float(src[i]);
                xw[i] = v;
            } else {
                v = xr[i];
            }
            ss = fmaf(v, v, ss);
        }
    }
    ss = blockSum(ss, scratch);
    const float inv = rsqrtf(ss / n + eps);
    if (held) {
#pragma unroll
        for (int j = 0; j < kNormRegs; ++j) {
            const int i = threadIdx.x + j * blockDim.x;
            if (i < n)
                o[i] = fromFloat<TO>(wv[j] * (xv[j] * inv));
        }
        return;
    }
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        o[i] = fromFloat<TO>(w[i] * ((kEmbed ? __bfloat162float(src[i]) : xr[i]) * inv));  // the stored row is not read back
}

template <typename TO>
__global__ void layerNormKernel(const float* x, long long ldx, int n, const float* gamma, const float* beta, float eps,
                                TO* out, long long ldo)
{
    __shared__ float scratch[33];
    const float* xr = x + blockIdx.x * ldx;
    TO* o = out + blockIdx.x * ldo;
    float s = 0.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        s += xr[i];
    const float mean = blockSum(s, scratch) / n;
    float v = 0.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float d = xr[i] - mean;
        v = fmaf(d, d, v);
    }
    const float var = blockSum(v, scratch) / n;
    const float inv = rsqrtf(var + eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        o[i] = fromFloat<TO>((xr[i] - mean) * inv * gamma[i] + (beta ? beta[i] : 0.f));
}

// LayerNorm of rows of n ≤ 128·NV values (n a multiple of 4): one warp per row, the row held in
// registers (one read), float4 loads, warp-only reductions; the same two passes.
template <typename TO, int NV>
__global__ __launch_bounds__(128) void layerNormWarpKernel(const float* x, long long ldx, int rows, int n, const float* gamma,
                                                           const float* beta, float eps, TO* out, long long ldo)
{
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const long long row = static_cast<long long>(blockIdx.x) * 4 + warp;
    if (row >= rows)
        return;
    const float* xr = x + row * ldx;
    const int n4 = n / 4;
    float4 v[NV];
    float s = 0.f;
#pragma unroll
    for (int j = 0; j < NV; ++j) {
        const int i = lane + 32 * j;
        v[j] = i < n4 ? load4(xr + 4 * i) : make_float4(0.f, 0.f, 0.f, 0.f);
        s += (v[j].x + v[j].y) + (v[j].z + v[j].w);
    }
    const float mean = warpSum(s) / n;
    float var = 0.f;
#pragma unroll
    for (int j = 0; j < NV; ++j)
        if (lane + 32 * j < n4) {
            const float a = v[j].x - mean, b = v[j].y - mean, c = v[j].z - mean, d = v[j].w - mean;
            var = fmaf(a, a, fmaf(b, b, fmaf(c, c, fmaf(d, d, var))));
        }
    const float inv = rsqrtf(warpSum(var) / n + eps);
    TO* o = out + row * ldo;
#pragma unroll
    for (int j = 0; j < NV; ++j) {
        const int i = lane + 32 * j;
        if (i >= n4)
            continue;
        const float4 g = load4(gamma + 4 * i);
        const float4 b = beta ? load4(beta + 4 * i) : make_float4(0.f, 0.f, 0.f, 0.f);
        store4(o + 4 * i, make_float4((v[j].x - mean) * inv * g.x + b.x, (v[j].y - mean) * inv * g.y + b.y,
                                      (v[j].z - mean) * inv * g.z + b.z, (v[j].w - mean) * inv * g.w + b.w));
    }
}

template <typename TO>
Status layerNormWarp(const float* x, long long ldx, int rows, int n, const float* gamma, const float* beta, float eps, TO* out,
                     long long ldo, cudaStream_t s)
{
    const unsigned blocks = static_cast<unsigned>((rows + 3) / 4);
    const int per = (n / 4 + 31) / 32;  // float4 per lane
    if (per <= 4)
        layerNormWarpKernel<TO, 4><<<blocks, 128, 0, s>>>(x, ldx, rows, n, gamma, beta, eps, out, ldo);
    else if (per <= 8)
        layerNormWarpKernel<TO, 8><<<blocks, 128, 0, s>>>(x, ldx, rows, n, gamma, beta, eps, out, ldo);
    else if (per <= 12)
        layerNormWarpKernel<TO, 12><<<blocks, 128, 0, s>>>(x, ldx, rows, n, gamma, beta, eps, out, ldo);
    else
        layerNormWarpKernel<TO, 16><<<blocks, 128, 0, s>>>(x, ldx, rows, n, gamma, beta, eps, out, ldo);
    return launchStatus("layer_norm");
}

}  // namespace

Status setTraceSinkNorm(const TraceSink& s) { return setThisFilesTraceSink(s); }

Status rmsNorm(const float* x, std::int64_t ldx, int rows, int n, const float* weight, float eps, void* out,
               DType outType, std::int64_t ldo, Stream stream)
{
    if (rows <= 0)
        return {};
    Status r;
    TESSERA_DISPATCH_DTYPE(outType, T, r = launchOverlapped("rms_norm", rmsNormKernel<T, false>, rows, threadsFor(n), 0, cuStream(stream), x, ldx, n, weight, eps, static_cast<T*>(out), ldo, EmbedSource{}));
    return r;
}

Status embedRmsNorm(const std::uint16_t* table, const std::int32_t* ids, int rows, int n, float* embedded, const float* weight,
                    float eps, void* out, DType outType, std::int64_t ldo, Stream stream)
{
    if (rows <= 0)
        return {};
    const EmbedSource embed{reinterpret_cast<const bf16*>(table), ids, embedded};
    const float* none = nullptr;  // x: the rows come from the table
    Status r;
    TESSERA_DISPATCH_DTYPE(outType, T, r = launchOverlapped("embed_tokens + rms_norm", rmsNormKernel<T, true>, rows, threadsFor(n), 0, cuStream(stream), none, 0ll, n, weight, eps, static_cast<T*>(out), ldo, embed));
    return r;
}

Status layerNorm(const float* x, std::int64_t ldx, int rows, int n, const float* gamma, const float* beta, float eps,
                 void* out, DType outType, std::int64_t ldo, Stream stream)
{
    if (rows <= 0)
        return {};
    const std::size_t ob = dtypeBytes(outType);
    if (n % 4 == 0 && n <= 128 * 16 && ldx % 4 == 0 && ldo % 4 == 0 && aligned16(x) && aligned16(gamma) && (!beta || aligned16(beta)) &&
        (reinterpret_cast<unsigned long long>(out) & (4 * ob - 1)) == 0) {
        Status r;
        TESSERA_DISPATCH_DTYPE(outType, T, r = layerNormWarp<T>(x, ldx, rows, n, gamma, beta, eps, static_cast<T*>(out), ldo, cuStream(stream)));
        return r;
    }
    TESSERA_DISPATCH_DTYPE(outType, T, layerNormKernel<T><<<rows, threadsFor(n), 0, cuStream(stream)>>>(x, ldx, n, gamma, beta, eps, static_cast<T*>(out), ldo));
    return launchStatus("layer_norm");
}

}  // namespace tessera::kernels
