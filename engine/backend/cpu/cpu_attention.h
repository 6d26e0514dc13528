#pragma once
// Self-attention of the DeepSeek-V2 language model on the CPU, in fp32, over a KV cache:
// - MhaAttention: LlamaAttention (deepseek-vl2-tiny): rotary over the full head, grouped KV heads.
// - MlaAttention: multi-head latent attention (small, base) in the weight-absorbed form; the cache
//   holds the normalised latent and the rotated shared k_pe, never per-head keys or values.
// Both read positions [0, start) from the cache, write positions [start, start + n) into it and
// attend causally.
#include "backend/cpu/cpu_ops.h"
#include "model/config.h"
#include "model/weight_map.h"

#include <string>
#include <vector>

namespace tessera::cpu {

// cos/sin of the rotary embedding for every position, computed in fp32 the way the reference does
// (inv_freq = 1 / theta^(2i/d), angle = position · inv_freq rounded to fp32).
class RotaryTable {
public:
    RotaryTable() = default;
    RotaryTable(int dim, int maxPositions, double theta);
    int dim() const { return dim_; }
    // Rotates x[dim] in place: NeoX layout, x·cos + rotate_half(x)·sin.
    void apply(float* x, int position) const;

private:
    int dim_ = 0;
    int maxPositions_ = 0;
    std::vector<float> cos_, sin_;  // [maxPositions, dim / 2]
};

// One layer's cache storage: `a` and `b` are [capacity, aWidth] and [capacity, bWidth] rows.
// MHA: a = rotated keys, b = values, both [kvHeads · headDim]. MLA: a = latent [kvLoraRank] after
// kv_a_layernorm, b = rotated k_pe [qkRopeHeadDim].
struct KvLayer {
    float* a = nullptr;
    float* b = nullptr;
};

class MhaAttention {
public:
    MhaAttention(const LanguageConfig& config, const WeightMap& weights, const std::string& prefix,
                 const RotaryTable& rotary);
    static int cacheWidth(const LanguageConfig& config) { return config.numKeyValueHeads * config.headDim(); }
    // x: [n, hidden] after input_layernorm; out: [n, hidden].
    void forward(const KvLayer& cache, int start, int n, const float* x, float* out) const;

private:
    int heads_, kvHeads_, headDim_;
    const RotaryTable* rotary_;
    WeightMatrix q_, k_, v_, o_;
};

class MlaAttention {
public:
    MlaAttention(const LanguageConfig& config, const WeightMap& weights, const std::string& prefix,
                 const RotaryTable& rotary);
    static int latentWidth(const LanguageConfig& config) { return config.kvLoraRank; }
    static int ropeWidth(const LanguageConfig& config) { return config.qkRopeHeadDim; }
    void forward(const KvLayer& cache, int start, int n, const float* x, float* out) const;

private:
    // Queries [n, heads · (nope + rope)] for the normalised hidden states x.
    void projectQueries(const float* x, int n, float* q) const;

    int heads_, nope_, rope_, vDim_, rank_;
    float eps_;
    const RotaryTable* rotary_;
    bool qLora_ = false;
    WeightMatrix q_, qA_, qB_, kvA_, kvB_, o_;
    std::vector<float> qANorm_, kvANorm_;
};

}  // namespace tessera::cpu
