#pragma once
// Matrix products C[M, N] = alpha · A[M, K] · op(B) (+ bias[N]) (+ beta · C), row-major, batched
// with strides, and grouped (mixture of experts: consecutive row ranges of A use different B).
// MathMode::ExactFp32 runs our own fp32 FMA kernels (bf16 operands widened, no TF32);
// MathMode::FastBf16 runs cuBLAS / our tensor-core kernel on bf16 operands, fp32 accumulation.
#include "tessera_kernels/common.h"

#include <cstdint>

namespace tessera::kernels {

// How B is stored: NK = [N, K] rows (weights, keys: C = A·Bᵀ); KN = [K, N] rows (values: C = A·B).
enum class BLayout : std::uint8_t { NK, KN };

// Applied to every output after the bias: GeluTanh = the tanh-approximated GELU (unbatched
// products with beta 0). The fast path fuses bias and GELU into the product's epilogue
// (cuBLASLt) when it can.
enum class Epilogue : std::uint8_t { None, GeluTanh };

// Owns the cuBLAS handle of one backend (bound to its stream).
class GemmContext;
Status gemmContextCreate(GemmContext** ctx, Stream stream);
void gemmContextDestroy(GemmContext* ctx);

struct GemmArgs {
    int M = 0, N = 0, K = 0;
    const void* A = nullptr;
    DType aType = DType::F32;
    std::int64_t lda = 0, strideA = 0;
    const void* B = nullptr;
    DType bType = DType::BF16;
    BLayout bLayout = BLayout::NK;
    std::int64_t ldb = 0, strideB = 0;
    void* C = nullptr;
    DType cType = DType::F32;
    std::int64_t ldc = 0, strideC = 0;
    int batch = 1;
    float alpha = 1.f;
    float beta = 0.f;              // C = ... + beta·C (C must be F32 when beta != 0)
    const float* bias = nullptr;   // [N], same for every batch
    Epilogue epilogue = Epilogue::None;
    MathMode math = MathMode::ExactFp32;
};
Status gemm(GemmContext* ctx, const GemmArgs& args, Stream stream);

// Grouped product for experts: rows [offsets[g], offsets[g+1]) of A are multiplied by
// B + g·strideB ([N, K] rows, bf16). offsets / tileOffsets live on the device (groups + 1 ints;
// tileOffsets[g] = Σ_{h<g} ceil(rows_h / groupedTileRows(math))). maxRows bounds offsets[groups].
struct GroupedGemmArgs {
    int N = 0, K = 0, groups = 0, maxRows = 0;
    const void* A = nullptr;
    DType aType = DType::F32;
    std::int64_t lda = 0;
    const void* B = nullptr;  // bf16
    std::int64_t ldb = 0, strideB = 0;
    void* C = nullptr;
    DType cType = DType::F32;
    std::int64_t ldc = 0;
    const int* offsets = nullptr;
    const int* tileOffsets = nullptr;
    MathMode math = MathMode::ExactFp32;
    // B holds gate rows [0, N) then up rows [N, 2N) (strideB apart per group), and
    // C[r, n] = cType(silu(g)·u) with g, u the gate and up products rounded to cType first: the
    // gate/up product and siluGate of a SiLU-gated MLP's first half in one pass, the same bits.
    // Only where groupedGemmGates(args) says so.
    bool gatedOutput = false;
};
int groupedTileRows(MathMode math);
Status groupedGemm(const GroupedGemmArgs& args, Stream stream);
// Whether groupedGemm can run args with gatedOutput (bf16 tensor cores of a Hopper GPU).
bool groupedGemmGates(const GroupedGemmArgs& args);

// y[M=1, N] = x · Wᵀ for batch products of one row each (decode): W bf16 [N, K] rows (ldw),
// x F32 or BF16. When batchIndex (device, `batch` ints) is given, batch b reads
// W + batchIndex[b]·strideW (the experts a token was routed to). beta 1 accumulates into F32 y.
// gatedOutput: W holds gate rows [0, N) then up rows [N, 2N) and y[r] = silu(gate_r · x) · (up_r · x)
// (a SiLU-gated MLP's first half in one pass).
struct GemvArgs {
    int N = 0, K = 0, batch = 1;
    const void* x = nullptr;
    DType xType = DType::F32;
    std::int64_t strideX = 0;
    const void* W = nullptr;
    std::int64_t ldw = 0, strideW = 0;
    const int* batchIndex = nullptr;
    void* y = nullptr;
    DType yType = DType::F32;
    std::int64_t strideY = 0;
    const float* bias = nullptr;
    float beta = 0.f;
    bool gatedOutput = false;
    // With batchIndex: entries b >= fixedFrom do not read batchIndex but use matrix
    // fixedBase + b − fixedFrom (the shared experts), whose weights can then be read before the
    // kernel that writes batchIndex has finished. −1: none.
    int fixedFrom = -1, fixedBase = 0;
    // Overlapped launches: triggerLate lets the next kernel start only once this one has passed
    // its own wait (so that the next may read what the kernel before this one wrote);
    // indexEarly: batchIndex was written by a kernel before the previous one, which triggered
    // late, so the chosen matrices' rows may be copied before the wait too (taken where the grid
    // stays within 3,000 blocks of the usual tiles and setDownRowsEarly allows).
    bool triggerLate = false, indexEarly = false;
};
Status gemv(const GemvArgs& args, Stream stream);

}  // namespace tessera::kernels
