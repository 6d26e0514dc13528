// One-row products for decode: y = x · Wᵀ over bf16 weights, which makes decode a stream over
// the weights. Blocks copy their rows' weights into shared memory in one go (16-byte cp.async),
// then warps reduce rows against x, which is read through the cache (every block reads the same
// x). Batches cover per-head products and, through a device index list, only the experts a token
// was routed to.
#include "tessera_kernels/gemm.h"

#include "launch_util.cuh"

#include <algorithm>
#include <string>

namespace tessera::kernels {

namespace {

constexpr int kWarps = 4;

struct GemvParams {
    int N, K;
    const void* x;
    long long strideX;
    const bf16* W;
    long long ldw, strideW;
    const int* batchIndex;
    void* y;
    long long strideY;
    const float* bias;
    float beta;
    bool gated;
    int batch;
    int fixedFrom, fixedBase;   // batch entries b >= fixedFrom read matrix fixedBase + b - fixedFrom
    const float* combineWeight; // kCombine: y[r] += Σ_b combineWeight[b] · (x_b · W_b[r])
    const float* normSource;    // kNormX: x = rmsnorm(normSource) · normWeight, made in each block
    const float* normWeight;
    float normEps;
};

__device__ __forceinline__ float dot8(const uint4& w, const float (&x)[8])
{
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&w);
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const float2 f = __bfloat1622float2(h[i]);
        s = fmaf(f.x, x[2 * i], s);
        s = fmaf(f.y, x[2 * i + 1], s);
    }
    return s;
}

__device__ __forceinline__ float silu(float g) { return g / (1.f + expf(-g)); }

// Weight tiles through shared memory: a block owns `rows` consecutive output rows (and, kGated,
// the matching up rows; kCombine, those rows of every batch entry) and copies their weights into
// shared memory with cp.async, all at once, so that a block keeps its whole share of the matrix in
// flight. Copies of rows that do not depend on an earlier kernel (no batchIndex, or fixed entries)
// start before gridDependencyWait(): in a chain of overlapped launches they stream in while the
// kernel before still runs. Warps then take rows in turn; a lane sums 8-element chunks lane,
// lane + 32, ... of its row. kNormX: the block first makes x = RMSNorm(normSource) itself (rounded
// to TX, as a separate norm kernel would store it), which saves the norm's own launch.
enum GemvMode { kPlain = 0, kGatedMode = 1, kCombine = 2 };
// Tiles of about 16 KB: many blocks per SM keep enough bytes in flight, and fine blocks keep
// the last wave short. A row (or a combined row of every entry) may take up to 64 KB alone.
constexpr int kTileBytes = 16 * 1024, kMaxRowBytes = 64 * 1024, kMaxSmem = 160 * 1024;

// 8 consecutive x values from shared memory (the staged input, or the block's normalised x).
__device__ __forceinline__ void loadShared8(const float* x, float (&v)[8])
{
    const float4 a = *reinterpret_cast<const float4*>(x);
    const float4 b = *reinterpret_cast<const float4*>(x + 4);
    v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
    v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
}

__device__ __forceinline__ void loadShared8(const bf16* x, float (&v)[8])
{
    const uint4 u = *reinterpret_cast<const uint4*>(x);
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const float2 f = __bfloat1622float2(h[i]);
        v[2 * i] = f.x;
        v[2 * i + 1] = f.y;
    }
}

