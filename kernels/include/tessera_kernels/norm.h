#pragma once
// Row normalisations in fp32: RMSNorm (language model) and LayerNorm (vision tower). Inputs are
// F32 rows; the output type is the next product's operand type. out may alias x when both are F32.
#include "tessera_kernels/common.h"

#include <cstdint>

namespace tessera::kernels {

// out[r] = x[r] / sqrt(mean(x[r]²) + eps) · weight
Status rmsNorm(const float* x, std::int64_t ldx, int rows, int n, const float* weight, float eps, void* out,
               DType outType, std::int64_t ldo, Stream stream);

// embedded[r] = table[ids[r]] (bf16 rows of n, widened), out[r] = rmsNorm(embedded[r]): embedRows
// and then rmsNorm in one launch, the same bits (a decode step's first two kernels).
Status embedRmsNorm(const std::uint16_t* table, const std::int32_t* ids, int rows, int n, float* embedded, const float* weight,
                    float eps, void* out, DType outType, std::int64_t ldo, Stream stream);

// out[r] = (x[r] − mean) / sqrt(var + eps) · gamma + beta (biased variance)
Status layerNorm(const float* x, std::int64_t ldx, int rows, int n, const float* gamma, const float* beta, float eps,
                 void* out, DType outType, std::int64_t ldo, Stream stream);

}  // namespace tessera::kernels
