// Flash attention (FlashAttention-2 style) with mma.sync: a block of WARPS warps owns
// WARPS·16·MT query rows of one (batch, head), each warp 16·MT rows (MT m-tiles sharing every K
// and V fragment it loads). The block walks the keys in tiles of 64, keeps the scores in
// registers, updates the running max / sum per row and accumulates P·V in fp32. K and V tiles go
// through shared memory with rows of an odd number of 16-byte chunks (conflict-free ldmatrix;
// .trans for V), double-buffered: tile t + 1 is copied (cp.async) while tile t is computed.
// Head widths that are a multiple of 8 but not of 16 (the vision tower's 72) run exactly: the
// last 8 key columns go through m16n8k8 and the last 8 value columns through one more n8 tile,
// so nothing is padded. Queries and keys have DK columns, values DV (MLA prefill: 192 and 128).
// On a Hopper GPU the family's head shapes (192 / 128, 128 / 128, 72 / 72) run
// flash_attention_wgmma.cu's kernel instead (the same arithmetic on the warpgroup tensor cores;
// setWgmmaAttention(false) keeps this one).
#include "tessera_kernels/attention.h"
#include "tessera_kernels/runtime.h"

#include "flash_internal.cuh"
#include "launch_util.cuh"
#include "mma_util.cuh"

#include <cmath>

