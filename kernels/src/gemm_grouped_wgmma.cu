// Grouped bf16 product on the Hopper tensor cores (wgmma, fp32 accumulation; built for sm_90a
// only, gemm.cu picks it on compute capability 9.0 devices) for the experts of a
// mixture-of-experts layer: every block computes a 128×256 tile of one expert's rows, so all
// experts run in one launch with no host round trip. A producer warp streams 64-deep k tiles of
// A (the expert's rows) and B (its weights) with bulk tensor copies (TMA) into a four-stage ring
// in the 128-byte swizzled layout the wgmma descriptors read; "full" mbarriers say a stage has
// landed, "empty" ones that both consumer warpgroups (64 rows × 256 columns each, m64n256k16)
// are done with it. Gated (GroupedGemmArgs::gatedOutput): the 256 columns are 128 gate rows and
// the 128 up rows of the same units (two copies per stage), and the store writes
// silu(gate)·up of each unit from the two accumulators a thread holds for it.
// A tile of at most 64 rows (an expert's last, or an expert of few tokens) copies only those rows
// and is computed by the first consumer warpgroup alone: about half the tensor-core work and a
// sixth fewer bytes than a full tile.
#include "dot_util.cuh"
#include "gemm_internal.cuh"
#include "hopper_util.cuh"
#include "launch_util.cuh"
#include "mbarrier.cuh"

#include <cstdint>

