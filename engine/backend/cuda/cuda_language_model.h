#pragma once
// The DeepSeek-V2 language model on the GPU: chunked prefill through products over whole token
// blocks, and a one-token decode step captured as a CUDA graph that reads the position from the
// device (so it replays at every position without re-capture; one graph for short contexts and one
// for the rest).
#include "backend/cuda/cuda_weights.h"

#include "tessera_kernels/attention.h"
#include "tessera_kernels/decode_step.h"
#include "tessera_kernels/gemm.h"
#include "tessera_kernels/moe.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace tessera::cuda {

// The KV cache and per-sequence device state. MHA: per layer rotated keys and values
// [capacity, kvHeads·headDim] each. MLA: per layer one row [capacity, kvLoraRank + qkRopeHeadDim]
// = normalised latent | rotated k_pe.
struct SequenceState {
    DeviceBuffer storage;
    std::vector<void*> keys, values;  // per layer (values null for MLA)
    int capacity = 0;
    int length = 0;
    int* lengthOnDevice = nullptr;
    std::int32_t* tokenOnDevice = nullptr;
    float* logits = nullptr;  // [vocab]: logits of the last computed position
    bool hasLogits = false;
    // The captured decode steps: [0] for contexts of at most k::kDecodeClusterContext positions,
    // whose attention launches are sized for those (and may take faster kernels), where the
    // capacity is larger; [1] for the rest, sized for the capacity.
    k::GraphExec decodeGraphs[2] = {nullptr, nullptr};
    int graphCapacity = 0;   // the positions the decode step being captured serves
    DeviceBuffer stepTable;  // the per-layer parameters of the one-kernel decode step, when it runs

    SequenceState() = default;
    SequenceState(SequenceState&&) = delete;
    ~SequenceState()
    {
        for (k::GraphExec g : decodeGraphs)
            k::graphDestroy(g);
    }
};

// Intermediate results of a prefill, for tests (host copies, rows appended per chunk).
struct LanguageTrace {
    bool wantHiddenStates = false;
    std::vector<std::vector<float>> hiddenStates;  // L + 1 entries [n, H], HF convention (see cpu)
    std::vector<float> lastLayerOutput;
    bool wantRouting = false;
    std::vector<std::vector<std::int32_t>> moeTopkIdx;  // per MoE layer [n, k]
    std::vector<std::vector<float>> moeTopkWeight;
};

class CudaLanguageModel {
public:
    CudaLanguageModel(const ModelConfig& config, const DeviceWeights& weights, k::MathMode math, k::Stream stream,
                      k::GemmContext* gemm, int prefillChunk, int maxContext);

    // Workspace bytes this model needs (layout is fixed by the constructor's arguments).
    std::size_t workspaceBytes() const { return workspaceBytes_; }
    void bindWorkspace(void* base);
    std::size_t cacheBytes(int capacity) const;

    std::unique_ptr<SequenceState> createSequence(int capacity) const;

    int hiddenSize() const { return hidden_; }
    int vocabSize() const { return vocab_; }
    int layerCount() const { return static_cast<int>(weights_.layers.size()); }
    int prefillChunk() const { return chunk_; }
    k::DType activationType() const { return act_; }

    // Rows [0, n) of hiddenInput() (F32 [prefillChunk, hidden]) hold the input embeddings of
    // positions seq.length .. seq.length + n − 1.
    float* hiddenInput() const { return h_; }
    std::int32_t* idsInput() const { return ids_; }
    void embedTokens(const std::int32_t* idsOnDevice, int count, float* out) const;

    // Runs the positions, appends them to the cache, computes the logits of the last one.
    void prefill(SequenceState& seq, int n, LanguageTrace* trace);
    // One token (already in seq.tokenOnDevice) through the captured decode step.
    void decode(SequenceState& seq);

