// Decode attention on the tensor cores: one block per (split of 64 positions, kv head) computes
// every head that reads that kv head (MLA: all heads share one latent row set, in blocks of 16
// heads; MHA: one head, padded to the 16 rows of an mma tile). S = Q·Kᵀ, soft-max within the
// split, P·V; the blocks write (max, sum, acc) partials for the combine pass. The rows arrive all
// in flight at once: MHA's 256-byte rows through 16-byte cp.async from every thread, the latent
// 1152-byte rows as one bulk copy each (RowCopies). Measured: bulk copies made the MHA kernel
// slower (15.6 against 13.2 µs, tiny), and the latent one faster (16.7 → 15.3 µs, base).
#include "attention_internal.cuh"
#include "mbarrier.cuh"
#include "mma_util.cuh"
#include "tessera_kernels/runtime.h"
#include "trace.cuh"

#include <cooperative_groups.h>

#include <map>
#include <mutex>

namespace tessera::kernels {

namespace {

namespace cg = cooperative_groups;

constexpr int kDecWarps = 4, kMaxValueTilesPerWarp = 32, kMaxHeadsPerKv = 64;
// decodeClusterKernel: kGroups splits a block, a group of kDecWarps warps each; its clusters hold
// kClusterSplits splits (kDecodeClusterContext positions).
constexpr int kGroups = 4, kClusterSplits = 32;
constexpr int kScoresLd = kDecodeChunk + 8;  // a row of a split's scores in shared memory (floats)
constexpr int kGroupWarps = kGroups * kDecWarps, kGroupRows = kGroups * kDecodeChunk, kClusterBlocks = kClusterSplits / kGroups;
static_assert(kClusterSplits * kDecodeChunk == kDecodeClusterContext, "attention.h's bound of the clusters' contexts");

int roundUp(int v, int m) { return (v + m - 1) / m * m; }

struct DecodeMmaShape {
    int HP, KP, LD, VP, LDV, mTiles, groups, tilesPerWarp;
    bool separateV;
    bool triggerLate;  // attentionTriggerLateEnabled()
    bool mergeRelease;  // attentionMergeReleaseEnabled()
    bool splitScores;   // attentionSplitScoresEnabled()
    int scoresOffset;   // splitScores: each split's scores (HP × kScoresLd floats) in shared memory
    int partsOffset;    // decodeClusterKernel: its splits' partials and its merge's inbox in shared memory
    int barrierOffset;  // decodeClusterKernel: the inbox's barrier (asyncStores)
    bool asyncStores;   // clusterAsyncStoresEnabled()
    bool spreadSplits;  // attentionSpreadSplitsEnabled()
    std::size_t smem;
};

// rows: the cache positions a block holds (kDecodeChunk, or kGroupRows for decodeClusterKernel, whose
// shared memory also keeps the partials of its splits and the inbox of mergeInCluster).
DecodeMmaShape decodeMmaShape(const DecodeAttentionArgs& a, int rows = kDecodeChunk)
{
    DecodeMmaShape s{};
    s.HP = roundUp(a.headsPerKv, 16);
    s.KP = roundUp(a.keyDim, 16);
    s.LD = s.KP + 8;
    s.separateV = a.values != a.keys || a.valueLd != a.keyLd || a.valueHeadStride != a.keyHeadStride;
    s.VP = roundUp(a.valueDim, 16);
    s.LDV = s.separateV ? s.VP + 8 : s.LD;
    s.mTiles = s.HP / 16;
    s.groups = kDecWarps / s.mTiles;
    s.tilesPerWarp = s.groups > 0 ? (a.valueDim / 8 + s.groups - 1) / s.groups : 0;
    s.smem = (static_cast<std::size_t>(rows + s.HP) * s.LD + (s.separateV ? static_cast<std::size_t>(rows) * s.LDV : 0)) * 2;
    if (rows > kDecodeChunk) {
        s.partsOffset = static_cast<int>((s.smem + 15) / 16 * 16);
        // The block's splits' partials, then the inbox of mergeInCluster: with `live` blocks holding
        // positions, up to kGroups · live splits' maxima, sums and shares of ⌈valueDim / live⌉
        // columns, at most kGroups · (valueDim + 3 · live) floats a head.
        s.smem = s.partsOffset + static_cast<std::size_t>(rows / kDecodeChunk) * a.headsPerKv * (a.valueDim + 2) * sizeof(float) +
                 static_cast<std::size_t>(kGroups) * a.headsPerKv * (a.valueDim + 3 * kClusterBlocks) * sizeof(float);
        s.barrierOffset = static_cast<int>((s.smem + 7) / 8 * 8);
        s.smem = s.barrierOffset + 8;
        s.asyncStores = clusterAsyncStoresEnabled();
        s.spreadSplits = attentionSpreadSplitsEnabled();
    }
    s.splitScores = attentionSplitScoresEnabled();
    if (s.splitScores) {
        s.scoresOffset = static_cast<int>((s.smem + 15) / 16 * 16);
        s.smem = s.scoresOffset + static_cast<std::size_t>(rows / kDecodeChunk) * s.HP * kScoresLd * sizeof(float);
    }
    s.triggerLate = attentionTriggerLateEnabled();
    s.mergeRelease = attentionMergeReleaseEnabled();
    return s;
}

// Zeros in the padding of a rows × cols tile whose first validRows rows hold validCols copied
// columns (both multiples of 8): the rows past validRows, and the columns past validCols. A warp
// per row, 16 bytes per lane.
__device__ __forceinline__ void zeroPadding(bf16* dst, int ld, int rows, int validRows, int cols, int validCols)
{
    const int warp = threadIdx.x >> 5, warps = blockDim.x >> 5, lane = threadIdx.x & 31;
    for (int r = warp; r < rows; r += warps)
        for (int d = (r < validRows ? validCols : 0) + lane * 8; d < cols; d += 256)
            *reinterpret_cast<uint4*>(dst + r * ld + d) = make_uint4(0, 0, 0, 0);
}

// rows × cols (cols a multiple of 8) of a bf16 matrix into smem (zero outside rows / valid cols).
// Row skipRow is left out (the caller loads it later with loadRow).
__device__ __forceinline__ void loadRows(bf16* dst, int ldDst, const bf16* src, long long ldSrc, int rows, int validRows,
                                         int cols, int validCols, int skipRow = -1)
{
    const int chunks = cols / 8;
    const bool pow2 = (chunks & (chunks - 1)) == 0;  // MHA's 128-wide heads: a shift, not a division
    const int shift = __ffs(chunks) - 1;
    for (int c = threadIdx.x; c < rows * chunks; c += blockDim.x) {
        const int r = pow2 ? c >> shift : c / chunks, d = (pow2 ? c & (chunks - 1) : c % chunks) * 8;
        if (r == skipRow)
            continue;
        const bool valid = r < validRows && d < validCols;
        copyAsync16(dst + r * ldDst + d, valid ? src + static_cast<long long>(r) * ldSrc + d : src, valid);
    }
}

__device__ __forceinline__ void loadRow(bf16* dst, int ldDst, const bf16* src, long long ldSrc, int r, int cols, int validCols)
{
    for (int d = threadIdx.x * 8; d < cols; d += blockDim.x * 8)
        copyAsync16(dst + r * ldDst + d, d < validCols ? src + static_cast<long long>(r) * ldSrc + d : src, d < validCols);
}

// With a.fusePrepare (MHA): the block's queries rotated from the q | k | v row into qs (rows past
// headsPerKv and columns past keyDim zero), and, where the newest position is in this split
// (fresh >= 0), its key rotated and its value into the tiles and the cache. The arithmetic of
// mhaPrepareKernel (rotatePair, rounded to bf16 where that kernel stores). A thread's loads of the
// new key and value come first, beside the queries' (one round trip to memory: loads after the
// stores into qs would wait for those).
__device__ __forceinline__ void prepareInBlock(const DecodeAttentionArgs& a, const DecodeMmaShape& sh, bf16* qs, bf16* ks, bf16* vs,
                                               int kvh, int h0, int pos, int fresh, bf16* keyRow, bf16* valueRow)
{
    const MhaPrepareArgs& p = a.prepare;
    const int hd = p.headDim, half = hd / 2, qw = p.heads * hd, kw = p.kvHeads * hd;
    const bf16* row = static_cast<const bf16*>(p.qkv);
    const float* c = p.rotary.cos + static_cast<long long>(pos) * half;
    const float* s = p.rotary.sin + static_cast<long long>(pos) * half;
    const bf16* kin = row + qw + kvh * hd;
    const bf16* vin = row + qw + kw + kvh * hd;
    const int t = threadIdx.x;
    const bool keyFirst = fresh >= 0 && t < half, valueFirst = fresh >= 0 && t < hd;
    float2 keyPair = make_float2(0.f, 0.f), keyAngle = make_float2(0.f, 0.f);
    bf16 value = __float2bfloat16_rn(0.f);
    if (keyFirst) {
        keyPair = make_float2(__bfloat162float(kin[t]), __bfloat162float(kin[half + t]));
        keyAngle = make_float2(c[t], s[t]);
    }
    if (valueFirst)
        value = vin[t];
    for (int e = t; e < sh.HP * half; e += blockDim.x) {
        const int l = e / half, i = e - l * half;
        float2 y = make_float2(0.f, 0.f);
        if (l < a.headsPerKv) {
            const bf16* in = row + (h0 + l) * hd;
            y = rotatePair(__bfloat162float(in[i]), __bfloat162float(in[half + i]), c[i], s[i]);
        }
        qs[l * sh.LD + i] = __float2bfloat16_rn(y.x);
        qs[l * sh.LD + half + i] = __float2bfloat16_rn(y.y);
    }
    for (int e = t; e < sh.HP * (sh.KP - hd); e += blockDim.x) {
        const int l = e / (sh.KP - hd);
        qs[l * sh.LD + hd + (e - l * (sh.KP - hd))] = __float2bfloat16_rn(0.f);
    }
    if (fresh < 0)
        return;
    for (int i = t; i < half; i += blockDim.x) {
        const float2 y = i == t ? rotatePair(keyPair.x, keyPair.y, keyAngle.x, keyAngle.y)
                                : rotatePair(__bfloat162float(kin[i]), __bfloat162float(kin[half + i]), c[i], s[i]);
        const bf16 y0 = __float2bfloat16_rn(y.x), y1 = __float2bfloat16_rn(y.y);
        ks[fresh * sh.LD + i] = y0;
        ks[fresh * sh.LD + half + i] = y1;
        keyRow[i] = y0;
        keyRow[half + i] = y1;
    }
    for (int d = t; d < hd; d += blockDim.x) {
        const bf16 v = d == t ? value : vin[d];
        vs[fresh * sh.LDV + d] = v;
        valueRow[d] = v;
    }
    for (int d = hd + t; d < sh.KP; d += blockDim.x)
        ks[fresh * sh.LD + d] = __float2bfloat16_rn(0.f);
    for (int d = hd + t; d < sh.VP; d += blockDim.x)
        vs[fresh * sh.LDV + d] = __float2bfloat16_rn(0.f);
}

// The cache rows a decode step reads are old except the newest (context − 1), which the kernel
// before writes: a block copies the old rows of its split before gridDependencyWait() and the
// newest row and the queries after it (the length: see leaveEarly). Returns the newest row's index
// within the split, or −1.
__device__ __forceinline__ int newestRow(int context, int j0, int count)
{
    const int r = context - 1 - j0;
    return r < count ? r : -1;
}

// A decode block's tiles: the old rows of its `rows` positions from j0 (count of them hold
// context) before gridDependencyWait(), then its queries and the newest row (fresh >= 0), or with
// a.fusePrepare their rotation and cache write (prepareInBlock). Returns with every copy landed
// and the block past a barrier (decodeMmaKernel's and decodeClusterKernel's first work).
__device__ __forceinline__ void loadTiles(const DecodeAttentionArgs& a, const DecodeMmaShape& sh, bf16* ks, bf16* qs, bf16* vs, int j0,
                                          int rows, int count, int fresh, int kvh, int h0, int context, BlockTrace& trace)
{
    const bf16* K = static_cast<const bf16*>(a.keys) + kvh * a.keyHeadStride + static_cast<long long>(j0) * a.keyLd;
    const bf16* V = static_cast<const bf16*>(a.values) + kvh * a.valueHeadStride + static_cast<long long>(j0) * a.valueLd;
    const bf16* Q = static_cast<const bf16*>(a.q) + h0 * a.qHeadStride;
    loadRows(ks, sh.LD, K, a.keyLd, rows, count, sh.KP, a.keyDim, fresh);
    if (sh.separateV)
        loadRows(vs, sh.LDV, V, a.valueLd, rows, count, sh.VP, a.valueDim, fresh);
    gridDependencyWait();
    trace.waited();
    if (!sh.triggerLate)
        allowDependentLaunch();
    if (a.fusePrepare) {
        const long long at = static_cast<long long>(context - 1) * a.keyLd + kvh * a.keyHeadStride;
        prepareInBlock(a, sh, qs, ks, vs, kvh, h0, context - 1, fresh, static_cast<bf16*>(a.prepare.keys) + at,
                       static_cast<bf16*>(a.prepare.values) + at);
    } else {
        loadRows(qs, sh.LD, Q, a.qHeadStride, sh.HP, a.headsPerKv, sh.KP, a.keyDim);
        if (fresh >= 0) {
            loadRow(ks, sh.LD, K, a.keyLd, fresh, sh.KP, a.keyDim);
            if (sh.separateV)
                loadRow(vs, sh.LDV, V, a.valueLd, fresh, sh.VP, a.valueDim);
        }
    }
    copyAsyncCommit();
    copyAsyncWaitAll();
    __syncthreads();
    trace.mark(0);  // the tiles and queries in shared memory
}

// With a.counters: the block that finishes a kv head's last split merges the partials of that kv
// head's query heads (saving the combine launch); it resets the counter for the next launch. Its
// shared memory is the tiles', no longer needed: kMergeFloats(splits) floats (no static shared
// memory, see gemv.cu).
constexpr std::size_t kMergeFloats(int splits) { return static_cast<std::size_t>(splits) + 8 + 33 + 1; }

// mergeRelease: the block's partials are published by one release-acquire add of thread 0 after a
// block barrier (the release covers what the barrier ordered before it), instead of a fence by
// every thread before the add and another after it.
__device__ __forceinline__ int addAcquireRelease(int* counter, int v)
{
    int old;
    asm volatile("atom.add.acq_rel.gpu.global.s32 %0, [%1], %2;\n" : "=r"(old) : "l"(counter), "r"(v) : "memory");
    return old;
}

__device__ __forceinline__ void mergeWhenLast(const DecodeAttentionArgs& a, int splits, int context, int kvh, bool mergeRelease,
                                              unsigned char* smem)
{
    if (!a.counters)
        return;
    float* weights = reinterpret_cast<float*>(smem);  // splits + 8
    float* scratch = weights + splits + 8;             // 33
    int* last = reinterpret_cast<int*>(scratch + 33);  // 1
    if (!mergeRelease)
        __threadfence();
    __syncthreads();  // every warp is done with the tiles
    const int used = (context + kDecodeChunk - 1) / kDecodeChunk;
    if (threadIdx.x == 0)
        *last = (mergeRelease ? addAcquireRelease(a.counters + kvh, 1) : atomicAdd(a.counters + kvh, 1)) == used - 1;
    __syncthreads();
    if (!*last)
        return;
    if (!mergeRelease)
        __threadfence();
    for (int local = 0; local < a.headsPerKv; ++local) {
        const int h = kvh * a.headsPerKv + local;
        if (a.outType == DType::F32)
            combineHeadPartials<float>(a, splits, used, h, weights, scratch, 0, a.valueDim);
        else
            combineHeadPartials<bf16>(a, splits, used, h, weights, scratch, 0, a.valueDim);
    }
    if (threadIdx.x == 0)
        a.counters[kvh] = 0;
}

template <int kTiles>
__device__ __forceinline__ void decodeMmaWarp(const DecodeAttentionArgs& a, const DecodeMmaShape& sh, const bf16* ks, const bf16* qs,
                                              const bf16* vs, int count, float* part0, long long rowStride, int warp, int lane,
                                              float* scores, int barrier);

// Splits of kDecodeChunk positions (32-position splits measured tiny −1.1 %).
// kTiles: the value tiles a warp may take (sh.tilesPerWarp or more): its accumulators and its
// unrolled loops. tiny's heads take 4 (a cold instruction cache pays for every line of unrolled code
// a block runs through, taken or not).
template <int kTiles>
__global__ __launch_bounds__(kDecWarps * 32) void decodeMmaKernel(DecodeAttentionArgs a, int splits, DecodeMmaShape sh)
{
    extern __shared__ __align__(16) unsigned char smemRaw[];
    BlockTrace trace(TraceSite::DecodeAttention);
    bf16* ks = reinterpret_cast<bf16*>(smemRaw);
    bf16* qs = ks + kDecodeChunk * sh.LD;
    bf16* vs = sh.separateV ? qs + sh.HP * sh.LD : ks;
    const int s = blockIdx.x, kvh = blockIdx.y;
    const int context = *a.lengthOnDevice + 1;
    const int j0 = s * kDecodeChunk;
    const int count = max(0, min(kDecodeChunk, context - j0));
    const int fresh = newestRow(context, j0, count);
    const int h0 = kvh * a.headsPerKv;
    if (count == 0)
        return;  // see leaveEarly
    loadTiles(a, sh, ks, qs, vs, j0, kDecodeChunk, count, fresh, kvh, h0, context, trace);

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int valueStride = a.valueDim + 2;
    if (warp < sh.mTiles * sh.groups)
        decodeMmaWarp<kTiles>(a, sh, ks, qs, vs, count, a.workspace + (static_cast<long long>(h0) * splits + s) * valueStride,
                              static_cast<long long>(splits) * valueStride, warp, lane,
                              sh.splitScores ? reinterpret_cast<float*>(smemRaw + sh.scoresOffset) : nullptr, 1);
    if (sh.triggerLate)
        allowDependentLaunch();
    trace.mark(1);  // thread 0's partials written; the merge follows
    mergeWhenLast(a, splits, context, kvh, sh.mergeRelease, smemRaw);
}

// The score, soft-max and value work of one warp of decodeMmaKernel (or of one group of
// decodeClusterKernel) over one split of count positions: the partials of the kv head's query head
// `local` go to part0 + local · rowStride.
// With `scores` (sh.splitScores), the warps of one 16-row query tile split its 16-key column tiles
// instead of each computing all four, and then read the whole tile of scores back from shared
// memory after a barrier (number `barrier`) of the split's working warps: the same products, so
// the same bits, with a quarter of the key fragments' shared-memory reads and of the tensor-core
// work a warp had.
template <int kTiles>
__device__ __forceinline__ void decodeMmaWarp(const DecodeAttentionArgs& a, const DecodeMmaShape& sh, const bf16* ks, const bf16* qs,
                                              const bf16* vs, int count, float* part0, long long rowStride, int warp, int lane,
                                              float* scores, int barrier)
{
    const int mt = warp % sh.mTiles, group = warp / sh.mTiles;
    float sc[kDecodeChunk / 8][4];
#pragma unroll
    for (int j = 0; j < kDecodeChunk / 8; ++j)
        sc[j][0] = sc[j][1] = sc[j][2] = sc[j][3] = 0.f;
    const int nPer = scores ? kDecodeChunk / 16 / sh.groups : kDecodeChunk / 16, nFirst = scores ? group * nPer : 0;
    for (int kk = 0; kk < sh.KP / 16; ++kk) {
        unsigned qa[4];
        ldsm4(qa, qs + (mt * 16 + (lane & 15)) * sh.LD + kk * 16 + (lane >> 4) * 8);
#pragma unroll
        for (int nj = 0; nj < kDecodeChunk / 16; ++nj) {
            if (nj < nFirst || nj >= nFirst + nPer)
                continue;
            unsigned r[4];
            ldsm4(r, ks + (nj * 16 + (lane & 7) + ((lane >> 4) << 3)) * sh.LD + kk * 16 + ((lane >> 3) & 1) * 8);
            mma(sc[2 * nj], qa, r[0], r[1]);
            mma(sc[2 * nj + 1], qa, r[2], r[3]);
        }
    }
    if (scores) {
        float* own = scores + (mt * 16 + (lane >> 2)) * kScoresLd + (lane & 3) * 2;
#pragma unroll
        for (int j = 0; j < kDecodeChunk / 8; ++j)
            if (j >= 2 * nFirst && j < 2 * (nFirst + nPer)) {
                *reinterpret_cast<float2*>(own + j * 8) = make_float2(sc[j][0], sc[j][1]);
                *reinterpret_cast<float2*>(own + 8 * kScoresLd + j * 8) = make_float2(sc[j][2], sc[j][3]);
            }
        // The split's working warps (all of its kDecWarps but where mTiles does not divide them).
        asm volatile("bar.sync %0, %1;\n" ::"r"(barrier), "r"(sh.mTiles * sh.groups * 32) : "memory");
#pragma unroll
        for (int j = 0; j < kDecodeChunk / 8; ++j) {
            const float2 lo = *reinterpret_cast<const float2*>(own + j * 8), hi = *reinterpret_cast<const float2*>(own + 8 * kScoresLd + j * 8);
            sc[j][0] = lo.x;
            sc[j][1] = lo.y;
            sc[j][2] = hi.x;
            sc[j][3] = hi.y;
        }
    }
    // Soft-max within the split, natural-log scale (the combine pass works with expf).
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < kDecodeChunk / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const int key = j * 8 + (lane & 3) * 2 + (e & 1);
            sc[j][e] = key < count ? sc[j][e] * a.scale : -INFINITY;
            mx[e >> 1] = fmaxf(mx[e >> 1], sc[j][e]);
        }
    float sum[2] = {0.f, 0.f};
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
    }
#pragma unroll
    for (int j = 0; j < kDecodeChunk / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const float p = __expf(sc[j][e] - mx[e >> 1]);
            sc[j][e] = p;
            sum[e >> 1] += p;
        }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        sum[r] += __shfl_xor_sync(0xffffffffu, sum[r], 1);
        sum[r] += __shfl_xor_sync(0xffffffffu, sum[r], 2);
    }
    // P·V over this warp's value columns.
    float acc[kTiles][4];
