// Dense, batched and grouped products. The exact path is a register-tiled fp32 FMA kernel that
// widens bf16 operands as it loads them; the fast path hands bf16 products to cuBLAS (fp32
// accumulation; cuBLASLt when a bias or GELU can ride in the epilogue) and grouped expert
// products to our tensor-core kernels (gemm_grouped_wgmma.cu on Hopper, gemm_grouped_mma.cu
// elsewhere).
#include "tessera_kernels/gemm.h"
#include "tessera_kernels/elementwise.h"

#include "gemm_internal.cuh"
#include "launch_util.cuh"

#include <cublasLt.h>
#include <cublas_v2.h>

#include <cstdint>
#include <map>
#include <string>
#include <tuple>

namespace tessera::kernels {

namespace {

// One cuBLASLt product shape with its descriptors and the heuristic's algorithm (found once).
struct LtPlan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
    bool usable = false;
};
// M, N, K, lda, ldb, ldc, B layout, C type, epilogue, bias present, beta != 0, pointer alignment.
using LtKey = std::tuple<int, int, int, long long, long long, long long, int, int, int, bool, bool, unsigned>;

// The largest power of two (up to 256) that divides every operand's address: the heuristic only
// offers algorithms that work at that alignment.
unsigned operandAlignment(const GemmArgs& a)
{
    std::uintptr_t bits = reinterpret_cast<std::uintptr_t>(a.A) | reinterpret_cast<std::uintptr_t>(a.B) |
                          reinterpret_cast<std::uintptr_t>(a.C) | reinterpret_cast<std::uintptr_t>(a.bias) | 256u;
    return static_cast<unsigned>(bits & (~bits + 1));
}
constexpr std::size_t kLtWorkspaceBytes = std::size_t(32) << 20;
constexpr int kBiasScratch = 1 << 16;  // bf16 copy of a bias for bf16 outputs (cuBLASLt wants the output's type)

}  // namespace

class GemmContext {
public:
    cublasHandle_t handle = nullptr;
    cublasLtHandle_t lt = nullptr;
    void* ltWorkspace = nullptr;
    bf16* biasBf16 = nullptr;
    std::map<LtKey, LtPlan> plans;
};

namespace {

constexpr int kBM = 64, kBN = 64, kBK = 16;

struct FfmaParams {
    int M, N, K;
    const void* A;
    long long lda, strideA;
    const void* B;
    long long ldb, strideB;
    void* C;
    long long ldc, strideC;
    float alpha, beta;
    const float* bias;
    // Grouped mode (offsets != nullptr): blockIdx.y is a tile of some group's rows.
    const int* offsets;
    const int* tileOffsets;
    int groups;
};

template <typename TA, typename TB, typename TC, bool kKN>
__global__ __launch_bounds__(256) void ffmaGemmKernel(FfmaParams p)
{
    __shared__ float As[kBK][kBM + 4];
    __shared__ float Bs[kBK][kBN + 4];
    const int tid = threadIdx.x;
    const int tx = tid % 16, ty = tid / 16;
    const int n0 = blockIdx.x * kBN;

    const TA* A = static_cast<const TA*>(p.A);
    const TB* B = static_cast<const TB*>(p.B);
    TC* C = static_cast<TC*>(p.C);
    long long rowBase, rowEnd;
    if (p.offsets) {
        const int tile = blockIdx.y;
        if (tile >= p.tileOffsets[p.groups])
            return;
        const int g = groupOfTile(p.tileOffsets, p.groups, tile);
        rowBase = p.offsets[g] + static_cast<long long>(tile - p.tileOffsets[g]) * kBM;
        rowEnd = p.offsets[g + 1];
        B += g * p.strideB;
    } else {
        rowBase = static_cast<long long>(blockIdx.y) * kBM;
        rowEnd = p.M;
        A += blockIdx.z * p.strideA;
        B += blockIdx.z * p.strideB;
        C += blockIdx.z * p.strideC;
    }

    float acc[4][4] = {};
    for (int k0 = 0; k0 < p.K; k0 += kBK) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int e = tid + i * 256;
            const int r = e / kBK, kk = e % kBK;
            const long long gr = rowBase + r;
            const int gk = k0 + kk;
            As[kk][r] = (gr < rowEnd && gk < p.K) ? toFloat(A[gr * p.lda + gk]) : 0.f;
        }
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int e = tid + i * 256;
            if (!kKN) {
                const int n = e / kBK, kk = e % kBK;
                const int gn = n0 + n, gk = k0 + kk;
                Bs[kk][n] = (gn < p.N && gk < p.K) ? toFloat(B[static_cast<long long>(gn) * p.ldb + gk]) : 0.f;
            } else {
                const int kk = e / kBN, n = e % kBN;
                const int gn = n0 + n, gk = k0 + kk;
                Bs[kk][n] = (gn < p.N && gk < p.K) ? toFloat(B[static_cast<long long>(gk) * p.ldb + gn]) : 0.f;
            }
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < kBK; ++kk) {
            const float4 a = *reinterpret_cast<const float4*>(&As[kk][ty * 4]);
            const float4 b = *reinterpret_cast<const float4*>(&Bs[kk][tx * 4]);
            const float av[4] = {a.x, a.y, a.z, a.w};
            const float bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j)
                    acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const long long r = rowBase + ty * 4 + i;
        if (r >= rowEnd)
            continue;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int c = n0 + tx * 4 + j;
            if (c >= p.N)
                continue;
            float v = p.alpha * acc[i][j];
            if (p.bias)
                v += p.bias[c];
            TC* out = C + r * p.ldc + c;
            if (p.beta != 0.f)
                v += p.beta * toFloat(*out);
            *out = fromFloat<TC>(v);
        }
    }
}

