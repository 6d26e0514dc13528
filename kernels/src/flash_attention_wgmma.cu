// Prefill and vision attention on the Hopper tensor cores (wgmma; built for sm_90a only, used on
// compute capability 9.0 devices) for the family's head shapes: the MLA prefill's keys of 192
// columns (128 nope + 64 rope) and values of 128, the MHA prefill's 128 / 128 and the vision
// tower's 72 / 72. A block owns 128 query rows of one (batch, head): a producer warp copies the
// block's queries once and then tiles of 128 keys (vision: 64) and their values with bulk tensor
// copies (TMA) into a two-stage ring in the 128-byte swizzled layout (64-column chunks; columns
// past the head width arrive as zeros, so 72 runs as 80 in the products); each of two consumer
// warpgroups computes its 64 rows' scores S = Q·Kᵀ (m64nKk16, both operands in shared memory), the
// online soft-max in registers, and O += P·V with P as a register operand and V read transposed
// from shared memory (MN-major B). The arithmetic is flash_attention.cu's: raw scores, the running
// max and p = 2^(s·scale·log2e − m) in fp32, p rounded to bf16 for the product, fp32 accumulation.
#include "flash_internal.cuh"
#include "hopper_util.cuh"
#include "launch_util.cuh"
#include "mbarrier.cuh"
#include "mma_util.cuh"

#include <cstdint>

namespace tessera::kernels {

namespace {

constexpr int BM = 128;           // query rows per block (64 per consumer warpgroup)
constexpr int kRow = 128;         // bytes of a swizzled row (64 bf16)
constexpr int kStages = 2;
constexpr int kConsumers = 256;                // two warpgroups
constexpr int kThreads = kConsumers + 32;      // + the producer warp

// Shared-memory layout for keys of DK columns and values of DV, KN keys per tile.
template <int DK, int DV, int KN>
struct Shape {
    static constexpr int kChunks = (DK + 63) / 64, vChunks = (DV + 63) / 64;  // 64-column chunks
    static constexpr int kSteps = (DK + 15) / 16;                               // k steps of the scores
    static constexpr int qBytes = kChunks * BM * kRow, kBytes = kChunks * KN * kRow, vBytes = vChunks * KN * kRow;
    // Queries, the key / value ring, slack to align it to the 1024-byte swizzle atoms, the barriers.
    static constexpr int smemBytes = qBytes + kStages * (kBytes + vBytes) + 1024 + (1 + 2 * kStages) * 8;
    static_assert(DV % 8 == 0 && DV <= 128 && DK <= 192, "head widths");
};

// D[64×N] (+)= A[64×16] · B[N×16]ᵀ, both K-major in shared memory; accumulate = false
// overwrites D.
template <int N>
__device__ __forceinline__ void wgmmaScores(float (&d)[N / 2], std::uint64_t a, std::uint64_t b, bool accumulate);
template <>
__device__ __forceinline__ void wgmmaScores<128>(float (&d)[64], std::uint64_t a, std::uint64_t b, bool accumulate)
{
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "setp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
        "}, %64, %65, p, 1, 1, 0, 0;\n"
        "}\n"
        : TESSERA_WGMMA_D8(d, 0), TESSERA_WGMMA_D8(d, 8), TESSERA_WGMMA_D8(d, 16), TESSERA_WGMMA_D8(d, 24),
          TESSERA_WGMMA_D8(d, 32), TESSERA_WGMMA_D8(d, 40), TESSERA_WGMMA_D8(d, 48), TESSERA_WGMMA_D8(d, 56)
        : "l"(a), "l"(b), "r"(static_cast<int>(accumulate)));
}
template <>
__device__ __forceinline__ void wgmmaScores<64>(float (&d)[32], std::uint64_t a, std::uint64_t b, bool accumulate)
{
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "setp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
        "}, %32, %33, p, 1, 1, 0, 0;\n"
        "}\n"
        : TESSERA_WGMMA_D8(d, 0), TESSERA_WGMMA_D8(d, 8), TESSERA_WGMMA_D8(d, 16), TESSERA_WGMMA_D8(d, 24)
        : "l"(a), "l"(b), "r"(static_cast<int>(accumulate)));
}

