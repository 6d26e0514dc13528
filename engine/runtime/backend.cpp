#include "runtime/backend.h"

#include <vector>

namespace tessera {

std::int32_t Backend::sampleNext(const Sequence& sequence, std::span<const std::int32_t> seen,
                                 const SamplingParams& params, Rng& rng)
{
    std::vector<float> logits(static_cast<std::size_t>(vocabSize()));
    lastLogits(sequence, logits);
    return sampleToken(logits, seen, params, rng);
}

}  // namespace tessera
