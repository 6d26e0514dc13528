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

bool Backend::appendToken(Sequence& sequence, std::int32_t token, const std::atomic<bool>* cancel)
{
    const std::int32_t one[1] = {token};
    const PromptSegment segment{std::span<const std::int32_t>(one, 1), nullptr, 0};
    return append(sequence, std::span<const PromptSegment>(&segment, 1), cancel);
}

Backend::Step Backend::sampleAndAppend(Sequence& sequence, std::span<const std::int32_t> seen, const SamplingParams& params,
                                       Rng& rng)
{
    Step step;
    step.token = sampleNext(sequence, seen, params, rng);
    if (sequence.length() < sequence.capacity())
        step.appended = appendToken(sequence, step.token);
    return step;
}

}  // namespace tessera
