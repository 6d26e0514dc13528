#pragma once
// A timeline of the decode kernels written by the kernels themselves (measurement only; off unless
// set). Each block of a traced kernel appends one record: when it started, when its
// gridDependencyWait() returned (0 where it left before waiting), up to two marks of its own (0
// where not set) and when it ended, read from the GPU's global nanosecond timer (256 ns steps on
// the H200). tessera-bench --trace groups the records of one decode step into launches and prints,
// for each, how long it waited for the kernel before and how long it ran after.
#include "tessera_kernels/common.h"

#include <cstdint>

namespace tessera::kernels {

enum class TraceSite : std::uint32_t {
    Gemv = 1,
    DecodeAttention,     // the tensor-core MHA decode attention
    LatentAttention,     // the MLA latent decode attention
    Router,              // the one-token router
    CombineOne,          // the one-token MoE combine
    Combine,             // the MoE combine
    RmsNorm,
    ArgmaxPartial,
    ArgmaxFinal,
    Embed,
    AttentionCombine,    // the decode attention's split merge as a launch of its own
};
const char* traceSiteName(std::uint32_t site);

struct TraceRecord {
    std::uint64_t start, waited, end;  // ns; waited 0: the block left before its wait
    std::uint64_t mark[2];             // ns, per site (see the kernels), 0: not reached
    std::uint32_t site;                // TraceSite
    std::uint32_t gridX, gridY;
    std::uint32_t aux;                 // per site: the gemv's rows N (its K in the high 16 bits), else 0
};

// records: device memory for `capacity` records, count: a device counter (zero it before each
// traced step). Null records turns tracing off. Applies to the kernels that run after the call
// (also inside captured graphs). Only builds configured with TESSERA_DECODE_TRACE (cmake --preset
// trace) trace; the others fail here for non-null records.
Status setDecodeTrace(TraceRecord* records, unsigned* count, unsigned capacity);

}  // namespace tessera::kernels