    // Measurement only: stages a decode step leaves out (a mask of DecodeStage bits), so that a
    // benchmark can time a step without each stage and read off what the stage costs inside the
    // step. The output of such a step is meaningless. Takes effect in sequences created afterwards.
    // Leaving the router out leaves the experts out too (they would read stale indices).
    enum DecodeStage : unsigned {
        kStageAttentionInput = 1u << 0,  // q / kv projection
        kStagePrepare = 1u << 1,         // rotary embedding, cache write
        kStageAbsorb = 1u << 2,          // MLA: query absorption
        kStageAttention = 1u << 3,
        kStageExpand = 1u << 4,          // MLA: value expansion
        kStageOutput = 1u << 5,          // o_proj
        kStageRouter = 1u << 6,
        kStageExpertsGateUp = 1u << 7,
        kStageExpertsDown = 1u << 8,     // experts' down product and their weighted sum
        kStageDenseMlp = 1u << 9,
        kStageLogits = 1u << 10,         // lm_head
    };
    static const char* decodeStageName(unsigned stage);
    void setDecodeOmissions(unsigned mask)
    {
        omit_ = mask & kStageRouter ? mask | kStageExpertsGateUp | kStageExpertsDown : mask;
    }
    // Decode runs each MoE layer as one cooperative kernel (k::moeDecode) instead of router,
    // gate/up, down and combine, where the shape allows. Takes effect in sequences created
    // afterwards. With it the router stage stands for the whole MoE layer in setDecodeOmissions.
    void setFusedMoeDecode(bool on);
    bool fusedMoeDecode() const { return fusedMoe_; }
    // Likewise the attention half of a layer (k::mhaDecode, k::mlaDecode): projections, rotary,
    // cache write, attention and o_proj in one cooperative kernel; the attention stage stands for
    // all of it.
    void setFusedAttentionDecode(bool on);
    bool fusedAttentionDecode() const { return fusedAttention_; }
    // With both of the above, the two halves of each MoE layer in one cooperative kernel
    // (k::decodeLayer); the attention stage then stands for the whole layer.
    void setFusedLayerDecode(bool on);
    bool fusedLayer() const { return fusedLayerAsked_ && fusedMoe_ && fusedAttention_; }
    // With both of those too, the whole step in one cooperative kernel (k::decodeStep), when the
    // model allows it and no stage is left out.
    void setFusedStepDecode(bool on);
    bool fusedStep() const { return fusedStepAsked_ && fusedMoe_ && fusedAttention_ && omit_ == 0; }
    // Decode graphs captured with the one-kernel step so far (fusedStep() may still fall back
    // when the model does not fit that kernel).
    int stepCaptures() const { return stepCaptures_; }
    int graphCaptures() const { return graphCaptures_; }  // decode graphs captured so far

private:
    void layout(Carver& c);
    void forwardLayers(SequenceState& seq, int start, int n, bool decode, LanguageTrace* trace, bool inputNormed = false);
    void attentionMha(SequenceState& seq, int layer, int start, int n, bool decode);
    void attentionMla(SequenceState& seq, int layer, int start, int n, bool decode);
    template <typename Args>
    void fillFusedAttention(Args& f, const SequenceState& seq, int layer) const;
    k::MhaDecodeArgs mhaDecodeArgs(const SequenceState& seq, int layer) const;
    k::MlaDecodeArgs mlaDecodeArgs(const SequenceState& seq, int layer) const;
    k::RouteArgs routeArgs(int layer, int n) const;
    // The MoE half of layer `layer` for the cooperative kernel (a dense MLP as one "shared expert").
    k::MoeDecodeArgs moeDecodeArgs(int layer, const float* nextNorm) const;
    // The arguments of k::decodeStep for this sequence (the per-layer argument lists live in
    // `step`); false when the model does not fit that kernel.
    struct StepArgs {
        std::vector<k::MhaDecodeArgs> mha;
        std::vector<k::MlaDecodeArgs> mla;
        std::vector<k::MoeDecodeArgs> moe;
        k::DecodeStepArgs args;
    };
    bool stepArgs(SequenceState& seq, StepArgs& step) const;
    void denseMlp(const DeviceMatrix& gateUp, const DeviceMatrix& down, int n, float* out, float beta);
    // Adds the layer's experts into h_; when nextNorm is given also leaves RMSNorm(h_)·nextNorm in
    // x_ (the next layer's input, or the final norm).
    void moe(int layer, int n, bool decode, LanguageTrace* trace, const float* nextNorm);
    void logitsOfRow(SequenceState& seq, int row, bool normed);
    bool runs(unsigned stage, bool decode) const { return !decode || !(omit_ & stage); }
    void linear(const void* x, std::int64_t ldx, int n, const DeviceMatrix& W, void* y, k::DType yType, std::int64_t ldy,
                float beta = 0.f) const;

    const DeviceWeights& weights_;
    LanguageConfig config_;
    k::MathMode math_;
    k::DType act_;
    k::Stream stream_;
    k::GemmContext* gemm_;
    int hidden_, vocab_, chunk_, maxContext_;
    int heads_, kvHeads_, headDim_, nope_, rope_, rank_, vDim_, qWidth_, projWidth_;
    int experts_ = 0, topK_ = 0, sharedExperts_ = 0, moeInter_ = 0, maxInter_ = 0;
    float attentionScale_ = 1.f;
    std::size_t scoreFloats_ = 0;
    bool mlaFlash_ = false;  // MLA prefill expands k_nope / v per head and runs the fused attention
    DeviceBuffer rotary_;  // cos | sin tables
    const float* cos_ = nullptr;
    const float* sin_ = nullptr;
    std::size_t workspaceBytes_ = 0;

    float* h_ = nullptr;
    void* x_ = nullptr;
    void* proj_ = nullptr;
    void* q_ = nullptr;
    float* scores_ = nullptr;
    void* probs_ = nullptr;
    void* olat_ = nullptr;
    void* kexp_ = nullptr;  // MLA prefill keys [maxContext, heads, nope + rope]
    void* vexp_ = nullptr;  // MLA prefill values [maxContext, heads, v]
    void* ctx_ = nullptr;
    void* gu_ = nullptr;
    void* mlpAct_ = nullptr;
    float* sharedOut_ = nullptr;
    float* router_ = nullptr;
    std::int32_t* idx_ = nullptr;
    float* weight_ = nullptr;
    std::int32_t* slots_ = nullptr;
    int* counts_ = nullptr;
    int* fill_ = nullptr;
    int* offsets_ = nullptr;
    int* tileOffsets_ = nullptr;
    void* gathered_ = nullptr;
    void* egu_ = nullptr;
    void* eact_ = nullptr;
    float* eout_ = nullptr;
    float* attnWorkspace_ = nullptr;
    std::int32_t* ids_ = nullptr;
    // Counters of the kernels whose last block finishes the work (router, attention merge, fused
    // MoE layer): zero between launches, outside the workspace that the vision encoder shares.
    unsigned omit_ = 0;
    DeviceBuffer counters_;
    int* routeCounter_ = nullptr;
    int* attentionCounters_ = nullptr;
    bool fusedMoe_ = false, fusedAttention_ = false, fusedLayerAsked_ = false, fusedStepAsked_ = false;
    int stepCaptures_ = 0;
    int graphCaptures_ = 0;
    unsigned* moeSync_ = nullptr;     // the barrier state of the cooperative decode kernels
    float* moePartials_ = nullptr;    // the fused MoE kernel's per-block sums of squares
    float* attentionPartials_ = nullptr;  // the fused attention kernel's partials
};

}  // namespace tessera::cuda