#pragma unroll
    for (int j = 0; j < kTiles; ++j)
        acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
    const int tile0 = group * sh.tilesPerWarp;
    const int tiles = min(sh.tilesPerWarp, a.valueDim / 8 - tile0);
#pragma unroll
    for (int kk = 0; kk < kDecodeChunk / 16; ++kk) {
        const unsigned pa[4] = {pack(sc[2 * kk][0], sc[2 * kk][1]), pack(sc[2 * kk][2], sc[2 * kk][3]),
                                pack(sc[2 * kk + 1][0], sc[2 * kk + 1][1]), pack(sc[2 * kk + 1][2], sc[2 * kk + 1][3])};
#pragma unroll
        for (int dj = 0; dj < kTiles / 2; ++dj) {
            if (2 * dj >= tiles)
                break;
            unsigned r[4];
            const int key = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
            ldsm4t(r, vs + key * sh.LDV + (tile0 + 2 * dj) * 8 + (lane >> 4) * 8);
            mma(acc[2 * dj], pa, r[0], r[1]);
            if (2 * dj + 1 < tiles)
                mma(acc[2 * dj + 1], pa, r[2], r[3]);
        }
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int local = mt * 16 + (lane >> 2) + r * 8;
        if (local >= a.headsPerKv)
            continue;
        float* part = part0 + local * rowStride;
        if (group == 0 && (lane & 3) == 0) {
            part[0] = mx[r];
            part[1] = sum[r];
        }
#pragma unroll
        for (int j = 0; j < kTiles; ++j) {
            if (j >= tiles)
                break;
            const int d = (tile0 + j) * 8 + (lane & 3) * 2;
            *reinterpret_cast<float2*>(part + 2 + d) = make_float2(acc[j][2 * r], acc[j][2 * r + 1]);
        }
    }
}