namespace tessera::kernels {

namespace {

constexpr int kKeys = 64;  // keys per tile

// Shared-memory layout of one block: the query rows, then two K and two V tile buffers.
template <int DK, int DV, int WARPS, int MT>
struct Tiles {
    static constexpr int rows = WARPS * 16 * MT;            // query rows per block
    static constexpr int LD = (DK / 8) % 2 ? DK : DK + 8;    // an odd number of 16-byte chunks
    static constexpr int LDV = (DV / 8) % 2 ? DV : DV + 8;
    static constexpr int qElems = rows * LD, kElems = kKeys * LD, vElems = kKeys * LDV;
    static constexpr int bytes = (qElems + 2 * (kElems + vElems)) * 2;
};

// Starts copying rows [row0, row0 + ROWS) × [0, DP) of a bf16 matrix into smem rows of LD
// elements (zeros outside rows / D: padded keys and values must be finite).
template <int ROWS, int DP, int LD, int THREADS>
__device__ __forceinline__ void loadTile(bf16* dst, const bf16* src, long long ld, int row0, int rows, int D)
{
    constexpr int chunks = DP / 8;
#pragma unroll 4
    for (int c = threadIdx.x; c < ROWS * chunks; c += THREADS) {
        const int r = c / chunks, d = (c % chunks) * 8;
        const bool valid = row0 + r < rows && d < D;
        copyAsync16(dst + r * LD + d, valid ? src + static_cast<long long>(row0 + r) * ld + d : src, valid);
    }
}

template <int DK, int DV, int WARPS, int MT, int MINB>
__global__ __launch_bounds__(WARPS * 32, MINB) void flashKernel(FlashAttentionArgs a)
{
    using T = Tiles<DK, DV, WARPS, MT>;
    constexpr int THREADS = WARPS * 32, ROWS = T::rows, LD = T::LD, LDV = T::LDV;
    constexpr int KC = DK / 16, VC = DV / 16;              // full 16-wide chunks
    constexpr bool kTail = DK % 16 != 0, vTail = DV % 16 != 0;  // one 8-wide chunk more
    constexpr int NV = DV / 8, NS = kKeys / 8;             // n8 tiles of the output, of the scores
    extern __shared__ __align__(16) unsigned char smemRaw[];
    const int valueDim = a.valueDim > 0 ? a.valueDim : a.headDim;
    bf16* qs = reinterpret_cast<bf16*>(smemRaw);
    bf16* ks = qs + T::qElems;       // 2 buffers
    bf16* vs = ks + 2 * T::kElems;   // 2 buffers
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    // Causal: the longest query blocks start first, the short ones fill the tail.
    const int qTile = a.causal ? static_cast<int>(gridDim.x) - 1 - static_cast<int>(blockIdx.x) : static_cast<int>(blockIdx.x);
    const int qBlock = qTile * ROWS, h = blockIdx.y, b = blockIdx.z;
    const int kvh = h / a.headsPerKv;
    const bf16* Q = static_cast<const bf16*>(a.q) + b * a.qBatchStride + h * a.qHeadStride;
    const bf16* K = static_cast<const bf16*>(a.k) + b * a.kBatchStride + kvh * a.kHeadStride;
    const bf16* V = static_cast<const bf16*>(a.v) + b * a.vBatchStride + kvh * a.vHeadStride;
    bf16* O = static_cast<bf16*>(a.o) + b * a.oBatchStride + h * a.oHeadStride;

    int keyEnd = a.keys;
    if (a.causal)
        keyEnd = min(keyEnd, a.qPosition0 + qBlock + ROWS);
    const int nTiles = keyEnd > 0 ? (keyEnd + kKeys - 1) / kKeys : 0;

    loadTile<ROWS, DK, LD, THREADS>(qs, Q, a.ldq, qBlock, a.queries, a.headDim);
    copyAsyncCommit();
    if (nTiles > 0) {
        loadTile<kKeys, DK, LD, THREADS>(ks, K, a.ldk, 0, a.keys, a.headDim);
        loadTile<kKeys, DV, LDV, THREADS>(vs, V, a.ldv, 0, a.keys, valueDim);
    }
    copyAsyncCommit();
    copyAsyncWait<1>();  // the queries
    __syncthreads();
    const int warpRow0 = qBlock + warp * 16 * MT;  // this warp's first row
    unsigned qf[MT][KC > 0 ? KC : 1][4], qt[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
        const bf16* qrow = qs + ((warpRow0 - qBlock) + mt * 16 + (lane & 15)) * LD;
#pragma unroll
        for (int kk = 0; kk < KC; ++kk)
            ldsm4(qf[mt][kk], qrow + kk * 16 + (lane >> 4) * 8);
        if constexpr (kTail)
            ldsm2a(qt[mt], smemAddr(qrow + KC * 16));
    }

    float o[MT][NV][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int j = 0; j < NV; ++j)
            o[mt][j][0] = o[mt][j][1] = o[mt][j][2] = o[mt][j][3] = 0.f;
    // Running max (log2 units, scaled) and this thread's part of the running sum, per row:
    // [mt][0] → row warpRow0 + mt·16 + lane/4, [mt][1] → that + 8.
    float mRow[MT][2], lRow[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
        mRow[mt][0] = mRow[mt][1] = -INFINITY, lRow[mt][0] = lRow[mt][1] = 0.f;
    const float scaleLog2 = a.scale * 1.4426950408889634f;  // > 0 (checked on the host)
    // Byte addresses of this lane's ldmatrix rows in the first K / V buffer (K: keys (lane & 7) +
    // 8·(lane / 16), columns 8·(lane / 8 % 2); K's last 8 columns: key = lane; V (.trans): keys
    // (lane & 7) + 8·(lane / 8 % 2), columns 8·(lane / 16)).
    const unsigned kLane = smemAddr(ks + ((lane & 7) + ((lane >> 4) << 3)) * LD + ((lane >> 3) & 1) * 8);
    const unsigned kTailLane = smemAddr(ks + lane * LD + KC * 16);
    const unsigned vLane = smemAddr(vs + ((lane & 7) + ((lane >> 3) & 1) * 8) * LDV + (lane >> 4) * 8);
    const int lastVisible = a.causal ? a.qPosition0 + warpRow0 + 16 * MT - 1 : a.keys - 1;  // of this warp's rows

    // Scores of key tile t (raw, unscaled) into s.
    auto scores = [&](float (&s)[MT][NS][4], int t) {
        const unsigned kb = kLane + (t & 1) * (T::kElems * 2);  // this lane's ldmatrix rows in the buffers
        const unsigned kbTail = kTailLane + (t & 1) * (T::kElems * 2);

#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int j = 0; j < NS; ++j)
                s[mt][j][0] = s[mt][j][1] = s[mt][j][2] = s[mt][j][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < KC; ++kk) {
#pragma unroll
            for (int nj = 0; nj < kKeys / 16; ++nj) {
                unsigned r[4];
                ldsm4a(r, kb + (nj * 16 * LD + kk * 16) * 2);
#pragma unroll
                for (int mt = 0; mt < MT; ++mt) {
                    mma(s[mt][2 * nj], qf[mt][kk], r[0], r[1]);
                    mma(s[mt][2 * nj + 1], qf[mt][kk], r[2], r[3]);
                }
            }
        }
        if constexpr (kTail) {
#pragma unroll
            for (int ng = 0; ng < kKeys / 32; ++ng) {
                unsigned r[4];  // keys ng·32 + 8i .. + 7, the last 8 columns: B of score tile 4·ng + i
                ldsm4a(r, kbTail + ng * 32 * LD * 2);
#pragma unroll
                for (int i = 0; i < 4; ++i)
#pragma unroll
                    for (int mt = 0; mt < MT; ++mt)
                        mma8(s[mt][4 * ng + i], qt[mt], r[i]);
            }
        }
    };
    // Mask, soft-max update and O += P·V for key tile t, whose scores are in s.
    auto update = [&](float (&s)[MT][NS][4], int t) {
        const int k0 = t * kKeys;
        const unsigned vb = vLane + (t & 1) * (T::vElems * 2);
        // Mask only where a key of the tile is past the end or, causal, past a row of this warp.
        if (k0 + kKeys > a.keys || (a.causal && k0 + kKeys - 1 > a.qPosition0 + warpRow0)) {
#pragma unroll
            for (int mt = 0; mt < MT; ++mt)
#pragma unroll
                for (int j = 0; j < NS; ++j)
#pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        const int key = k0 + j * 8 + (lane & 3) * 2 + (e & 1);
                        const int row = warpRow0 + mt * 16 + (lane >> 2) + (e >> 1) * 8;
                        bool visible = key < a.keys;
                        if (a.causal)
                            visible = visible && key <= a.qPosition0 + row;
                        if (!visible)
                            s[mt][j][e] = -INFINITY;
                    }
        }
        // Running max over raw scores (scale > 0 keeps the order), then p = 2^(s·scale·log2e − m).
        float mUse[MT][2];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
            float tileMax[2] = {-INFINITY, -INFINITY};
#pragma unroll
            for (int j = 0; j < NS; ++j) {
                tileMax[0] = fmaxf(tileMax[0], fmaxf(s[mt][j][0], s[mt][j][1]));
                tileMax[1] = fmaxf(tileMax[1], fmaxf(s[mt][j][2], s[mt][j][3]));
            }
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                tileMax[r] = fmaxf(tileMax[r], __shfl_xor_sync(0xffffffffu, tileMax[r], 1));
                tileMax[r] = fmaxf(tileMax[r], __shfl_xor_sync(0xffffffffu, tileMax[r], 2));
                const float mNew = fmaxf(mRow[mt][r], tileMax[r] * scaleLog2);
                const float corr = mNew == -INFINITY ? 1.f : fastExp2(mRow[mt][r] - mNew);
                mRow[mt][r] = mNew;
                mUse[mt][r] = mNew == -INFINITY ? 0.f : mNew;
                lRow[mt][r] *= corr;
#pragma unroll
                for (int j = 0; j < NV; ++j) {
                    o[mt][j][2 * r] *= corr;
                    o[mt][j][2 * r + 1] *= corr;
                }
            }
#pragma unroll
            for (int j = 0; j < NS; ++j)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const float p = fastExp2(fmaf(s[mt][j][e], scaleLog2, -mUse[mt][e >> 1]));
                    s[mt][j][e] = p;
                    lRow[mt][e >> 1] += p;
                }
        }
        // O += P·V: the score accumulators become the A operand (keys 16 at a time).
#pragma unroll
        for (int kk = 0; kk < kKeys / 16; ++kk) {
            unsigned pa[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
                pa[mt][0] = pack(s[mt][2 * kk][0], s[mt][2 * kk][1]);
                pa[mt][1] = pack(s[mt][2 * kk][2], s[mt][2 * kk][3]);
                pa[mt][2] = pack(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
                pa[mt][3] = pack(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
            }
#pragma unroll
            for (int dj = 0; dj < VC; ++dj) {
                unsigned r[4];
                ldsm4ta(r, vb + (kk * 16 * LDV + dj * 16) * 2);
#pragma unroll
                for (int mt = 0; mt < MT; ++mt) {
                    mma(o[mt][2 * dj], pa[mt], r[0], r[1]);
                    mma(o[mt][2 * dj + 1], pa[mt], r[2], r[3]);
                }
            }
            if constexpr (vTail) {
                unsigned r[2];
                ldsm2ta(r, vb + (kk * 16 * LDV + VC * 16) * 2 - (lane >> 4) * 16);
#pragma unroll
                for (int mt = 0; mt < MT; ++mt)
                    mma(o[mt][NV - 1], pa[mt], r[0], r[1]);
            }
        }
    };

    for (int t = 0; t < nTiles; ++t) {
        copyAsyncWait<0>();  // tile t (issued one iteration ago)
        __syncthreads();   // ... visible to all; every warp is done with tile t - 1
        if (t + 1 < nTiles) {  // the other buffers, last read for tile t - 1
            const int nb = (t + 1) & 1;
            loadTile<kKeys, DK, LD, THREADS>(ks + nb * T::kElems, K, a.ldk, (t + 1) * kKeys, a.keys, a.headDim);
            loadTile<kKeys, DV, LDV, THREADS>(vs + nb * T::vElems, V, a.ldv, (t + 1) * kKeys, a.keys, valueDim);
        }
        copyAsyncCommit();
        if (t * kKeys > lastVisible)
            continue;  // causal: no row of this warp sees this tile
        float s[MT][NS][4];
        scores(s, t);
        update(s, t);
    }
    copyAsyncWait<0>();  // nothing left in flight at exit

#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
        float inv[2];
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            float l = lRow[mt][r];
            l += __shfl_xor_sync(0xffffffffu, l, 1);
            l += __shfl_xor_sync(0xffffffffu, l, 2);
            inv[r] = l > 0.f ? 1.f / l : 0.f;
        }
#pragma unroll
        for (int j = 0; j < NV; ++j) {
            const int d = j * 8 + (lane & 3) * 2;
            if (d >= valueDim)
                continue;
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                const int row = warpRow0 + mt * 16 + (lane >> 2) + r * 8;
                if (row < a.queries)
                    *reinterpret_cast<__nv_bfloat162*>(O + static_cast<long long>(row) * a.ldo + d) =
                        __floats2bfloat162_rn(o[mt][j][2 * r] * inv[r], o[mt][j][2 * r + 1] * inv[r]);
            }
        }
    }
}

