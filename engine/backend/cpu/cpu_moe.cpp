#include "backend/cpu/cpu_moe.h"

#include "core/error.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace tessera::cpu {

namespace {

// Rows per product in the MLPs: bounds the [rows, intermediate] activations of long prompts.
constexpr int kMlpRowBlock = 512;

// linear() streams bf16 weights for up to 4 rows and converts them to fp32 for BLAS above that.
// An expert that got only a few tokens of a short prompt is cheaper as repeated streaming passes
// than as one conversion of its whole weights.
constexpr int kStreamRows = 4;
constexpr int kStreamMaxRows = 16;

void expertLinear(const float* x, int m, const WeightMatrix& W, float* y)
{
    if (m <= kStreamRows || m > kStreamMaxRows) {
        linear(x, m, W, nullptr, y);
        return;
    }
    for (int r = 0; r < m; r += kStreamRows)
        linear(x + static_cast<std::size_t>(r) * W.cols, std::min(kStreamRows, m - r), W, nullptr,
               y + static_cast<std::size_t>(r) * W.rows);
}

// Indices of the k largest values, best first; on exact ties the lower index wins (torch.topk
// leaves the order of ties unspecified; lower-first makes the choice deterministic).
void topIndices(const float* v, int count, int k, int* out)
{
    int filled = 0;
    for (int e = 0; e < count; ++e) {
        if (filled == k && !(v[e] > v[out[k - 1]]))
            continue;
        int pos = filled < k ? filled++ : k - 1;
        while (pos > 0 && v[e] > v[out[pos - 1]]) {
            out[pos] = out[pos - 1];
            --pos;
        }
        out[pos] = e;
    }
}

}  // namespace

GatedMlp::GatedMlp(const WeightMap& weights, const std::string& prefix)
    : gate_(WeightMatrix::from(weights.get(prefix + ".gate_proj.weight"))),
      up_(WeightMatrix::from(weights.get(prefix + ".up_proj.weight"))),
      down_(WeightMatrix::from(weights.get(prefix + ".down_proj.weight")))
{
}

void GatedMlp::forward(const float* x, int m, float* out) const
{
    const int inter = gate_.rows;
    const int hidden = gate_.cols;
    const int block = std::min(m, kMlpRowBlock);
    std::vector<float> g(static_cast<std::size_t>(block) * inter), u(g.size());
    for (int r0 = 0; r0 < m; r0 += block) {
        const int rows = std::min(block, m - r0);
        const float* xr = x + static_cast<std::size_t>(r0) * hidden;
        expertLinear(xr, rows, gate_, g.data());
        expertLinear(xr, rows, up_, u.data());
        siluMul(g.data(), u.data(), g.data(), static_cast<std::size_t>(rows) * inter);
        expertLinear(g.data(), rows, down_, out + static_cast<std::size_t>(r0) * hidden);
    }
}

ExpertRouter::ExpertRouter(const LanguageConfig& config, const WeightMap& weights, const std::string& prefix)
    : gate_(WeightMatrix::from(weights.get(prefix + ".gate.weight"))),
      experts_(config.nRoutedExperts.value_or(0)),
      topK_(config.numExpertsPerTok),
      groups_(config.nGroup),
      topkGroups_(config.topkGroup),
      method_(config.topkMethod),
      scoring_(config.scoringFunc),
      normalize_(config.normTopkProb),
      scaling_(static_cast<float>(config.routedScalingFactor))
{
    if (experts_ <= 0 || experts_ > 1024)
        throw Error("n_routed_experts must be between 1 and 1024, found " + std::to_string(experts_));
    if (topK_ <= 0 || topK_ > experts_)
        throw Error("num_experts_per_tok (" + std::to_string(topK_) + ") must be between 1 and n_routed_experts (" +
                    std::to_string(experts_) + ")");
    if (method_ == TopkMethod::NoAuxTc) {
        bias_ = toFloatVector(weights.get(prefix + ".gate.e_score_correction_bias"));
        if (groups_ <= 0 || experts_ % groups_ != 0 || experts_ / groups_ < 2)
            throw Error("noaux_tc routing needs n_group (" + std::to_string(groups_) +
                        ") to divide n_routed_experts into groups of at least 2 experts");
        if (topkGroups_ <= 0 || topkGroups_ > groups_ || topkGroups_ * (experts_ / groups_) < topK_)
            throw Error("topk_group (" + std::to_string(topkGroups_) + ") must be between 1 and n_group and leave at least " +
                        std::to_string(topK_) + " experts to choose from");
    }
}