template <typename TX, typename TY, int kMode, bool kNormX>
__global__ __launch_bounds__(kWarps * 32) void gemvTileKernel(GemvParams p, int rowsPerBlock)
{
    extern __shared__ __align__(16) uint4 tile[];
    __shared__ float scratch[33];
    const int b = kMode == kCombine ? 0 : blockIdx.y;
    const int r0 = blockIdx.x * rowsPerBlock;
    const int rows = min(rowsPerBlock, p.N - r0);
    const int chunks = p.K / 8;
    const int entries = kMode == kCombine ? p.batch : 1;  // kCombine: every batch entry is in the tile
    const int perEntry = kMode == kGatedMode ? 2 * rows : rows;
    allowDependentLaunch();
    // Copies entry e's rows (kCombine: entry e of the batch; else this block's batch entry).
    auto issue = [&](int e, long long w) {
        const bf16* base = p.W + w * p.strideW;
        uint4* dst = tile + static_cast<long long>(e) * perEntry * chunks;
        for (int c = threadIdx.x; c < perEntry * chunks; c += blockDim.x) {
            const int lr = c / chunks, kc = c - lr * chunks;
            const int row = (kMode == kGatedMode && lr >= rows) ? p.N + r0 + (lr - rows) : r0 + lr;
            copyAsync16(dst + static_cast<long long>(lr) * chunks + kc, base + static_cast<long long>(row) * p.ldw + kc * 8);
        }
    };
    auto fixedIndex = [&](int batch) -> long long {
        if (!p.batchIndex)
            return batch;
        return batch >= p.fixedFrom ? p.fixedBase + batch - p.fixedFrom : -1;
    };
    for (int e = 0; e < entries; ++e) {
        const long long w = fixedIndex(kMode == kCombine ? e : b);
        if (w >= 0)
            issue(e, w);
    }
    copyAsyncCommit();
    gridDependencyWait();
    for (int e = 0; e < entries; ++e) {
        const int batch = kMode == kCombine ? e : b;
        if (fixedIndex(batch) < 0)
            issue(e, p.batchIndex[batch]);
    }
    copyAsyncCommit();

    // x of every entry into shared memory in one round trip (kNormX: made here instead).
    uint4* after = tile + static_cast<long long>(entries) * perEntry * chunks;
    const TX* xStaged = reinterpret_cast<const TX*>(after);
    const long long xChunks = static_cast<long long>(p.K) * sizeof(TX) / 16;
    if (!kNormX) {
        for (int e = 0; e < entries; ++e) {
            const int batch = kMode == kCombine ? e : b;
            const uint4* src = reinterpret_cast<const uint4*>(static_cast<const TX*>(p.x) + batch * p.strideX);
            for (long long c = threadIdx.x; c < xChunks; c += blockDim.x)
                copyAsync16(after + e * xChunks + c, src + c);
        }
        copyAsyncCommit();
    }
    float* xs = nullptr;
    if (kNormX) {
        xs = reinterpret_cast<float*>(after);
        float ss = 0.f;
        for (int k = threadIdx.x; k < p.K; k += blockDim.x)
            ss = fmaf(p.normSource[k], p.normSource[k], ss);
        ss = blockSum(ss, scratch);
        const float inv = rsqrtf(ss / p.K + p.normEps);
        for (int k = threadIdx.x; k < p.K; k += blockDim.x)
            xs[k] = toFloat(fromFloat<TX>(p.normWeight[k] * (p.normSource[k] * inv)));
    }
    copyAsyncWaitAll();
    __syncthreads();

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float* partial = scratch;  // kCombine: one dot product per (entry, row), at most 32
    for (int pair = warp; pair < entries * rows; pair += kWarps) {
        const int e = pair / rows, lr = pair - e * rows;
        const TX* x = xStaged + static_cast<long long>(kMode == kCombine ? e : 0) * p.K;
        const uint4* g = tile + (static_cast<long long>(e) * perEntry + lr) * chunks;
        const uint4* u = g + static_cast<long long>(rows) * chunks;
        float g0 = 0.f, g1 = 0.f, u0 = 0.f, u1 = 0.f;
        int c = lane;
        for (; c + 32 < chunks; c += 64) {
            float xa[8], xb[8];
            if (kNormX) {
                loadShared8(xs + c * 8, xa);
                loadShared8(xs + (c + 32) * 8, xb);
            } else {
                loadShared8(x + c * 8, xa);
                loadShared8(x + (c + 32) * 8, xb);
            }
            g0 += dot8(g[c], xa);
            g1 += dot8(g[c + 32], xb);
            if (kMode == kGatedMode) {
                u0 += dot8(u[c], xa);
                u1 += dot8(u[c + 32], xb);
            }
        }
        if (c < chunks) {
            float xa[8];
            if (kNormX)
                loadShared8(xs + c * 8, xa);
            else
                loadShared8(x + c * 8, xa);
            g0 += dot8(g[c], xa);
            if (kMode == kGatedMode)
                u0 += dot8(u[c], xa);
        }
        const float gs = warpSum(g0 + g1);
        const float us = kMode == kGatedMode ? warpSum(u0 + u1) : 0.f;
        if (lane == 0) {
            if (kMode == kCombine) {
                partial[pair] = gs;
            } else {
                TY* y = static_cast<TY*>(p.y) + b * p.strideY;
                const int r = r0 + lr;
                float o = kMode == kGatedMode ? silu(gs) * us : gs;
                if (p.bias)
                    o += p.bias[r];
                if (p.beta != 0.f)
                    o += p.beta * toFloat(y[r]);
                y[r] = fromFloat<TY>(o);
            }
        }
    }
    if (kMode == kCombine) {
        __syncthreads();
        if (threadIdx.x < rows) {
            float acc = 0.f;
            for (int e = 0; e < entries; ++e)
                acc += partial[e * rows + threadIdx.x] * p.combineWeight[e];
            TY* y = static_cast<TY*>(p.y);
            const int r = r0 + threadIdx.x;
            y[r] = fromFloat<TY>(toFloat(y[r]) + acc);
        }
    }
}