// D[64×N] += A[64×16] · B, A in registers (the mma.sync A fragment layout, per warp 16 rows),
// B[16×N] MN-major in shared memory (a row of 64 output columns per key, chunks of 64 columns).
template <int N>
__device__ __forceinline__ void wgmmaValues(float (&d)[N / 2], const unsigned (&a)[4], std::uint64_t b);
template <>
__device__ __forceinline__ void wgmmaValues<128>(float (&d)[64], const unsigned (&a)[4], std::uint64_t b)
{
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "setp.ne.b32 p, 1, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
        "}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n"
        "}\n"
        : TESSERA_WGMMA_D8(d, 0), TESSERA_WGMMA_D8(d, 8), TESSERA_WGMMA_D8(d, 16), TESSERA_WGMMA_D8(d, 24),
          TESSERA_WGMMA_D8(d, 32), TESSERA_WGMMA_D8(d, 40), TESSERA_WGMMA_D8(d, 48), TESSERA_WGMMA_D8(d, 56)
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b));
}

template <>
__device__ __forceinline__ void wgmmaValues<72>(float (&d)[36], const unsigned (&a)[4], std::uint64_t b)
{
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "setp.ne.b32 p, 1, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n72k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35"
        "}, {%36, %37, %38, %39}, %40, p, 1, 1, 1;\n"
        "}\n"
        : TESSERA_WGMMA_D8(d, 0), TESSERA_WGMMA_D8(d, 8), TESSERA_WGMMA_D8(d, 16), TESSERA_WGMMA_D8(d, 24),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b));
}

struct Params {
    int heads, headsPerKv, queries, keys, qPosition0;
    bool causal;
    float scaleLog2;
    bf16* o;
    long long ldo, oHeadStride, oBatchStride;
};