// decodeClusterKernel's merge (`live` blocks of the cluster hold positions, `per` splits each):
// block r of them merges the value columns [r·cols, r·cols + cols) of every query head of its kv
// head. Each block first stores, into the inbox (shared memory) of every live block, its splits'
// maxima and sums and the slice of their values that block merges; after a cluster barrier each
// block merges from its own inbox. The arithmetic of combineHeadPartials over at most 32 splits, in
// the same order: lane s takes split s's maximum and sum, the weights exp(m_s − M) and 1 / Σ
// l_s·w_s by the same warp reductions, each column summed over the splits in split order by fmaf;
// so the same bits. Short loops: this runs once a layer from a cold instruction cache.
// asyncStores: the stores complete on the receiving block's barrier `bar` (storeToCluster), which
// each block waits for alone instead of the cluster barrier.
template <typename TO>
__device__ __forceinline__ void mergeInCluster(const DecodeAttentionArgs& a, const float* parts, float* inbox, int used, int per, int live,
                                               int h0, bool asyncStores, unsigned bar)
{
    static_assert(kClusterSplits <= 32, "one lane per split");
    cg::cluster_group cluster = cg::this_cluster();
    const int rows = a.headsPerKv, stride = a.valueDim + 2;
    const int cols = (a.valueDim + live - 1) / live, boxStride = cols + 2;
    clusterWait();  // every live block has started (the arrive is at the kernel's start)
    const int perSplit = rows * live * boxStride;
    for (int i = threadIdx.x; i < per * perSplit; i += blockDim.x) {
        const int g = i / perSplit, local = i % perSplit / (live * boxStride), r = i % (live * boxStride) / boxStride,
                  e = i % boxStride;
        const int s = per * static_cast<int>(cluster.block_rank()) + g, d = r * cols + e - 2;
        if (s < used && (e < 2 || d < a.valueDim)) {
            const int at = (s * rows + local) * boxStride + e;
            const float v = parts[(g * rows + local) * stride + (e < 2 ? e : 2 + d)];
            if (asyncStores)
                storeToCluster(clusterSharedAddress(static_cast<unsigned>(__cvta_generic_to_shared(inbox + at)), r), v,
                               clusterSharedAddress(bar, r));
            else
                cluster.map_shared_rank(inbox, r)[at] = v;
        }
    }
    if (asyncStores)
        mbarWaitCluster(bar, 0);  // this block's inbox is full
    else
        cluster.sync();  // the inboxes are full
    const int d0 = static_cast<int>(cluster.block_rank()) * cols, n = min(cols, a.valueDim - d0);
    const int chunks = n > 0 ? (n + 31) / 32 : 0;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int item = warp; item < rows * chunks; item += kGroupWarps) {
        const int local = item / chunks, j = item % chunks * 32 + lane;
        const float* box = inbox + local * boxStride;
        const float2 ml = lane < used ? make_float2(box[lane * rows * boxStride], box[lane * rows * boxStride + 1]) : make_float2(-INFINITY, 0.f);
        const float mx = warpMax(fmaxf(ml.x, -INFINITY));
        float w = 0.f, total = 0.f;
        if (lane < used) {
            w = expf(ml.x - mx);
            total += ml.y * w;
        }
        const float inv = 1.f / warpSum(total);
        float acc = 0.f;
#pragma unroll 4
        for (int s = 0; s < used; ++s) {
            const float ws = __shfl_sync(0xffffffffu, w, s);
            if (j < n)
                acc = fmaf(box[s * rows * boxStride + 2 + j], ws, acc);
        }
        if (j < n)
            static_cast<TO*>(a.out)[(h0 + local) * a.outHeadStride + d0 + j] = fromFloat<TO>(acc * inv);
    }
}

