#include "model/weight_map.h"

#include "core/error.h"

#include <set>

namespace tessera {

namespace {

std::string shapeText(const std::vector<std::int64_t>& shape)
{
    std::string s = "[";
    for (std::size_t i = 0; i < shape.size(); ++i)
        s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

bool isWeightDType(DType t) { return t == DType::BF16 || t == DType::F16 || t == DType::F32; }

}  // namespace

std::vector<ExpectedTensor> expectedTensors(const ModelConfig& config)
{
    std::vector<ExpectedTensor> out;
    auto add = [&](std::string name, std::vector<std::int64_t> shape) {
        out.push_back({std::move(name), std::move(shape)});
    };
    auto linear = [&](const std::string& prefix, std::int64_t outDim, std::int64_t inDim, bool bias) {
        add(prefix + ".weight", {outDim, inDim});
        if (bias)
            add(prefix + ".bias", {outDim});
    };

    const auto& v = config.vision;
    const std::int64_t W = v.width;
    add("vision.pos_embed", {1, v.patchesPerTile(), W});
    add("vision.patch_embed.proj.weight", {W, 3, v.patchSize, v.patchSize});
    add("vision.patch_embed.proj.bias", {W});
    for (int b = 0; b < v.layers; ++b) {
        const std::string p = "vision.blocks." + std::to_string(b);
        add(p + ".norm1.weight", {W});
        add(p + ".norm1.bias", {W});
        linear(p + ".attn.qkv", 3 * W, W, true);
        linear(p + ".attn.proj", W, W, true);
        add(p + ".norm2.weight", {W});
        add(p + ".norm2.bias", {W});
        linear(p + ".mlp.fc1", v.mlpHidden, W, true);
        linear(p + ".mlp.fc2", W, v.mlpHidden, true);
    }
    add("vision.norm.weight", {W});
    add("vision.norm.bias", {W});

    const auto& pr = config.projector;
    const std::int64_t projIn = static_cast<std::int64_t>(pr.inputDim) * pr.downsampleRatio * pr.downsampleRatio;
    const std::int64_t projHidden = static_cast<std::int64_t>(pr.nEmbed) * pr.mlpRatio;
    linear("projector.layers.0", projHidden, projIn, true);
    for (int d = 1; d < pr.depth; ++d)  // Linear layers sit at even indices, GELUs between them
        linear("projector.layers." + std::to_string(2 * d), d + 1 == pr.depth ? pr.nEmbed : projHidden,
               projHidden, true);
    add("image_newline", {pr.nEmbed});
    add("view_seperator", {pr.nEmbed});

    const auto& l = config.language;
    const std::int64_t H = l.hiddenSize;
    const std::int64_t nh = l.numAttentionHeads;
    add("language.model.embed_tokens.weight", {l.vocabSize, H});
    for (int i = 0; i < l.numHiddenLayers; ++i) {
        const std::string p = "language.model.layers." + std::to_string(i);
        add(p + ".input_layernorm.weight", {H});
        add(p + ".post_attention_layernorm.weight", {H});
        const std::string a = p + ".self_attn";
        if (l.useMla) {
            const std::int64_t qDim = nh * (l.qkNopeHeadDim + l.qkRopeHeadDim);
            if (l.qLoraRank) {
                linear(a + ".q_a_proj", *l.qLoraRank, H, false);
                add(a + ".q_a_layernorm.weight", {*l.qLoraRank});
                linear(a + ".q_b_proj", qDim, *l.qLoraRank, false);
            } else {
                linear(a + ".q_proj", qDim, H, false);
            }
            linear(a + ".kv_a_proj_with_mqa", l.kvLoraRank + l.qkRopeHeadDim, H, false);
            add(a + ".kv_a_layernorm.weight", {l.kvLoraRank});
            linear(a + ".kv_b_proj", nh * (l.qkNopeHeadDim + l.vHeadDim), l.kvLoraRank, false);
            linear(a + ".o_proj", H, nh * l.vHeadDim, false);
        } else {
            const std::int64_t hd = l.headDim();
            linear(a + ".q_proj", nh * hd, H, false);
            linear(a + ".k_proj", l.numKeyValueHeads * hd, H, false);
            linear(a + ".v_proj", l.numKeyValueHeads * hd, H, false);
            linear(a + ".o_proj", H, nh * hd, false);
        }
        auto mlp = [&](const std::string& m, std::int64_t inter) {
            linear(m + ".gate_proj", inter, H, false);
            linear(m + ".up_proj", inter, H, false);
            linear(m + ".down_proj", H, inter, false);
        };
        if (l.isMoeLayer(i)) {
            const std::int64_t E = *l.nRoutedExperts;
            add(p + ".mlp.gate.weight", {E, H});
            if (l.topkMethod == TopkMethod::NoAuxTc)
                add(p + ".mlp.gate.e_score_correction_bias", {E});
            for (std::int64_t e = 0; e < E; ++e)
                mlp(p + ".mlp.experts." + std::to_string(e), l.moeIntermediateSize);
            if (l.nSharedExperts)
                mlp(p + ".mlp.shared_experts", static_cast<std::int64_t>(l.moeIntermediateSize) * *l.nSharedExperts);
        } else {
            mlp(p + ".mlp", l.intermediateSize);
        }
    }
    add("language.model.norm.weight", {H});
    add("language.lm_head.weight", {l.vocabSize, H});
    return out;
}

bool isKnownUnusedTensor(const std::string& name)
{
    return name.rfind("vision.attn_pool.", 0) == 0;
}

std::string WeightCheck::describe(std::size_t maxListed) const
{
    std::string s;
    auto list = [&](const char* title, const std::vector<std::string>& items) {
        if (items.empty())
            return;
        s += std::string(s.empty() ? "" : "; ") + title + " (" + std::to_string(items.size()) + "): ";
        for (std::size_t i = 0; i < items.size() && i < maxListed; ++i)
            s += (i ? ", " : "") + items[i];
        if (items.size() > maxListed)
            s += ", and " + std::to_string(items.size() - maxListed) + " more";
    };
    list("missing tensors", missing);
    list("tensors with the wrong shape or type", mismatched);
    list("unexpected tensors", unexpected);
    return s.empty() ? "all tensors present" : s;
}

WeightCheck checkWeights(const ModelConfig& config, const TensorStore& store)
{
    WeightCheck c;
    std::set<std::string> expectedNames;
    for (const auto& e : expectedTensors(config)) {
        expectedNames.insert(e.name);
        const TensorView* t = store.find(e.name);
        if (!t) {
            c.missing.push_back(e.name + " " + shapeText(e.shape));
            continue;
        }
        if (t->shape != e.shape || !isWeightDType(t->dtype))
            c.mismatched.push_back(e.name + ": expected " + shapeText(e.shape) + " BF16/F16/F32, found " +
                                   t->shapeString() + " " + dtypeName(t->dtype));
    }
    for (const auto& [name, view] : store.all()) {
        if (expectedNames.count(name))
            continue;
        if (isKnownUnusedTensor(name))
            ++c.ignored;
        else
            c.unexpected.push_back(name);
    }
    return c;
}

WeightMap::WeightMap(const ModelConfig& config, const TensorStore& store) : store_(&store)
{
    check_ = checkWeights(config, store);
    if (!check_.ok())
        throw Error("the checkpoint does not match its config.json (" + config.variantName() +
                    "): " + check_.describe());
    for (const auto& e : expectedTensors(config))
        usedBytes_ += store.find(e.name)->byteSize;
}

const TensorView& WeightMap::get(const std::string& name) const
{
    const TensorView* t = store_->find(name);
    if (!t)
        throw Error("internal error: tensor \"" + name + "\" requested but not in the checkpoint");
    return *t;
}

}  // namespace tessera
