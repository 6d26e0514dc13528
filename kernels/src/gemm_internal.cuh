#pragma once
// Between gemm.cu and the tensor-core kernel of gemm_grouped_mma.cu.
#include "tessera_kernels/gemm.h"

#include <cuda_runtime.h>

namespace tessera::kernels {

inline constexpr int kMmaTileRows = 128;

// mma.sync kernel (any sm_80+ GPU) and the TMA + wgmma kernel (gemm_grouped_wgmma.cu, sm_90a
// builds; launched = false when it could not make its tensor maps).
Status launchGroupedMma(const GroupedGemmArgs& args, int maxTiles, cudaStream_t stream);
Status launchGroupedTma(const GroupedGemmArgs& args, int maxTiles, cudaStream_t stream, bool& launched);

}  // namespace tessera::kernels
