// Flash attention (FlashAttention-2 style) with mma.sync: a block of WARPS warps owns
// WARPS·16·MT query rows of one (batch, head), each warp 16·MT rows (MT m-tiles sharing every K
// and V fragment it loads). The block walks the keys in tiles of 64, keeps the scores in
// registers, updates the running max / sum per row and accumulates P·V in fp32. K and V tiles go
// through shared memory with rows of an odd number of 16-byte chunks (conflict-free ldmatrix;
// .trans for V), double-buffered: tile t + 1 is copied (cp.async) while tile t is computed.
// Head widths that are a multiple of 8 but not of 16 (the vision tower's 72) run exactly: the
// last 8 key columns go through m16n8k8 and the last 8 value columns through one more n8 tile,
// so nothing is padded. Queries and keys have DK columns, values DV (MLA prefill: 192 and 128).
#include "tessera_kernels/attention.h"

#include "launch_util.cuh"

#include <cmath>
#include <mutex>

namespace tessera::kernels {

namespace {

constexpr int kKeys = 64;  // keys per tile

__device__ __forceinline__ void cpAsync16(void* smem, const void* gmem, bool valid)
{
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cpAsyncWaitAll() { asm volatile("cp.async.commit_group;\ncp.async.wait_group 0;\n" ::); }
__device__ __forceinline__ void cpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cpAsyncWait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void ldsm4(unsigned (&r)[4], const void* p)
{
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(p));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(s));
}
__device__ __forceinline__ void ldsm4t(unsigned (&r)[4], const void* p)
{
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(p));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(s));
}
__device__ __forceinline__ void mma(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// The same on shared-memory addresses (32 bits: fewer registers than generic pointers).
__device__ __forceinline__ unsigned smemAddr(const void* p) { return static_cast<unsigned>(__cvta_generic_to_shared(p)); }
__device__ __forceinline__ void ldsm4a(unsigned (&r)[4], unsigned s)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(s));
}
__device__ __forceinline__ void ldsm4ta(unsigned (&r)[4], unsigned s)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(s));
}
__device__ __forceinline__ void ldsm2a(unsigned (&r)[2], unsigned s)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(s));
}
__device__ __forceinline__ void ldsm2ta(unsigned (&r)[2], unsigned s)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(s));
}
// m16n8k8: the last 8 columns of a head width that is not a multiple of 16.
__device__ __forceinline__ void mma8(float (&d)[4], const unsigned (&a)[2], unsigned b)
{
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(b));
}
// 2^x on the special-function unit (denormal results flush to zero: p < 2^-126 is 0 here).
__device__ __forceinline__ float fastExp2(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}
__device__ __forceinline__ unsigned pack(float lo, float hi)
{
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const unsigned*>(&v);
}

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
        cpAsync16(dst + r * LD + d, valid ? src + static_cast<long long>(row0 + r) * ld + d : src, valid);
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
    cpAsyncCommit();
    if (nTiles > 0) {
        loadTile<kKeys, DK, LD, THREADS>(ks, K, a.ldk, 0, a.keys, a.headDim);
        loadTile<kKeys, DV, LDV, THREADS>(vs, V, a.ldv, 0, a.keys, valueDim);
    }
    cpAsyncCommit();
    cpAsyncWait<1>();  // the queries
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
        cpAsyncWait<0>();  // tile t (issued one iteration ago)
        __syncthreads();   // ... visible to all; every warp is done with tile t - 1
        if (t + 1 < nTiles) {  // the other buffers, last read for tile t - 1
            const int nb = (t + 1) & 1;
            loadTile<kKeys, DK, LD, THREADS>(ks + nb * T::kElems, K, a.ldk, (t + 1) * kKeys, a.keys, a.headDim);
            loadTile<kKeys, DV, LDV, THREADS>(vs + nb * T::vElems, V, a.ldv, (t + 1) * kKeys, a.keys, valueDim);
        }
        cpAsyncCommit();
        if (t * kKeys > lastVisible)
            continue;  // causal: no row of this warp sees this tile
        float s[MT][NS][4];
        scores(s, t);
        update(s, t);
    }
    cpAsyncWait<0>();  // nothing left in flight at exit

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
    static std::once_flag once;
    static cudaError_t attr = cudaSuccess;
    std::call_once(once, [] {
        attr = cudaFuncSetAttribute(flashKernel<DK, DV, WARPS, MT, MINB>, cudaFuncAttributeMaxDynamicSharedMemorySize, T::bytes);
    });
    if (attr != cudaSuccess)
        return cudaStatus(attr, "flash attention: cudaFuncSetAttribute");
    const dim3 grid((a.queries + T::rows - 1) / T::rows, a.heads, a.batch);
    flashKernel<DK, DV, WARPS, MT, MINB><<<grid, WARPS * 32, T::bytes, s>>>(a);
    return launchStatus("flash attention");
}

}  // namespace

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

