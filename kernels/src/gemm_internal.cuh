#pragma once
// Between gemm.cu and the tensor-core kernel of gemm_grouped_mma.cu.
#include "tessera_kernels/gemm.h"

#include <cuda_runtime.h>

namespace tessera::kernels {

inline constexpr int kMmaTileRows = 128;

Status launchGroupedMma(const GroupedGemmArgs& args, int maxTiles, cudaStream_t stream);

}  // namespace tessera::kernels
