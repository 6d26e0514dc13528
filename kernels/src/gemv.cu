// One-row products for decode: y = x · Wᵀ over bf16 weights, which makes decode a stream over
// the weights. Blocks copy their rows' weights into shared memory in one go (16-byte cp.async),
// then warps reduce rows against x, which is read through the cache (every block reads the same
// x). Batches cover per-head products and, through a device index list, only the experts a token
// was routed to.
#include "tessera_kernels/gemm.h"

#include "dot_util.cuh"
#include "launch_util.cuh"
#include "mbarrier.cuh"
#include "tessera_kernels/runtime.h"
#include "trace.cuh"

#include <algorithm>

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
    int fixedFrom, fixedBase;  // batch entries b >= fixedFrom read matrix fixedBase + b − fixedFrom
    bool triggerLate, indexEarly;  // GemvArgs
    bool evictFirst;               // setGemvEvictFirst
    bool earlyY;                   // beta != 0 and setGemvEarlyY: the old y rows read beside x
    int firstEntry;                // the batch entry of blockIdx.y = 0 (setGemvFixedFirst), 0: none
    bool rowPairs;                 // setGemvRowPairs
};

// The matrix batch entry b reads: b itself without an index list; else the list's entry, or for
// fixed entries (the shared experts) fixedBase + b − fixedFrom without reading the list.
__device__ __forceinline__ long long matrixOf(const GemvParams& p, int b)
{
    if (!p.batchIndex)
        return b;
    return b >= p.fixedFrom ? p.fixedBase + b - p.fixedFrom : p.batchIndex[b];
}

// Output row r from its reduced dot products: silu(gate) · up when gated, + bias, + beta · y (its
// old value: `old` where the caller read it ahead, else read here).
template <typename TY, bool kGated>
__device__ __forceinline__ void storeRow(const GemvParams& p, TY* y, int r, float g, float u, const float* old = nullptr)
{
    float o = kGated ? silu(g) * u : g;
    if (p.bias)
        o += p.bias[r];
    if (p.beta != 0.f)
        o += p.beta * (old ? *old : toFloat(y[r]));
    y[r] = fromFloat<TY>(o);
}

// R weight rows of the tile (local rows lr; with kGated their up rows too) against x by a group of
// L lanes (sl: the lane's place in it), each chunk of x loaded and widened once for all R rows: a
// row's sums are the same, in the same order, whatever R. Lanes with store[r] write row r.
template <typename TX, typename TY, bool kGated, int R>
__device__ __forceinline__ void rowsAgainstX(const GemvParams& p, const uint4* tile, const TX* x, int rows, int chunks, int L, int sl,
                                             const int (&lr)[R], const bool (&store)[R], TY* y, int r0, const float* yOld)
{
    const uint4* g[R];
    const uint4* u[R];
    float g0[R], g1[R], u0[R], u1[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
        g[r] = tile + static_cast<long long>(lr[r]) * chunks;
        u[r] = g[r] + static_cast<long long>(rows) * chunks;
        g0[r] = g1[r] = u0[r] = u1[r] = 0.f;
    }
    int c = sl;
    for (; c + L < chunks; c += 2 * L) {
        float xa[8], xb[8];
        loadShared8(x + c * 8, xa);
        loadShared8(x + (c + L) * 8, xb);
#pragma unroll
        for (int r = 0; r < R; ++r) {
            g0[r] += dot8(g[r][c], xa);
            g1[r] += dot8(g[r][c + L], xb);
            if (kGated) {
                u0[r] += dot8(u[r][c], xa);
                u1[r] += dot8(u[r][c + L], xb);
            }
        }
    }
    if (c < chunks) {
        float xa[8];
        loadShared8(x + c * 8, xa);
#pragma unroll
        for (int r = 0; r < R; ++r) {
            g0[r] += dot8(g[r][c], xa);
            if (kGated)
                u0[r] += dot8(u[r][c], xa);
        }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
        float gs = g0[r] + g1[r], us = kGated ? u0[r] + u1[r] : 0.f;
        for (int o = L / 2; o > 0; o >>= 1) {
            gs += __shfl_xor_sync(0xffffffffu, gs, o);
            if (kGated)
                us += __shfl_xor_sync(0xffffffffu, us, o);
        }
        if (store[r])
            storeRow<TY, kGated>(p, y, r0 + lr[r], gs, us, p.earlyY ? yOld + lr[r] : nullptr);
    }
}

