#pragma once
// MLA prefill in the expanded form: every head's keys are [k_nope | k_pe] (nope + rope columns)
// and its values v (from the latent cache through kv_b_proj), so that the fused flash attention
// runs over nope + rope = 192 columns instead of the absorbed form's 576 (bf16 only).
#include "tessera_kernels/common.h"

#include <cstdint>

namespace tessera::kernels {

// Copies the rope columns the rotary step produced into the rows the attention reads:
//  - query rows t < n: q[t·ldq + h·(nope + rope) + nope + j] = qcat[t·heads·(rank + rope) + h·(rank + rope) + rank + j]
//  - key rows t < ctx: keys[t·ldk + h·(nope + rope) + nope + j] = cache[t·(rank + rope) + rank + j] (k_pe, shared by all heads)
// for every head h and j < rope. All bf16.
struct MlaPackArgs {
    int n = 0, ctx = 0, heads = 0, nope = 0, rope = 0, rank = 0;
    const void* qcat = nullptr;
    void* q = nullptr;
    std::int64_t ldq = 0;
    const void* cache = nullptr;
    void* keys = nullptr;
    std::int64_t ldk = 0;
};
Status mlaPrefillPack(const MlaPackArgs& args, Stream stream);

}  // namespace tessera::kernels