// Any K and alignment (fp32 mode's odd test shapes): one output row per warp, element loads.
template <typename TX, typename TY, bool kGated>
__global__ __launch_bounds__(kWarps * 32) void gemvScalarKernel(GemvParams p)
{
    gridDependencyWait();
    allowDependentLaunch();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int b = blockIdx.y;
    const int r = blockIdx.x * kWarps + warp;
    if (r >= p.N)
        return;
    const long long w = p.batchIndex ? p.batchIndex[b] : b;
    const bf16* W0 = p.W + w * p.strideW + static_cast<long long>(r) * p.ldw;
    const bf16* W1 = W0 + static_cast<long long>(p.N) * p.ldw;  // up row (kGated)
    const TX* x = static_cast<const TX*>(p.x) + b * p.strideX;
    float g0 = 0.f, u0 = 0.f;
    for (int k = lane; k < p.K; k += 32) {
        const float xv = toFloat(x[k]);
        g0 = fmaf(__bfloat162float(W0[k]), xv, g0);
        if (kGated)
            u0 = fmaf(__bfloat162float(W1[k]), xv, u0);
    }
    const float g = warpSum(g0);
    const float u = kGated ? warpSum(u0) : 0.f;
    if (lane == 0) {
        TY* y = static_cast<TY*>(p.y) + b * p.strideY;
        float o = kGated ? silu(g) * u : g;
        if (p.bias)
            o += p.bias[r];
        if (p.beta != 0.f)
            o += p.beta * toFloat(y[r]);
        y[r] = fromFloat<TY>(o);
    }
}

bool aligned16(const void* p) { return (reinterpret_cast<unsigned long long>(p) & 15u) == 0; }

template <typename TX, typename TY, int kMode, bool kNormX>
Status launchTiles(const GemvParams& p, dim3 grid, std::size_t smem, int rows, cudaStream_t s)
{
    auto kernel = gemvTileKernel<TX, TY, kMode, kNormX>;
    static const cudaError_t attribute = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kMaxSmem);
    if (attribute != cudaSuccess)
        return cudaStatus(attribute, "gemv: cudaFuncSetAttribute");
    return launchOverlapped("gemv", kernel, grid, kWarps * 32, smem, s, p, rows);
}

}  // namespace

