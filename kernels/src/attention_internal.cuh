#pragma once
// Between attention.cu (decode attention, combine) and flash_attention.cu (tensor-core kernels).
#include "tessera_kernels/attention.h"

#include <cuda_runtime.h>

namespace tessera::kernels {

inline constexpr int kDecodeChunk = 64;  // context positions per decode split

// Decode partials on the tensor cores (bf16): one block per (split, kv head) computes every head of
// that kv head (all of them for MLA's shared latent rows). Same partial layout as the CUDA-core
// kernel, which runs whatever this one does not support (fp32, odd sizes).
bool decodeSharedKvSupported(const DecodeAttentionArgs& a);
Status decodeSharedKvPartials(const DecodeAttentionArgs& a, int splits, cudaStream_t stream);

}  // namespace tessera::kernels