// ---------------------------------------------------------------------------------------------
// Decode on the tensor cores: one block per (split of 64 positions, kv head) computes every head
// that reads that kv head (MLA: all heads share one latent row set; MHA: one head, padded to the
// 16 rows of an mma tile). S = Q·Kᵀ, soft-max within the split, P·V; warps split the heads'
// m-tiles and the value columns, and write (max, sum, acc) partials for the combine pass. K, V
// and Q tiles arrive through cp.async, all in flight at once.

#include "attention_internal.cuh"

namespace tessera::kernels {

namespace {

constexpr int kDecWarps = 4, kMaxValueTilesPerWarp = 32, kMaxHeadsPerKv = 64;

int roundUp(int v, int m) { return (v + m - 1) / m * m; }

struct DecodeMmaShape {
    int HP, KP, LD, VP, LDV, mTiles, groups, tilesPerWarp;
    bool separateV;
    std::size_t smem;
};

DecodeMmaShape decodeMmaShape(const DecodeAttentionArgs& a)
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
    s.smem = (static_cast<std::size_t>(kDecodeChunk + s.HP) * s.LD + (s.separateV ? static_cast<std::size_t>(kDecodeChunk) * s.LDV : 0)) * 2;
    return s;
}

// rows × cols (cols a multiple of 8) of a bf16 matrix into smem (zero outside rows / valid cols).
// Row skipRow is left out (the caller loads it later with loadRow).
__device__ __forceinline__ void loadRows(bf16* dst, int ldDst, const bf16* src, long long ldSrc, int rows, int validRows,
                                         int cols, int validCols, int skipRow = -1)
{
    const int chunks = cols / 8;
    for (int c = threadIdx.x; c < rows * chunks; c += blockDim.x) {
        const int r = c / chunks, d = (c % chunks) * 8;
        if (r == skipRow)
            continue;
        const bool valid = r < validRows && d < validCols;
        cpAsync16(dst + r * ldDst + d, valid ? src + static_cast<long long>(r) * ldSrc + d : src, valid);
    }
}

__device__ __forceinline__ void loadRow(bf16* dst, int ldDst, const bf16* src, long long ldSrc, int r, int cols, int validCols)
{
    for (int d = threadIdx.x * 8; d < cols; d += blockDim.x * 8)
        cpAsync16(dst + r * ldDst + d, d < validCols ? src + static_cast<long long>(r) * ldSrc + d : src, d < validCols);
}

// The cache rows a decode step reads are old except the newest (context − 1), which the kernel
// before writes: a block copies the old rows of its split before gridDependencyWait() and the
// newest row and the queries after it. The length itself is written at the end of the previous
// step, so it can be read early too. Returns the newest row's index within the split, or −1.
__device__ __forceinline__ int newestRow(int context, int j0, int count)
{
    const int r = context - 1 - j0;
    return r < count ? r : -1;
}

// With a.counters: the block that finishes a kv head's last split merges the partials of that kv
// head's query heads (saving the combine launch); it resets the counter for the next launch.
__device__ __forceinline__ void mergeWhenLast(const DecodeAttentionArgs& a, int splits, int context, int kvh, unsigned char* smem)
{
    if (!a.counters)
        return;
    __shared__ bool last;
    __shared__ float scratch[33];
    __threadfence();
    __syncthreads();
    const int used = (context + kDecodeChunk - 1) / kDecodeChunk;
    if (threadIdx.x == 0)
        last = atomicAdd(a.counters + kvh, 1) == used - 1;
    __syncthreads();
    if (!last)
        return;
    __threadfence();
    float* weights = reinterpret_cast<float*>(smem);  // the tiles are no longer needed
    for (int local = 0; local < a.headsPerKv; ++local) {
        const int h = kvh * a.headsPerKv + local;
        if (a.outType == DType::F32)
            combineHeadPartials<float>(a, splits, used, h, weights, scratch);
        else
            combineHeadPartials<bf16>(a, splits, used, h, weights, scratch);
    }
    if (threadIdx.x == 0)
        a.counters[kvh] = 0;
}

__device__ __forceinline__ void decodeMmaWarp(const DecodeAttentionArgs& a, int splits, const DecodeMmaShape& sh, const bf16* ks,
                                              const bf16* qs, const bf16* vs, int s, int count, int h0, int warp, int lane);

__global__ __launch_bounds__(kDecWarps * 32) void decodeMmaKernel(DecodeAttentionArgs a, int splits, DecodeMmaShape sh)
{
    extern __shared__ __align__(16) unsigned char smemRaw[];
    bf16* ks = reinterpret_cast<bf16*>(smemRaw);
    bf16* qs = ks + kDecodeChunk * sh.LD;
    bf16* vs = sh.separateV ? qs + sh.HP * sh.LD : ks;
    const int s = blockIdx.x, kvh = blockIdx.y;
    const int context = *a.lengthOnDevice + 1;
    const int j0 = s * kDecodeChunk;
    const int count = max(0, min(kDecodeChunk, context - j0));
    const int fresh = newestRow(context, j0, count);
    const int h0 = kvh * a.headsPerKv;
    const bf16* K = static_cast<const bf16*>(a.keys) + kvh * a.keyHeadStride + static_cast<long long>(j0) * a.keyLd;
    const bf16* V = static_cast<const bf16*>(a.values) + kvh * a.valueHeadStride + static_cast<long long>(j0) * a.valueLd;
    const bf16* Q = static_cast<const bf16*>(a.q) + h0 * a.qHeadStride;
    if (count > 0) {
        loadRows(ks, sh.LD, K, a.keyLd, kDecodeChunk, count, sh.KP, a.keyDim, fresh);
        if (sh.separateV)
            loadRows(vs, sh.LDV, V, a.valueLd, kDecodeChunk, count, sh.VP, a.valueDim, fresh);
    }
    gridDependencyWait();
    allowDependentLaunch();
    if (count == 0)
        return;
    loadRows(qs, sh.LD, Q, a.qHeadStride, sh.HP, a.headsPerKv, sh.KP, a.keyDim);
    if (fresh >= 0) {
        loadRow(ks, sh.LD, K, a.keyLd, fresh, sh.KP, a.keyDim);
        if (sh.separateV)
            loadRow(vs, sh.LDV, V, a.valueLd, fresh, sh.VP, a.valueDim);
    }
    cpAsyncWaitAll();
    __syncthreads();

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (warp < sh.mTiles * sh.groups)
        decodeMmaWarp(a, splits, sh, ks, qs, vs, s, count, h0, warp, lane);
    mergeWhenLast(a, splits, context, kvh, smemRaw);
}

// The score, soft-max and value work of one warp of decodeMmaKernel.
__device__ __forceinline__ void decodeMmaWarp(const DecodeAttentionArgs& a, int splits, const DecodeMmaShape& sh, const bf16* ks,
                                              const bf16* qs, const bf16* vs, int s, int count, int h0, int warp, int lane)
{
    const int mt = warp % sh.mTiles, group = warp / sh.mTiles;
    float sc[kDecodeChunk / 8][4];
#pragma unroll
    for (int j = 0; j < kDecodeChunk / 8; ++j)
        sc[j][0] = sc[j][1] = sc[j][2] = sc[j][3] = 0.f;
    for (int kk = 0; kk < sh.KP / 16; ++kk) {
        unsigned qa[4];
        ldsm4(qa, qs + (mt * 16 + (lane & 15)) * sh.LD + kk * 16 + (lane >> 4) * 8);
#pragma unroll
        for (int nj = 0; nj < kDecodeChunk / 16; ++nj) {
            unsigned r[4];
            ldsm4(r, ks + (nj * 16 + (lane & 7) + ((lane >> 4) << 3)) * sh.LD + kk * 16 + ((lane >> 3) & 1) * 8);
            mma(sc[2 * nj], qa, r[0], r[1]);
            mma(sc[2 * nj + 1], qa, r[2], r[3]);
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
    float acc[kMaxValueTilesPerWarp][4];
#pragma unroll
    for (int j = 0; j < kMaxValueTilesPerWarp; ++j)
        acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
    const int tile0 = group * sh.tilesPerWarp;
    const int tiles = min(sh.tilesPerWarp, a.valueDim / 8 - tile0);
#pragma unroll
    for (int kk = 0; kk < kDecodeChunk / 16; ++kk) {
        const unsigned pa[4] = {pack(sc[2 * kk][0], sc[2 * kk][1]), pack(sc[2 * kk][2], sc[2 * kk][3]),
                                pack(sc[2 * kk + 1][0], sc[2 * kk + 1][1]), pack(sc[2 * kk + 1][2], sc[2 * kk + 1][3])};
#pragma unroll
        for (int dj = 0; dj < kMaxValueTilesPerWarp / 2; ++dj) {
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
    const int valueStride = a.valueDim + 2;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int local = mt * 16 + (lane >> 2) + r * 8;
        if (local >= a.headsPerKv)
            continue;
        float* part = a.workspace + (static_cast<long long>(h0 + local) * splits + s) * valueStride;
        if (group == 0 && (lane & 3) == 0) {
            part[0] = mx[r];
            part[1] = sum[r];
        }
#pragma unroll
        for (int j = 0; j < kMaxValueTilesPerWarp; ++j) {
            if (j >= tiles)
                break;
            const int d = (tile0 + j) * 8 + (lane & 3) * 2;
            *reinterpret_cast<float2*>(part + 2 + d) = make_float2(acc[j][2 * r], acc[j][2 * r + 1]);
        }
    }
}

// Latent rows shared by every head (MLA's absorbed decode): keys and values are the same rows, so
// a block reads its 64 positions once and 8 warps split each phase. Scores: warp (g, half) takes
// keys [16g, 16g + 16) over one half of the key dimensions, for every head; the two halves meet
// in shared memory. Soft-max: one warp per head row at a time. P·V: warps split the value
// columns. Partials have the layout of the kernels above.
constexpr int kLatWarps = 8, kLatKeys = kDecodeChunk, kLatMaxMTiles = 4, kLatMaxTilesPerWarp = 8;
static_assert(kLatKeys == 64, "the soft-max gives each lane two keys of a split");

struct LatentShape {
    int HP, KP, LD, PLD, mTiles, valueTiles, tilesPerWarp, halfSteps;
    std::size_t smem;
};

LatentShape latentShape(const DecodeAttentionArgs& a)
{
    LatentShape s{};
    s.HP = roundUp(a.headsPerKv, 16);
    s.KP = roundUp(a.keyDim, 32);  // two halves of whole 16-column steps
    s.LD = s.KP + 8;
    s.PLD = kLatKeys + 8;
    s.mTiles = s.HP / 16;
    s.valueTiles = a.valueDim / 8;
    s.tilesPerWarp = (s.valueTiles + kLatWarps - 1) / kLatWarps;
    s.tilesPerWarp += s.tilesPerWarp % 2;  // value tiles go in pairs (one ldmatrix.x4.trans)
    s.halfSteps = s.KP / 32;
    s.smem = static_cast<std::size_t>(kLatKeys + s.HP) * s.LD * 2 + static_cast<std::size_t>(s.HP) * s.PLD * 2 +
             static_cast<std::size_t>(2 * s.HP * kLatKeys + 2 * s.HP) * sizeof(float);
    return s;
}

bool latentSupported(const DecodeAttentionArgs& a, const LatentShape& sh)
{
    const bool shared = a.values == a.keys && a.valueLd == a.keyLd && a.valueHeadStride == a.keyHeadStride;
    return shared && a.headsPerKv >= 16 && sh.mTiles <= kLatMaxMTiles && sh.tilesPerWarp <= kLatMaxTilesPerWarp &&
           a.valueDim <= a.keyDim && sh.smem <= 200 * 1024;
}

__global__ __launch_bounds__(kLatWarps * 32) void decodeLatentKernel(DecodeAttentionArgs a, int splits, LatentShape sh)
{
    extern __shared__ __align__(16) unsigned char smemRaw[];
    bf16* ks = reinterpret_cast<bf16*>(smemRaw);
    bf16* qs = ks + kLatKeys * sh.LD;
    bf16* ps = qs + sh.HP * sh.LD;
    float* scores = reinterpret_cast<float*>(ps + sh.HP * sh.PLD);  // [2 halves][HP][keys]
    float* rowMax = scores + 2 * sh.HP * kLatKeys;
    float* rowSum = rowMax + sh.HP;
    const int s = blockIdx.x, kvh = blockIdx.y;
    const int context = *a.lengthOnDevice + 1;  // see newestRow()
    const int j0 = s * kLatKeys;
    const int count = max(0, min(kLatKeys, context - j0));
    const int fresh = newestRow(context, j0, count);
    const int h0 = kvh * a.headsPerKv;
    const bf16* K = static_cast<const bf16*>(a.keys) + kvh * a.keyHeadStride + static_cast<long long>(j0) * a.keyLd;
    const bf16* Q = static_cast<const bf16*>(a.q) + h0 * a.qHeadStride;
    if (count > 0)
        loadRows(ks, sh.LD, K, a.keyLd, kLatKeys, count, sh.KP, a.keyDim, fresh);
    gridDependencyWait();
    allowDependentLaunch();
    if (count == 0)
        return;
    loadRows(qs, sh.LD, Q, a.qHeadStride, sh.HP, a.headsPerKv, sh.KP, a.keyDim);
    if (fresh >= 0)
        loadRow(ks, sh.LD, K, a.keyLd, fresh, sh.KP, a.keyDim);
    cpAsyncWaitAll();
    __syncthreads();

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    {
        const int g = warp & 3, half = warp >> 2;
        float sc[kLatMaxMTiles][2][4];
#pragma unroll
        for (int m = 0; m < kLatMaxMTiles; ++m)
#pragma unroll
            for (int n = 0; n < 2; ++n)
                sc[m][n][0] = sc[m][n][1] = sc[m][n][2] = sc[m][n][3] = 0.f;
        for (int step = 0; step < sh.halfSteps; ++step) {
            const int col = (half * sh.halfSteps + step) * 16;
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
        float* out = scores + half * sh.HP * kLatKeys;
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
                    out[row * kLatKeys + key] = sc[m][n][e];
                }
        }
    }
    __syncthreads();
    // Soft-max within the split (natural-log scale, as the combine pass expects).
    for (int row = warp; row < sh.HP; row += kLatWarps) {
        const float* s0 = scores + row * kLatKeys;
        const float* s1 = s0 + sh.HP * kLatKeys;
        const float v0 = lane < count ? (s0[lane] + s1[lane]) * a.scale : -INFINITY;
        const float v1 = lane + 32 < count ? (s0[lane + 32] + s1[lane + 32]) * a.scale : -INFINITY;
        const float mx = warpMax(fmaxf(v0, v1));
        const float p0 = __expf(v0 - mx), p1 = __expf(v1 - mx);
        const float sum = warpSum(p0 + p1);
        ps[row * sh.PLD + lane] = __float2bfloat16_rn(p0);
        ps[row * sh.PLD + lane + 32] = __float2bfloat16_rn(p1);
        if (lane == 0) {
            rowMax[row] = mx;
            rowSum[row] = sum;
        }
    }
    __syncthreads();
    // P·V over this warp's value tiles; the values are the first valueDim columns of the rows.
    float acc[kLatMaxMTiles][kLatMaxTilesPerWarp][4];
#pragma unroll
    for (int m = 0; m < kLatMaxMTiles; ++m)
#pragma unroll
        for (int j = 0; j < kLatMaxTilesPerWarp; ++j)
            acc[m][j][0] = acc[m][j][1] = acc[m][j][2] = acc[m][j][3] = 0.f;
    const int tile0 = warp * sh.tilesPerWarp;
    const int tiles = max(0, min(sh.tilesPerWarp, sh.valueTiles - tile0));
#pragma unroll
    for (int kk = 0; kk < kLatKeys / 16; ++kk) {
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
            if (warp == 0 && (lane & 3) == 0) {
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

Status decodeSharedKvPartials(const DecodeAttentionArgs& args, int splits, cudaStream_t stream, bool& combined)
{
    combined = false;
    DecodeAttentionArgs a = args;
    static std::once_flag once;
    static cudaError_t attr = cudaSuccess;
    std::call_once(once, [] {
        attr = cudaFuncSetAttribute(decodeMmaKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024);
        if (attr == cudaSuccess)
            attr = cudaFuncSetAttribute(decodeLatentKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024);
    });
    if (attr != cudaSuccess)
        return cudaStatus(attr, "decode attention (tensor cores): cudaFuncSetAttribute");
    const LatentShape lat = latentShape(a);
    if (latentSupported(a, lat)) {
        const dim3 grid(splits, a.heads / a.headsPerKv);
        return launchOverlapped("decode attention (latent rows)", decodeLatentKernel, grid, kLatWarps * 32, lat.smem, stream, a,
                                splits, lat);
    }
    const DecodeMmaShape sh = decodeMmaShape(a);
    if (sh.smem < (static_cast<std::size_t>(splits) + 8) * sizeof(float))
        a.counters = nullptr;  // too little shared memory to merge in the kernel
    combined = a.counters != nullptr;
    const dim3 grid(splits, a.heads / a.headsPerKv);
    return launchOverlapped("decode attention (tensor cores)", decodeMmaKernel, grid, kDecWarps * 32, sh.smem, stream, a, splits, sh);
}

}  // namespace tessera::kernels