// Up to kGroups consecutive splits a block of kGroupWarps warps (per of them, see spreadSplits
// below), the warps of group g doing decodeMmaKernel's work over split per·blockIdx.x + g (its
// tiles, its partials: the same arithmetic), in clusters of kClusterBlocks blocks, one cluster per
// kv head: its splits merge in the cluster's shared memory (mergeInCluster), without
// decodeMmaKernel's counter and round trips through L2. Launched only where the launch's capacity
// fits one cluster (kDecodeClusterContext positions), compiled for up to four value tiles a warp
// (tiny's heads). Measured against decodeMmaKernel, tiny on one machine: +5.1 % at 1024 positions,
// +5.9 % at 128; its blocks pass their wait ~1 µs later than single blocks (a cluster needs room on
// one GPC at once). The splits spread over every block against four a block: +0.9 % at 1024, +2.1 %
// at 128, +0.4 % at 1500.
template <int kTiles>
__global__ __launch_bounds__(kGroupWarps * 32) void decodeClusterKernel(DecodeAttentionArgs a, DecodeMmaShape sh)
{
    extern __shared__ __align__(16) unsigned char smemRaw[];
    BlockTrace trace(TraceSite::DecodeAttention);
    bf16* ks = reinterpret_cast<bf16*>(smemRaw);
    bf16* qs = ks + kGroupRows * sh.LD;
    bf16* vs = sh.separateV ? qs + sh.HP * sh.LD : ks;
    float* parts = reinterpret_cast<float*>(smemRaw + sh.partsOffset);
    const int kvh = blockIdx.y;
    const int context = *a.lengthOnDevice + 1;
    // spreadSplits: the used splits spread over the cluster's blocks, `per` consecutive ones a block
    // (the fewest that cover them): at 1,024 positions two a block on all eight blocks rather than
    // four on four, so that each SM issues half the warps' work. Otherwise kGroups a block.
    const int used = (context + kDecodeChunk - 1) / kDecodeChunk;
    const int per = sh.spreadSplits ? (used + kClusterBlocks - 1) / kClusterBlocks : kGroups;
    const int span = per * kDecodeChunk, live = (used + per - 1) / per;
    const int j0 = blockIdx.x * span;
    const int count = max(0, min(span, context - j0));
    const int fresh = newestRow(context, j0, count);
    const int h0 = kvh * a.headsPerKv;
    if (count == 0)
        return;  // see leaveEarly; a cluster barrier does not wait for blocks that have left
    const unsigned bar = static_cast<unsigned>(__cvta_generic_to_shared(smemRaw)) + sh.barrierOffset;
    if (sh.asyncStores && threadIdx.x == 0) {
        // The bytes mergeInCluster's senders store into this block's inbox: every used split's
        // maximum and sum and its share of this block's columns, for each query head.
        const int cols = (a.valueDim + live - 1) / live, mine = max(0, min(cols, a.valueDim - static_cast<int>(blockIdx.x) * cols));
        mbarInit(bar, 1);
        mbarInitFence();
        mbarArriveExpectTx(bar, static_cast<unsigned>(used * a.headsPerKv * (2 + mine)) * 4);
    }
    clusterArrive();
    loadTiles(a, sh, ks, qs, vs, j0, span, count, fresh, kvh, h0, context, trace);

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = warp / kDecWarps, gw = warp % kDecWarps;
    const int gCount = min(kDecodeChunk, count - g * kDecodeChunk);
    const int valueStride = a.valueDim + 2;
    if (gCount > 0 && gw < sh.mTiles * sh.groups)
        decodeMmaWarp<kTiles>(a, sh, ks + g * kDecodeChunk * sh.LD, qs, vs + g * kDecodeChunk * sh.LDV, gCount,
                              parts + g * a.headsPerKv * valueStride, valueStride, gw, lane,
                              sh.splitScores ? reinterpret_cast<float*>(smemRaw + sh.scoresOffset) + g * sh.HP * kScoresLd : nullptr, 1 + g);
    if (sh.triggerLate)
        allowDependentLaunch();
    trace.mark(1);  // the partials written; the merge follows
    __syncthreads();  // every group's partials stored
    float* inbox = parts + kGroups * a.headsPerKv * valueStride;
    if (a.outType == DType::F32)
        mergeInCluster<float>(a, parts, inbox, used, per, live, h0, sh.asyncStores, bar);
    else
        mergeInCluster<bf16>(a, parts, inbox, used, per, live, h0, sh.asyncStores, bar);
}