template <typename TA, typename TB, typename TC>
void launchFfma(const FfmaParams& p, bool kn, dim3 grid, cudaStream_t s)
{
    if (kn)
        ffmaGemmKernel<TA, TB, TC, true><<<grid, 256, 0, s>>>(p);
    else
        ffmaGemmKernel<TA, TB, TC, false><<<grid, 256, 0, s>>>(p);
}

void dispatchFfma(DType a, DType b, DType c, const FfmaParams& p, bool kn, dim3 grid, cudaStream_t s)
{
    TESSERA_DISPATCH_DTYPE(a, TA, TESSERA_DISPATCH_DTYPE(b, TB, TESSERA_DISPATCH_DTYPE(c, TC, launchFfma<TA, TB, TC>(p, kn, grid, s))));
}

template <typename TC>
__global__ void addBiasKernel(TC* C, long long ldc, long long strideC, int M, int N, const float* bias)
{
    const long long r = blockIdx.y;
    TC* row = C + blockIdx.z * strideC + r * ldc;
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < N; c += gridDim.x * blockDim.x)
        row[c] = fromFloat<TC>(toFloat(row[c]) + bias[c]);
}

Status cublasStatus(cublasStatus_t s, const char* what)
{
    if (s == CUBLAS_STATUS_SUCCESS)
        return {};
    return Status::failure(std::string(what) + ": cuBLAS status " + std::to_string(static_cast<int>(s)));
}

}  // namespace

