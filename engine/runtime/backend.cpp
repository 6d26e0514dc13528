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

Backend::Step Backend::sampleAndAppend(Sequence& sequence, std::span<const std::int32_t> seen, const SamplingParams& params,
                                       Rng& rng)
{
    Step step;
    step.token = sampleNext(sequence, seen, params, rng);
    if (sequence.length() < sequence.capacity()) {
        const std::int32_t one[1] = {step.token};
        const PromptSegment segment{std::span<const std::int32_t>(one, 1), nullptr, 0};
        step.appended = append(sequence, std::span<const PromptSegment>(&segment, 1), nullptr);
    }
    return step;
}

}  // namespace tessera
