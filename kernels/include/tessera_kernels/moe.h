#pragma once
// Mixture-of-experts plumbing: the router (scores → top-k experts and their weights), the grouping
// of (token, expert) pairs by expert for the grouped products, and the weighted combine back into
// the residual stream. Everything stays on the device: no host round trip between router and
// experts.
#include "tessera_kernels/common.h"

#include <cstddef>
#include <cstdint>

namespace tessera::kernels {

enum class Routing : std::uint8_t { Greedy, NoAuxTc };
enum class Scoring : std::uint8_t { Softmax, Sigmoid };

// scores: F32 [n, experts] router logits. For each token: soft-max or sigmoid in fp32, choose k
// experts (ties to the lower index; noaux_tc chooses on score + bias within the best topkGroups
// groups, scored by the sum of their two best biased scores) and write them in increasing expert
// order to idx [n, k + sharedExperts] with their weights (unbiased scores, renormalised when
// asked, × scaling); the last sharedExperts entries of a row are experts E, E + 1, ... (the shared
// experts, stored after the routed ones) with weight 1.
struct RouteArgs {
    const float* scores = nullptr;
    int n = 0, experts = 0, k = 0;
    Routing routing = Routing::Greedy;
    Scoring scoring = Scoring::Softmax;
    const float* bias = nullptr;  // noaux_tc correction bias [experts]
    int groups = 1, topkGroups = 1;
    bool normalize = false;
    float scaling = 1.f;
    int sharedExperts = 0;
    std::int32_t* idx = nullptr;
    float* weight = nullptr;
};
Status routeTokens(const RouteArgs& args, Stream stream);
// Decode, one token, one launch: x = xType(normWeight · RMSNorm(residual)) (also stored to normOut
// for the experts' product), logits = routerWeight (bf16 [experts, hidden]) · x, then routing as
// routeTokens. logits: scratch of `experts` floats; counter: one device int that is zero before the
// first launch (the kernel leaves it zero). args.scores is not used.
struct RouteDecodeArgs {
    const float* residual = nullptr;
    const float* normWeight = nullptr;
    float eps = 1e-6f;
    int hidden = 0;
    const std::uint16_t* routerWeight = nullptr;
    void* normOut = nullptr;
    DType xType = DType::F32;
    float* logits = nullptr;
    int* counter = nullptr;
};
Status routeDecode(const RouteArgs& args, const RouteDecodeArgs& decode, Stream stream);

// A whole MoE layer of one decode token in one cooperative launch, in place of routeDecode, the two
// expert products and combineExperts (same results, other summation orders):
//   x = xType(postNorm · RMSNorm(residual)); routing of routerWeight · x as routeTokens (also
//   written to route.idx / route.weight row 0); per expert e of the k routed and the shared ones
//   act_e = xType(silu(gate_e · x) · (up_e · x)); residual += Σ weight_e · down_e · act_e; and, with
//   nextNorm, normOut = xType(nextNorm · RMSNorm(residual)).
// Weights bf16: routerWeight [experts, hidden]; gateUp [experts + shared][2·inter, hidden] (gate
// rows, then up rows); down [experts + shared][hidden, inter]. Scratch: logits [experts] floats,
// act [(k + shared)·inter] of xType, partials [kMoeDecodeMaxBlocks] floats, sync: three unsigned
// that are zero before the first launch (the kernel leaves them ready for the next).
// A dense MLP layer is the case experts = 0, k = 0, sharedExperts = 1 (gateUp [2·inter, hidden],
// down [hidden, inter], no router; route.idx may be null).
constexpr int kMoeDecodeMaxBlocks = 1024;
struct MoeDecodeArgs {
    RouteArgs route;  // n = 1; scores unused
    float* residual = nullptr;
    const float* postNorm = nullptr;
    const float* nextNorm = nullptr;  // optional
    float eps = 1e-6f;
    int hidden = 0, inter = 0;
    const std::uint16_t* routerWeight = nullptr;
    const std::uint16_t* gateUp = nullptr;
    const std::uint16_t* down = nullptr;
    void* normOut = nullptr;
    DType xType = DType::F32;
    float* logits = nullptr;
    void* act = nullptr;
    float* partials = nullptr;
    unsigned* sync = nullptr;
    // Optional: bytes the next kernel reads first (the next layer's input product), asked into L2
    // as the blocks finish.
    const void* prefetchNext = nullptr;
    std::size_t prefetchNextBytes = 0;
};
// Whether moeDecode takes this shape (else use the separate kernels).
bool moeDecodeSupports(int experts, int k, int sharedExperts, int hidden, int inter);
Status moeDecode(const MoeDecodeArgs& args, Stream stream);

// Groups the n·k (token, expert) pairs by expert: counts / offsets / tileOffsets per expert (for
// groupedGemm with tiles of tileRows rows), pairRows[t, i] = row of pair (t, i) in the grouped order,
// and gathered[row] = x[t] (xType rows of width `width`).
struct DispatchArgs {
    const std::int32_t* idx = nullptr;
    int n = 0, k = 0, experts = 0, tileRows = 64;
    int* counts = nullptr;       // [experts]
    int* fill = nullptr;         // [experts]
    int* offsets = nullptr;      // [experts + 1]
    int* tileOffsets = nullptr;  // [experts + 1]
    std::int32_t* pairRows = nullptr;  // [n, k]
    const void* x = nullptr;
    DType xType = DType::F32;
    int width = 0;
    void* gathered = nullptr;    // [n·k, width]
};
Status dispatchTokens(const DispatchArgs& args, Stream stream);

// residual[t] += Σ_i weight[t, i] · expertOut[slot(t, i)] (+ shared[t]), experts in idx order.
// slot(t, i) = pairRows[t·k + i], or t·k + i when pairRows is null (decode: rows in routing order).
// With normWeight, also normOut[t] = RMSNorm(residual[t]) · normWeight (the next layer's input).
struct CombineArgs {
    const void* expertOut = nullptr;  // [*, width] of expertType (F32 or BF16)
    DType expertType = DType::F32;
    const std::int32_t* pairRows = nullptr;
    const float* weight = nullptr;     // [n, k]
    const float* shared = nullptr;     // [n, width] F32 or null
    int n = 0, k = 0, width = 0;
    float* residual = nullptr;         // [n, width] F32
    const float* normWeight = nullptr;
    float normEps = 1e-6f;
    void* normOut = nullptr;           // [n, width] normType
    DType normType = DType::F32;
};
Status combineExperts(const CombineArgs& args, Stream stream);

}  // namespace tessera::kernels
