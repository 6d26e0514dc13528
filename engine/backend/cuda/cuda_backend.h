#pragma once
// The CUDA backend: the whole model on one NVIDIA GPU. Two precisions: ExactFp32 (bf16 weights
// widened, fp32 everywhere, no TF32: matches the CPU reference within the golden tolerances) and
// FastBf16 (bf16 activations into tensor-core products with fp32 accumulation; fp32 norms,
// soft-max, routing scores and residual stream). Sampling runs on the GPU; decode steps replay a
// CUDA graph.
#include "backend/cuda/cuda_language_model.h"
#include "backend/cuda/cuda_vision.h"
#include "backend/cuda/cuda_weights.h"
#include "model/config.h"
#include "model/weight_map.h"
#include "runtime/backend.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace tessera::cuda {

// Cooperative decode kernels: correct on the GPU, but slower there than the separate kernels
// (bench/PERFORMANCE.md), so the environment turns them on. TESSERA_FUSED_MOE=1: decode runs each
// MoE layer as one cooperative kernel; TESSERA_FUSED_ATTENTION=1: and the attention half of each
// layer (MHA or MLA); TESSERA_FUSED_LAYER=1 (with both): the two halves of a layer in one kernel;
// TESSERA_FUSED_STEP=1 (with both): the whole decode step in one kernel.
// Sampled draws come from the candidates near the maximum, the sorted vocabulary only when they
// cannot decide (kernels::sampleToken); TESSERA_SAMPLE_CANDIDATES=0 always sorts.
bool fusedMoeDecodeByDefault();
bool fusedAttentionDecodeByDefault();
bool fusedLayerDecodeByDefault();
bool fusedStepDecodeByDefault();
bool candidateSamplingByDefault();

struct CudaBackendOptions {
    k::MathMode math = k::MathMode::FastBf16;
    int device = 0;
    // Positions per prefill step: each step reads every expert once, so one step should hold a
    // usual prompt (an image of 10 tiles and a question is about 2,040 tokens); the activations
    // of a step are what the workspace holds, within 1 GiB over the weights for every model.
    int prefillChunk = 2048;
    int planContext = 0;      // KV-cache positions the memory plan reserves (0: max_position_embeddings)
    bool fusedMoeDecode = fusedMoeDecodeByDefault();  // see CudaLanguageModel::setFusedMoeDecode
    bool fusedAttentionDecode = fusedAttentionDecodeByDefault();
    bool fusedLayerDecode = fusedLayerDecodeByDefault();
    bool fusedStepDecode = fusedStepDecodeByDefault();
    bool candidateSampling = candidateSamplingByDefault();
};

// What the model needs on the GPU, checked against free memory before anything large is allocated.
struct MemoryPlan {
    std::size_t weights = 0, kvCache = 0, workspace = 0, reserve = 0;
    std::size_t freeBytes = 0, totalBytes = 0;
    int context = 0;
    std::string gpu;
    std::size_t needed() const { return weights + kvCache + workspace + reserve; }
    bool fits() const { return needed() <= freeBytes; }
    std::string describe() const;
};

class CudaBackend final : public Backend {
public:
    // From a checkpoint: weights are uploaded (progress(fraction) may throw to cancel).
    CudaBackend(const ModelConfig& config, const WeightMap& weights, const ProcessorConfig& processor,
                const CudaBackendOptions& options = {}, const std::function<void(double)>& progress = {});
    // Random weights made on the GPU at the configuration's shapes (benchmarks).
    CudaBackend(const ModelConfig& config, std::uint64_t randomSeed, const ProcessorConfig& processor,
                const CudaBackendOptions& options = {});
    ~CudaBackend() override;

    std::string name() const override { return "cuda"; }
    // Measurement only (tessera-bench --stage-costs): see CudaLanguageModel::setDecodeOmissions.
    void setDecodeOmissions(unsigned mask) { language_->setDecodeOmissions(mask); }
    bool fusedMoeDecode() const { return language_->fusedMoeDecode(); }
    void setFusedMoeDecode(bool on) { language_->setFusedMoeDecode(on); }  // for sequences created afterwards
    bool fusedAttentionDecode() const { return language_->fusedAttentionDecode(); }
    void setFusedAttentionDecode(bool on) { language_->setFusedAttentionDecode(on); }
    bool fusedLayerDecode() const { return language_->fusedLayer(); }
    void setFusedLayerDecode(bool on) { language_->setFusedLayerDecode(on); }
    bool fusedStepDecode() const { return language_->fusedStep(); }
    int decodeStepKernelCaptures() const { return language_->stepCaptures(); }
    int decodeGraphCaptures() const { return language_->graphCaptures(); }
    void setFusedStepDecode(bool on) { language_->setFusedStepDecode(on); }
    std::string description() const override;
    int vocabSize() const override;
    int maxContext() const override;

