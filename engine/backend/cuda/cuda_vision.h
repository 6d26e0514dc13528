#pragma once
// The image path on the GPU: SigLIP ViT over batches of 384×384 tiles and the 2×2-merge MLP
// projector, writing the language model's input rows of every tile.
#include "backend/cuda/cuda_weights.h"

#include "tessera_kernels/gemm.h"

#include <array>
#include <atomic>
#include <cstdint>
#include <vector>

namespace tessera::cuda {

class CudaVision {
public:
    CudaVision(const ModelConfig& config, const DeviceWeights& weights, std::array<float, 3> mean, std::array<float, 3> std,
               k::MathMode math, k::Stream stream, k::GemmContext* gemm, int maxTiles);

    std::size_t workspaceBytes() const { return workspaceBytes_; }
    void bindWorkspace(void* base);

    int featuresPerTile() const { return vision_.patchesPerTile(); }
    int tokensPerTile() const { return side_ * side_; }
    int tokensPerSide() const { return side_; }
    int maxTiles() const { return maxTiles_; }
    // The workspace's projector output ([maxTiles · tokensPerTile, hidden] F32).
    float* projectedBuffer() const { return projected_; }

    // tiles: count tiles (count ≤ maxTiles) of imageSize² RGB8 HWC on the host. Writes the projector
    // outputs of all tiles to projected [count · tokensPerTile, hidden] (device, F32); visionOut
    // (optional, host) receives the ViT outputs [count, featuresPerTile, width]. Returns false when
    // cancelled between tile batches.
    bool encode(const std::uint8_t* tiles, int count, float* projected, std::vector<float>* visionOut,
                const std::atomic<bool>* cancel);

private:
    void layout(Carver& c);
    // Per tile: scores product, soft-max, values product (exact mode).
    void attentionUnfused(int nb, float scale);
    void gemm(const void* A, std::int64_t lda, int M, const DeviceMatrix& W, const float* bias, void* C, k::DType cType,
              std::int64_t ldc, float beta, k::Epilogue epilogue = k::Epilogue::None);

    VisionConfig vision_;
    const DeviceWeights& weights_;
    k::MathMode math_;
    k::DType act_;
    k::Stream stream_;
    k::GemmContext* gemm_;
    int ratio_, side_, hidden_, batch_, maxTiles_;
    DeviceBuffer lut_;
    std::size_t workspaceBytes_ = 0;

    std::uint8_t* tiles_ = nullptr;
    float* x_ = nullptr;
    void* normed_ = nullptr;
    void* wide_ = nullptr;    // qkv [rows, 3W]
    void* hidden_buf_ = nullptr;  // patch rows, then the MLP hidden
    void* attn_ = nullptr;
    float* scores_ = nullptr;
    void* probs_ = nullptr;
    void* merged_ = nullptr;
    void* projHidden_ = nullptr;
    float* projected_ = nullptr;
};

}  // namespace tessera::cuda