Status gemmContextCreate(GemmContext** ctx, Stream stream)
{
    *ctx = nullptr;
    auto* c = new GemmContext();
    Status r = cublasStatus(cublasCreate(&c->handle), "cublasCreate");
    if (r.ok())
        r = cublasStatus(cublasSetStream(c->handle, cuStream(stream)), "cublasSetStream");
    if (r.ok())  // never TF32: the exact path does not use cuBLAS, the fast one only for bf16
        r = cublasStatus(cublasSetMathMode(c->handle, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
    if (r.ok())
        r = cublasStatus(cublasLtCreate(&c->lt), "cublasLtCreate");
    if (r.ok())
        r = cudaStatus(cudaMalloc(&c->ltWorkspace, kLtWorkspaceBytes), "cuBLASLt workspace");
    if (r.ok())
        r = cudaStatus(cudaMalloc(&c->biasBf16, kBiasScratch * sizeof(bf16)), "cuBLASLt bias");
    if (!r.ok()) {
        gemmContextDestroy(c);
        return r;
    }
    *ctx = c;
    return {};
}

void gemmContextDestroy(GemmContext* ctx)
{
    if (!ctx)
        return;
    for (auto& [key, p] : ctx->plans) {
        if (p.a)
            cublasLtMatrixLayoutDestroy(p.a);
        if (p.b)
            cublasLtMatrixLayoutDestroy(p.b);
        if (p.c)
            cublasLtMatrixLayoutDestroy(p.c);
        if (p.desc)
            cublasLtMatmulDescDestroy(p.desc);
    }
    if (ctx->ltWorkspace)
        cudaFree(ctx->ltWorkspace);
    if (ctx->biasBf16)
        cudaFree(ctx->biasBf16);
    if (ctx->lt)
        cublasLtDestroy(ctx->lt);
    if (ctx->handle)
        cublasDestroy(ctx->handle);
    delete ctx;
}

namespace {

__global__ void biasToBf16Kernel(const float* bias, int n, bf16* out)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        out[i] = __float2bfloat16_rn(bias[i]);
}

// The plan of a single (unbatched) bf16 product whose bias and GELU run in cuBLASLt's epilogue,
// in the column-major view cuBLAS sees: Cᵀ[N, M] = op(B)[N, K] · Aᵀ[K, M], bias along N.
LtPlan& ltPlan(GemmContext* ctx, const GemmArgs& a)
{
    const unsigned align = operandAlignment(a);
    const LtKey key{a.M, a.N, a.K, a.lda, a.ldb, a.ldc, static_cast<int>(a.bLayout), static_cast<int>(a.cType),
                    static_cast<int>(a.epilogue), a.bias != nullptr, a.beta != 0.f, align};
    auto [it, fresh] = ctx->plans.try_emplace(key);
    LtPlan& p = it->second;
    if (!fresh)
        return p;
    const bool nk = a.bLayout == BLayout::NK;
    const cudaDataType_t cType = a.cType == DType::F32 ? CUDA_R_32F : CUDA_R_16BF;
    bool ok = cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS;
    const cublasOperation_t opA = nk ? CUBLAS_OP_T : CUBLAS_OP_N, opB = CUBLAS_OP_N;
    cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_DEFAULT;
    if (a.epilogue == Epilogue::GeluTanh)
        epi = a.bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
    else if (a.bias)
        epi = CUBLASLT_EPILOGUE_BIAS;
    // A bf16 output takes a bf16 bias: checkpoint biases are bf16 values, so the copy is exact.
    const cudaDataType_t biasType = a.cType == DType::F32 ? CUDA_R_32F : CUDA_R_16BF;
    ok = ok && cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof(opA)) == CUBLAS_STATUS_SUCCESS;
    ok = ok && cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof(opB)) == CUBLAS_STATUS_SUCCESS;
    ok = ok && cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)) == CUBLAS_STATUS_SUCCESS;
    if (a.bias) {
        ok = ok && cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &biasType, sizeof(biasType)) ==
                       CUBLAS_STATUS_SUCCESS;
    }
    ok = ok && cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, nk ? a.K : a.N, nk ? a.N : a.K, a.ldb) == CUBLAS_STATUS_SUCCESS;
    ok = ok && cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, a.K, a.M, a.lda) == CUBLAS_STATUS_SUCCESS;
    ok = ok && cublasLtMatrixLayoutCreate(&p.c, cType, a.N, a.M, a.ldc) == CUBLAS_STATUS_SUCCESS;
    cublasLtMatmulPreference_t pref = nullptr;
    ok = ok && cublasLtMatmulPreferenceCreate(&pref) == CUBLAS_STATUS_SUCCESS;
    const std::size_t ws = kLtWorkspaceBytes;
    ok = ok && cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)) ==
                   CUBLAS_STATUS_SUCCESS;
    const std::uint32_t alignBytes = align;
    for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
        ok = ok && cublasLtMatmulPreferenceSetAttribute(pref, attr, &alignBytes, sizeof(alignBytes)) == CUBLAS_STATUS_SUCCESS;
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    ok = ok && cublasLtMatmulAlgoGetHeuristic(ctx->lt, p.desc, p.a, p.b, p.c, p.c, pref, 1, &result, &found) ==
                   CUBLAS_STATUS_SUCCESS;
    if (pref)
        cublasLtMatmulPreferenceDestroy(pref);
    p.usable = ok && found > 0 && result.state == CUBLAS_STATUS_SUCCESS;
    if (p.usable)
        p.algo = result.algo;
    return p;
}