    std::shared_ptr<EncodedImage> encodeImage(const ImageTiles& tiles, const std::atomic<bool>* cancel) override;
    std::unique_ptr<Sequence> createSequence(int capacity) override;
    bool append(Sequence& sequence, std::span<const PromptSegment> segments, const std::atomic<bool>* cancel) override;
    void lastLogits(const Sequence& sequence, std::span<float> out) override;
    std::int32_t sampleNext(const Sequence& sequence, std::span<const std::int32_t> seen, const SamplingParams& params,
                            Rng& rng) override;
    // Greedy: the step of the chosen token is queued before the token reaches the host.
    Step sampleAndAppend(Sequence& sequence, std::span<const std::int32_t> seen, const SamplingParams& params, Rng& rng) override;
    bool appendsAhead() const override { return true; }

    // Diagnostics for tests and benchmarks.
    const MemoryPlan& memoryPlan() const { return plan_; }
    k::MathMode math() const { return options_.math; }
    std::vector<float> embeddings(std::span<const PromptSegment> segments);  // [positions, hidden]
    // vision_out [tiles, 729, width] and projector_out [tiles, 196, hidden] of one image's tiles.
    void encodeTiles(const ImageTiles& tiles, std::vector<float>* visionOut, std::vector<float>* projectorOut);
    // append() through the prefill path, recording per-layer hidden states and routing.
    void appendTraced(Sequence& sequence, std::span<const PromptSegment> segments, LanguageTrace& trace);
    void synchronize();
    // Measurement: `steps` decode steps queued back to back on the token already on the device (no
    // choice between them, nothing read by the host), then a wait for the last. Returns the steps
    // run: fewer where the cache fills up.
    int replayDecodeSteps(Sequence& sequence, int steps);
    // Draws so far that needed the whole vocabulary sorted (all of them without candidateSampling).
    std::size_t sortedDraws() const { return sortedDraws_; }
    bool candidateSampling() const { return options_.candidateSampling; }

    static MemoryPlan planMemory(const ModelConfig& config, const ProcessorConfig& processor, const CudaBackendOptions& options);

private:
    void initialise(const ModelConfig& config, const ProcessorConfig& processor, const WeightMap* weights, std::uint64_t seed,
                    const std::function<void(double)>& progress);
    bool prefillSegments(Sequence& sequence, std::span<const PromptSegment> segments, const std::atomic<bool>* cancel,
                         LanguageTrace* trace);
    void fillEmbeddings(std::span<const PromptSegment> segments, int from, int n, float* out);
    int checkSegments(std::span<const PromptSegment> segments) const;
    const float* drawLogits(const Sequence& sequence, std::span<const std::int32_t> seen, const SamplingParams& params);

    ModelConfig config_;  // a copy: the caller's config need not outlive the backend
    CudaBackendOptions options_;
    MemoryPlan plan_;
    k::Stream stream_ = nullptr;
    k::GemmContext* gemm_ = nullptr;
    std::unique_ptr<DeviceWeights> weights_;
    std::unique_ptr<CudaLanguageModel> language_;
    std::unique_ptr<CudaVision> vision_;
    DeviceBuffer workspace_;
    DeviceBuffer sampling_;  // penalised logits | stamps | token | sort workspace
    float* scratchLogits_ = nullptr;
    DeviceBuffer seenIds_;  // the ids the repetition penalty looks at (grows when needed)
    std::vector<std::int32_t> seenMirror_;  // what seenIds_ holds
    int* stamps_ = nullptr;
    std::int32_t* sampled_ = nullptr;
    void* sortWorkspace_ = nullptr;
    std::size_t sortBytes_ = 0;
    int stamp_ = 0;
    std::size_t sortedDraws_ = 0;
    PinnedBuffer pinnedToken_;
    k::Event tokenCopied_ = nullptr;  // sampleAndAppend(): the token is on the host
    std::vector<std::int32_t> idsHost_;
    std::string gpuName_;
};

}  // namespace tessera::cuda
