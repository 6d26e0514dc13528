#pragma once
// The feed-forward blocks of the DeepSeek-V2 language model on the CPU, in fp32: the SiLU-gated
// MLP (dense layers, each expert, the shared experts), the expert router (greedy top-k or
// noaux_tc with its correction bias and group limit) and the mixture-of-experts block, which runs
// each selected expert once over all of its tokens.
#include "backend/cpu/cpu_ops.h"
#include "model/config.h"
#include "model/weight_map.h"

#include <cstdint>
#include <string>
#include <vector>

namespace tessera::cpu {

class GatedMlp {
public:
    GatedMlp() = default;
    GatedMlp(const WeightMap& weights, const std::string& prefix);  // prefix.{gate,up,down}_proj
    int intermediate() const { return gate_.rows; }
    // out[m, hidden] = down(silu(gate(x)) · up(x)).
    void forward(const float* x, int m, float* out) const;

private:
    WeightMatrix gate_, up_, down_;
};

class ExpertRouter {
public:
    ExpertRouter(const LanguageConfig& config, const WeightMap& weights, const std::string& prefix);
    int topK() const { return topK_; }
    int experts() const { return experts_; }
    // For each of the n tokens of x [n, hidden]: the k selected experts in increasing index order
    // (idx [n, k]) and the weights their outputs are multiplied by (weight [n, k]).
    void route(const float* x, int n, std::int32_t* idx, float* weight) const;

private:
    WeightMatrix gate_;
    std::vector<float> bias_;  // e_score_correction_bias (noaux_tc only)
    int experts_, topK_, groups_, topkGroups_;
    TopkMethod method_;
    ScoringFunc scoring_;
    bool normalize_;
    float scaling_;
};

class MoeBlock {
public:
    MoeBlock(const LanguageConfig& config, const WeightMap& weights, const std::string& prefix);
    int topK() const { return router_.topK(); }
    // x [n, hidden] after post_attention_layernorm → out [n, hidden]. When idx / weight are given
    // they receive the routing ([n, k] each, as ExpertRouter::route).
    void forward(const float* x, int n, float* out, std::vector<std::int32_t>* idx = nullptr,
                 std::vector<float>* weight = nullptr) const;

private:
    int hidden_;
    ExpertRouter router_;
    std::vector<GatedMlp> experts_;
    bool hasShared_ = false;
    GatedMlp shared_;
};

}  // namespace tessera::cpu