// Weight tiles through shared memory: a block owns `rows` consecutive output rows (and, kGated,
// the matching up rows) of one batch entry and copies their weights into shared memory with
// cp.async, all at once, so that a block keeps its whole share of the matrix in flight. When the
// rows do not depend on an earlier kernel (no batchIndex, or a fixed entry) the copy starts before
// gridDependencyWait(): in a chain of overlapped launches the weights then stream in while the
// kernel before still runs. x follows in the same way after the wait (one round trip); warps then
// take rows in turn, a lane summing 8-element chunks lane, lane + 32, ... of its row.
// Tiles of about 16 KB (gemvTileBytes(); 8 to 64 KB measured slower on tiny and small): many
// blocks per SM keep enough bytes in flight, and fine blocks keep the last wave short. A row may
// take up to 64 KB alone.
// No static shared memory here: the same kernel with its bulk-copy barrier as a 16-byte static
// __shared__ variable decoded 27 to 40 % slower on all three models, with or without bulk copies
// (measured on one H200 against the same code with the barrier in the dynamic shared memory; the
// cause is not known). The decode attention kernels keep theirs dynamic too.
constexpr int kMaxRowBytes = 64 * 1024, kMaxSmem = 130 * 1024, kBulkBarrierBytes = 16;

// kBulk (setGemvBulkMinK): each weight row, and x, arrive as one bulk copy issued by one thread,
// on a barrier after x in the dynamic shared memory (16 bytes more).
template <typename TX, typename TY, bool kGated, bool kBulk>
__global__ __launch_bounds__(kWarps * 32) void gemvTileKernel(GemvParams p, int rowsPerBlock)
{
    extern __shared__ __align__(16) uint4 tile[];
    BlockTrace trace(TraceSite::Gemv, static_cast<unsigned>(p.N));
    // Blocks start in grid order: with firstEntry the fixed entries (the shared experts, whose
    // weights need no routing) come first, so that the blocks resident before the wait copy them.
    const int b = p.firstEntry ? (blockIdx.y + p.firstEntry) % gridDim.y : blockIdx.y;
    const int r0 = blockIdx.x * rowsPerBlock;
    const int rows = min(rowsPerBlock, p.N - r0);
    const int chunks = p.K / 8;
    const int tileRows = kGated ? 2 * rows : rows;
    if (!p.triggerLate)
        allowDependentLaunch();
    uint4* xTile = tile + static_cast<long long>(tileRows) * chunks;
    const uint4* src = reinterpret_cast<const uint4*>(static_cast<const TX*>(p.x) + b * p.strideX);
    const int xChunks = p.K * static_cast<int>(sizeof(TX)) / 16;
    // kBulk: one bulk copy per weight row and one for x, on a barrier after x (the launch's 16
    // extra bytes); otherwise 16-byte copies from every thread.
    const RowCopies copies = kBulk ? RowCopies(static_cast<unsigned>(__cvta_generic_to_shared(xTile + xChunks)), tileRows * p.K * 2 + xChunks * 16)
                                   : RowCopies::none();
    auto issue = [&](long long w) {
        const bf16* base = p.W + w * p.strideW;
        const unsigned long long policy = p.evictFirst ? l2EvictFirstPolicy() : 0;
        if constexpr (kBulk) {
            for (int lr = threadIdx.x; lr < tileRows; lr += blockDim.x) {
                const int row = (kGated && lr >= rows) ? p.N + r0 + (lr - rows) : r0 + lr;
                if (p.evictFirst)
                    copies.row(tile + static_cast<long long>(lr) * chunks, base + static_cast<long long>(row) * p.ldw, p.K * 2, policy);
                else
                    copies.row(tile + static_cast<long long>(lr) * chunks, base + static_cast<long long>(row) * p.ldw, p.K * 2);
            }
        } else {
            for (int c = threadIdx.x; c < tileRows * chunks; c += blockDim.x) {
                const int lr = c / chunks, kc = c - lr * chunks;
                const int row = (kGated && lr >= rows) ? p.N + r0 + (lr - rows) : r0 + lr;
                if (p.evictFirst)
                    copyAsync16Hint(tile + static_cast<long long>(lr) * chunks + kc, base + static_cast<long long>(row) * p.ldw + kc * 8, policy);
                else
                    copyAsync16(tile + static_cast<long long>(lr) * chunks + kc, base + static_cast<long long>(row) * p.ldw + kc * 8);
            }
        }
    };
    // matrixOf(p, b), split at the wait: a fixed entry's matrix does not come from an earlier
    // kernel, nor with indexEarly the index list.
    const bool early = !p.batchIndex || b >= p.fixedFrom || p.indexEarly;
    if (early)
        issue(matrixOf(p, b));
    gridDependencyWait();
    trace.waited();
    if (p.triggerLate)
        allowDependentLaunch();
    if (!early)
        issue(p.batchIndex[b]);
    // earlyY: the rows' old values (the residual the product adds to) in flight beside x.
    TY* y = static_cast<TY*>(p.y) + b * p.strideY;
    float* yOld = reinterpret_cast<float*>(xTile + xChunks + (kBulk ? 1 : 0));
    if (p.earlyY && threadIdx.x < rows)
        yOld[threadIdx.x] = toFloat(y[r0 + threadIdx.x]);
    if constexpr (kBulk) {
        if (threadIdx.x == blockDim.x - 1)
            copies.row(xTile, src, xChunks * 16);
        copies.wait();
    } else {
        for (int c = threadIdx.x; c < xChunks; c += blockDim.x)
            copyAsync16(xTile + c, src + c);
        copyAsyncCommit();
        copyAsyncWaitAll();
    }
    __syncthreads();
    trace.mark(0);  // the rows and x in shared memory

    const TX* x = reinterpret_cast<const TX*>(xTile);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    // Rows of few chunks (K ≤ 128: per-head products) go to groups of L = 16, 8, ... lanes, so that
    // a warp reduces 32 / L rows at a time; the loop bounds stay uniform over the warp (shuffles).
    int L = 32;
    while (L > 1 && L / 2 >= chunks)
        L /= 2;
    const int per = 32 / L, sub = lane / L, sl = lane % L;
    if (L == 32 && p.rowPairs) {
        // Two rows at a time (rows w and w + kWarps of warp w), each chunk of x loaded and widened
        // once for both.
        for (int base = warp; base < rows; base += 2 * kWarps) {
            if (base + kWarps < rows) {
                const int lr[2] = {base, base + kWarps};
                const bool store[2] = {sl == 0, sl == 0};
                rowsAgainstX<TX, TY, kGated, 2>(p, tile, x, rows, chunks, L, sl, lr, store, y, r0, yOld);
            } else {
                const int lr[1] = {base};
                const bool store[1] = {sl == 0};
                rowsAgainstX<TX, TY, kGated, 1>(p, tile, x, rows, chunks, L, sl, lr, store, y, r0, yOld);
            }
        }
        return;
    }
    for (int base = warp * per; base < rows; base += kWarps * per) {
        const int lr[1] = {min(base + sub, rows - 1)};
        const bool store[1] = {sl == 0 && base + sub < rows};
        rowsAgainstX<TX, TY, kGated, 1>(p, tile, x, rows, chunks, L, sl, lr, store, y, r0, yOld);
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
    const long long w = matrixOf(p, b);
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
    if (lane == 0)
        storeRow<TY, kGated>(p, static_cast<TY*>(p.y) + b * p.strideY, r, g, u);
}

// Rows of `rowBytes` that fit a tile of `tileBytes` (at least one; two where one would be alone and
// setGemvTwoRows is on).
int rowsPerTile(std::size_t tileBytes, std::size_t rowBytes, std::size_t xBytes)
{
    int fit = static_cast<int>(std::max<std::size_t>(1, std::min<std::size_t>(tileBytes, kMaxSmem - xBytes) / rowBytes));
    if (fit == 1 && gemvTwoRowsEnabled() && 2 * rowBytes + xBytes <= kMaxSmem)
        fit = 2;
    return fit;
}

// setGemvWideTiles: a product of at least kWideRows rows (the lm_head) takes tiles of
// kWideTileBytes. Measured on one machine, medians of 3, against 16 KB: 32 KB tiny +0.3 %, small
// +0.1 %, base +0.2 to +0.4 % (twice); 64 KB tiny −1.8 %, 8 KB −1.3 %. Alone, the lm_head streams
// at 4.3–4.4 TB/s with 16 KB tiles and 4.45–4.55 with 32 KB.
constexpr int kWideRows = 32768, kWideTileBytes = 32 * 1024;

// A large product: one over routed experts whose grid of the usual tiles would pass this many
// blocks (small's and base's experts, not tiny's). It takes larger tiles (expertTileRows) and no
// early row copies (gemv()).
constexpr long long kLargeExpertGrid = 3000;

// setGemvExpertTiles: a large product takes larger tiles, 24 KB (the down product) or 32 KB
// (gate/up rows), in fewer blocks. Measured on one machine, medians of 3, against 16 KB: the down
// product at 24 KB small +1.4 %, base +0.9 %, at 32 KB +0.4 %, +0.4 %; gate/up at 32 KB small
// +1.3 %, base +0.6 %, at 24 KB −0.4 %, +0.3 %; tiny's (1,144 and 2,392 blocks) lost 1.5 % (down
// at 24 KB) and 0.4 % (gate/up at 32 KB). usual: the rows of the usual tile. Returns the rows per
// block.
int expertTileRows(const GemvArgs& a, bool large, int usual, std::size_t rowBytes, std::size_t xBytes)
{
    if (!large || !gemvExpertTilesEnabled())
        return usual;
    return std::max(usual, rowsPerTile((a.gatedOutput ? 32 : 24) * 1024, rowBytes, xBytes));
}

template <typename TX, typename TY, bool kGated>
Status launchTiles(const GemvParams& p, dim3 grid, std::size_t smem, int rows, bool bulk, cudaStream_t s)
{
    auto kernel = gemvTileKernel<TX, TY, kGated, false>;
    auto bulkKernel = gemvTileKernel<TX, TY, kGated, true>;
    static const Status attribute = allowSharedMemory("gemv", kMaxSmem, kernel, bulkKernel);
    if (!attribute.ok())
        return attribute;
    return launchOverlapped("gemv", bulk ? bulkKernel : kernel, grid, kWarps * 32, smem, s, p, rows);
}

}  // namespace

