#pragma once
// The DeepSeek-V2 language model of DeepSeek-VL2 on the CPU: exact fp32 forward of every variant
// (MHA or MLA attention; greedy softmax or noaux_tc sigmoid routing) over memory-mapped weights,
// with a KV cache that supports chunked prefill, token-by-token decode and prefix truncation.
#include "model/config.h"
#include "model/weight_map.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace tessera::cpu {

class RotaryTable;

// Keys and values of the positions seen so far, per layer. MHA: rotated K and V
// [capacity, kvHeads · headDim] each. MLA: the compressed cache only: the kv_a_layernorm'ed latent
// [capacity, kvLoraRank] and the rotated shared k_pe [capacity, qkRopeHeadDim].
// Memory is reserved for `capacity` positions but only touched as positions are written.
class CpuKvCache {
public:
    CpuKvCache() = default;
    CpuKvCache(CpuKvCache&&) noexcept = default;
    CpuKvCache& operator=(CpuKvCache&&) noexcept = default;

    int length() const { return length_; }     // positions held
    int capacity() const { return capacity_; }
    void truncate(int length);                 // keep the first `length` positions (throws if > length())
    std::size_t bytes() const;                 // reserved storage

private:
    friend class CpuLanguageModel;
    int length_ = 0;
    int capacity_ = 0;
    int widthA_ = 0;  // floats per position in a / b
    int widthB_ = 0;
    std::vector<std::unique_ptr<float[]>> a_, b_;  // per layer
};

// Optional intermediate results of one forward call, for tests and diagnostics.
struct LanguageModelTrace {
    bool wantHiddenStates = false;
    // HF convention: [0] = inputs, [i] = output of decoder layer i-1 (i = 1..L-1), [L] = final
    // RMSNorm output; L+1 entries of [n, H].
    std::vector<std::vector<float>> hiddenStates;
    std::vector<float> lastLayerOutput;  // [n, H]: last decoder layer, before the final norm
    bool wantRouting = false;
    std::vector<std::vector<std::int32_t>> moeTopkIdx;  // per MoE layer: [n, k], by expert index
    std::vector<std::vector<float>> moeTopkWeight;      // same order: the weights applied
};

class CpuLanguageModel {
public:
    // Keeps references to `weights` (and its store), which must outlive the model.
    CpuLanguageModel(const ModelConfig& config, const WeightMap& weights);
    ~CpuLanguageModel();
    CpuLanguageModel(CpuLanguageModel&&) noexcept;
    CpuLanguageModel& operator=(CpuLanguageModel&&) noexcept;

    CpuKvCache createCache(int capacity) const;  // throws if capacity is not in 1..max_position_embeddings

    // Rows of embed_tokens for the ids: out [n, H]. Throws on an id outside the vocabulary.
    void embed(std::span<const std::int32_t> ids, float* out) const;

    // Runs positions cache.length() .. cache.length() + n - 1 over `embeds` [n, H], appends them to
    // the cache and writes the final-RMSNorm hidden states [n, H] to finalHidden. Throws, leaving the
    // cache length unchanged, when n exceeds the free capacity. `cancel` (may be null) is polled
    // before every layer: once true, returns false with the cache length unchanged.
    bool forward(CpuKvCache& cache, const float* embeds, int n, float* finalHidden,
                 LanguageModelTrace* trace = nullptr, const std::atomic<bool>* cancel = nullptr) const;

    void logits(const float* hidden, int n, float* out) const;  // lm_head: [n, vocab]

    int hiddenSize() const { return hidden_; }
    int vocabSize() const { return vocab_; }
    int layerCount() const;
    int maxPositions() const { return maxPositions_; }

private:
    struct Layer;
    LanguageConfig config_;
    int hidden_ = 0;
    int vocab_ = 0;
    int maxPositions_ = 0;
    std::unique_ptr<RotaryTable> rotary_;
    std::vector<Layer> layers_;
    std::vector<float> finalNorm_;
    const TensorView* embedTokens_ = nullptr;
    const TensorView* lmHead_ = nullptr;
};

}  // namespace tessera::cpu
