#pragma once
// The model's weights in GPU memory, laid out for the CUDA backend: matrices stay bf16 (rows
// concatenated where one product serves several checkpoint tensors: q|k|v, q|kv_a, gate|up,
// all experts of a layer back to back; MLA's kv_b_proj split into per-head W_ukᵀ and W_uv),
// small vectors become fp32. Made either from a checkpoint (streamed through pinned staging
// memory) or filled with random values on the GPU (benchmarks at the real shapes, no files).
#include "backend/cuda/cuda_common.h"
#include "model/config.h"
#include "model/weight_map.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace tessera::cuda {

struct DeviceMatrix {
    const std::uint16_t* data = nullptr;  // bf16 [rows, cols], row-major
    int rows = 0, cols = 0;
};

struct DeviceVector {
    const float* data = nullptr;
    int size = 0;
};

struct LanguageLayerWeights {
    DeviceVector inputNorm, postNorm;
    DeviceMatrix attnIn;   // MHA: q|k|v rows; MLA: q_proj|kv_a_proj_with_mqa rows
    DeviceVector kvNorm;   // MLA kv_a_layernorm
    DeviceMatrix wUkT;     // MLA: [heads · rank, nope], per head W_ukᵀ
    DeviceMatrix wUv;      // MLA: [heads · vDim, rank]
    DeviceMatrix attnOut;  // o_proj
    bool moe = false;
    DeviceMatrix gateUp, down;                  // dense MLP (gate|up rows)
    DeviceMatrix router;                        // [experts, hidden]
    DeviceVector routerBias;                    // noaux_tc
    // [(E + S) · 2I, hidden] and [(E + S) · hidden, I]: the E routed experts, then the shared
    // experts' MLP (intermediate S·I) cut into S experts of intermediate I (gating is per unit
    // and the down projection a sum over units, so this is the same function), which every token
    // uses with weight 1.
    DeviceMatrix expertsGateUp, expertsDown;
    int sharedExperts = 0;
};

struct VisionBlockWeights {
    DeviceVector norm1Weight, norm1Bias, qkvBias, projBias, norm2Weight, norm2Bias, fc1Bias, fc2Bias;
    DeviceMatrix qkv, proj, fc1, fc2;
};

struct ProjectorLayerWeights {
    DeviceMatrix weight;
    DeviceVector bias;
};

class DeviceWeights {
public:
    // Bytes the weights of this configuration take on the GPU (for the memory plan).
    static std::size_t plannedBytes(const ModelConfig& config);
    // progress(fraction) is called as bytes arrive; it may throw to cancel.
    static std::unique_ptr<DeviceWeights> upload(const ModelConfig& config, const WeightMap& weights, k::Stream stream,
                                                 const std::function<void(double)>& progress);
    static std::unique_ptr<DeviceWeights> random(const ModelConfig& config, std::uint64_t seed, k::Stream stream);
    // Shapes only (null pointers), for planning memory before anything is allocated.
    static std::unique_ptr<DeviceWeights> shapesOnly(const ModelConfig& config);

    std::size_t bytes() const { return storage_.bytes() ? storage_.bytes() : plannedBytes_; }

    DeviceMatrix embed, lmHead;
    DeviceVector finalNorm;
    std::vector<LanguageLayerWeights> layers;
    DeviceMatrix patchEmbed;
    DeviceVector patchBias, posEmbed, visionNormWeight, visionNormBias;
    std::vector<VisionBlockWeights> blocks;
    std::vector<ProjectorLayerWeights> projector;
    DeviceVector imageNewline, viewSeparator;

private:
    friend class WeightLayout;
    DeviceBuffer storage_;
    std::size_t plannedBytes_ = 0;
};

}  // namespace tessera::cuda