Status setTraceSinkGemv(const TraceSink& s) { return setThisFilesTraceSink(s); }

Status gemv(const GemvArgs& a, Stream stream)
{
    if (a.N <= 0 || a.batch <= 0)
        return {};
    if (a.beta != 0.f && a.yType != DType::F32)
        return Status::failure("gemv: accumulation (beta) needs an F32 output");
    if (a.batch > 65535)
        return Status::failure("gemv: batch count over 65535");
    const std::size_t xb = dtypeBytes(a.xType);
    const int perRow = a.gatedOutput ? 2 : 1;
    const std::size_t rowBytes = static_cast<std::size_t>(a.K) * 2 * perRow;
    const int bulkMinK = gemvBulkMinK();
    const bool bulk = bulkMinK > 0 && a.K >= bulkMinK;
    // x staged after the tile (with bulk copies, their barrier after x)
    const std::size_t xBytes = static_cast<std::size_t>(a.K) * xb + (bulk ? kBulkBarrierBytes : 0);
    const bool vector = a.K % 8 == 0 && a.ldw % 8 == 0 && a.strideW % 8 == 0 && aligned16(a.W) && aligned16(a.x) &&
                        (a.strideX * xb) % 16 == 0 && rowBytes <= kMaxRowBytes && kMaxRowBytes + xBytes <= kMaxSmem;
    GemvParams p{a.N, a.K, a.x, a.strideX, static_cast<const bf16*>(a.W), a.ldw, a.strideW, a.batchIndex,
                 a.y, a.strideY, a.bias, a.beta, a.gatedOutput, a.fixedFrom < 0 ? a.batch : a.fixedFrom, a.fixedBase,
                 a.triggerLate, a.indexEarly, gemvEvictFirstEnabled(), false, 0, gemvRowPairsEnabled()};
    cudaStream_t s = cuStream(stream);
    Status r;
    if (vector) {
        // Rows per block: as many as fit a tile, but few enough that the grid covers the GPU
        // about twice (small matrices spread over every SM).
        const long long totalRows = static_cast<long long>(a.N) * a.batch;
        const bool wide = a.N >= kWideRows && a.batch == 1 && gemvWideTilesEnabled();
        const int usual = rowsPerTile(wide ? kWideTileBytes : gemvTileBytes(), rowBytes, xBytes);
        const bool large = a.batchIndex && totalRows / usual > kLargeExpertGrid;
        const int fit = expertTileRows(a, large, usual, rowBytes, xBytes);
        // setDownRowsEarly: the routed rows before the wait only where the product is not large.
        // Measured on one machine, medians of 3: tiny's down product (1,144 blocks) +0.6 % with
        // them; small's and base's (3,277 and 4,096) +2.6 % and +1.9 % without.
        p.indexEarly = a.indexEarly && downRowsEarlyEnabled() && !large;
        // Short rows are reduced several to a warp: more, smaller blocks keep as many warps busy.
        const long long target = a.K <= 512 ? 132 * 4 : 264;
        const int spread = static_cast<int>(std::max<long long>(1, totalRows / target));
        int rows = std::max(1, std::min({fit, spread, 64}));
        // setGemvEvenRows: with row pairs a block of 8 rows ends after one pair a warp; 6 or 7 rows
        // leave two or three warps a single row beside the others' pairs, 9 to 11 give some warps a
        // second round, and the block ends with its slowest warp. So 6 to 11 rows become 8, where a
        // warp takes whole rows (more than 16 chunks: the kernel's L is 32) and 8 fit the shared
        // memory and keep the grid's spread. Measured on one machine, medians of 3:
        // tiny's down product 9 → 8 rows +1.9 % (twice, +1.8 %), its input product 6 → 8 +1.1 %;
        // small and base ±0.1 %. (6 → 4 rows: tiny +0.4 %, base −1.2 %; the lm_head's 12 → 16
        // rows: ±0.1 %.)
        if (gemvEvenRowsEnabled() && p.rowPairs && a.K / 8 > 16 && rows >= 6 && rows <= 11 &&
            2 * kWarps * rowBytes + xBytes <= kMaxSmem && 2 * kWarps <= spread)
            rows = 2 * kWarps;
        const dim3 grid((a.N + rows - 1) / rows, a.batch);
        p.earlyY = a.beta != 0.f && gemvEarlyYEnabled() && rows * rowBytes + xBytes + rows * sizeof(float) <= kMaxSmem;
        // Fixed entries behind routed ones whose index arrives only with the wait: the fixed first.
        if (a.batchIndex && p.fixedFrom > 0 && p.fixedFrom < a.batch && !p.indexEarly && gemvFixedFirstEnabled())
            p.firstEntry = p.fixedFrom;
        const std::size_t smem = rows * rowBytes + xBytes + (p.earlyY ? rows * sizeof(float) : 0);
        TESSERA_DISPATCH_DTYPE(a.xType, TX, TESSERA_DISPATCH_DTYPE(a.yType, TY, {
            r = a.gatedOutput ? launchTiles<TX, TY, true>(p, grid, smem, rows, bulk, s)
                              : launchTiles<TX, TY, false>(p, grid, smem, rows, bulk, s);
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