// Latent rows shared by every head (MLA's absorbed decode): keys and values are the same rows, so
// a block reads its kKeys positions (a split: 64, or 32 with setLatentShortSplits) once and 8
// warps split each phase. Scores: warp (g, part) takes keys [16g, 16g + 16) over one of
// kParts parts of the key dimensions (2 parts with 64 keys, 4 with 32), for every head; the parts
// meet in shared memory. Soft-max: one warp per head row at a time, kKeys / 32 keys per lane.
// P·V: warps split the value columns. Partials have the layout of the kernels above, with
// kKeys-position splits.
// Value parts (setLatentValueParts): where a short context leaves most SMs idle, two blocks take
// each split, both computing the scores and soft-max and each half of the value columns: the
// same products, so the same bits, with half of a block's P·V and partial stores on the step's
// path. Measured against one block, medians of 3 on one machine: small +1.7 / +1.5 / +1.6 % at
// 128 / 512 / 1024 positions and +0.9 % at 1600 (102 blocks); base +1.2 % at 128, +0.9 % at 512,
// but −2.8 % at 1024 (132 blocks), hence the limit of three quarters of the SMs.
constexpr int kLatWarps = 8, kLatMaxMTiles = 4, kLatMaxTilesPerWarp = 8;
template <int kKeys>
constexpr int kLatParts = kLatWarps / (kKeys / 16);
static_assert(kDecodeChunk == 64 && kDecodeMinChunk == 32, "the latent kernel's two split sizes");

struct LatentShape {
    int HP, KP, LD, PLD, mTiles, valueTiles, tilesPerWarp, partSteps;
    // Blocks per (split, head group) in the grid (latentValueParts()), each computing the scores and
    // soft-max and then its share of the value tiles; all of them only while the used splits'
    // blocks, times this, stay within partsBlockLimit, three quarters of the SMs (else the blocks
    // past the first leave at once and the first takes every value tile).
    int valueParts, partsBlockLimit;
    int barrierOffset;  // the row copies' barrier, after the tiles (no static shared memory: see gemv.cu)
    bool triggerLate;   // attentionTriggerLateEnabled()
    std::size_t smem;
};

template <int kKeys>
LatentShape latentShape(const DecodeAttentionArgs& a)
{
    constexpr int parts = kLatParts<kKeys>;
    LatentShape s{};
    s.HP = roundUp(a.headsPerKv, 16);
    s.KP = roundUp(a.keyDim, 16 * parts);  // parts of whole 16-column steps
    s.LD = s.KP + 8;
    s.PLD = kKeys + 8;
    s.mTiles = s.HP / 16;
    s.valueTiles = a.valueDim / 8;
    s.valueParts = s.valueTiles % (2 * latentValueParts()) == 0 ? latentValueParts() : 1;  // even tiles per part
    int sms = 0;
    if (!multiprocessorCount("decode attention (latent rows)", sms).ok())
        sms = 0;  // one part
    s.partsBlockLimit = sms * 3 / 4;
    s.tilesPerWarp = (s.valueTiles + kLatWarps - 1) / kLatWarps;
    s.tilesPerWarp += s.tilesPerWarp % 2;  // value tiles go in pairs (one ldmatrix.x4.trans)
    s.partSteps = s.KP / (16 * parts);
    const std::size_t tiles = static_cast<std::size_t>(kKeys + s.HP) * s.LD * 2 + static_cast<std::size_t>(s.HP) * s.PLD * 2 +
                              static_cast<std::size_t>(parts * s.HP * kKeys + 2 * s.HP) * sizeof(float);
    s.barrierOffset = static_cast<int>((tiles + 7) / 8 * 8);
    s.smem = s.barrierOffset + 8;
    s.triggerLate = attentionTriggerLateEnabled();
    return s;
}

bool latentSupported(const DecodeAttentionArgs& a, const LatentShape& sh)
{
    const bool shared = a.values == a.keys && a.valueLd == a.keyLd && a.valueHeadStride == a.keyHeadStride;
    return shared && a.headsPerKv >= 16 && sh.mTiles <= kLatMaxMTiles && sh.tilesPerWarp <= kLatMaxTilesPerWarp &&
           a.valueDim <= a.keyDim && sh.smem <= 200 * 1024;
}

// With a.fusePrepare (MLA): the rotary columns of the block's query rows from the projection row
// (its first rank columns came from q), and, where the newest position is in this split
// (fresh >= 0), that cache row: RMSNorm(latent)·kvNorm | rotated k_pe, into the tile and (the first
// head group's block) the cache. The arithmetic of mlaPrepareKernel (rotatePair, warpSumSquares,
// rounded to bf16 where that kernel stores). scratch: one float. The newest row's loads come first,
// beside the queries' (one round trip to memory): the latent goes into the tile as it is, warp 0
// sums its squares there, and every thread then normalises its columns in place.
constexpr int kLatentPreload = 4;  // latent columns a thread loads up front (rank up to 4 · 256)

// Constants of latentPrepareInBlock read before the wait (tables and weights: no kernel writes
// them), so that after it only the projection row's loads wait on memory: this thread's rotary
// angle of column threadIdx.x % half, and where the block makes the newest row, its latent norm
// weights. The same values, so the same bits. Measured against them read after the wait, medians
// of 3 at 1024 context on two H200s: small +1.0 / +0.3 %, base +0.3 / +0.1 %. (The MHA prepare's
// angle read the same way: tiny −0.6 %, not kept.)
struct LatentPrepareConstants {
    float2 angle = make_float2(0.f, 0.f);
    float norm[kLatentPreload] = {};
};

