#pragma once
// Between flash_attention.cu and its Hopper kernel (flash_attention_wgmma.cu, sm_90a builds).
#include "tessera_kernels/attention.h"

#include <cuda_runtime.h>

namespace tessera::kernels {

// The family's head shapes (keys / values 192 / 128, 128 / 128, 72 / 72) on the wgmma kernel;
// launched = false (and an ok status) where it does not apply or cannot make its tensor maps: the
// caller runs the mma.sync kernel. Compute capability 9.0 only (the caller checks).
Status launchFlashWgmma(const FlashAttentionArgs& args, cudaStream_t stream, bool& launched);
// Whether launchFlashWgmma(args) would launch.
bool flashWgmmaApplies(const FlashAttentionArgs& args);

}  // namespace tessera::kernels