// q: [batch, queries, heads, DK] as {DK, heads, queries, batch}, box {64, 1, 128, 1}; k: the same
// over kv heads and keys, box {64, 1, KN, 1}; v: {DV, kv heads, keys, batch}, box {64, 1, KN, 1}.
// Rows and columns past the end arrive as zeros.
template <int DK, int DV, int KN, int MINB>
__global__ __launch_bounds__(kThreads, MINB) void flashWgmmaKernel(const __grid_constant__ CUtensorMap qMap,
                                                                const __grid_constant__ CUtensorMap kMap,
                                                                const __grid_constant__ CUtensorMap vMap, Params p)
{
    using S = Shape<DK, DV, KN>;
    constexpr int NO = DV / 2;  // output accumulators per thread: DV / 8 n8 blocks of 4
    extern __shared__ unsigned char smemRaw[];
    const unsigned rawAddr = static_cast<unsigned>(__cvta_generic_to_shared(smemRaw));
    const unsigned qBase = (rawAddr + 1023u) & ~1023u;
    const unsigned kBase = qBase + S::qBytes, vBase = kBase + kStages * S::kBytes;
    const unsigned qBar = vBase + kStages * S::vBytes, fullBar = qBar + 8, emptyBar = fullBar + kStages * 8;

    // Causal: the longest query blocks start first, the short ones fill the tail.
    const int qTile = p.causal ? static_cast<int>(gridDim.x) - 1 - static_cast<int>(blockIdx.x) : static_cast<int>(blockIdx.x);
    const int qBlock = qTile * BM, h = blockIdx.y, b = blockIdx.z;
    const int keyEnd = p.causal ? min(p.keys, p.qPosition0 + qBlock + BM) : p.keys;
    const int nTiles = keyEnd > 0 ? (keyEnd + KN - 1) / KN : 0;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;

    if (tid == 0) {
        mbarInit(qBar, 1);
        for (int s = 0; s < kStages; ++s) {
            mbarInit(fullBar + s * 8, 1);
            mbarInit(emptyBar + s * 8, kConsumers);
        }
        mbarInitFence();
    }
    __syncthreads();

    if (warp == kConsumers / 32) {  // producer warp
        if (lane == 0) {
            const int kvh = h / p.headsPerKv;
            mbarArriveExpectTx(qBar, S::qBytes);
            for (int c = 0; c < S::kChunks; ++c)
                tmaLoad4d(qBase + c * BM * kRow, &qMap, c * 64, h, qBlock, b, qBar);
            for (int t = 0; t < nTiles; ++t) {
                const int s = t % kStages;
                mbarWait(emptyBar + s * 8, ((t / kStages) & 1) ^ 1);  // first round: passes at once
                const unsigned full = fullBar + s * 8;
                mbarArriveExpectTx(full, S::kBytes + S::vBytes);
                for (int c = 0; c < S::kChunks; ++c)
                    tmaLoad4d(kBase + s * S::kBytes + c * KN * kRow, &kMap, c * 64, kvh, t * KN, b, full);
                for (int c = 0; c < S::vChunks; ++c)
                    tmaLoad4d(vBase + s * S::vBytes + c * KN * kRow, &vMap, c * 64, kvh, t * KN, b, full);
            }
        }
        return;
    }

    const int wg = warp >> 2;
    const int wgRow0 = qBlock + wg * 64;                         // this warpgroup's first row
    const int lastVisible = p.causal ? p.qPosition0 + wgRow0 + 63 : p.keys - 1;  // of its rows
    const int row0 = wgRow0 + (warp & 3) * 16 + (lane >> 2);    // the thread's rows: row0, row0 + 8
    float o[NO];
#pragma unroll
    for (int i = 0; i < NO; ++i)
        o[i] = 0.f;
    float mRow[2] = {-INFINITY, -INFINITY}, lRow[2] = {0.f, 0.f};
    const std::uint64_t qDesc = smemDescriptor(qBase + wg * 64 * kRow);
    mbarWait(qBar, 0);

    for (int t = 0; t < nTiles; ++t) {
        const int s = t % kStages, k0 = t * KN;
        mbarWait(fullBar + s * 8, (t / kStages) & 1);
        if (k0 <= lastVisible) {
            float sc[KN / 2];
            const std::uint64_t kDesc = smemDescriptor(kBase + s * S::kBytes);
            wgmmaFence();
#pragma unroll
            for (int ks = 0; ks < S::kSteps; ++ks) {
                // k step ks: chunk ks / 4 (rows × 128 bytes each), 32 bytes further per step inside it
                const int qStep = (ks / 4) * (BM * kRow / 16) + (ks % 4) * 2;
                const int kStep = (ks / 4) * (KN * kRow / 16) + (ks % 4) * 2;
                wgmmaScores<KN>(sc, qDesc + qStep, kDesc + kStep, ks > 0);
            }
            wgmmaCommit();
            wgmmaWait<0>();

            // Mask where a key of the tile is past the end or, causal, past one of these rows.
            if (k0 + KN > p.keys || (p.causal && k0 + KN - 1 > p.qPosition0 + wgRow0)) {
#pragma unroll
                for (int j = 0; j < KN / 8; ++j)
#pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        const int key = k0 + j * 8 + (lane & 3) * 2 + (e & 1);
                        const int row = row0 + (e >> 1) * 8;
                        bool visible = key < p.keys;
                        if (p.causal)
                            visible = visible && key <= p.qPosition0 + row;
                        if (!visible)
                            sc[j * 4 + e] = -INFINITY;
                    }
            }
            float mUse[2];
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                float tileMax = -INFINITY;
#pragma unroll
                for (int j = 0; j < KN / 8; ++j)
                    tileMax = fmaxf(tileMax, fmaxf(sc[j * 4 + 2 * r], sc[j * 4 + 2 * r + 1]));
                tileMax = fmaxf(tileMax, __shfl_xor_sync(0xffffffffu, tileMax, 1));
                tileMax = fmaxf(tileMax, __shfl_xor_sync(0xffffffffu, tileMax, 2));
                const float mNew = fmaxf(mRow[r], tileMax * p.scaleLog2);
                const float corr = mNew == -INFINITY ? 1.f : fastExp2(mRow[r] - mNew);
                mRow[r] = mNew;
                mUse[r] = mNew == -INFINITY ? 0.f : mNew;
                lRow[r] *= corr;
#pragma unroll
                for (int j = 0; j < DV / 8; ++j) {
                    o[j * 4 + 2 * r] *= corr;
                    o[j * 4 + 2 * r + 1] *= corr;
                }
            }
#pragma unroll
            for (int j = 0; j < KN / 8; ++j)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const float pv = fastExp2(fmaf(sc[j * 4 + e], p.scaleLog2, -mUse[e >> 1]));
                    sc[j * 4 + e] = pv;
                    lRow[e >> 1] += pv;
                }
            unsigned pa[KN / 16][4];
