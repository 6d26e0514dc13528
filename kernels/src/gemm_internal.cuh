#pragma once
// Between gemm.cu and the tensor-core kernel of gemm_grouped_mma.cu.
#include "tessera_kernels/gemm.h"

#include "launch_util.cuh"

#include <cuda_runtime.h>

namespace tessera::kernels {

inline constexpr int kMmaTileRows = 128;

// What both grouped-product kernels read of GroupedGemmArgs.
struct MmaParams {
    int N, K, groups;
    const bf16* A;
    long long lda;
    const bf16* B;
    long long ldb, strideB;
    void* C;
    long long ldc;
    const int* offsets;
    const int* tileOffsets;
};

inline MmaParams mmaParams(const GroupedGemmArgs& a)
{
    return MmaParams{a.N, a.K, a.groups, static_cast<const bf16*>(a.A), a.lda, static_cast<const bf16*>(a.B), a.ldb, a.strideB,
                     a.C, a.ldc, a.offsets, a.tileOffsets};
}

// The expert a row tile of a grouped product belongs to: the last g with tileOffsets[g] <= tile
// (binary search over groups + 1 offsets). The caller has checked tile < tileOffsets[groups].
__device__ __forceinline__ int groupOfTile(const int* tileOffsets, int groups, int tile)
{
    int lo = 0, hi = groups;
    while (hi - lo > 1) {
        const int mid = (lo + hi) >> 1;
        if (tileOffsets[mid] <= tile)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

// mma.sync kernel (any sm_80+ GPU) and the TMA + wgmma kernel (gemm_grouped_wgmma.cu, sm_90a
// builds; launched = false when it could not make its tensor maps).
Status launchGroupedMma(const GroupedGemmArgs& args, int maxTiles, cudaStream_t stream);
Status launchGroupedTma(const GroupedGemmArgs& args, int maxTiles, cudaStream_t stream, bool& launched);
// Whether launchGroupedTma would launch (its tensor maps can be made).
bool groupedTmaAvailable(const GroupedGemmArgs& args);

}  // namespace tessera::kernels