template <int DK, int DV, int WARPS, int MT, int MINB>
Status launch(const FlashAttentionArgs& a, cudaStream_t s)
{
    using T = Tiles<DK, DV, WARPS, MT>;
    static const Status attribute = allowSharedMemory("flash attention", T::bytes, flashKernel<DK, DV, WARPS, MT, MINB>);
    if (!attribute.ok())
        return attribute;
    const dim3 grid((a.queries + T::rows - 1) / T::rows, a.heads, a.batch);
    flashKernel<DK, DV, WARPS, MT, MINB><<<grid, WARPS * 32, T::bytes, s>>>(a);
    return launchStatus("flash attention");
}

// The MLA shape's Hopper kernel is wanted (the switch) and can run here.
bool hopperAttention()
{
    static const bool hopper = deviceRunsSm90a();
    return hopper && wgmmaAttentionEnabled();
}

}  // namespace

bool flashAttentionOnWgmma(const FlashAttentionArgs& a)
{
#if TESSERA_HAVE_SM90A
    return hopperAttention() && flashWgmmaApplies(a);
#else
    (void)a;
    return false;
#endif
}

bool flashAttentionSupports(int headDim, int valueDim)
{
    if (valueDim <= 0)
        valueDim = headDim;
    if (headDim <= 0 || headDim % 8 || valueDim % 8)
        return false;
    if (valueDim == headDim)
        return headDim <= 128;
    // Different widths (MLA prefill): both padded to 64, or keys up to 192 with values up to 128.
    return headDim <= 192 && valueDim <= 128;
}