#pragma unroll
            for (int kk = 0; kk < KN / 16; ++kk) {
                pa[kk][0] = pack(sc[8 * kk], sc[8 * kk + 1]);
                pa[kk][1] = pack(sc[8 * kk + 2], sc[8 * kk + 3]);
                pa[kk][2] = pack(sc[8 * kk + 4], sc[8 * kk + 5]);
                pa[kk][3] = pack(sc[8 * kk + 6], sc[8 * kk + 7]);
            }
            // V: keys 16·kk .. + 15 are rows 2 kk · 1024 bytes into each 64-column chunk; the
            // chunks are KN · 128 bytes apart.
            const unsigned vStage = vBase + s * S::vBytes;
            wgmmaFence();
#pragma unroll
            for (int kk = 0; kk < KN / 16; ++kk)
                wgmmaValues<DV>(o, pa[kk], smemDescriptor(vStage + kk * 16 * kRow, 1024, KN * kRow));
            wgmmaCommit();
            wgmmaWait<0>();
        }
        mbarArrive(emptyBar + s * 8);
    }

    float inv[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        float l = lRow[r];
        l += __shfl_xor_sync(0xffffffffu, l, 1);
        l += __shfl_xor_sync(0xffffffffu, l, 2);
        inv[r] = l > 0.f ? 1.f / l : 0.f;
    }
    bf16* O = p.o + b * p.oBatchStride + h * p.oHeadStride;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int row = row0 + r * 8;
        if (row >= p.queries)
            continue;
        bf16* out = O + static_cast<long long>(row) * p.ldo + (lane & 3) * 2;
#pragma unroll
        for (int j = 0; j < DV / 8; ++j)
            *reinterpret_cast<__nv_bfloat162*>(out + j * 8) = __floats2bfloat162_rn(o[j * 4 + 2 * r] * inv[r], o[j * 4 + 2 * r + 1] * inv[r]);
    }
}

