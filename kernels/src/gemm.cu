// Dense, batched and grouped products. The exact path is a register-tiled fp32 FMA kernel that
// widens bf16 operands as it loads them; the fast path hands bf16 products to cuBLAS (fp32
// accumulation) and grouped expert products to our tensor-core kernel (gemm_grouped_mma.cu).
#include "tessera_kernels/gemm.h"

#include "gemm_internal.cuh"
#include "launch_util.cuh"

#include <cublas_v2.h>

#include <string>

namespace tessera::kernels {

class GemmContext {
public:
    cublasHandle_t handle = nullptr;
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

__device__ __forceinline__ int findGroup(const int* tileOffsets, int groups, int tile)
{
    int lo = 0, hi = groups;  // tileOffsets[lo] <= tile < tileOffsets[hi]
    while (hi - lo > 1) {
        const int mid = (lo + hi) >> 1;
        if (tileOffsets[mid] <= tile)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

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
        const int g = findGroup(p.tileOffsets, p.groups, tile);
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
    if (ctx->handle)
        cublasDestroy(ctx->handle);
    delete ctx;
}

Status gemm(GemmContext* ctx, const GemmArgs& a, Stream stream)
{
    if (a.M <= 0 || a.N <= 0 || a.batch <= 0)
        return {};
    if (a.beta != 0.f && a.cType != DType::F32)
        return Status::failure("gemm: accumulation (beta) needs an F32 output");
    cudaStream_t s = cuStream(stream);
    const bool tensorCores = a.math == MathMode::FastBf16 && a.aType == DType::BF16 && a.bType == DType::BF16 && a.K > 0;
    if (tensorCores) {
        const cublasOperation_t opB = a.bLayout == BLayout::NK ? CUBLAS_OP_T : CUBLAS_OP_N;
        const cudaDataType_t cType = a.cType == DType::F32 ? CUDA_R_32F : CUDA_R_16BF;
        Status r = cublasStatus(
            cublasGemmStridedBatchedEx(ctx->handle, opB, CUBLAS_OP_N, a.N, a.M, a.K, &a.alpha, a.B, CUDA_R_16BF, a.ldb,
                                       a.strideB, a.A, CUDA_R_16BF, a.lda, a.strideA, &a.beta, a.C, cType, a.ldc,
                                       a.strideC, a.batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            "gemm (cublasGemmStridedBatchedEx)");
        if (!r.ok() || !a.bias)
            return r;
        const dim3 grid((a.N + 255) / 256, a.M, a.batch);
        TESSERA_DISPATCH_DTYPE(a.cType, TC, addBiasKernel<TC><<<grid, 256, 0, s>>>(static_cast<TC*>(a.C), a.ldc, a.strideC, a.M, a.N, a.bias));
        return launchStatus("gemm bias");
    }
    FfmaParams p{a.M, a.N, a.K, a.A, a.lda, a.strideA, a.B, a.ldb, a.strideB, a.C, a.ldc, a.strideC,
                 a.alpha, a.beta, a.bias, nullptr, nullptr, 0};
    if (a.batch > 65535)
        return Status::failure("gemm: batch count over 65535");
    const dim3 grid((a.N + kBN - 1) / kBN, (a.M + kBM - 1) / kBM, a.batch);
    dispatchFfma(a.aType, a.bType, a.cType, p, a.bLayout == BLayout::KN, grid, s);
    return launchStatus("gemm (fp32)");
}

int groupedTileRows(MathMode math) { return math == MathMode::FastBf16 ? kMmaTileRows : kBM; }

Status groupedGemm(const GroupedGemmArgs& a, Stream stream)
{
    if (a.N <= 0 || a.groups <= 0 || a.maxRows <= 0)
        return {};
    cudaStream_t s = cuStream(stream);
    const int tileRows = groupedTileRows(a.math);
    const int maxTiles = (a.maxRows + tileRows - 1) / tileRows + a.groups;
    if (a.math == MathMode::FastBf16) {
        if (a.aType != DType::BF16)
            return Status::failure("grouped gemm: the tensor-core path needs bf16 activations");
        if (a.K % 8 != 0 || a.lda % 8 != 0 || a.ldb % 8 != 0 || a.strideB % 8 != 0)
            return Status::failure("grouped gemm: K and leading dimensions must be multiples of 8 for the tensor-core path");
        return launchGroupedMma(a, maxTiles, s);
    }
    FfmaParams p{0, a.N, a.K, a.A, a.lda, 0, a.B, a.ldb, a.strideB, a.C, a.ldc, 0,
                 1.f, 0.f, nullptr, a.offsets, a.tileOffsets, a.groups};
    const dim3 grid((a.N + kBN - 1) / kBN, maxTiles, 1);
    dispatchFfma(a.aType, DType::BF16, a.cType, p, false, grid, s);
    return launchStatus("grouped gemm (fp32)");
}

}  // namespace tessera::kernels