__device__ __forceinline__ LatentPrepareConstants latentPrepareConstants(const DecodeAttentionArgs& a, int pos, int fresh)
{
    const MlaPrepareArgs& p = a.latentPrepare;
    LatentPrepareConstants k;
    const int half = p.rope / 2, i0 = threadIdx.x % half;
    k.angle = make_float2(p.rotary.cos[static_cast<long long>(pos) * half + i0], p.rotary.sin[static_cast<long long>(pos) * half + i0]);
    if (fresh >= 0) {
#pragma unroll
        for (int j = 0; j < kLatentPreload; ++j) {
            const int i = threadIdx.x + j * blockDim.x;
            if (i < p.rank)
                k.norm[j] = p.kvNorm[i];
        }
    }
    return k;
}

__device__ __forceinline__ void latentPrepareInBlock(const DecodeAttentionArgs& a, const LatentShape& sh, bf16* qs, bf16* ks, int h0,
                                                     int pos, int fresh, bool storeRow, float* scratch, const LatentPrepareConstants& k)
{
    const MlaPrepareArgs& p = a.latentPrepare;
    const int qhd = p.nope + p.rope, half = p.rope / 2, qw = p.heads * qhd;
    const bf16* row = static_cast<const bf16*>(p.fused);
    const float* c = p.rotary.cos + static_cast<long long>(pos) * half;
    const float* s = p.rotary.sin + static_cast<long long>(pos) * half;
    const bf16* kv = row + qw;
    const int t = threadIdx.x;
    const int mine = t % half;
    bf16 latent[kLatentPreload];
    float2 pePair = make_float2(0.f, 0.f);
    if (fresh >= 0) {
#pragma unroll
        for (int j = 0; j < kLatentPreload; ++j) {
            const int i = t + j * blockDim.x;
            if (i < p.rank)
                latent[j] = kv[i];
        }
        if (t < half)
            pePair = make_float2(__bfloat162float(kv[p.rank + 2 * t]), __bfloat162float(kv[p.rank + 2 * t + 1]));
    }
    for (int e = t; e < a.headsPerKv * half; e += blockDim.x) {
        const int l = e / half, i = e - l * half;
        const bf16* in = row + (h0 + l) * qhd + p.nope;
        const float2 y = i == mine ? rotatePair(__bfloat162float(in[2 * i]), __bfloat162float(in[2 * i + 1]), k.angle.x, k.angle.y)
                                   : rotatePair(__bfloat162float(in[2 * i]), __bfloat162float(in[2 * i + 1]), c[i], s[i]);
        qs[l * sh.LD + p.rank + i] = __float2bfloat16_rn(y.x);
        qs[l * sh.LD + p.rank + half + i] = __float2bfloat16_rn(y.y);
    }
    if (fresh < 0)
        return;
    bf16* cache = static_cast<bf16*>(p.cache) + static_cast<long long>(pos) * (p.rank + p.rope);
    bf16* tile = ks + fresh * sh.LD;
#pragma unroll
    for (int j = 0; j < kLatentPreload; ++j)
        if (t + j * static_cast<int>(blockDim.x) < p.rank)
            tile[t + j * blockDim.x] = latent[j];
    for (int i = t + kLatentPreload * blockDim.x; i < p.rank; i += blockDim.x)
        tile[i] = kv[i];
    for (int i = t; i < half; i += blockDim.x) {
        const float2 y = i == t ? rotatePair(pePair.x, pePair.y, k.angle.x, k.angle.y)
                                : rotatePair(__bfloat162float(kv[p.rank + 2 * i]), __bfloat162float(kv[p.rank + 2 * i + 1]), c[i], s[i]);
        const bf16 y0 = __float2bfloat16_rn(y.x), y1 = __float2bfloat16_rn(y.y);
        tile[p.rank + i] = y0;
        tile[p.rank + half + i] = y1;
        if (storeRow) {
            cache[p.rank + i] = y0;
            cache[p.rank + half + i] = y1;
        }
    }
    __syncthreads();  // fresh is the same for the whole block; the latent is in the tile
    if (t < 32) {
        const float ss = warpSumSquares(tile, p.rank);
        if (t == 0)
            *scratch = ss;
    }
    __syncthreads();
    const float inv = rsqrtf(*scratch / p.rank + p.eps);
    for (int i = t, j = 0; i < p.rank; i += blockDim.x, ++j) {
        const float w = j < kLatentPreload ? k.norm[j] : p.kvNorm[i];
        const bf16 v = __float2bfloat16_rn(w * (__bfloat162float(tile[i]) * inv));
        tile[i] = v;
        if (storeRow)
            cache[i] = v;
    }
}

