#pragma once
// Next-token choice with the upstream demo's knobs and Hugging Face generate() semantics:
// repetition penalty over every token seen so far (prompt included), then temperature, top-k,
// top-p, then a draw from the softmax. Temperature 0 is greedy (first index on exact ties).
#include <cstdint>
#include <span>
#include <vector>

namespace tessera {

struct SamplingParams {
    float temperature = 0.1f;       // upstream demo defaults
    float topP = 0.9f;
    int topK = 0;                   // 0 = off
    float repetitionPenalty = 1.1f; // 1 = off
    std::uint64_t seed = 0;
    bool greedy() const { return temperature <= 0.f; }
};

// Deterministic, portable generator (PCG32): the same seed gives the same draws on every machine.
class Rng {
public:
    explicit Rng(std::uint64_t seed = 0);
    std::uint32_t next();
    double uniform();  // [0, 1)

private:
    std::uint64_t state_;
    std::uint64_t inc_;
};

// Applies the repetition penalty in place: a seen token's logit is divided by the penalty when
// positive and multiplied when negative. Each distinct token counts once.
void applyRepetitionPenalty(std::span<float> logits, std::span<const std::int32_t> seen, float penalty);

// Chooses the next token from raw logits (modified in place). `seen` is the prompt plus what has
// been generated, for the repetition penalty.
std::int32_t sampleToken(std::span<float> logits, std::span<const std::int32_t> seen, const SamplingParams& params,
                         Rng& rng);

std::int32_t argmax(std::span<const float> logits);

}  // namespace tessera
