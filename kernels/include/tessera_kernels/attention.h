#pragma once
// Attention pieces that are not plain products. Prefill attention is two products around
// causalSoftmax (the scores of one block of queries against the whole visible context); decode
// attention is a split-context kernel that reads the context length from the device, so that a
// captured decode step can be replayed at every position.
#include "tessera_kernels/common.h"
#include "tessera_kernels/rope.h"

#include <cstddef>
#include <cstdint>

namespace tessera::kernels {

// For every row r of scores (F32, `rows` rows of `context` columns, leading dimension ld): scale,
// soft-max over columns [0, visible) and zero the rest, with
// visible = min(context, firstVisible + (r / tokenDiv) % tokenMod + 1). Writes outType rows to out
// (leading dimension ldo; out may alias scores when outType is F32). Vision: firstVisible = context.
struct SoftmaxArgs {
    const float* scores = nullptr;
    int rows = 0, context = 0;
    std::int64_t ld = 0;
    int firstVisible = 0;
    int tokenDiv = 1, tokenMod = 1 << 30;
    float scale = 1.f;
    void* out = nullptr;
    DType outType = DType::F32;
    std::int64_t ldo = 0;
};
Status causalSoftmax(const SoftmaxArgs& args, Stream stream);

// One new token per head h (query q + h·qHeadStride) against context positions
// [0, *lengthOnDevice + 1): scores over keyDim, values of valueDim. Heads h use kv head
// h / headsPerKv. Output: out + h·outHeadStride (outType, valueDim values).
struct DecodeAttentionArgs {
    const void* q = nullptr;
    DType qType = DType::F32;
    std::int64_t qHeadStride = 0;
    int heads = 0, headsPerKv = 1;
    const void* keys = nullptr;
    std::int64_t keyLd = 0, keyHeadStride = 0;
    int keyDim = 0;
    const void* values = nullptr;
    std::int64_t valueLd = 0, valueHeadStride = 0;
    int valueDim = 0;
    DType cacheType = DType::F32;
    const int* lengthOnDevice = nullptr;
    // The most positions of context (the new one included) any run of this launch attends over: the
    // cache's capacity, or less for a decode graph that serves only shorter contexts (see
    // kDecodeClusterContext). It sizes the grid; a longer context would be cut short.
    int capacity = 0;
    float scale = 1.f;
    float* workspace = nullptr;  // decodeAttentionWorkspaceFloats(...) floats
    // Optional: one device int per kv head, zero before the first launch (the kernels leave them
    // zero). Lets the partial pass merge the splits itself where it can, saving a launch.
    int* counters = nullptr;
    void* out = nullptr;
    DType outType = DType::F32;
    std::int64_t outHeadStride = 0;
    // Optional (one token): the step's mhaPrepare (prepare.qkv set) or mlaPrepare (latentPrepare.fused
    // set), done here instead of by a launch of its own where a tensor-core kernel runs (else
    // decodeAttention launches it first). Its startOnDevice is lengthOnDevice, its outputs this
    // attention's inputs (MHA: q, keys, values; MLA: qcat = q, whose first rank columns an earlier
    // launch wrote, and cache = keys = values). The blocks rotate their queries' rotary part
    // themselves, and the block whose split holds the newest position makes that cache row (MHA:
    // rotated k and v; MLA: the latent norm and rotated k_pe), stores it and uses it. Same results
    // as the two launches, bit for bit (rotatePair(), warpSumSquares()).
    bool fusePrepare = false;
    MhaPrepareArgs prepare;
    MlaPrepareArgs latentPrepare;
};
// Decode attention launches of at most this capacity (positions) may take faster kernels
// (setAttentionClusters): a decode graph for contexts up to it is worth capturing apart.
inline constexpr int kDecodeClusterContext = 2048;
std::size_t decodeAttentionWorkspaceFloats(int heads, int valueDim, int capacity);
Status decodeAttention(const DecodeAttentionArgs& args, Stream stream);
// Whether decodeAttention(args) runs args.prepare inside its kernel (else as a launch before it).
bool decodeAttentionFusesPrepare(const DecodeAttentionArgs& args);
// Whether decodeAttention(args) merges the splits in thread-block clusters (setAttentionClusters).
bool decodeAttentionMergesInClusters(const DecodeAttentionArgs& args);

// The attention half of an MHA layer for one decode token in one cooperative launch, in place of
// the q/k/v product, mhaPrepare, decodeAttention and o_proj. It rounds where they store, so in fp32
// only summation orders differ; in bf16 decodeAttention's tensor-core kernel also rounds the
// probabilities to bf16, which this CUDA-core attention does not:
//   row = type(qkvWeight · x) (q | k | v, heads·headDim | kvHeads·headDim | kvHeads·headDim);
//   q and k rotated (pairs i, i + headDim/2) at position *lengthOnDevice, k and v stored at that
//   position of the cache ([capacity, kvHeads·headDim] each); attention of q over positions
//   0 .. *lengthOnDevice; residual += outWeight · type(attention).
// Weights bf16: qkvWeight [(heads + 2·kvHeads)·headDim, hidden], outWeight [hidden, heads·headDim].
// x, the caches and q (scratch, heads·headDim) are of `type`; cos / sin: [positions, headDim/2];
// partials: mhaDecodePartialFloats() floats; sync: three unsigned, zero before the first launch
// (left ready for the next; may be shared with moeDecode).
constexpr int kMhaDecodeMaxSplits = 64;
struct MhaDecodeArgs {
    const void* x = nullptr;
    DType type = DType::F32;
    int hidden = 0, heads = 0, kvHeads = 0, headDim = 0;
    const std::uint16_t* qkvWeight = nullptr;
    const float* cos = nullptr;
    const float* sin = nullptr;
    void* keys = nullptr;
    void* values = nullptr;
    int capacity = 0;
    const int* lengthOnDevice = nullptr;
    void* q = nullptr;
    float* partials = nullptr;
    const std::uint16_t* outWeight = nullptr;
    float* residual = nullptr;
    float scale = 1.f;
    unsigned* sync = nullptr;
};
// Whether mhaDecode takes this shape with a cache of `capacity` positions.
bool mhaDecodeSupports(int hidden, int heads, int kvHeads, int headDim, int capacity);
std::size_t mhaDecodePartialFloats(int heads, int headDim);
Status mhaDecode(const MhaDecodeArgs& args, Stream stream);

// The attention half of an MLA layer for one decode token in one cooperative launch, in place of
// the q_proj | kv_a product, mlaPrepare, the query absorption, decodeAttention over the latent
// cache, the value expansion and o_proj (rounding where they store, as mhaDecode does; in bf16
// the separate tensor-core attention also rounds its probabilities to bf16). Layouts as those
// steps use them: inWeight [heads·(nope + rope) + rank + rope, hidden] (q_proj rows, then
// kv_a_proj_with_mqa rows; rotary pairs interleaved); cache [capacity, rank + rope] (normalised
// latent | rotated k_pe); wUkT [heads·rank, nope]; wUv [heads·vDim, rank]; outWeight
// [hidden, heads·vDim]. Scratch of `type`: proj [heads·(nope + rope) + rank + rope], qcat
// [heads, rank + rope], ctx [heads·vDim]; partials: mlaDecodePartialFloats() floats; sync as for
// mhaDecode.
constexpr int kMlaDecodeMaxSplits = 64;
struct MlaDecodeArgs {
    const void* x = nullptr;
    DType type = DType::F32;
    int hidden = 0, heads = 0, nope = 0, rope = 0, rank = 0, vDim = 0;
    const std::uint16_t* inWeight = nullptr;
    const float* kvNorm = nullptr;
    float kvEps = 1e-6f;
    const float* cos = nullptr;  // [positions, rope/2]
    const float* sin = nullptr;
    void* cache = nullptr;
    int capacity = 0;
    const int* lengthOnDevice = nullptr;
    void* proj = nullptr;
    void* qcat = nullptr;
    const std::uint16_t* wUkT = nullptr;
    const std::uint16_t* wUv = nullptr;
    void* ctx = nullptr;
    float* partials = nullptr;
    const std::uint16_t* outWeight = nullptr;
    float* residual = nullptr;
    float scale = 1.f;
    unsigned* sync = nullptr;
};
bool mlaDecodeSupports(int hidden, int heads, int nope, int rope, int rank, int vDim, int capacity);
std::size_t mlaDecodePartialFloats(int heads, int rank);
Status mlaDecode(const MlaDecodeArgs& args, Stream stream);

}  // namespace tessera::kernels

