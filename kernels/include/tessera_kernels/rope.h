#pragma once
// Rotary position embedding fused with the KV-cache write, for both attention kinds. Positions
// are start + t for token t; when startOnDevice is given it replaces `start` (decode graphs read
// the sequence length from the device). cos/sin tables: [maxPositions, dim / 2] F32.
#include "tessera_kernels/common.h"

#include <cstdint>

namespace tessera::kernels {

struct RotaryTables {
    const float* cos = nullptr;
    const float* sin = nullptr;
    int dim = 0;
};

// MHA (NeoX rotation over the whole head). qkv: [n, (heads + 2·kvHeads)·headDim] = q | k | v.
// Writes rotated queries to q (qType, [n, heads·headDim]) and rotated keys / values to the cache
// rows start.. (cacheType, [capacity, kvHeads·headDim] each).
struct MhaPrepareArgs {
    const void* qkv = nullptr;
    DType qkvType = DType::F32;
    int n = 0, heads = 0, kvHeads = 0, headDim = 0;
    int start = 0;
    const int* startOnDevice = nullptr;
    void* q = nullptr;
    DType qType = DType::F32;
    void* keys = nullptr;
    void* values = nullptr;
    DType cacheType = DType::F32;
    RotaryTables rotary;
};
Status mhaPrepare(const MhaPrepareArgs& args, Stream stream);

// MLA. fused: [n, heads·(nope + rope) + rank + rope] = q_proj | kv_a_proj_with_mqa.
// Writes, per token, the cache row [rank + rope] = RMSNorm(latent)·kvNorm | rotated k_pe, and the
// rotated rope part of every head's query into qcat[t, h, rank .. rank + rope) (qType).
struct MlaPrepareArgs {
    const void* fused = nullptr;
    DType fusedType = DType::F32;
    int n = 0, heads = 0, nope = 0, rope = 0, rank = 0;
    const float* kvNorm = nullptr;
    float eps = 1e-6f;
    int start = 0;
    const int* startOnDevice = nullptr;
    void* qcat = nullptr;
    DType qType = DType::F32;
    void* cache = nullptr;
    DType cacheType = DType::F32;
    RotaryTables rotary;
};
Status mlaPrepare(const MlaPrepareArgs& args, Stream stream);

}  // namespace tessera::kernels
