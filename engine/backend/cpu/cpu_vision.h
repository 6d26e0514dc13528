#pragma once
// The CPU backend's image path: the SigLIP ViT over 384x384 tiles and the 2x2-merging MLP
// projector that turns its 27x27 features into 14x14 tokens of the language model's width.
// fp32 arithmetic over the checkpoint's memory-mapped matrices (see cpu_ops.h).
#include "backend/cpu/cpu_ops.h"
#include "model/config.h"
#include "model/weight_map.h"

#include <array>
#include <cstdint>
#include <vector>

namespace tessera::cpu {

class CpuVisionEncoder {
public:
    // mean/std: the processor's image_mean/image_std (0.5 in every published model). Keeps views
    // into `weights` (which must outlive the encoder) and fp32 copies of the small vectors only.
    // Throws tessera::Error when the configuration is not one this encoder can run.
    CpuVisionEncoder(const ModelConfig& config, const WeightMap& weights,
                     std::array<float, 3> mean = {0.5f, 0.5f, 0.5f}, std::array<float, 3> std = {0.5f, 0.5f, 0.5f});

    int featuresPerTile() const;  // 729 = 27*27 ViT outputs per tile
    int tokensPerTile() const;    // 196 = 14*14 projector outputs per tile
    int visionWidth() const { return vision_.width; }
    int projectorWidth() const;   // the language model's hidden size

    // tiles: `count` tiles of imageSize×imageSize×3 uint8 RGB, HWC (the processor's output).
    // visionOut: [count, featuresPerTile(), visionWidth()], the ViT output after its final LayerNorm.
    void encode(const std::uint8_t* tiles, int count, float* visionOut) const;
    // projectorOut: [count, tokensPerTile(), projectorWidth()]: the 2x2 merge of the zero-padded
    // grid, then Linear → GELU(erf) → Linear.
    void project(const float* visionOut, int count, float* projectorOut) const;

private:
    struct Block {
        std::vector<float> norm1Weight, norm1Bias, qkvBias, projBias, norm2Weight, norm2Bias, fc1Bias, fc2Bias;
        WeightMatrix qkv, proj, fc1, fc2;
    };
    struct ProjectorLayer {
        WeightMatrix weight;
        std::vector<float> bias;
    };
    struct Workspace;

    int tilesPerBatch(int count) const;
    void encodeBatch(const std::uint8_t* tiles, int count, float* x, Workspace& ws) const;
    void patchRows(const std::uint8_t* tiles, int count, float* rows) const;
    void attention(const float* qkv, int count, float* out, float* scores) const;

    VisionConfig vision_;
    int mergeRatio_ = 2;
    int tokensPerSide_ = 14;
    std::array<std::array<float, 256>, 3> pixelValue_{};  // (v/255 − mean)/std per channel, in fp32
    WeightMatrix patchEmbed_;                             // [width, 3·patch·patch], channel-major
    std::vector<float> patchBias_, posEmbed_, normWeight_, normBias_;
    std::vector<Block> blocks_;
    std::vector<ProjectorLayer> projector_;
};

}  // namespace tessera::cpu