template <int kKeys>
__global__ __launch_bounds__(kLatWarps * 32) void decodeLatentKernel(DecodeAttentionArgs a, int splits, LatentShape sh)
{
    constexpr int kParts = kLatParts<kKeys>;
    extern __shared__ __align__(16) unsigned char smemRaw[];
    BlockTrace trace(TraceSite::LatentAttention);
    bf16* ks = reinterpret_cast<bf16*>(smemRaw);
    bf16* qs = ks + kKeys * sh.LD;
    bf16* ps = qs + sh.HP * sh.LD;
    float* scores = reinterpret_cast<float*>(ps + sh.HP * sh.PLD);  // [parts][HP][keys]
    float* rowMax = scores + kParts * sh.HP * kKeys;
    float* rowSum = rowMax + sh.HP;
    const int s = blockIdx.x, kvh = blockIdx.y / sh.valueParts, vp = blockIdx.y % sh.valueParts;
    const int context = *a.lengthOnDevice + 1;  // see newestRow()
    const int j0 = s * kKeys;
    const int count = max(0, min(kKeys, context - j0));
    const int used = (context + kKeys - 1) / kKeys;
    const int parts = used * static_cast<int>(gridDim.y) <= sh.partsBlockLimit ? sh.valueParts : 1;
    const int fresh = newestRow(context, j0, count);
    const int h0 = kvh * a.headsPerKv;
    const bf16* K = static_cast<const bf16*>(a.keys) + kvh * a.keyHeadStride + static_cast<long long>(j0) * a.keyLd;
    const bf16* Q = static_cast<const bf16*>(a.q) + h0 * a.qHeadStride;
    if (count == 0 || vp >= parts)
        return;  // see leaveEarly
    const int t = threadIdx.x, rowBytes = a.keyDim * 2;
    // Fused prepare: the queries' first rank columns are copied (the block makes the rest), and the
    // newest row is made here, not copied.
    const int qBytes = a.fusePrepare ? a.latentPrepare.rank * 2 : rowBytes;
    const int copiedRows = a.fusePrepare && fresh >= 0 ? count - 1 : count;
    const RowCopies copies(smemAddr(smemRaw + sh.barrierOffset), copiedRows * rowBytes + a.headsPerKv * qBytes);
    if (t < count && t != fresh)
        copies.row(ks + t * sh.LD, K + t * a.keyLd, rowBytes);
    zeroPadding(ks, sh.LD, kKeys, count, sh.KP, a.keyDim);
    zeroPadding(qs, sh.LD, sh.HP, a.headsPerKv, sh.KP, a.keyDim);
    const LatentPrepareConstants prepareConstants = a.fusePrepare ? latentPrepareConstants(a, context - 1, fresh) : LatentPrepareConstants{};
    gridDependencyWait();
    trace.waited();
    if (!sh.triggerLate)
        allowDependentLaunch();
    if (t < a.headsPerKv)
        copies.row(qs + t * sh.LD, Q + t * a.qHeadStride, qBytes);
    if (a.fusePrepare)
        latentPrepareInBlock(a, sh, qs, ks, h0, context - 1, fresh, kvh == 0 && vp == 0, rowMax, prepareConstants);
    else if (t == fresh)
        copies.row(ks + t * sh.LD, K + t * a.keyLd, rowBytes);
    copies.wait();
    __syncthreads();
    trace.mark(0);  // the tile and queries in shared memory

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    {
        const int g = warp % (kKeys / 16), part = warp / (kKeys / 16);
        float sc[kLatMaxMTiles][2][4];
#pragma unroll
        for (int m = 0; m < kLatMaxMTiles; ++m)
#pragma unroll
            for (int n = 0; n < 2; ++n)
                sc[m][n][0] = sc[m][n][1] = sc[m][n][2] = sc[m][n][3] = 0.f;
        for (int step = 0; step < sh.partSteps; ++step) {
            const int col = (part * sh.partSteps + step) * 16;
            unsigned kb[4];
            ldsm4(kb, ks + (g * 16 + (lane & 7) + ((lane >> 4) << 3)) * sh.LD + col + ((lane >> 3) & 1) * 8);
#pragma unroll
            for (int m = 0; m < kLatMaxMTiles; ++m) {
                if (m >= sh.mTiles)
                    break;
                unsigned qa[4];
                ldsm4(qa, qs + (m * 16 + (lane & 15)) * sh.LD + col + (lane >> 4) * 8);
                mma(sc[m][0], qa, kb[0], kb[1]);
                mma(sc[m][1], qa, kb[2], kb[3]);
            }
        }
        float* out = scores + part * sh.HP * kKeys;
#pragma unroll
        for (int m = 0; m < kLatMaxMTiles; ++m) {
            if (m >= sh.mTiles)
                break;
#pragma unroll
            for (int n = 0; n < 2; ++n)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int row = m * 16 + (lane >> 2) + (e >> 1) * 8;
                    const int key = g * 16 + n * 8 + (lane & 3) * 2 + (e & 1);
                    out[row * kKeys + key] = sc[m][n][e];
                }
        }
    }
    __syncthreads();
    // Soft-max within the split (natural-log scale, as the combine pass expects).
    constexpr int kPerLane = kKeys / 32;
    for (int row = warp; row < sh.HP; row += kLatWarps) {
        float v[kPerLane], mx = -INFINITY;
#pragma unroll
        for (int i = 0; i < kPerLane; ++i) {
            const int key = lane + 32 * i;
            float dot = 0.f;
#pragma unroll
            for (int q = 0; q < kParts; ++q)
                dot += scores[(q * sh.HP + row) * kKeys + key];
            v[i] = key < count ? dot * a.scale : -INFINITY;
            mx = fmaxf(mx, v[i]);
        }
        mx = warpMax(mx);
        float sum = 0.f;
#pragma unroll
        for (int i = 0; i < kPerLane; ++i) {
            const float p = __expf(v[i] - mx);
            sum += p;
            ps[row * sh.PLD + lane + 32 * i] = __float2bfloat16_rn(p);
        }
        sum = warpSum(sum);
        if (lane == 0) {
            rowMax[row] = mx;
            rowSum[row] = sum;
        }
    }
    __syncthreads();
    if (sh.triggerLate)
        allowDependentLaunch();
    // P·V over this warp's value tiles; the values are the first valueDim columns of the rows.
    float acc[kLatMaxMTiles][kLatMaxTilesPerWarp][4];
#pragma unroll
    for (int m = 0; m < kLatMaxMTiles; ++m)
#pragma unroll
        for (int j = 0; j < kLatMaxTilesPerWarp; ++j)
            acc[m][j][0] = acc[m][j][1] = acc[m][j][2] = acc[m][j][3] = 0.f;
    const int partTiles = sh.valueTiles / parts;
    const int tilesPerWarp = parts == 1 ? sh.tilesPerWarp : (partTiles / 2 + kLatWarps - 1) / kLatWarps * 2;
    const int tile0 = vp * partTiles + warp * tilesPerWarp;
    const int tiles = max(0, min(tilesPerWarp, (vp + 1) * partTiles - tile0));
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; ++kk) {
        unsigned pa[kLatMaxMTiles][4];
#pragma unroll
        for (int m = 0; m < kLatMaxMTiles; ++m)
            if (m < sh.mTiles)
                ldsm4(pa[m], ps + (m * 16 + (lane & 15)) * sh.PLD + kk * 16 + (lane >> 4) * 8);
#pragma unroll
        for (int dj = 0; dj < kLatMaxTilesPerWarp / 2; ++dj) {
            if (2 * dj >= tiles)
                break;
            unsigned r[4];
            const int key = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
            ldsm4t(r, ks + key * sh.LD + (tile0 + 2 * dj) * 8 + (lane >> 4) * 8);
#pragma unroll
            for (int m = 0; m < kLatMaxMTiles; ++m) {
                if (m >= sh.mTiles)
                    break;
                mma(acc[m][2 * dj], pa[m], r[0], r[1]);
                if (2 * dj + 1 < tiles)
                    mma(acc[m][2 * dj + 1], pa[m], r[2], r[3]);
            }
        }
    }
    const int valueStride = a.valueDim + 2;
#pragma unroll
    for (int m = 0; m < kLatMaxMTiles; ++m) {
        if (m >= sh.mTiles)
            break;
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const int local = m * 16 + (lane >> 2) + r * 8;
            if (local >= a.headsPerKv)
                continue;
            float* part = a.workspace + (static_cast<long long>(h0 + local) * splits + s) * valueStride;
            if (warp == 0 && vp == 0 && (lane & 3) == 0) {
                part[0] = rowMax[local];
                part[1] = rowSum[local];
            }
#pragma unroll
            for (int j = 0; j < kLatMaxTilesPerWarp; ++j) {
                if (j >= tiles)
                    break;
                const int d = (tile0 + j) * 8 + (lane & 3) * 2;
                *reinterpret_cast<float2*>(part + 2 + d) = make_float2(acc[m][j][2 * r], acc[m][j][2 * r + 1]);
            }
        }
    }
}

}  // namespace

bool decodeSharedKvSupported(const DecodeAttentionArgs& a)
{
    if (a.qType != DType::BF16 || a.cacheType != DType::BF16 || a.headsPerKv <= 0 || a.headsPerKv > kMaxHeadsPerKv ||
        a.heads % a.headsPerKv || a.valueDim % 8 || a.keyDim % 8 || a.keyLd % 8 || a.valueLd % 8 || a.keyHeadStride % 8 ||
        a.valueHeadStride % 8 || a.qHeadStride % 8)
        return false;
    const DecodeMmaShape sh = decodeMmaShape(a);
    if (!sh.separateV && a.valueDim > a.keyDim)
        return false;
    return sh.groups >= 1 && sh.tilesPerWarp <= kMaxValueTilesPerWarp && sh.smem <= 200 * 1024;
}

