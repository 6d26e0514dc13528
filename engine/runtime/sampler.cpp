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
    const std::size_t V = logits.size();
    float maxLogit = logits[0];
    for (float l : logits)
        maxLogit = std::max(maxLogit, l);
    // Unnormalised probabilities over the whole vocabulary (one pass; no sort needed for that).
    std::vector<double> weight(V);
    double total = 0;
    for (std::size_t i = 0; i < V; ++i) {
        weight[i] = std::exp(static_cast<double>((logits[i] - maxLogit) * invT));
        total += weight[i];
    }
    auto byLogit = [&](std::int32_t a, std::int32_t b) {
        return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    };
    if (params.topK <= 0 && params.topP >= 1.f) {
        double r = rng.uniform() * total;
        for (std::size_t i = 0; i < V; ++i) {
            r -= weight[i];
            if (r < 0)
                return static_cast<std::int32_t>(i);
        }
        return static_cast<std::int32_t>(V - 1);
    }

    // The most likely tokens in order. Only the head matters: sort a prefix, widen it when the
    // top-p cut might lie beyond it (a flat distribution), up to the whole vocabulary.
    std::vector<std::int32_t> order(V);
    std::iota(order.begin(), order.end(), 0);
    std::size_t head = std::min<std::size_t>(V, params.topK > 0 ? static_cast<std::size_t>(params.topK) : 256);
    std::size_t keep = 0;
    double keptMass = 0;
    for (;;) {
        std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(head), order.end(), byLogit);
        keep = head;
        if (params.topK > 0) {
            // Ties with the k-th logit survive, as in HF's top-k warper.
            const float kth = logits[order[keep - 1]];
            std::size_t extra = keep;
            for (std::size_t i = keep; i < V; ++i)
                if (logits[order[i]] == kth)
                    std::swap(order[extra++], order[i]);
            // partial_sort leaves the rest in no set order: the ties follow in index order, as
            // byLogit orders the head (and as the GPU's stable sort does).
            std::sort(order.begin() + static_cast<std::ptrdiff_t>(keep), order.begin() + static_cast<std::ptrdiff_t>(extra));
            keep = extra;
        }
        double mass = 0;
        for (std::size_t i = 0; i < keep; ++i)
            mass += weight[order[i]];
        // Within the kept set (after top-k), HF drops a token when the mass of everything less
        // likely than it, itself included, is at most 1 - top_p of the kept mass.
        const double base = params.topK > 0 ? mass : total;
        if (params.topP < 1.f) {
            double before = 0;
            std::size_t cut = keep;
            for (std::size_t i = 0; i < keep; ++i) {
                if (i > 0 && (base - before) / base <= 1.0 - params.topP) {
                    cut = i;
                    break;
                }
                before += weight[order[i]];
            }
            if (cut < keep || params.topK > 0 || head == V) {
                keep = cut;
                keptMass = 0;
                for (std::size_t i = 0; i < keep; ++i)
                    keptMass += weight[order[i]];
                break;
            }
            head = std::min(V, head * 8);  // the cut lies past the sorted head
            continue;
        }
        keptMass = mass;
        break;
    }
    double r = rng.uniform() * keptMass;
    for (std::size_t i = 0; i < keep; ++i) {
        r -= weight[order[i]];
        if (r < 0)
            return order[i];
    }
    return order[keep - 1];
}

}  // namespace tessera