// Fused bias / GELU product through cuBLASLt; false when no algorithm takes this shape (the
// caller then runs the product and the epilogue as separate passes).
bool ltGemm(GemmContext* ctx, const GemmArgs& a, cudaStream_t s, Status& status)
{
    const bool bf16Bias = a.bias && a.cType != DType::F32;
    if (a.batch != 1 || !ctx->lt || (bf16Bias && a.N > kBiasScratch))
        return false;
    LtPlan& p = ltPlan(ctx, a);
    if (!p.usable)
        return false;
    const void* bias = a.bias;
    if (bf16Bias) {
        biasToBf16Kernel<<<(a.N + 255) / 256, 256, 0, s>>>(a.bias, a.N, ctx->biasBf16);
        status = launchStatus("gemm bias (bf16 copy)");
        bias = ctx->biasBf16;
    }
    if (a.bias && status.ok())  // set per call: the same shape comes with every layer's bias
        status = cublasStatus(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)),
                              "gemm (cuBLASLt bias)");
    if (status.ok())
        status = cublasStatus(cublasLtMatmul(ctx->lt, p.desc, &a.alpha, a.B, p.a, a.A, p.b, &a.beta, a.C, p.c, a.C, p.c, &p.algo,
                                             ctx->ltWorkspace, kLtWorkspaceBytes, s),
                              "gemm (cublasLtMatmul)");
    return true;
}

}  // namespace

namespace {

// The epilogue as its own pass over C (the exact path, and products cuBLASLt does not fuse).
Status applyEpilogue(const GemmArgs& a, Stream s)
{
    if (a.epilogue == Epilogue::None)
        return {};
    return gelu(a.C, a.cType, a.ldc, a.M, a.N, Gelu::Tanh, s);
}

}  // namespace

