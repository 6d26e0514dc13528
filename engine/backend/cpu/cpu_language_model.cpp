#include "backend/cpu/cpu_language_model.h"

#include "backend/cpu/cpu_attention.h"
#include "backend/cpu/cpu_moe.h"
#include "backend/cpu/cpu_ops.h"
#include "core/error.h"

#include <algorithm>
#include <optional>
#include <string>

namespace tessera::cpu {

void CpuKvCache::truncate(int length)
{
    if (length < 0 || length > length_)
        throw Error("cannot truncate a KV cache of " + std::to_string(length_) + " positions to " +
                    std::to_string(length));
    length_ = length;
}

std::size_t CpuKvCache::bytes() const
{
    return a_.size() * static_cast<std::size_t>(capacity_) * (widthA_ + widthB_) * sizeof(float);
}

struct CpuLanguageModel::Layer {
    std::vector<float> inputNorm, postNorm;
    std::optional<MhaAttention> mha;
    std::optional<MlaAttention> mla;
    std::optional<GatedMlp> dense;
    std::optional<MoeBlock> moe;
};

CpuLanguageModel::~CpuLanguageModel() = default;
CpuLanguageModel::CpuLanguageModel(CpuLanguageModel&&) noexcept = default;
CpuLanguageModel& CpuLanguageModel::operator=(CpuLanguageModel&&) noexcept = default;

CpuLanguageModel::CpuLanguageModel(const ModelConfig& modelConfig, const WeightMap& weights)
    : config_(modelConfig.language),
      hidden_(modelConfig.language.hiddenSize),
      vocab_(static_cast<int>(modelConfig.language.vocabSize)),
      maxPositions_(modelConfig.language.maxPositionEmbeddings)
{
    const auto& c = config_;
    if (c.attentionBias)
        throw Error("attention_bias = true is not part of any DeepSeek-VL2 model and is not supported");
    if (maxPositions_ <= 0)
        throw Error("max_position_embeddings must be positive, found " + std::to_string(maxPositions_));
    if (c.useMla) {
        if (c.kvLoraRank <= 0 || c.qkNopeHeadDim <= 0 || c.qkRopeHeadDim <= 0 || c.vHeadDim <= 0)
            throw Error("an MLA model needs positive kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim and v_head_dim");
        rotary_ = std::make_unique<RotaryTable>(c.qkRopeHeadDim, maxPositions_, c.ropeTheta);
    } else {
        if (c.hiddenSize % c.numAttentionHeads != 0)
            throw Error("hidden_size must be a multiple of num_attention_heads for MHA");
        rotary_ = std::make_unique<RotaryTable>(c.headDim(), maxPositions_, c.ropeTheta);
    }

    layers_.resize(c.numHiddenLayers);
    for (int i = 0; i < c.numHiddenLayers; ++i) {
        const std::string p = "language.model.layers." + std::to_string(i);
        Layer& l = layers_[i];
        l.inputNorm = toFloatVector(weights.get(p + ".input_layernorm.weight"));
        l.postNorm = toFloatVector(weights.get(p + ".post_attention_layernorm.weight"));
        if (c.useMla)
            l.mla.emplace(c, weights, p + ".self_attn", *rotary_);
        else
            l.mha.emplace(c, weights, p + ".self_attn", *rotary_);
        if (c.isMoeLayer(i))
            l.moe.emplace(c, weights, p + ".mlp");
        else
            l.dense.emplace(weights, p + ".mlp");
    }
    finalNorm_ = toFloatVector(weights.get("language.model.norm.weight"));
    embedTokens_ = &weights.get("language.model.embed_tokens.weight");
    lmHead_ = &weights.get("language.lm_head.weight");
}

CpuKvCache CpuLanguageModel::createCache(int capacity) const
{
    if (capacity <= 0 || capacity > maxPositions_)
        throw Error("a KV cache holds 1 to " + std::to_string(maxPositions_) + " positions (max_position_embeddings); " +
                    std::to_string(capacity) + " were asked for");
    CpuKvCache cache;
    cache.capacity_ = capacity;
    if (config_.useMla) {
        cache.widthA_ = MlaAttention::latentWidth(config_);
        cache.widthB_ = MlaAttention::ropeWidth(config_);
    } else {
        cache.widthA_ = cache.widthB_ = MhaAttention::cacheWidth(config_);
    }
    for (std::size_t i = 0; i < layers_.size(); ++i) {
        // Uninitialised: pages are only committed as positions are written.
        cache.a_.push_back(std::make_unique_for_overwrite<float[]>(static_cast<std::size_t>(capacity) * cache.widthA_));
        cache.b_.push_back(std::make_unique_for_overwrite<float[]>(static_cast<std::size_t>(capacity) * cache.widthB_));
    }
    return cache;
}

void CpuLanguageModel::embed(std::span<const std::int32_t> ids, float* out) const
{
    const WeightMatrix table = WeightMatrix::from(*embedTokens_);
    for (std::size_t i = 0; i < ids.size(); ++i) {
        if (ids[i] < 0 || ids[i] >= vocab_)
            throw Error("token id " + std::to_string(ids[i]) + " is outside the vocabulary (0.." +
                        std::to_string(vocab_ - 1) + ")");
        table.rowToFloat(ids[i], out + i * hidden_);
    }
}

bool CpuLanguageModel::forward(CpuKvCache& cache, const float* embeds, int n, float* finalHidden,
                               LanguageModelTrace* trace, const std::atomic<bool>* cancel) const
{
    const bool mla = config_.useMla;
    const int widthA = mla ? MlaAttention::latentWidth(config_) : MhaAttention::cacheWidth(config_);
    const int widthB = mla ? MlaAttention::ropeWidth(config_) : MhaAttention::cacheWidth(config_);
    if (cache.a_.size() != layers_.size() || cache.widthA_ != widthA || cache.widthB_ != widthB)
        throw Error("this KV cache was not created by this language model");
    if (n < 0)
        throw Error("negative position count");
    if (n > cache.capacity_ - cache.length_)
        throw Error(std::to_string(n) + " new positions do not fit in the KV cache (" + std::to_string(cache.length_) +
                    " of " + std::to_string(cache.capacity_) + " used); shorten the conversation or start a new one");
    if (n == 0)
        return true;

    const int H = hidden_;
    const int L = static_cast<int>(layers_.size());
    const int start = cache.length_;
    const std::size_t size = static_cast<std::size_t>(n) * H;
    std::vector<float> h(embeds, embeds + size), x(size), y(size);
    const bool wantHidden = trace && trace->wantHiddenStates;
    const bool wantRouting = trace && trace->wantRouting;
    if (wantHidden) {
        trace->hiddenStates.assign(L + 1, {});
        trace->hiddenStates[0] = h;
        trace->lastLayerOutput.clear();
    }
    if (wantRouting) {
        trace->moeTopkIdx.clear();
        trace->moeTopkWeight.clear();
    }

    for (int i = 0; i < L; ++i) {
        if (cancel && cancel->load(std::memory_order_relaxed))
            return false;
        const Layer& layer = layers_[i];
        const KvLayer kv{cache.a_[i].get(), cache.b_[i].get()};
        rmsNorm(h.data(), n, H, layer.inputNorm.data(), config_.rmsNormEps, x.data());
        if (mla)
            layer.mla->forward(kv, start, n, x.data(), y.data());
        else
            layer.mha->forward(kv, start, n, x.data(), y.data());
        for (std::size_t j = 0; j < size; ++j)
            h[j] += y[j];

        rmsNorm(h.data(), n, H, layer.postNorm.data(), config_.rmsNormEps, x.data());
        if (layer.moe) {
            if (wantRouting) {
                trace->moeTopkIdx.emplace_back();
                trace->moeTopkWeight.emplace_back();
                layer.moe->forward(x.data(), n, y.data(), &trace->moeTopkIdx.back(), &trace->moeTopkWeight.back());
            } else {
                layer.moe->forward(x.data(), n, y.data());
            }
        } else {
            layer.dense->forward(x.data(), n, y.data());
        }
        for (std::size_t j = 0; j < size; ++j)
            h[j] += y[j];

        if (wantHidden) {
            if (i + 1 < L)
                trace->hiddenStates[i + 1] = h;
            else
                trace->lastLayerOutput = h;
        }
    }
    rmsNorm(h.data(), n, H, finalNorm_.data(), config_.rmsNormEps, finalHidden);
    if (wantHidden)
        trace->hiddenStates[L].assign(finalHidden, finalHidden + size);
    cache.length_ = start + n;
    return true;
}

int CpuLanguageModel::layerCount() const { return static_cast<int>(layers_.size()); }

void CpuLanguageModel::logits(const float* hidden, int n, float* out) const
{
    linear(hidden, n, WeightMatrix::from(*lmHead_), nullptr, out);
}

}  // namespace tessera::cpu
