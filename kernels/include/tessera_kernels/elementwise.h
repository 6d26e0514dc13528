#pragma once
// Element-wise and row-copy kernels: gated activations, GELUs, row additions, embedding gathers,
// the image-token layout, dtype conversion and random fills (benchmarks).
#include "tessera_kernels/common.h"

#include <cstdint>

namespace tessera::kernels {

// out[r, i] = silu(in[r, i]) · in[r, inter + i] for i < inter (gate and up side by side).
Status siluGate(const void* in, DType inType, std::int64_t ldIn, int rows, int inter, void* out, DType outType,
                std::int64_t ldOut, Stream stream);

enum class Gelu : std::uint8_t { Tanh, Erf };
// In place over rows × n elements with leading dimension ld.
Status gelu(void* x, DType type, std::int64_t ld, int rows, int n, Gelu kind, Stream stream);

// x[r, :] += rows[r % period, :] (F32), e.g. the vision position embedding.
Status addPeriodicRows(float* x, int rows, int n, const float* add, int period, Stream stream);

// out[i, :] = table[ids[i], :] (bf16 table [vocab, n]) as F32 rows of width n.
Status embedRows(const std::uint16_t* table, const std::int32_t* ids, int count, int n, float* out, Stream stream);

// Image-token layout: out[i, :] = sources[i] >= 0 ? rows[sources[i], :] : sources[i] == -1 ? newline : separator.
Status gatherImageRows(const float* rows, const std::int32_t* sources, int count, int n, const float* newline,
                       const float* separator, float* out, Stream stream);

// Element type conversion of count elements.
Status convert(const void* in, DType inType, void* out, DType outType, std::int64_t count, Stream stream);

// bf16 values uniform in [-scale, scale] + offset from a counter-based hash of (seed, index).
Status fillRandomBf16(std::uint16_t* out, std::int64_t count, float scale, float offset, std::uint64_t seed,
                      Stream stream);
Status fillRandomF32(float* out, std::int64_t count, float scale, float offset, std::uint64_t seed, Stream stream);

}  // namespace tessera::kernels