Status gemm(GemmContext* ctx, const GemmArgs& a, Stream stream)
{
    if (a.M <= 0 || a.N <= 0 || a.batch <= 0)
        return {};
    if (a.beta != 0.f && a.cType != DType::F32)
        return Status::failure("gemm: accumulation (beta) needs an F32 output");
    if (a.epilogue != Epilogue::None && (a.beta != 0.f || a.batch != 1))
        return Status::failure("gemm: a GELU epilogue needs an unbatched product without accumulation");
    cudaStream_t s = cuStream(stream);
    const bool tensorCores = a.math == MathMode::FastBf16 && a.aType == DType::BF16 && a.bType == DType::BF16 && a.K > 0;
    if (tensorCores && (a.bias || a.epilogue != Epilogue::None)) {
        Status r;
        if (ltGemm(ctx, a, s, r))
            return r;
    }
    if (tensorCores) {
        const cublasOperation_t opB = a.bLayout == BLayout::NK ? CUBLAS_OP_T : CUBLAS_OP_N;
        const cudaDataType_t cType = a.cType == DType::F32 ? CUDA_R_32F : CUDA_R_16BF;
        Status r = cublasStatus(
            cublasGemmStridedBatchedEx(ctx->handle, opB, CUBLAS_OP_N, a.N, a.M, a.K, &a.alpha, a.B, CUDA_R_16BF, a.ldb,
                                       a.strideB, a.A, CUDA_R_16BF, a.lda, a.strideA, &a.beta, a.C, cType, a.ldc,
                                       a.strideC, a.batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            "gemm (cublasGemmStridedBatchedEx)");
        if (r.ok() && a.bias) {
            const dim3 grid((a.N + 255) / 256, a.M, a.batch);
            TESSERA_DISPATCH_DTYPE(a.cType, TC, addBiasKernel<TC><<<grid, 256, 0, s>>>(static_cast<TC*>(a.C), a.ldc, a.strideC, a.M, a.N, a.bias));
            r = launchStatus("gemm bias");
        }
        return r.ok() ? applyEpilogue(a, stream) : r;
    }
    FfmaParams p{a.M, a.N, a.K, a.A, a.lda, a.strideA, a.B, a.ldb, a.strideB, a.C, a.ldc, a.strideC,
                 a.alpha, a.beta, a.bias, nullptr, nullptr, 0};
    if (a.batch > 65535)
        return Status::failure("gemm: batch count over 65535");
    const dim3 grid((a.N + kBN - 1) / kBN, (a.M + kBM - 1) / kBM, a.batch);
    dispatchFfma(a.aType, a.bType, a.cType, p, a.bLayout == BLayout::KN, grid, s);
    const Status r = launchStatus("gemm (fp32)");
    return r.ok() ? applyEpilogue(a, stream) : r;
}

int groupedTileRows(MathMode math) { return math == MathMode::FastBf16 ? kMmaTileRows : kBM; }

bool groupedGemmGates(const GroupedGemmArgs& a)
{
    static const bool wgmma = deviceRunsSm90a();
    return wgmma && a.math == MathMode::FastBf16 && a.aType == DType::BF16 && a.K % 8 == 0 && a.lda % 8 == 0 && a.ldb % 8 == 0 &&
           a.strideB % 8 == 0 && groupedTmaAvailable(a);
}

Status groupedGemm(const GroupedGemmArgs& a, Stream stream)
{
    if (a.N <= 0 || a.groups <= 0 || a.maxRows <= 0)
        return {};
    // A gated output runs on the Hopper kernel only; its other conditions are the checks below and
    // the tensor maps (made once, by launchGroupedTma).
    static const bool wgmma = deviceRunsSm90a();
    if (a.gatedOutput && (a.math != MathMode::FastBf16 || !wgmma))
        return Status::failure("grouped gemm: a gated output needs the bf16 tensor-core kernel of a Hopper GPU");
    cudaStream_t s = cuStream(stream);
    const int tileRows = groupedTileRows(a.math);
    const int maxTiles = (a.maxRows + tileRows - 1) / tileRows + a.groups;
    if (a.math == MathMode::FastBf16) {
        if (a.aType != DType::BF16)
            return Status::failure("grouped gemm: the tensor-core path needs bf16 activations");
        if (a.K % 8 != 0 || a.lda % 8 != 0 || a.ldb % 8 != 0 || a.strideB % 8 != 0)
            return Status::failure("grouped gemm: K and leading dimensions must be multiples of 8 for the tensor-core path");
        if (wgmma) {
            bool launched = false;
            const Status r = launchGroupedTma(a, maxTiles, s, launched);
            if (!r.ok() || launched)
                return r;
            if (a.gatedOutput)
                return Status::failure("grouped gemm: no tensor maps for the gated product");
        }
        return launchGroupedMma(a, maxTiles, s);
    }
    FfmaParams p{0, a.N, a.K, a.A, a.lda, 0, a.B, a.ldb, a.strideB, a.C, a.ldc, 0,
                 1.f, 0.f, nullptr, a.offsets, a.tileOffsets, a.groups};
    const dim3 grid((a.N + kBN - 1) / kBN, maxTiles, 1);
    dispatchFfma(a.aType, DType::BF16, a.cType, p, false, grid, s);
    return launchStatus("grouped gemm (fp32)");
}

}  // namespace tessera::kernels
