#include "runtime/sampler.h"

#include "core/error.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace tessera {

Rng::Rng(std::uint64_t seed) : state_(0), inc_((seed << 1u) | 1u)
{
    next();
    state_ += 0x853c49e6748fea9bULL ^ seed;
    next();
}

std::uint32_t Rng::next()
{
    const std::uint64_t old = state_;
    state_ = old * 6364136223846793005ULL + inc_;
    const auto xorshifted = static_cast<std::uint32_t>(((old >> 18u) ^ old) >> 27u);
    const auto rot = static_cast<std::uint32_t>(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((-rot) & 31));
}

double Rng::uniform()
{
    const std::uint64_t hi = next() >> 5;  // 27 bits
    const std::uint64_t lo = next() >> 6;  // 26 bits
    return static_cast<double>((hi << 26) | lo) / static_cast<double>(1ULL << 53);
}

std::int32_t argmax(std::span<const float> logits)
{
    if (logits.empty())
        throw Error("argmax of an empty logit vector");
    std::size_t best = 0;
    for (std::size_t i = 1; i < logits.size(); ++i)
        if (logits[i] > logits[best])
            best = i;
    return static_cast<std::int32_t>(best);
}

void applyRepetitionPenalty(std::span<float> logits, std::span<const std::int32_t> seen, float penalty)
{
    if (penalty == 1.f)
        return;
    std::vector<std::int32_t> ids(seen.begin(), seen.end());
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    for (std::int32_t id : ids) {
        if (id < 0 || static_cast<std::size_t>(id) >= logits.size())
            continue;
        float& l = logits[static_cast<std::size_t>(id)];
        l = l < 0 ? l * penalty : l / penalty;
    }
}

std::int32_t sampleToken(std::span<float> logits, std::span<const std::int32_t> seen, const SamplingParams& params,
                         Rng& rng)
{
    if (params.repetitionPenalty <= 0.f || !std::isfinite(params.repetitionPenalty))
        throw Error("repetition penalty must be a positive number");
    applyRepetitionPenalty(logits, seen, params.repetitionPenalty);
    if (params.greedy())
        return argmax(logits);
    if (!(params.topP > 0.f && params.topP <= 1.f))
        throw Error("top-p must be in (0, 1]");

    const float invT = 1.f / params.temperature;
    std::vector<std::int32_t> order(logits.size());
    std::iota(order.begin(), order.end(), 0);
    // Candidates sorted by logit (descending; index breaks ties). Only the head matters, so a
    // partial sort on a generous prefix would do; a full sort of 129k floats costs ~5 ms here.
    std::size_t keep = logits.size();
    if (params.topK > 0)
        keep = std::min<std::size_t>(keep, static_cast<std::size_t>(params.topK));
    auto byLogit = [&](std::int32_t a, std::int32_t b) {
        return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    };
    std::sort(order.begin(), order.end(), byLogit);
    if (params.topK > 0) {
        // Ties with the k-th logit survive, as in HF's top-k warper.
        const float kth = logits[order[keep - 1]];
        while (keep < order.size() && logits[order[keep]] == kth)
            ++keep;
    }
    const float maxLogit = logits[order[0]] * invT;
    std::vector<double> probs(keep);
    double sum = 0;
    for (std::size_t i = 0; i < keep; ++i) {
        probs[i] = std::exp(static_cast<double>(logits[order[i]] * invT - maxLogit));
        sum += probs[i];
    }
    // Top-p: keep the most likely tokens until their mass reaches top_p (HF drops a token when
    // the mass of everything less likely than it, itself included, is ≤ 1 − top_p).
    if (params.topP < 1.f) {
        double tail = 0;
        std::size_t cut = keep;
        for (std::size_t i = keep; i-- > 1;) {
            tail += probs[i] / sum;
            if (tail <= 1.0 - params.topP)
                cut = i;
            else
                break;
        }
        for (std::size_t i = cut; i < keep; ++i)
            sum -= probs[i];
        keep = cut;
    }
    double r = rng.uniform() * sum;
    for (std::size_t i = 0; i < keep; ++i) {
        r -= probs[i];
        if (r < 0)
            return order[i];
    }
    return order[keep - 1];
}

}  // namespace tessera