Status gemv(const GemvArgs& a, Stream stream)
{
    if (a.N <= 0 || a.batch <= 0)
        return {};
    if (a.beta != 0.f && a.yType != DType::F32)
        return Status::failure("gemv: accumulation (beta) needs an F32 output");
    if (a.batch > 65535)
        return Status::failure("gemv: batch count over 65535");
    const bool combine = a.combineWeight != nullptr;
    const bool normX = a.normInput.source != nullptr;
    if (combine && (a.gatedOutput || a.yType != DType::F32 || a.batch > 32 || a.bias))
        return Status::failure("gemv: combining batch entries needs an F32 output, no gating or bias, at most 32 entries");
    if (normX && (a.strideX != 0 && a.batch > 1))
        return Status::failure("gemv: a normalised input is one vector shared by the batch");
    const std::size_t xb = dtypeBytes(a.xType);
    const int perRow = a.gatedOutput ? 2 : 1;
    const std::size_t rowBytes = static_cast<std::size_t>(a.K) * 2 * perRow * (combine ? a.batch : 1);
    // Shared memory after the tile: the normalised x (floats) or the staged x of every entry.
    const std::size_t xBytes = normX ? static_cast<std::size_t>(a.K) * sizeof(float)
                                     : static_cast<std::size_t>(a.K) * xb * (combine ? a.batch : 1);
    const bool vector = a.K % 8 == 0 && a.ldw % 8 == 0 && a.strideW % 8 == 0 && aligned16(a.W) &&
                        (normX || (aligned16(a.x) && (a.strideX * xb) % 16 == 0)) && rowBytes <= kMaxRowBytes &&
                        kMaxRowBytes + xBytes <= kMaxSmem;
    if ((combine || normX) && !vector)
        return Status::failure("gemv: fused combine / norm needs K a multiple of 8, aligned rows and K ≤ " +
                               std::to_string(kMaxRowBytes / (2 * perRow * (combine ? a.batch : 1))));
    GemvParams p{a.N, a.K, a.x, a.strideX, static_cast<const bf16*>(a.W), a.ldw, a.strideW, a.batchIndex,
                 a.y, a.strideY, a.bias, a.beta, a.gatedOutput, a.batch, a.fixedFrom < 0 ? a.batch : a.fixedFrom, a.fixedBase,
                 a.combineWeight, a.normInput.source, a.normInput.weight, a.normInput.eps};
    cudaStream_t s = cuStream(stream);
    Status r;
    if (vector) {
        // Rows per block: as many as fit a tile, but few enough that the grid covers the GPU
        // about twice (small matrices spread over every SM).
        const long long totalRows = static_cast<long long>(a.N) * (combine ? 1 : a.batch);
        // Combined rows carry every entry's x (read from L2 by each block): larger blocks read it less often.
        // A normalised x is made by every block (reading the residual and the norm weight): fewer, larger blocks.
        const std::size_t tileBytes = combine || normX ? 4 * kTileBytes : kTileBytes;
        const int fit = static_cast<int>(std::max<std::size_t>(1, tileBytes / rowBytes));
        const int spread = static_cast<int>(std::max<long long>(1, totalRows / 264));
        const int rows = std::max(1, std::min({fit, spread, combine ? 32 / a.batch : 64}));
        const dim3 grid((a.N + rows - 1) / rows, combine ? 1 : a.batch);
        const std::size_t smem = rows * rowBytes + xBytes;
        TESSERA_DISPATCH_DTYPE(a.xType, TX, TESSERA_DISPATCH_DTYPE(a.yType, TY, {
            if (combine)
                r = normX ? launchTiles<TX, TY, kCombine, true>(p, grid, smem, rows, s) : launchTiles<TX, TY, kCombine, false>(p, grid, smem, rows, s);
            else if (a.gatedOutput)
                r = normX ? launchTiles<TX, TY, kGatedMode, true>(p, grid, smem, rows, s) : launchTiles<TX, TY, kGatedMode, false>(p, grid, smem, rows, s);
            else
                r = normX ? launchTiles<TX, TY, kPlain, true>(p, grid, smem, rows, s) : launchTiles<TX, TY, kPlain, false>(p, grid, smem, rows, s);
        }));
    } else {
        const dim3 grid((a.N + kWarps - 1) / kWarps, a.batch);
        TESSERA_DISPATCH_DTYPE(a.xType, TX, TESSERA_DISPATCH_DTYPE(a.yType, TY, {
            if (a.gatedOutput)
                r = launchOverlapped("gemv", gemvScalarKernel<TX, TY, true>, grid, kWarps * 32, 0, s, p);
            else
                r = launchOverlapped("gemv", gemvScalarKernel<TX, TY, false>, grid, kWarps * 32, 0, s, p);
        }));
    }
    return r;
}

}  // namespace tessera::kernels