namespace {

// How the latent kernel would run a (use: whether it takes it at all).
struct LatentPlan {
    bool use = false, shortSplits = false;
    DecodeAttentionArgs heads16;
    LatentShape shape;
};

LatentPlan latentPlan(const DecodeAttentionArgs& a)
{
    LatentPlan plan;
    // One latent row set read by more than 16 heads (base's 32): blocks of 16 heads each, so that
    // twice the SMs share the work of a split; the second block finds the rows in L2.
    plan.heads16 = a;
    if (a.heads == a.headsPerKv && a.keyHeadStride == 0 && a.headsPerKv > 16 && a.headsPerKv % 16 == 0)
        plan.heads16.headsPerKv = 16;
    // 32-position splits where switched on and the capacity allows (kMaxDecodeSplits).
    const int shortSplits = (a.capacity + kDecodeMinChunk - 1) / kDecodeMinChunk;
    plan.shortSplits = shortSplits <= kMaxDecodeSplits && latentShortSplitsEnabled() &&
                       latentSupported(plan.heads16, latentShape<kDecodeMinChunk>(plan.heads16));
    plan.shape = plan.shortSplits ? latentShape<kDecodeMinChunk>(plan.heads16) : latentShape<kDecodeChunk>(plan.heads16);
    plan.use = latentSupported(plan.heads16, plan.shape);
    return plan;
}

// Whether a cluster of kClusterBlocks blocks of decodeClusterKernel<4> with this shared memory fits
// on the GPU (once per size).
bool clustersFit(std::size_t smem)
{
    static std::mutex mutex;
    static std::map<std::size_t, bool> known;
    const std::lock_guard<std::mutex> lock(mutex);
    if (const auto it = known.find(smem); it != known.end())
        return it->second;
    cudaLaunchConfig_t config = {};
    config.gridDim = dim3(kClusterBlocks, 1, 1);
    config.blockDim = dim3(kGroupWarps * 32, 1, 1);
    config.dynamicSmemBytes = smem;
    cudaLaunchAttribute cluster;
    cluster.id = cudaLaunchAttributeClusterDimension;
    cluster.val.clusterDim.x = kClusterBlocks;
    cluster.val.clusterDim.y = 1;
    cluster.val.clusterDim.z = 1;
    config.attrs = &cluster;
    config.numAttrs = 1;
    int clusters = 0;
    const bool fit = cudaOccupancyMaxActiveClusters(&clusters, decodeClusterKernel<4>, &config) == cudaSuccess && clusters > 0;
    if (!fit)
        cudaGetLastError();
    return known[smem] = fit;
}

// decodeClusterKernel<4>: one cluster of kClusterBlocks blocks per kv head.
Status launchClustered(const DecodeAttentionArgs& a, const DecodeMmaShape& sh, cudaStream_t stream)
{
    return launchClusters("decode attention (clusters)", decodeClusterKernel<4>, dim3(kClusterBlocks, a.heads / a.headsPerKv),
                          dim3(kClusterBlocks, 1, 1), kGroupWarps * 32, sh.smem, stream, a, sh);
}

// Whether decodeClusterKernel<4> runs a (sh: its shape): clusters switched on, a merge asked for, a
// capacity within one cluster, up to four value tiles a warp (tiny's heads), its shared memory
// allowed and its clusters fitting on this GPU.
bool clustersRun(const DecodeAttentionArgs& a, const DecodeMmaShape& sh)
{
    static const bool allowed = [] {
        const Status st = allowSharedMemory("decode attention (clusters)", 200 * 1024, decodeClusterKernel<4>);
        if (!st.ok())
            return false;
        if (cudaFuncSetAttribute(decodeClusterKernel<4>, cudaFuncAttributeNonPortableClusterSizeAllowed, 1) != cudaSuccess) {
            cudaGetLastError();
            return false;
        }
        return true;
    }();
    return attentionClustersEnabled() && a.counters && a.capacity <= kDecodeClusterContext && sh.tilesPerWarp <= 4 &&
           sh.smem <= 200 * 1024 && allowed && clustersFit(sh.smem);
}

bool latentPrepareFusable(const DecodeAttentionArgs& a)
{
    const MlaPrepareArgs& p = a.latentPrepare;
    const int width = p.rank + p.rope;
    return mlaFusedPrepareEnabled() && p.n == 1 && p.fusedType == DType::BF16 && p.cacheType == DType::BF16 &&
           p.startOnDevice == a.lengthOnDevice && p.cache == a.keys && p.qcat == a.q && p.heads == a.heads && p.rope % 2 == 0 &&
           p.rotary.dim == p.rope && p.rank % 8 == 0 && width == a.keyDim && p.rank == a.valueDim && a.keyLd == width &&
           a.qHeadStride == width && decodeSharedKvSupported(a) && latentPlan(a).use;
}

}  // namespace

bool decodePrepareFusable(const DecodeAttentionArgs& a)
{
    if (a.latentPrepare.fused)
        return latentPrepareFusable(a);
    const MhaPrepareArgs& p = a.prepare;
    const int hd = p.headDim;
    return mhaFusedPrepareEnabled() && decodeSharedKvSupported(a) && p.qkv && p.n == 1 && p.qkvType == DType::BF16 &&
           p.cacheType == DType::BF16 && p.startOnDevice == a.lengthOnDevice && p.keys == a.keys && p.values == a.values &&
           a.keys != a.values && hd % 2 == 0 && p.rotary.dim == hd && hd == a.keyDim && hd == a.valueDim && p.heads == a.heads &&
           p.kvHeads > 0 && p.kvHeads * a.headsPerKv == a.heads && a.keyLd == static_cast<std::int64_t>(p.kvHeads) * hd &&
           a.valueLd == a.keyLd && a.keyHeadStride == hd && a.valueHeadStride == hd;
}

bool decodeAttentionMergesInClusters(const DecodeAttentionArgs& a)
{
    return decodeSharedKvSupported(a) && !latentPlan(a).use && clustersRun(a, decodeMmaShape(a, kGroupRows));
}

Status setTraceSinkDecodeAttention(const TraceSink& s) { return setThisFilesTraceSink(s); }

Status decodeSharedKvPartials(const DecodeAttentionArgs& args, int& splits, int& chunk, cudaStream_t stream, bool& combined)
{
    combined = false;
    DecodeAttentionArgs a = args;
    static const Status attribute =
        allowSharedMemory("decode attention (tensor cores)", 200 * 1024, decodeMmaKernel<4>, decodeMmaKernel<8>, decodeMmaKernel<16>,
                          decodeMmaKernel<kMaxValueTilesPerWarp>, decodeLatentKernel<kDecodeChunk>, decodeLatentKernel<kDecodeMinChunk>);
    if (!attribute.ok())
        return attribute;
    if (const LatentPlan plan = latentPlan(a); plan.use) {
        if (plan.shortSplits) {
            splits = (a.capacity + kDecodeMinChunk - 1) / kDecodeMinChunk;
            chunk = kDecodeMinChunk;
        }
        const auto kernel = plan.shortSplits ? decodeLatentKernel<kDecodeMinChunk> : decodeLatentKernel<kDecodeChunk>;
        const dim3 grid(splits, plan.heads16.heads / plan.heads16.headsPerKv * plan.shape.valueParts);
        return launchOverlapped("decode attention (latent rows)", kernel, grid, kLatWarps * 32, plan.shape.smem, stream, plan.heads16,
                                splits, plan.shape);
    }
    if (const DecodeMmaShape groupShape = decodeMmaShape(a, kGroupRows); clustersRun(a, groupShape)) {
        combined = true;
        return launchClustered(a, groupShape, stream);
    }
    const DecodeMmaShape sh = decodeMmaShape(a);
    const int t = sh.tilesPerWarp;
    if (sh.smem < kMergeFloats(splits) * sizeof(float))
        a.counters = nullptr;  // too little shared memory to merge in the kernel
    combined = a.counters != nullptr;
    const dim3 grid(splits, a.heads / a.headsPerKv);
    const auto kernel = !fittedTilesEnabled() ? decodeMmaKernel<kMaxValueTilesPerWarp>
                        : t <= 4                ? decodeMmaKernel<4>
                        : t <= 8                ? decodeMmaKernel<8>
                        : t <= 16               ? decodeMmaKernel<16>
                                                : decodeMmaKernel<kMaxValueTilesPerWarp>;
    return launchOverlapped("decode attention (tensor cores)", kernel, grid, kDecWarps * 32, sh.smem, stream, a, splits, sh);
}

}  // namespace tessera::kernels