void ExpertRouter::route(const float* x, int n, std::int32_t* idx, float* weight) const
{
    const int E = experts_;
    const int k = topK_;
    std::vector<float> scores(static_cast<std::size_t>(n) * E);
    linear(x, n, gate_, nullptr, scores.data());
    if (scoring_ == ScoringFunc::Softmax)
        softmaxRows(scores.data(), n, E);

#pragma omp parallel for schedule(static) if (n > 16)
    for (int t = 0; t < n; ++t) {
        float* s = scores.data() + static_cast<std::size_t>(t) * E;
        if (scoring_ == ScoringFunc::Sigmoid)
            for (int e = 0; e < E; ++e)
                s[e] = 1.f / (1.f + std::exp(-s[e]));
        int chosen[1024];
        if (method_ == TopkMethod::Greedy) {
            topIndices(s, E, k, chosen);
        } else {
            // noaux_tc: choose on the biased scores, restricted to the best groups (a group scores
            // the sum of its two best biased scores); experts outside them count as 0.0, not −inf,
            // exactly as the reference masks them.
            float choice[1024];
            for (int e = 0; e < E; ++e)
                choice[e] = s[e] + bias_[e];
            if (topkGroups_ < groups_) {
                const int per = E / groups_;
                float groupScore[1024];
                for (int g = 0; g < groups_; ++g) {
                    int best[2];
                    topIndices(choice + g * per, per, 2, best);
                    groupScore[g] = choice[g * per + best[0]] + choice[g * per + best[1]];
                }
                int keep[1024];
                topIndices(groupScore, groups_, topkGroups_, keep);
                bool kept[1024] = {};
                for (int i = 0; i < topkGroups_; ++i)
                    kept[keep[i]] = true;
                for (int e = 0; e < E; ++e)
                    if (!kept[e / per])
                        choice[e] = 0.f;
            }
            topIndices(choice, E, k, chosen);
        }
        std::sort(chosen, chosen + k);
        float w[1024];
        float sum = 0.f;
        for (int i = 0; i < k; ++i) {
            w[i] = s[chosen[i]];  // unbiased score (the bias only steers the choice)
            sum += w[i];
        }
        const bool renormalize = k > 1 && normalize_;
        for (int i = 0; i < k; ++i) {
            idx[static_cast<std::size_t>(t) * k + i] = chosen[i];
            weight[static_cast<std::size_t>(t) * k + i] = renormalize ? w[i] / (sum + 1e-20f) * scaling_ : w[i] * scaling_;
        }
    }
}

MoeBlock::MoeBlock(const LanguageConfig& config, const WeightMap& weights, const std::string& prefix)
    : hidden_(config.hiddenSize), router_(config, weights, prefix)
{
    experts_.reserve(router_.experts());
    for (int e = 0; e < router_.experts(); ++e)
        experts_.emplace_back(weights, prefix + ".experts." + std::to_string(e));
    if (config.nSharedExperts && *config.nSharedExperts > 0) {
        hasShared_ = true;
        shared_ = GatedMlp(weights, prefix + ".shared_experts");
    }
}

void MoeBlock::forward(const float* x, int n, float* out, std::vector<std::int32_t>* idxOut,
                       std::vector<float>* weightOut) const
{
    const int k = router_.topK();
    const int E = router_.experts();
    const int H = hidden_;
    std::vector<std::int32_t> idx(static_cast<std::size_t>(n) * k);
    std::vector<float> weight(idx.size());
    router_.route(x, n, idx.data(), weight.data());

    // Group (token, weight) pairs by expert, tokens in increasing order within an expert.
    std::vector<int> offset(E + 1, 0);
    for (auto e : idx)
        ++offset[e + 1];
    std::partial_sum(offset.begin(), offset.end(), offset.begin());
    std::vector<int> tokenOf(idx.size());
    std::vector<float> weightOf(idx.size());
    {
        std::vector<int> fill(offset.begin(), offset.end() - 1);
        for (int t = 0; t < n; ++t)
            for (int i = 0; i < k; ++i) {
                const int e = idx[static_cast<std::size_t>(t) * k + i];
                tokenOf[fill[e]] = t;
                weightOf[fill[e]++] = weight[static_cast<std::size_t>(t) * k + i];
            }
    }

    std::fill(out, out + static_cast<std::size_t>(n) * H, 0.f);
    int most = 0;
    for (int e = 0; e < E; ++e)
        most = std::max(most, offset[e + 1] - offset[e]);
    std::vector<float> in(static_cast<std::size_t>(most) * H), res(in.size());
    // Experts in increasing index: every token sums its expert outputs in that order.
    for (int e = 0; e < E; ++e) {
        const int m = offset[e + 1] - offset[e];
        if (m == 0)
            continue;
        for (int j = 0; j < m; ++j)
            std::copy_n(x + static_cast<std::size_t>(tokenOf[offset[e] + j]) * H, H, in.data() + static_cast<std::size_t>(j) * H);
        experts_[e].forward(in.data(), m, res.data());
#pragma omp parallel for schedule(static) if (static_cast<long>(m) * H > 65536)
        for (int j = 0; j < m; ++j) {
            float* y = out + static_cast<std::size_t>(tokenOf[offset[e] + j]) * H;
            const float* r = res.data() + static_cast<std::size_t>(j) * H;
            const float w = weightOf[offset[e] + j];
            for (int c = 0; c < H; ++c)
                y[c] += r[c] * w;
        }
    }
    if (hasShared_) {
        std::vector<float> s(static_cast<std::size_t>(n) * H);
        shared_.forward(x, n, s.data());
        for (std::size_t i = 0; i < s.size(); ++i)
            out[i] += s[i];
    }
    if (idxOut)
        *idxOut = std::move(idx);
    if (weightOut)
        *weightOut = std::move(weight);
}

}  // namespace tessera::cpu