namespace tessera::kernels {

// Fused attention on the tensor cores (bf16 in and out, fp32 scores and soft-max, never written
// to memory): O = softmax(scale · Q·Kᵀ, masked) · V per (batch, head). Query row i has position
// qPosition0 + i; causal rows see keys [0, qPosition0 + i], others all nKeys keys. Head h reads kv
// head h / headsPerKv. headDim (queries, keys) and valueDim (values, output; 0 = headDim):
// multiples of 8, at most 128 when equal, else keys up to 192 and values up to 128 (MLA prefill).
// Strides in elements; scale > 0.
struct FlashAttentionArgs {
    const void* q = nullptr;
    std::int64_t ldq = 0, qHeadStride = 0, qBatchStride = 0;
    const void* k = nullptr;
    std::int64_t ldk = 0, kHeadStride = 0, kBatchStride = 0;
    const void* v = nullptr;
    std::int64_t ldv = 0, vHeadStride = 0, vBatchStride = 0;
    void* o = nullptr;
    std::int64_t ldo = 0, oHeadStride = 0, oBatchStride = 0;
    int batch = 1, heads = 1, headsPerKv = 1, queries = 0, keys = 0, headDim = 0, valueDim = 0;
    bool causal = false;
    int qPosition0 = 0;
    float scale = 1.f;
};
bool flashAttentionSupports(int headDim, int valueDim = 0);
Status flashAttention(const FlashAttentionArgs& args, Stream stream);
// Whether flashAttention(args) runs the Hopper (wgmma) kernel: head widths (keys / values)
// 192 / 128, 128 / 128 or 72 / 72 on a compute capability 9.0 GPU, with setWgmmaAttention on;
// else the mma.sync kernel.
bool flashAttentionOnWgmma(const FlashAttentionArgs& args);

}  // namespace tessera::kernels
