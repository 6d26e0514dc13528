#include "model/config.h"

#include "core/error.h"
#include "core/json_util.h"
#include "core/mapped_file.h"

#include <cmath>

namespace tessera {

namespace {

int positiveInt(const JsonReader& r, const char* key, std::int64_t fallback, std::int64_t max = 1 << 24)
{
    std::int64_t v = r.integerOrNull(key, fallback);
    if (v <= 0 || v > max)
        r.fail(key, "must be between 1 and " + std::to_string(max) + ", found " + std::to_string(v));
    return static_cast<int>(v);
}

std::optional<int> optionalPositiveInt(const JsonReader& r, const char* key, std::optional<int> fallback)
{
    if (!r.has(key))
        return fallback;
    if (r.raw()[key].is_null())
        return std::nullopt;
    return positiveInt(r, key, 0);
}

std::vector<Resolution2D> parseResolutions(const JsonReader& r, const char* key, int tileSize)
{
    std::vector<Resolution2D> out;
    if (!r.has(key))
        return out;
    const auto& list = r.raw()[key];
    if (!list.is_array())
        r.fail(key, "must be a list of [width, height] pairs");
    for (const auto& item : list) {
        if (!item.is_array() || item.size() != 2 || !item[0].is_number_integer() || !item[1].is_number_integer())
            r.fail(key, "entries must be [width, height] integer pairs, found " + item.dump());
        Resolution2D res{item[0].get<int>(), item[1].get<int>()};
        if (res.width <= 0 || res.height <= 0 || res.width % tileSize || res.height % tileSize ||
            res.width > 64 * tileSize || res.height > 64 * tileSize)
            r.fail(key, "entry " + item.dump() + " is not a positive multiple of the " +
                            std::to_string(tileSize) + "-pixel tile (at most 64 tiles a side)");
        out.push_back(res);
    }
    return out;
}

VisionConfig parseVision(const JsonReader& r)
{
    VisionConfig v;
    v.modelName = r.string("model_name", "siglip_so400m_patch14_384");
    v.imageSize = positiveInt(r, "image_size", 384, 4096);
    v.patchSize = positiveInt(r, "patch_size", 14, 512);
    v.width = positiveInt(r, "width", 1152);
    v.layers = positiveInt(r, "layers", 27, 1024);
    v.heads = positiveInt(r, "heads", 16, 1024);
    v.mlpRatio = r.number("mlp_ratio", 3.7362);
    if (!(v.mlpRatio > 0 && v.mlpRatio < 64))
        r.fail("mlp_ratio", "must be positive");
    v.mlpHidden = static_cast<int>(v.width * v.mlpRatio);
    if (v.width % v.heads)
        r.fail("heads", "must divide width " + std::to_string(v.width));
    if (v.imageSize < v.patchSize)
        r.fail("image_size", "is smaller than patch_size");
    if (r.boolean("class_token", false))
        r.fail("class_token", "true is not supported (SigLIP has no class token)");
    return v;
}

ProjectorConfig parseProjector(const JsonReader& r)
{
    ProjectorConfig p;
    p.type = r.string("projector_type", "downsample_mlp_gelu");
    if (p.type != "downsample_mlp_gelu")
        r.fail("projector_type", "\"" + p.type + "\" is not supported (expected downsample_mlp_gelu)");
    p.inputDim = positiveInt(r, "input_dim", 1152);
    p.nEmbed = positiveInt(r, "n_embed", 2048);
    p.depth = positiveInt(r, "depth", 2, 16);
    p.mlpRatio = positiveInt(r, "mlp_ratio", 1, 64);
    p.downsampleRatio = positiveInt(r, "downsample_ratio", 2, 16);
    return p;
}

LanguageConfig parseLanguage(const JsonReader& r)
{
    LanguageConfig c;  // member initialisers are the DeepseekV2Config defaults
    c.vocabSize = positiveInt(r, "vocab_size", c.vocabSize, 1 << 22);
    c.hiddenSize = positiveInt(r, "hidden_size", c.hiddenSize);
    c.intermediateSize = positiveInt(r, "intermediate_size", c.intermediateSize);
    c.moeIntermediateSize = positiveInt(r, "moe_intermediate_size", c.moeIntermediateSize);
    c.numHiddenLayers = positiveInt(r, "num_hidden_layers", c.numHiddenLayers, 1024);
    c.numAttentionHeads = positiveInt(r, "num_attention_heads", c.numAttentionHeads, 1024);
    // DeepseekV2Config: absent → its default 32; explicit null → as many as the attention heads.
    if (r.has("num_key_value_heads") && r.raw()["num_key_value_heads"].is_null())
        c.numKeyValueHeads = c.numAttentionHeads;
    else
        c.numKeyValueHeads = positiveInt(r, "num_key_value_heads", 32, 1024);
    c.nSharedExperts = optionalPositiveInt(r, "n_shared_experts", std::nullopt);
    c.nRoutedExperts = optionalPositiveInt(r, "n_routed_experts", std::nullopt);
    c.routedScalingFactor = r.number("routed_scaling_factor", 1.0);
    c.useMla = r.boolean("use_mla", true);
    c.qLoraRank = optionalPositiveInt(r, "q_lora_rank", 1536);
    c.numExpertsPerTok = static_cast<int>(r.integerOrNull("num_experts_per_tok", 0));
    c.moeLayerFreq = positiveInt(r, "moe_layer_freq", 1, 1024);
    c.firstKDenseReplace = static_cast<int>(r.integerOrNull("first_k_dense_replace", 0));
    c.normTopkProb = r.boolean("norm_topk_prob", false);
    c.nGroup = static_cast<int>(r.integerOrNull("n_group", 1));
    c.topkGroup = static_cast<int>(r.integerOrNull("topk_group", 1));
    c.maxPositionEmbeddings = positiveInt(r, "max_position_embeddings", 2048, 1 << 22);
    c.rmsNormEps = static_cast<float>(r.number("rms_norm_eps", 1e-6));
    c.ropeTheta = r.number("rope_theta", 10000.0);
    c.attentionBias = r.boolean("attention_bias", false);
    c.bosTokenId = r.integerOrNull("bos_token_id", c.bosTokenId);
    c.eosTokenId = r.integerOrNull("eos_token_id", c.eosTokenId);

    const std::string act = r.string("hidden_act", "silu");
    if (act != "silu")
        r.fail("hidden_act", "\"" + act + "\" is not supported (expected silu)");
    const std::string method = r.string("topk_method", "greedy");
    if (method == "greedy")
        c.topkMethod = TopkMethod::Greedy;
    else if (method == "noaux_tc")
        c.topkMethod = TopkMethod::NoAuxTc;
    else
        r.fail("topk_method", "\"" + method + "\" is not supported (expected greedy or noaux_tc)");
    const std::string scoring = r.string("scoring_func", "softmax");
    if (scoring == "softmax")
        c.scoringFunc = ScoringFunc::Softmax;
    else if (scoring == "sigmoid")
        c.scoringFunc = ScoringFunc::Sigmoid;
    else
        r.fail("scoring_func", "\"" + scoring + "\" is not supported (expected softmax or sigmoid)");
    if (r.has("rope_scaling") && !r.raw()["rope_scaling"].is_null())
        r.fail("rope_scaling", "is set, but no DeepSeek-VL2 model uses RoPE scaling and Tessera does not support it");
    if (c.attentionBias)
        r.fail("attention_bias", "true is not supported");

    if (c.useMla) {
        c.kvLoraRank = positiveInt(r, "kv_lora_rank", 512);
        c.qkRopeHeadDim = positiveInt(r, "qk_rope_head_dim", 64, 4096);
        c.qkNopeHeadDim = positiveInt(r, "qk_nope_head_dim", 128, 4096);
        c.vHeadDim = positiveInt(r, "v_head_dim", 128, 4096);
        if (c.qkRopeHeadDim % 2)
            r.fail("qk_rope_head_dim", "must be even for rotary embeddings");
    } else {
        if (c.hiddenSize % c.numAttentionHeads)
            r.fail("num_attention_heads", "must divide hidden_size " + std::to_string(c.hiddenSize));
        if (c.headDim() % 2)
            r.fail("num_attention_heads", "gives an odd head size; rotary embeddings need an even one");
        if (c.numAttentionHeads % c.numKeyValueHeads)
            r.fail("num_key_value_heads", "must divide num_attention_heads");
        if (c.qLoraRank)
            c.qLoraRank.reset();  // only MLA reads q_lora_rank
    }
    if (c.nRoutedExperts) {
        if (c.numExpertsPerTok <= 0 || c.numExpertsPerTok > *c.nRoutedExperts)
            r.fail("num_experts_per_tok", "must be between 1 and n_routed_experts (" +
                                              std::to_string(*c.nRoutedExperts) + ")");
        if (c.nGroup <= 0 || *c.nRoutedExperts % c.nGroup)
            r.fail("n_group", "must divide n_routed_experts");
        if (c.topkGroup <= 0 || c.topkGroup > c.nGroup)
            r.fail("topk_group", "must be between 1 and n_group");
        if (c.topkMethod == TopkMethod::NoAuxTc && c.scoringFunc != ScoringFunc::Sigmoid)
            r.fail("scoring_func", "noaux_tc routing needs sigmoid scoring");
        if (!(c.routedScalingFactor > 0))
            r.fail("routed_scaling_factor", "must be positive");
    }
    if (c.firstKDenseReplace < 0)
        r.fail("first_k_dense_replace", "must not be negative");
    if (c.bosTokenId < 0 || c.bosTokenId >= c.vocabSize || c.eosTokenId < 0 || c.eosTokenId >= c.vocabSize)
        r.fail("bos_token_id", "bos/eos ids must lie inside the vocabulary");
    return c;
}

}  // namespace

bool LanguageConfig::isMoeLayer(int layer) const
{
    return nRoutedExperts.has_value() && layer >= firstKDenseReplace && layer % moeLayerFreq == 0;
}

int ModelConfig::tokensPerTileSide() const
{
    const int grid = vision.gridSize();
    const int r = projector.downsampleRatio;
    return (grid + r - 1) / r;  // the grid is zero-padded up to a multiple of the ratio
}

int ModelConfig::imageTokenCount(int widthTiles, int heightTiles) const
{
    const int side = tokensPerTileSide();
    const int global = side * (side + 1);  // rows, each ended by image_newline
    const int separator = 1;               // view_seperator
    const int local = (heightTiles * side) * (widthTiles * side + 1);
    return global + separator + local;
}

std::string ModelConfig::variantName() const
{
    const auto& l = language;
    const bool moe = l.nRoutedExperts.has_value();
    if (vision.width == 1152 && moe && l.vocabSize == 129280) {
        if (!l.useMla && l.hiddenSize == 1280 && l.numHiddenLayers == 12 && *l.nRoutedExperts == 64)
            return "deepseek-vl2-tiny";
        if (l.useMla && l.hiddenSize == 2048 && l.numHiddenLayers == 27 && *l.nRoutedExperts == 64)
            return "deepseek-vl2-small";
        if (l.useMla && l.hiddenSize == 2560 && l.numHiddenLayers == 30 && *l.nRoutedExperts == 72)
            return "deepseek-vl2";
    }
    std::string s = "custom (";
    s += l.useMla ? "MLA" : "MHA";
    if (moe)
        s += l.topkMethod == TopkMethod::NoAuxTc ? ", noaux_tc routing" : ", greedy routing";
    s += ", hidden " + std::to_string(l.hiddenSize) + ", " + std::to_string(l.numHiddenLayers) + " layers)";
    return s;
}

ModelConfig parseModelConfig(const std::string& jsonText, const std::string& where)
{
    auto json = parseJsonText(jsonText, where);
    JsonReader root(json, where);
    const std::string type = root.string("model_type", "deepseek_vl_v2");
    if (type != "deepseek_vl_v2")
        root.fail("model_type", "is \"" + type + "\"; Tessera runs DeepSeek-VL2 checkpoints (deepseek_vl_v2)");
    ModelConfig m;
    m.vision = parseVision(root.object("vision_config"));
    m.projector = parseProjector(root.object("projector_config"));
    m.language = parseLanguage(root.object("language_config"));
    m.tileTag = root.string("tile_tag", "2D");
    if (m.tileTag != "2D")
        root.fail("tile_tag", "\"" + m.tileTag + "\" is not supported (expected 2D)");
    m.globalViewPos = root.string("global_view_pos", "head");
    if (m.globalViewPos != "head")
        root.fail("global_view_pos", "\"" + m.globalViewPos + "\" is not supported (expected head)");
    m.candidateResolutions = parseResolutions(root, "candidate_resolutions", m.vision.imageSize);
    if (m.projector.inputDim != m.vision.width)
        root.fail("projector_config", "input_dim " + std::to_string(m.projector.inputDim) +
                                          " differs from the vision width " + std::to_string(m.vision.width));
    if (m.projector.nEmbed != m.language.hiddenSize)
        root.fail("projector_config", "n_embed " + std::to_string(m.projector.nEmbed) +
                                          " differs from the language hidden_size " +
                                          std::to_string(m.language.hiddenSize));
    return m;
}

ModelConfig loadModelConfig(const std::filesystem::path& configJson)
{
    return parseModelConfig(readTextFile(configJson, 16u << 20), configJson.string());
}

ProcessorConfig parseProcessorConfig(const std::string& jsonText, const std::string& where)
{
    auto json = parseJsonText(jsonText, where);
    JsonReader r(json, where);
    ProcessorConfig p;
    p.patchSize = positiveInt(r, "patch_size", 14, 512);
    p.downsampleRatio = positiveInt(r, "downsample_ratio", 2, 16);
    p.normalize = r.boolean("normalize", true);
    p.imageToken = r.string("image_token", p.imageToken);
    p.padToken = r.string("pad_token", p.padToken);
    p.sftFormat = r.string("sft_format", p.sftFormat);
    if (p.sftFormat != "deepseek")
        r.fail("sft_format", "\"" + p.sftFormat + "\" is not supported (expected deepseek)");
    p.maskPrompt = r.boolean("mask_prompt", false);
    p.addSpecialToken = r.boolean("add_special_token", false);
    p.ignoreId = static_cast<int>(r.integer("ignore_id", -100));
    for (const char* key : {"image_mean", "image_std"}) {
        if (!r.has(key))
            continue;
        const auto& v = r.raw()[key];
        if (!v.is_array() || v.size() != 3 || !v[0].is_number() || !v[1].is_number() || !v[2].is_number())
            r.fail(key, "must be a list of three numbers");
        auto& dst = std::string(key) == "image_mean" ? p.imageMean : p.imageStd;
        for (int i = 0; i < 3; ++i)
            dst[i] = v[i].get<float>();
    }
    for (float s : p.imageStd)
        if (!(s > 0))
            r.fail("image_std", "entries must be positive");
    p.candidateResolutions = parseResolutions(r, "candidate_resolutions", 384);
    if (p.candidateResolutions.empty())
        r.fail("candidate_resolutions", "is missing or empty");
    if (p.imageToken.empty())
        r.fail("image_token", "must not be empty");
    return p;
}

ProcessorConfig loadProcessorConfig(const std::filesystem::path& processorConfigJson)
{
    return parseProcessorConfig(readTextFile(processorConfigJson, 16u << 20), processorConfigJson.string());
}

}  // namespace tessera
