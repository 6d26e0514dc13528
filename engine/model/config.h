#pragma once
// The hyperparameters of a DeepSeek-VL2 checkpoint folder: config.json (vision / projector /
// language parts) and processor_config.json. Absent language fields take the defaults of the
// upstream DeepseekV2Config, which is how the real checkpoints are meant to be read (the base
// model's config.json, for one, omits its layer and head counts).
#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace tessera {

struct VisionConfig {
    std::string modelName;  // "siglip_so400m_patch14_384"
    int imageSize = 384;
    int patchSize = 14;
    int width = 1152;
    int layers = 27;
    int heads = 16;
    double mlpRatio = 3.7362;
    int mlpHidden = 4304;   // int(width * mlpRatio), as the ViT builds it
    float layerNormEps = 1e-6f;

    int gridSize() const { return imageSize / patchSize; }  // 27: the last pixels are never seen
    int patchesPerTile() const { return gridSize() * gridSize(); }
};

struct ProjectorConfig {
    std::string type;       // only "downsample_mlp_gelu" exists in this family
    int inputDim = 1152;
    int nEmbed = 1280;
    int depth = 2;
    int mlpRatio = 1;
    int downsampleRatio = 2;
};

enum class TopkMethod { Greedy, NoAuxTc };
enum class ScoringFunc { Softmax, Sigmoid };

struct LanguageConfig {
    std::int64_t vocabSize = 102400;
    int hiddenSize = 4096;
    int intermediateSize = 11008;
    int moeIntermediateSize = 1407;
    int numHiddenLayers = 30;
    int numAttentionHeads = 32;
    int numKeyValueHeads = 32;
    std::optional<int> nSharedExperts;
    std::optional<int> nRoutedExperts;
    double routedScalingFactor = 1.0;
    bool useMla = true;
    int kvLoraRank = 512;
    std::optional<int> qLoraRank = 1536;
    int qkRopeHeadDim = 64;
    int vHeadDim = 128;
    int qkNopeHeadDim = 128;
    TopkMethod topkMethod = TopkMethod::Greedy;
    int nGroup = 1;
    int topkGroup = 1;
    int numExpertsPerTok = 0;
    int moeLayerFreq = 1;
    int firstKDenseReplace = 0;
    bool normTopkProb = false;
    ScoringFunc scoringFunc = ScoringFunc::Softmax;
    int maxPositionEmbeddings = 2048;
    float rmsNormEps = 1e-6f;
    double ropeTheta = 10000.0;
    bool attentionBias = false;
    std::int64_t bosTokenId = 100000;
    std::int64_t eosTokenId = 100001;

    bool isMoeLayer(int layer) const;
    // MHA: hidden / heads. MLA: qk_nope + qk_rope for queries and keys.
    int headDim() const { return hiddenSize / numAttentionHeads; }
    int qHeadDim() const { return useMla ? qkNopeHeadDim + qkRopeHeadDim : headDim(); }
};

struct Resolution2D {
    int width = 0;
    int height = 0;
    bool operator==(const Resolution2D&) const = default;
};

struct ProcessorConfig {
    std::vector<Resolution2D> candidateResolutions;
    int patchSize = 14;
    int downsampleRatio = 2;
    std::array<float, 3> imageMean{0.5f, 0.5f, 0.5f};
    std::array<float, 3> imageStd{0.5f, 0.5f, 0.5f};
    bool normalize = true;
    std::string imageToken = "<image>";
    std::string padToken = "<｜▁pad▁｜>";
    std::string sftFormat = "deepseek";
    bool maskPrompt = false;
    bool addSpecialToken = false;
    int ignoreId = -100;
};

struct ModelConfig {
    VisionConfig vision;
    ProjectorConfig projector;
    LanguageConfig language;
    std::string tileTag = "2D";
    std::string globalViewPos = "head";
    std::vector<Resolution2D> candidateResolutions;  // from config.json (the processor's are authoritative)

    // "deepseek-vl2-tiny", "deepseek-vl2-small", "deepseek-vl2" for the published shapes,
    // otherwise a description such as "custom (MLA, noaux_tc)".
    std::string variantName() const;
    // Image-token count of one image with a (widthTiles x heightTiles) local grid.
    int imageTokenCount(int widthTiles, int heightTiles) const;
    // Tokens per side of one tile after the projector's 2x2 merge (14 for 384/14 → 27 → 28/2).
    int tokensPerTileSide() const;
};

// Parse and validate; errors name the file and field. Throws tessera::Error.
ModelConfig parseModelConfig(const std::string& jsonText, const std::string& where);
ModelConfig loadModelConfig(const std::filesystem::path& configJson);
ProcessorConfig parseProcessorConfig(const std::string& jsonText, const std::string& where);
ProcessorConfig loadProcessorConfig(const std::filesystem::path& processorConfigJson);

}  // namespace tessera