namespace tessera::kernels {

namespace {

constexpr int BM = kMmaTileRows, BN = 256, BK = 64, STAGES = 4;
constexpr int kRowBytes = BK * 2;  // one 128-byte swizzle row per tile row
constexpr int kStageBytes = (BM + BN) * kRowBytes;
constexpr int kHalfStageBytes = (BM / 2 + BN) * kRowBytes;  // a tile of at most 64 rows
constexpr int kThreads = 256;  // the two consumer warpgroups

// D[64×256] += A[64×16] · B[256×16]ᵀ, both from shared memory.
__device__ __forceinline__ void wgmma256(float (&d)[128], std::uint64_t a, std::uint64_t b)
{
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "setp.ne.b32 p, 1, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "
        "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "
        "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "
        "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "
        "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
        "}, %128, %129, p, 1, 1, 0, 0;\n"
        "}\n"
        :
          TESSERA_WGMMA_D8(d, 0), TESSERA_WGMMA_D8(d, 8), TESSERA_WGMMA_D8(d, 16), TESSERA_WGMMA_D8(d, 24),
          TESSERA_WGMMA_D8(d, 32), TESSERA_WGMMA_D8(d, 40), TESSERA_WGMMA_D8(d, 48), TESSERA_WGMMA_D8(d, 56),
          TESSERA_WGMMA_D8(d, 64), TESSERA_WGMMA_D8(d, 72), TESSERA_WGMMA_D8(d, 80), TESSERA_WGMMA_D8(d, 88),
          TESSERA_WGMMA_D8(d, 96), TESSERA_WGMMA_D8(d, 104), TESSERA_WGMMA_D8(d, 112), TESSERA_WGMMA_D8(d, 120)
        : "l"(a), "l"(b));
}

template <typename TC>
__device__ __forceinline__ void store2(TC* p, float a, float b, bool second)
{
    p[0] = fromFloat<TC>(a);
    if (second)
        p[1] = fromFloat<TC>(b);
}

constexpr int kTmaThreads = kThreads + 32;  // two consumer warpgroups + one producer warp
// The ring, slack to align it to the 1024-byte swizzle atoms, and the full / empty mbarriers.
constexpr int kTmaSmemBytes = STAGES * kStageBytes + 1024 + 2 * STAGES * 8;
// A consumer warpgroup's products of one tile: k tiles 0 .. KT − 1 of the ring (stage
// kt % STAGES, round kt / STAGES). Each stage goes back to the producer (its "empty" barrier)
// once the next k tile's products are issued and its own are done; the last one needs no return.
__device__ __forceinline__ void consumeTile(float (&acc)[128], unsigned aBase, unsigned bBase, unsigned fullBar, unsigned emptyBar, int wg,
                                            int KT)
{
#pragma unroll
    for (int i = 0; i < 128; ++i)
        acc[i] = 0.f;
    for (int kt = 0; kt < KT; ++kt) {
        const int s = kt % STAGES;
        mbarWait(fullBar + s * 8, (kt / STAGES) & 1);
        const std::uint64_t da = smemDescriptor(aBase + s * BM * kRowBytes + wg * 64 * kRowBytes);
        const std::uint64_t db = smemDescriptor(bBase + s * BN * kRowBytes);
        wgmmaFence();
#pragma unroll
        for (int ks = 0; ks < BK / 16; ++ks)
            wgmma256(acc, da + 2 * ks, db + 2 * ks);
        wgmmaCommit();
        wgmmaWait<1>();  // the previous k tile's products are done: hand its stage back
        if (kt > 0)
            mbarArrive(emptyBar + (kt - 1) % STAGES * 8);
    }
    wgmmaWait<0>();
}

// The consumer thread's part of the tile at (rowBase, n0): rows past rowEnd (the expert's) and
// columns past N are left out.
template <typename TC>
__device__ __forceinline__ void storeTile(const MmaParams& p, const float (&acc)[128], long long rowBase, long long rowEnd, int n0, int wg,
                                          int warp, int lane)
{
    TC* C = static_cast<TC*>(p.C);
    const long long r0 = rowBase + wg * 64 + (warp & 3) * 16 + (lane >> 2);
#pragma unroll
    for (int j = 0; j < BN / 8; ++j) {
        const int c = n0 + j * 8 + (lane & 3) * 2;
        if (c >= p.N)
            continue;
        const bool second = c + 1 < p.N;
        if (r0 < rowEnd)
            store2(C + r0 * p.ldc + c, acc[j * 4], acc[j * 4 + 1], second);
        if (r0 + 8 < rowEnd)
            store2(C + (r0 + 8) * p.ldc + c, acc[j * 4 + 2], acc[j * 4 + 3], second);
    }
}

// Gated: the thread's part of the tile of units (n0, …) as TC(silu(g)·u), g and u first rounded to
// TC as the two-step path (gate/up product, then siluGate) stores and reads them.
template <typename TC>
__device__ __forceinline__ void storeGatedTile(const MmaParams& p, const float (&acc)[128], long long rowBase, long long rowEnd, int n0,
                                               int wg, int warp, int lane)
{
    TC* C = static_cast<TC*>(p.C);
    const long long r0 = rowBase + wg * 64 + (warp & 3) * 16 + (lane >> 2);
    auto act = [](float g, float u) { return silu(toFloat(fromFloat<TC>(g))) * toFloat(fromFloat<TC>(u)); };
    constexpr int kUp = BN / 16;  // the up half's first n8 block
#pragma unroll
    for (int j = 0; j < BN / 16; ++j) {
        const int c = n0 + j * 8 + (lane & 3) * 2;
        if (c >= p.N)
            continue;
        const bool second = c + 1 < p.N;
        const float* g = acc + j * 4;
        const float* u = acc + (j + kUp) * 4;
        if (r0 < rowEnd)
            store2(C + r0 * p.ldc + c, act(g[0], u[0]), act(g[1], u[1]), second);
        if (r0 + 8 < rowEnd)
            store2(C + (r0 + 8) * p.ldc + c, act(g[2], u[2]), act(g[3], u[3]), second);
    }
}

// a: [rows, K] (K innermost), box 64 × 128 (aHalf: 64 × 64); b: [groups, N, K], box 64 × 256 × 1
// (gated: [groups, 2N, K], box 64 × 128 × 1); all 128-byte swizzled.
template <typename TC, bool kGated>
__global__ __launch_bounds__(kTmaThreads, 1) void groupedTmaKernel(const __grid_constant__ CUtensorMap a,
                                                                   const __grid_constant__ CUtensorMap aHalf,
                                                                   const __grid_constant__ CUtensorMap b, MmaParams p)
{
    extern __shared__ unsigned char smemRaw[];
    const unsigned rawAddr = static_cast<unsigned>(__cvta_generic_to_shared(smemRaw));
    const unsigned base = (rawAddr + 1023u) & ~1023u;
    const unsigned aBase = base, bBase = base + STAGES * BM * kRowBytes;
    const unsigned fullBar = base + STAGES * kStageBytes, emptyBar = fullBar + STAGES * 8;

    const int tile = blockIdx.y;
    if (tile >= p.tileOffsets[p.groups])
        return;
    const int g = groupOfTile(p.tileOffsets, p.groups, tile);
    const long long rowBase = p.offsets[g] + static_cast<long long>(tile - p.tileOffsets[g]) * BM;
    const long long rowEnd = p.offsets[g + 1];
    const int n0 = blockIdx.x * (kGated ? BN / 2 : BN);
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int KT = (p.K + BK - 1) / BK;
    const bool half = rowEnd - rowBase <= BM / 2;  // the first consumer warpgroup's rows hold them all

    if (tid == 0) {
        for (int s = 0; s < STAGES; ++s) {
            mbarInit(fullBar + s * 8, 1);            // the producer's arrival (+ the copies' bytes)
            mbarInit(emptyBar + s * 8, half ? kThreads / 2 : kThreads);  // every working consumer thread, once its wgmma read the stage
        }
        mbarInitFence();
    }
    __syncthreads();

    if (warp == kThreads / 32) {  // producer warp
        if (lane == 0) {
            for (int kt = 0; kt < KT; ++kt) {
                const int s = kt % STAGES;
                mbarWait(emptyBar + s * 8, ((kt / STAGES) & 1) ^ 1);  // first round: passes at once
                mbarArriveExpectTx(fullBar + s * 8, half ? kHalfStageBytes : kStageBytes);
                tmaLoad2d(aBase + s * BM * kRowBytes, half ? &aHalf : &a, kt * BK, static_cast<int>(rowBase), fullBar + s * 8);
                tmaLoad3d(bBase + s * BN * kRowBytes, &b, kt * BK, n0, g, fullBar + s * 8);
                if constexpr (kGated)  // the same units' up rows after the gate rows
                    tmaLoad3d(bBase + s * BN * kRowBytes + BN / 2 * kRowBytes, &b, kt * BK, p.N + n0, g, fullBar + s * 8);
            }
        }
        return;
    }

    const int wg = warp >> 2;
    if (half && wg == 1)
        return;
    float acc[128];
    consumeTile(acc, aBase, bBase, fullBar, emptyBar, wg, KT);
    if constexpr (kGated)
        storeGatedTile<TC>(p, acc, rowBase, rowEnd, n0, wg, warp, lane);
    else
        storeTile<TC>(p, acc, rowBase, rowEnd, n0, wg, warp, lane);
}

bool encodeMaps(const GroupedGemmArgs& g, CUtensorMap& a, CUtensorMap& aHalf, CUtensorMap& b)
{
    const auto encode = tensorMapEncoder();
    if (!encode)
        return false;
    const cuuint64_t aDims[2] = {static_cast<cuuint64_t>(g.K), static_cast<cuuint64_t>(g.maxRows)};
    const cuuint64_t aStrides[1] = {static_cast<cuuint64_t>(g.lda) * 2};
    const cuuint32_t aBox[2] = {BK, BM}, aHalfBox[2] = {BK, BM / 2};
    const int bRows = g.gatedOutput ? 2 * g.N : g.N;
    const cuuint64_t bDims[3] = {static_cast<cuuint64_t>(g.K), static_cast<cuuint64_t>(bRows), static_cast<cuuint64_t>(g.groups)};
    const cuuint64_t bStrides[2] = {static_cast<cuuint64_t>(g.ldb) * 2, static_cast<cuuint64_t>(g.strideB) * 2};
    const cuuint32_t bBox[3] = {BK, static_cast<cuuint32_t>(g.gatedOutput ? BN / 2 : BN), 1};
    const cuuint32_t ones[3] = {1, 1, 1};
    auto encodeA = [&](CUtensorMap* map, const cuuint32_t* box) {
        return encode(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<void*>(g.A), aDims, aStrides, box, ones,
                      CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                      CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
    };
    return encodeA(&a, aBox) && encodeA(&aHalf, aHalfBox) &&
           encode(&b, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, const_cast<void*>(g.B), bDims, bStrides, bBox, ones,
                  CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                  CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

}  // namespace

bool groupedTmaAvailable(const GroupedGemmArgs& a)
{
    CUtensorMap mapA, mapAHalf, mapB;
    return encodeMaps(a, mapA, mapAHalf, mapB);
}

Status launchGroupedTma(const GroupedGemmArgs& a, int maxTiles, cudaStream_t stream, bool& launched)
{
    launched = false;
    static const Status attribute = allowSharedMemory("grouped gemm", kTmaSmemBytes, groupedTmaKernel<float, false>, groupedTmaKernel<bf16, false>,
                                                      groupedTmaKernel<float, true>, groupedTmaKernel<bf16, true>);
    if (!attribute.ok())
        return attribute;
    if (maxTiles > 65535)
        return Status::failure("grouped gemm: too many row tiles");
    CUtensorMap mapA, mapAHalf, mapB;
    if (!encodeMaps(a, mapA, mapAHalf, mapB))
        return {};  // no tensor maps (driver entry point missing): the caller runs the portable kernel
    const MmaParams p = mmaParams(a);
    const int columns = a.gatedOutput ? BN / 2 : BN;
    const dim3 grid((a.N + columns - 1) / columns, maxTiles, 1);
    if (a.cType == DType::F32)
        (a.gatedOutput ? groupedTmaKernel<float, true> : groupedTmaKernel<float, false>)<<<grid, kTmaThreads, kTmaSmemBytes, stream>>>(mapA, mapAHalf, mapB, p);
    else
        (a.gatedOutput ? groupedTmaKernel<bf16, true> : groupedTmaKernel<bf16, false>)<<<grid, kTmaThreads, kTmaSmemBytes, stream>>>(mapA, mapAHalf, mapB, p);
    launched = true;
    return launchStatus("grouped gemm (wgmma, tma)");
}

}  // namespace tessera::kernels