// A 4-d map {columns, heads, rows, batch} of a bf16 tensor, box {64, 1, boxRows, 1}, 128-byte swizzle.
// Strides in elements; a dimension of extent 1 gets a stride that is valid whatever it was.
bool encode4d(CUtensorMap& map, const void* base, int columns, int heads, int rows, int batch, long long headStride, long long ld,
              long long batchStride, int boxRows)
{
    const auto encode = tensorMapEncoder();
    if (!encode)
        return false;
    if (heads == 1)
        headStride = columns;
    if (batch == 1)
        batchStride = ld * rows;
    const cuuint64_t dims[4] = {static_cast<cuuint64_t>(columns), static_cast<cuuint64_t>(heads), static_cast<cuuint64_t>(rows),
                                static_cast<cuuint64_t>(batch)};
    const cuuint64_t strides[3] = {static_cast<cuuint64_t>(headStride) * 2, static_cast<cuuint64_t>(ld) * 2,
                                   static_cast<cuuint64_t>(batchStride) * 2};
    const cuuint32_t box[4] = {64, 1, static_cast<cuuint32_t>(boxRows), 1}, ones[4] = {1, 1, 1, 1};
    return encode(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 4, const_cast<void*>(base), dims, strides, box, ones,
                  CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                  CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

struct Maps {
    CUtensorMap q, k, v;
};

// The head shapes this kernel runs: 0 when none.
enum class Kind { None, Mla, Mha128, Vision72 };
Kind kindOf(const FlashAttentionArgs& a)
{
    const int valueDim = a.valueDim > 0 ? a.valueDim : a.headDim;
    if (a.headDim == 192 && valueDim == 128)
        return Kind::Mla;
    if (a.headDim == 128 && valueDim == 128)
        return Kind::Mha128;
    if (a.headDim == 72 && valueDim == 72)
        return Kind::Vision72;
    return Kind::None;
}

// Keys per tile: 64 for the vision shape, whose blocks then need few enough registers (96) and
// shared memory (97 KB) for two to share an SM, one's first copies running beside the other's
// products (its blocks see only 6 tiles of 128 keys: 112 µs a layer against 127 with one block
// per SM); 128 for the others.
int keysPerTile(Kind kind) { return kind == Kind::Vision72 ? 64 : 128; }

// The tensor maps of a call this kernel takes (false: not one of its shapes, or no maps).
bool makeMaps(const FlashAttentionArgs& a, Maps& m)
{
    const Kind kind = kindOf(a);
    if (kind == Kind::None)
        return false;
    const int valueDim = a.valueDim > 0 ? a.valueDim : a.headDim;
    // 16-byte aligned bases and strides (the encoder checks the strides), 4-byte output pairs.
    auto aligned = [](const void* ptr) { return reinterpret_cast<std::uintptr_t>(ptr) % 16 == 0; };
    if (!aligned(a.q) || !aligned(a.k) || !aligned(a.v) || a.ldo % 2 || a.oHeadStride % 2 || a.oBatchStride % 2)
        return false;
    const int kvHeads = a.heads / a.headsPerKv, kn = keysPerTile(kind);
    return encode4d(m.q, a.q, a.headDim, a.heads, a.queries, a.batch, a.qHeadStride, a.ldq, a.qBatchStride, BM) &&
           encode4d(m.k, a.k, a.headDim, kvHeads, a.keys, a.batch, a.kHeadStride, a.ldk, a.kBatchStride, kn) &&
           encode4d(m.v, a.v, valueDim, kvHeads, a.keys, a.batch, a.vHeadStride, a.ldv, a.vBatchStride, kn);
}

// MINB blocks per SM: 2 where registers and shared memory allow it (72 / 72 with 64-key tiles).
template <int DK, int DV, int KN, int MINB>
Status launch(const FlashAttentionArgs& a, const Maps& m, cudaStream_t stream)
{
    using S = Shape<DK, DV, KN>;
    static const Status attribute = allowSharedMemory("flash attention (wgmma)", S::smemBytes, flashWgmmaKernel<DK, DV, KN, MINB>);
    if (!attribute.ok())
        return attribute;
    const Params p{a.heads, a.headsPerKv, a.queries, a.keys, a.qPosition0, a.causal, a.scale * 1.4426950408889634f,
                   static_cast<bf16*>(a.o), a.ldo, a.oHeadStride, a.oBatchStride};
    const dim3 grid((a.queries + BM - 1) / BM, a.heads, a.batch);
    flashWgmmaKernel<DK, DV, KN, MINB><<<grid, kThreads, S::smemBytes, stream>>>(m.q, m.k, m.v, p);
    return launchStatus("flash attention (wgmma)");
}

}  // namespace

bool flashWgmmaApplies(const FlashAttentionArgs& a)
{
    Maps m;
    return makeMaps(a, m);
}

Status launchFlashWgmma(const FlashAttentionArgs& a, cudaStream_t stream, bool& launched)
{
    launched = false;
    Maps m;
    if (!makeMaps(a, m))
        return {};
    launched = true;
    switch (kindOf(a)) {
    case Kind::Mla:
        return launch<192, 128, 128, 1>(a, m, stream);
    case Kind::Mha128:
        return launch<128, 128, 128, 1>(a, m, stream);
    case Kind::Vision72:
        return launch<72, 72, 64, 2>(a, m, stream);
    case Kind::None:
        break;
    }
    launched = false;
    return {};
}

}  // namespace tessera::kernels