Status flashAttention(const FlashAttentionArgs& a, Stream stream)
{
    if (a.queries <= 0 || a.heads <= 0 || a.batch <= 0)
        return {};
    const int valueDim = a.valueDim > 0 ? a.valueDim : a.headDim;
    if (!flashAttentionSupports(a.headDim, valueDim))
        return Status::failure("flash attention: head dimensions must be multiples of 8, up to 128 (keys up to 192 when values are narrower)");
    if (a.ldq % 8 || a.ldk % 8 || a.ldv % 8 || a.ldo % 2 || a.oHeadStride % 2 || a.qHeadStride % 8 || a.kHeadStride % 8 ||
        a.vHeadStride % 8 || a.qBatchStride % 8 || a.kBatchStride % 8 || a.vBatchStride % 8)
        return Status::failure("flash attention: strides must be multiples of 8 elements");
    if (a.headsPerKv <= 0 || a.batch > 65535 || a.heads > 65535)
        return Status::failure("flash attention: bad head mapping");
    if (!(a.scale > 0.f) || !std::isfinite(a.scale))
        return Status::failure("flash attention: the scale must be positive and finite");
    cudaStream_t s = cuStream(stream);
#if TESSERA_HAVE_SM90A
    if (hopperAttention()) {
        bool launched = false;
        const Status r = launchFlashWgmma(a, s, launched);
        if (!r.ok() || launched)
            return r;
    }
#endif
    // <keys, values, warps, m-tiles per warp, min blocks per SM> (registers capped accordingly).
    if (valueDim != a.headDim) {
        if (a.headDim <= 64 && valueDim <= 64)
            return launch<64, 64, 4, 1, 4>(a, s);
        return launch<192, 128, 4, 1, 2>(a, s);
    }
    if (a.headDim <= 64)
        return launch<64, 64, 4, 1, 4>(a, s);
    if (a.headDim == 72)  // the vision tower: exact, no padded columns
        return launch<72, 72, 8, 2, 1>(a, s);
    if (a.headDim <= 80)
        return launch<80, 80, 4, 1, 3>(a, s);
    if (a.headDim <= 96)
        return launch<96, 96, 4, 1, 3>(a, s);
    return launch<128, 128, 4, 1, 2>(a, s);
}

}  // namespace tessera::kernels
