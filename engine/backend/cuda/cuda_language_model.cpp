#include "backend/cuda/cuda_language_model.h"

#include "tessera_kernels/attention.h"
#include "tessera_kernels/decode_layer.h"
#include "tessera_kernels/decode_step.h"
#include "tessera_kernels/elementwise.h"
#include "tessera_kernels/mla_prefill.h"
#include "tessera_kernels/moe.h"
#include "tessera_kernels/norm.h"
#include "tessera_kernels/rope.h"
#include "tessera_kernels/runtime.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace tessera::cuda {

namespace {

// Score-matrix budget of one prefill attention step (floats): bounds memory for long prompts.
constexpr std::size_t kScoreBudgetFloats = std::size_t(32) << 20;

void download(void* dst, const void* src, std::size_t bytes, k::Stream stream)
{
    check(k::copyToHost(dst, src, bytes, stream), "trace download");
    check(k::streamSynchronize(stream), "trace download");
}

}  // namespace

CudaLanguageModel::CudaLanguageModel(const ModelConfig& config, const DeviceWeights& weights, k::MathMode math,
                                     k::Stream stream, k::GemmContext* gemm, int prefillChunk, int maxContext)
    : weights_(weights),
      config_(config.language),
      math_(math),
      act_(math == k::MathMode::ExactFp32 ? k::DType::F32 : k::DType::BF16),
      stream_(stream),
      gemm_(gemm),
      hidden_(config.language.hiddenSize),
      vocab_(static_cast<int>(config.language.vocabSize)),
      chunk_(prefillChunk),
      maxContext_(maxContext)
{
    const auto& c = config_;
    if (c.attentionBias)
        throw Error("attention_bias = true is not part of any DeepSeek-VL2 model and is not supported");
    if (c.useMla && c.qLoraRank)
        throw Error("the CUDA backend does not support q_lora_rank (no DeepSeek-VL2 model uses it); use --backend cpu");
    heads_ = c.numAttentionHeads;
    kvHeads_ = c.numKeyValueHeads;
    if (c.useMla) {
        nope_ = c.qkNopeHeadDim;
        rope_ = c.qkRopeHeadDim;
        rank_ = c.kvLoraRank;
        vDim_ = c.vHeadDim;
        qWidth_ = rank_ + rope_;
        headDim_ = nope_ + rope_;
        attentionScale_ = static_cast<float>(std::pow(static_cast<double>(nope_ + rope_), -0.5));
    } else {
        headDim_ = c.headDim();
        if (kvHeads_ <= 0 || heads_ % kvHeads_)
            throw Error("num_attention_heads must be a multiple of num_key_value_heads");
        vDim_ = headDim_;
        qWidth_ = headDim_;
        attentionScale_ = 1.0f / static_cast<float>(std::sqrt(static_cast<double>(headDim_)));
    }
    projWidth_ = weights.layers.empty() ? 0 : weights.layers[0].attnIn.rows;
    for (int i = 0; i < c.numHiddenLayers; ++i) {
        if (c.isMoeLayer(i)) {
            experts_ = c.nRoutedExperts.value_or(0);
            topK_ = c.numExpertsPerTok;
            sharedExperts_ = std::max(0, c.nSharedExperts.value_or(0));
            moeInter_ = c.moeIntermediateSize;
        } else {
            maxInter_ = std::max(maxInter_, c.intermediateSize);
        }
    }

    // Rotary tables computed exactly like the CPU reference (fp32 inv_freq and angle, double cos/sin).
    const int dim = c.useMla ? rope_ : headDim_;
    if (dim <= 0 || dim % 2)
        throw Error("rotary embedding dimension must be even and positive, found " + std::to_string(dim));
    const int half = dim / 2;
    std::vector<float> table(static_cast<std::size_t>(maxContext) * half * 2);
    const float base = static_cast<float>(c.ropeTheta);
    std::vector<float> invFreq(half);
    for (int i = 0; i < half; ++i)
        invFreq[i] = 1.0f / std::pow(base, static_cast<float>(2 * i) / static_cast<float>(dim));
    float* cosH = table.data();
    float* sinH = table.data() + static_cast<std::size_t>(maxContext) * half;
    for (int p = 0; p < maxContext; ++p)
        for (int i = 0; i < half; ++i) {
            const float angle = static_cast<float>(p) * invFreq[i];
            cosH[static_cast<std::size_t>(p) * half + i] = static_cast<float>(std::cos(static_cast<double>(angle)));
            sinH[static_cast<std::size_t>(p) * half + i] = static_cast<float>(std::sin(static_cast<double>(angle)));
        }
    rotary_ = DeviceBuffer(table.size() * sizeof(float), "the rotary tables");
    check(k::copyToDevice(rotary_.get(), table.data(), table.size() * sizeof(float), stream_), "rotary tables");
    check(k::streamSynchronize(stream_), "rotary tables");
    cos_ = rotary_.as<float>();
    sin_ = cos_ + static_cast<std::size_t>(maxContext) * half;

    scoreFloats_ = std::max(static_cast<std::size_t>(heads_) * maxContext_,
                            std::min(kScoreBudgetFloats, static_cast<std::size_t>(chunk_) * heads_ * maxContext_));
    if (!c.useMla && act_ == k::DType::BF16 && k::flashAttentionSupports(headDim_))
        scoreFloats_ = 0;  // the fused attention keeps its scores on chip
    mlaFlash_ = c.useMla && act_ == k::DType::BF16 && k::flashAttentionSupports(nope_ + rope_, vDim_);
    if (mlaFlash_)
        scoreFloats_ = 0;
    Carver measure;
    layout(measure);
    workspaceBytes_ = measure.used();

    const std::size_t mhaPartials = c.useMla ? k::mlaDecodePartialFloats(heads_, rank_) : k::mhaDecodePartialFloats(heads_, headDim_);
    const std::size_t counters = 1 + static_cast<std::size_t>(std::max(1, kvHeads_)) + 4 + k::kMoeDecodeMaxBlocks + mhaPartials;
    counters_ = DeviceBuffer(counters * sizeof(int), "the decode counters");
    check(k::fillZero(counters_.get(), counters * sizeof(int), stream_), "decode counters");
    routeCounter_ = counters_.as<int>();
    attentionCounters_ = routeCounter_ + 1;
    moeSync_ = reinterpret_cast<unsigned*>(attentionCounters_ + std::max(1, kvHeads_));
    moePartials_ = reinterpret_cast<float*>(moeSync_ + 4);
    attentionPartials_ = moePartials_ + k::kMoeDecodeMaxBlocks;
}

void CudaLanguageModel::setFusedLayerDecode(bool on) { fusedLayerAsked_ = on; }
void CudaLanguageModel::setFusedStepDecode(bool on) { fusedStepAsked_ = on; }

void CudaLanguageModel::setFusedAttentionDecode(bool on)
{
    // Checked at the largest cache, so that every sequence's capacity fits.
    const bool shape = config_.useMla ? k::mlaDecodeSupports(hidden_, heads_, nope_, rope_, rank_, vDim_, maxContext_)
                                      : k::mhaDecodeSupports(hidden_, heads_, kvHeads_, headDim_, maxContext_);
    fusedAttention_ = on && shape && rotary_.get() != nullptr;
}

void CudaLanguageModel::setFusedMoeDecode(bool on)
{
    const bool groups = config_.topkMethod != TopkMethod::NoAuxTc || (config_.nGroup > 0 && config_.nGroup <= 32 && experts_ % config_.nGroup == 0);
    fusedMoe_ = on && experts_ > 0 && groups && k::moeDecodeSupports(experts_, topK_, sharedExperts_, hidden_, moeInter_);
}

void CudaLanguageModel::layout(Carver& c)
{
    const std::size_t C = static_cast<std::size_t>(chunk_), H = static_cast<std::size_t>(hidden_);
    const std::size_t a = k::dtypeBytes(act_);
    auto actBuf = [&](std::size_t count) { return c.takeBytes(count * a); };
    // Live across a whole step: the residual stream, the normalised input, decode scratch.
    h_ = c.take<float>(C * H);
    x_ = actBuf(C * H);
    attnWorkspace_ = c.take<float>(k::decodeAttentionWorkspaceFloats(heads_, config_.useMla ? rank_ : headDim_, maxContext_));
    ids_ = c.take<std::int32_t>(C);
    // The attention's buffers, the dense MLP's and the experts' are each live only inside their
    // part of a layer, so the three sets share one region.
    const std::size_t phases = c.used();
    proj_ = actBuf(C * projWidth_);
    q_ = actBuf(C * heads_ * qWidth_);
    scores_ = c.take<float>(scoreFloats_);
    probs_ = act_ == k::DType::F32 ? static_cast<void*>(scores_) : actBuf(scoreFloats_);
    if (config_.useMla)
        olat_ = actBuf(C * heads_ * rank_);
    if (mlaFlash_) {
        kexp_ = actBuf(static_cast<std::size_t>(maxContext_) * heads_ * (nope_ + rope_));
        vexp_ = actBuf(static_cast<std::size_t>(maxContext_) * heads_ * vDim_);
    }
    ctx_ = actBuf(C * heads_ * vDim_);
    std::size_t end = c.used();
    c.rewind(phases);
    if (maxInter_ > 0) {
        gu_ = actBuf(C * 2 * maxInter_);
        mlpAct_ = actBuf(C * maxInter_);
    }
    sharedOut_ = c.take<float>(C * H);  // the trace's final norm, after the last layer
    end = std::max(end, c.used());
    c.rewind(phases);
    if (experts_ > 0) {
        const std::size_t pairs = C * (topK_ + sharedExperts_);
        router_ = c.take<float>(C * experts_);
        idx_ = c.take<std::int32_t>(pairs);
        weight_ = c.take<float>(pairs);
        slots_ = c.take<std::int32_t>(pairs);
        const std::size_t groups = experts_ + sharedExperts_ + 1;
        counts_ = c.take<int>(groups);
        fill_ = c.take<int>(groups);
        offsets_ = c.take<int>(groups);
        tileOffsets_ = c.take<int>(groups);
        gathered_ = actBuf(pairs * H);
        egu_ = actBuf(pairs * 2 * moeInter_);
        eact_ = actBuf(pairs * moeInter_);
        eout_ = c.take<float>(pairs * H);
    }
    c.extendTo(end);
}

void CudaLanguageModel::bindWorkspace(void* base)
{
    Carver c(base);
    layout(c);
}

std::size_t CudaLanguageModel::cacheBytes(int capacity) const
{
    const std::size_t a = k::dtypeBytes(act_);
    const std::size_t perLayer = config_.useMla ? static_cast<std::size_t>(capacity) * (rank_ + rope_) * a
                                                : 2 * static_cast<std::size_t>(capacity) * kvHeads_ * headDim_ * a;
    Carver c;
    for (std::size_t i = 0; i < weights_.layers.size(); ++i)
        c.takeBytes(perLayer);
    c.take<int>(1);
    c.take<std::int32_t>(1);
    c.take<float>(static_cast<std::size_t>(vocab_));
    return c.used();
}

std::unique_ptr<SequenceState> CudaLanguageModel::createSequence(int capacity) const
{
    if (capacity <= 0 || capacity > maxContext_)
        throw Error("a KV cache holds 1 to " + std::to_string(maxContext_) + " positions; " + std::to_string(capacity) +
                    " were asked for");
    auto s = std::make_unique<SequenceState>();
    s->storage = DeviceBuffer(cacheBytes(capacity), "the KV cache");
    s->capacity = capacity;
    const std::size_t a = k::dtypeBytes(act_);
    Carver c(s->storage.get());
    for (std::size_t i = 0; i < weights_.layers.size(); ++i) {
        if (config_.useMla) {
            s->keys.push_back(c.takeBytes(static_cast<std::size_t>(capacity) * (rank_ + rope_) * a));
            s->values.push_back(nullptr);
        } else {
            void* both = c.takeBytes(2 * static_cast<std::size_t>(capacity) * kvHeads_ * headDim_ * a);
            s->keys.push_back(both);
            s->values.push_back(static_cast<std::uint8_t*>(both) + static_cast<std::size_t>(capacity) * kvHeads_ * headDim_ * a);
        }
    }
    s->lengthOnDevice = c.take<int>(1);
    s->tokenOnDevice = c.take<std::int32_t>(1);
    s->logits = c.take<float>(static_cast<std::size_t>(vocab_));
    check(k::setInt(s->lengthOnDevice, 0, stream_), "new sequence");
    return s;
}

const char* CudaLanguageModel::decodeStageName(unsigned stage)
{
    switch (stage) {
    case kStageAttentionInput: return "attention input projection";
    case kStagePrepare: return "rotary + cache write";
    case kStageAbsorb: return "mla query absorption";
    case kStageAttention: return "attention";
    case kStageExpand: return "mla value expansion";
    case kStageOutput: return "o_proj";
    case kStageRouter: return "router (norm + logits + top-k)";
    case kStageExpertsGateUp: return "experts gate/up";
    case kStageExpertsDown: return "experts down + combine (+ next norm)";
    case kStageDenseMlp: return "dense mlp";
    case kStageLogits: return "lm_head";
    default: return "?";
    }
}

void CudaLanguageModel::embedTokens(const std::int32_t* idsOnDevice, int count, float* out) const
{
    check(k::embedRows(weights_.embed.data, idsOnDevice, count, hidden_, out, stream_), "embed_tokens");
}

void CudaLanguageModel::linear(const void* x, std::int64_t ldx, int n, const DeviceMatrix& W, void* y, k::DType yType,
                               std::int64_t ldy, float beta) const
{
    if (n == 1) {
        k::GemvArgs g;
        g.N = W.rows;
        g.K = W.cols;
        g.x = x;
        g.xType = act_;
        g.W = W.data;
        g.ldw = W.cols;
        g.y = y;
        g.yType = yType;
        g.beta = beta;
        check(k::gemv(g, stream_), "linear (gemv)");
        return;
    }
    k::GemmArgs g;
    g.M = n;
    g.N = W.rows;
    g.K = W.cols;
    g.A = x;
    g.aType = act_;
    g.lda = ldx;
    g.B = W.data;
    g.bType = k::DType::BF16;
    g.ldb = W.cols;
    g.C = y;
    g.cType = yType;
    g.ldc = ldy;
    g.beta = beta;
    g.math = math_;
    check(k::gemm(gemm_, g, stream_), "linear (gemm)");
}

void CudaLanguageModel::prefill(SequenceState& seq, int n, LanguageTrace* trace)
{
    if (n <= 0)
        return;
    if (n > chunk_)
        throw Error("internal error: a prefill step of " + std::to_string(n) + " positions exceeds the chunk of " +
                    std::to_string(chunk_));
    if (seq.length + n > seq.capacity)
        throw Error(std::to_string(n) + " new positions do not fit in the KV cache (" + std::to_string(seq.length) +
                    " of " + std::to_string(seq.capacity) + " used); shorten the conversation or start a new one");
    const int start = seq.length;
    forwardLayers(seq, start, n, false, trace);
    logitsOfRow(seq, n - 1, weights_.layers.back().moe);
    seq.length = start + n;
    check(k::setInt(seq.lengthOnDevice, seq.length, stream_), "prefill");
}

void CudaLanguageModel::decode(SequenceState& seq)
{
    if (seq.length + 1 > seq.capacity)
        throw Error("the KV cache is full (" + std::to_string(seq.capacity) + " positions)");
    // The one-kernel step keeps one layer table per sequence, so one graph.
    const bool shortStep = k::shortDecodeGraphsEnabled() && !fusedStep() && seq.capacity > k::kDecodeClusterContext &&
                           seq.length + 1 <= k::kDecodeClusterContext;
    k::GraphExec& graph = seq.decodeGraphs[shortStep ? 0 : 1];
    if (!graph) {
        seq.graphCapacity = shortStep ? k::kDecodeClusterContext : seq.capacity;
        // One cooperative kernel for the whole step when asked and possible: its per-layer table
        // goes to the device before the capture.
        StepArgs step;
        const bool whole = fusedStep() && stepArgs(seq, step);
        if (whole) {
            // On the step's stream, after any earlier step that still reads the table.
            check(k::uploadDecodeStep(step.args, stream_), "decode step (fused): layer table");
            ++stepCaptures_;
        }
        check(k::captureBegin(stream_), "decode graph capture");
        try {
            if (whole) {
                check(k::decodeStep(step.args, stream_), "decode step (fused)");
            } else {
                const bool normed = k::embedNormEnabled();
                if (normed)
                    check(k::embedRmsNorm(weights_.embed.data, seq.tokenOnDevice, 1, hidden_, h_, weights_.layers[0].inputNorm.data,
                                          config_.rmsNormEps, x_, act_, hidden_, stream_),
                          "embed_tokens + input_layernorm");
                else
                    embedTokens(seq.tokenOnDevice, 1, h_);
                forwardLayers(seq, 0, 1, true, nullptr, normed);
                if (runs(kStageLogits, true))
                    logitsOfRow(seq, 0, weights_.layers.back().moe);
                check(k::addInt(seq.lengthOnDevice, 1, stream_), "decode");
            }
        } catch (...) {
            k::GraphExec dropped = nullptr;
            (void)k::captureEnd(stream_, &dropped);
            k::graphDestroy(dropped);
            throw;
        }
        check(k::captureEnd(stream_, &graph), "decode graph capture");
        ++graphCaptures_;
    }
    check(k::graphLaunch(graph, stream_), "decode step");
    seq.length += 1;
    seq.hasLogits = true;
}

bool CudaLanguageModel::stepArgs(SequenceState& seq, StepArgs& step) const
{
    const int L = layerCount();
    step.moe.clear();
    step.mha.clear();
    step.mla.clear();
    for (int i = 0; i < L; ++i) {
        const float* nextNorm = i + 1 < L ? weights_.layers[i + 1].inputNorm.data : weights_.finalNorm.data;
        step.moe.push_back(moeDecodeArgs(i, nextNorm));
        if (config_.useMla)
            step.mla.push_back(mlaDecodeArgs(seq, i));
        else
            step.mha.push_back(mhaDecodeArgs(seq, i));
    }
    k::DecodeStepArgs& a = step.args;
    a.layers = L;
    a.mha = config_.useMla ? nullptr : step.mha.data();
    a.mla = config_.useMla ? step.mla.data() : nullptr;
    a.moe = step.moe.data();
    a.embed = weights_.embed.data;
    a.token = seq.tokenOnDevice;
    a.inputNorm = weights_.layers[0].inputNorm.data;
    a.eps = config_.rmsNormEps;
    a.x = x_;
    a.residual = h_;
    a.hidden = hidden_;
    a.type = act_;
    a.lmHead = weights_.lmHead.data;
    a.vocab = vocab_;
    a.logits = seq.logits;
    a.lengthOnDevice = seq.lengthOnDevice;
    a.sync = moeSync_;
    const std::size_t bytes = k::decodeStepTableBytes(L, config_.useMla);
    if (seq.stepTable.bytes() < bytes)
        seq.stepTable = DeviceBuffer(bytes, "the decode step's layer table");
    a.layerTable = seq.stepTable.get();
    return k::decodeStepSupports(a);
}

void CudaLanguageModel::forwardLayers(SequenceState& seq, int start, int n, bool decode, LanguageTrace* trace, bool inputNormed)
{
    const int H = hidden_;
    const int L = layerCount();
    const std::size_t rowBytes = static_cast<std::size_t>(n) * H * sizeof(float);
    const bool wantHidden = trace && trace->wantHiddenStates;
    auto appendRows = [&](std::vector<float>& dst, const float* src) {
        const std::size_t at = dst.size();
        dst.resize(at + static_cast<std::size_t>(n) * H);
        download(dst.data() + at, src, rowBytes, stream_);
    };
    if (wantHidden) {
        trace->hiddenStates.resize(L + 1);
        appendRows(trace->hiddenStates[0], h_);
    }
    // The MoE combine also writes the next layer's input norm (or the final norm) to x_. In decode
    // the router makes the post-attention norm itself. inputNormed: x_ already holds the first
    // layer's input norm (made with the embedding).
    for (int i = 0; i < L; ++i) {
        const LanguageLayerWeights& lw = weights_.layers[i];
        if (!inputNormed)
            check(k::rmsNorm(h_, H, n, H, lw.inputNorm.data, config_.rmsNormEps, x_, act_, H, stream_), "input_layernorm");
        if (decode && lw.moe && fusedLayer()) {
            // Attention half, MoE half and the next norm in one cooperative launch.
            const float* nextNorm = i + 1 < L ? weights_.layers[i + 1].inputNorm.data : weights_.finalNorm.data;
            const k::MoeDecodeArgs moeArgs = moeDecodeArgs(i, nextNorm);
            if (runs(kStageAttention, decode)) {
                if (config_.useMla) {
                    const k::MlaDecodeArgs attention = mlaDecodeArgs(seq, i);
                    check(k::decodeLayer(nullptr, &attention, moeArgs, stream_), "decode layer (fused)");
                } else {
                    const k::MhaDecodeArgs attention = mhaDecodeArgs(seq, i);
                    check(k::decodeLayer(&attention, nullptr, moeArgs, stream_), "decode layer (fused)");
                }
            }
            inputNormed = true;
            continue;
        }
        if (config_.useMla)
            attentionMla(seq, i, start, n, decode);
        else
            attentionMha(seq, i, start, n, decode);
        if (!(lw.moe && decode))
            check(k::rmsNorm(h_, H, n, H, lw.postNorm.data, config_.rmsNormEps, x_, act_, H, stream_), "post_attention_layernorm");
        if (lw.moe) {
            moe(i, n, decode, trace, i + 1 < L ? weights_.layers[i + 1].inputNorm.data : weights_.finalNorm.data);
            inputNormed = true;
        } else {
            if (runs(kStageDenseMlp, decode))
                denseMlp(lw.gateUp, lw.down, n, h_, 1.f);
            inputNormed = false;
        }
        if (wantHidden) {
            if (i + 1 < L)
                appendRows(trace->hiddenStates[i + 1], h_);
            else
                appendRows(trace->lastLayerOutput, h_);
        }
    }
    if (wantHidden) {
        check(k::rmsNorm(h_, H, n, H, weights_.finalNorm.data, config_.rmsNormEps, sharedOut_, k::DType::F32, H, stream_), "norm");
        appendRows(trace->hiddenStates[L], sharedOut_);
    }
}

// The arguments the two cooperative attention kernels (k::MhaDecodeArgs, k::MlaDecodeArgs) share.
template <typename Args>
void CudaLanguageModel::fillFusedAttention(Args& f, const SequenceState& seq, int layer) const
{
    f.x = x_;
    f.type = act_;
    f.hidden = hidden_;
    f.heads = heads_;
    f.cos = cos_;
    f.sin = sin_;
    f.capacity = seq.graphCapacity;
    f.lengthOnDevice = seq.lengthOnDevice;
    f.partials = attentionPartials_;
    f.outWeight = weights_.layers[layer].attnOut.data;
    f.residual = h_;
    f.scale = attentionScale_;
    f.sync = moeSync_;
}

k::MhaDecodeArgs CudaLanguageModel::mhaDecodeArgs(const SequenceState& seq, int layer) const
{
    k::MhaDecodeArgs f;
    fillFusedAttention(f, seq, layer);
    f.kvHeads = kvHeads_;
    f.headDim = headDim_;
    f.qkvWeight = weights_.layers[layer].attnIn.data;
    f.keys = seq.keys[layer];
    f.values = seq.values[layer];
    f.q = q_;
    return f;
}

k::MlaDecodeArgs CudaLanguageModel::mlaDecodeArgs(const SequenceState& seq, int layer) const
{
    const LanguageLayerWeights& lw = weights_.layers[layer];
    k::MlaDecodeArgs f;
    fillFusedAttention(f, seq, layer);
    f.nope = nope_;
    f.rope = rope_;
    f.rank = rank_;
    f.vDim = vDim_;
    f.inWeight = lw.attnIn.data;
    f.kvNorm = lw.kvNorm.data;
    f.kvEps = 1e-6f;  // kv_a_layernorm is built with the RMSNorm default, not rms_norm_eps
    f.cache = seq.keys[layer];
    f.proj = proj_;
    f.qcat = q_;
    f.wUkT = lw.wUkT.data;
    f.wUv = lw.wUv.data;
    f.ctx = ctx_;
    return f;
}

void CudaLanguageModel::attentionMha(SequenceState& seq, int layer, int start, int n, bool decode)
{
    const LanguageLayerWeights& lw = weights_.layers[layer];
    const std::size_t a = k::dtypeBytes(act_);
    const int hd = headDim_, qs = heads_ * hd, kvw = kvHeads_ * hd, group = heads_ / kvHeads_;
    if (decode && fusedAttention_) {
        if (runs(kStageAttention, decode))
            check(k::mhaDecode(mhaDecodeArgs(seq, layer), stream_), "attention (fused decode)");
        return;
    }
    if (runs(kStageAttentionInput, decode))
        linear(x_, hidden_, n, lw.attnIn, proj_, act_, projWidth_);
    k::MhaPrepareArgs prep;
    prep.qkv = proj_;
    prep.qkvType = act_;
    prep.n = n;
    prep.heads = heads_;
    prep.kvHeads = kvHeads_;
    prep.headDim = hd;
    prep.start = start;
    prep.startOnDevice = decode ? seq.lengthOnDevice : nullptr;
    prep.q = q_;
    prep.qType = act_;
    prep.keys = seq.keys[layer];
    prep.values = seq.values[layer];
    prep.cacheType = act_;
    prep.rotary = {cos_, sin_, hd};
    // Decode: the attention launch takes the rotary embedding and cache write with it
    // (DecodeAttentionArgs::fusePrepare; where its kernel cannot, it launches mhaPrepare first).
    const bool prepareInAttention = decode && runs(kStagePrepare, decode) && runs(kStageAttention, decode);
    if (runs(kStagePrepare, decode) && !prepareInAttention)
        check(k::mhaPrepare(prep, stream_), "rotary embedding");
    if (decode) {
        k::DecodeAttentionArgs d;
        d.q = q_;
        d.qType = act_;
        d.qHeadStride = hd;
        d.heads = heads_;
        d.headsPerKv = group;
        d.keys = seq.keys[layer];
        d.keyLd = kvw;
        d.keyHeadStride = hd;
        d.keyDim = hd;
        d.values = seq.values[layer];
        d.valueLd = kvw;
        d.valueHeadStride = hd;
        d.valueDim = hd;
        d.cacheType = act_;
        d.lengthOnDevice = seq.lengthOnDevice;
        d.capacity = seq.graphCapacity;
        d.scale = attentionScale_;
        d.workspace = attnWorkspace_;
        d.counters = attentionCounters_;
        d.out = ctx_;
        d.outType = act_;
        d.outHeadStride = hd;
        d.fusePrepare = prepareInAttention;
        d.prepare = prep;
        if (runs(kStageAttention, decode))
            check(k::decodeAttention(d, stream_), "decode attention");
    } else if (act_ == k::DType::BF16 && k::flashAttentionSupports(hd)) {
        // Fast mode: fused causal attention over the cache (positions [0, start + n)).
        k::FlashAttentionArgs fa;
        fa.q = q_;
        fa.ldq = qs;
        fa.qHeadStride = hd;
        fa.k = seq.keys[layer];
        fa.ldk = kvw;
        fa.kHeadStride = hd;
        fa.v = seq.values[layer];
        fa.ldv = kvw;
        fa.vHeadStride = hd;
        fa.o = ctx_;
        fa.ldo = qs;
        fa.oHeadStride = hd;
        fa.heads = heads_;
        fa.headsPerKv = group;
        fa.queries = n;
        fa.keys = start + n;
        fa.headDim = hd;
        fa.causal = true;
        fa.qPosition0 = start;
        fa.scale = attentionScale_;
        check(k::flashAttention(fa, stream_), "attention (fused)");
    } else {
        const int nb = static_cast<int>(std::clamp<std::size_t>(scoreFloats_ / (static_cast<std::size_t>(heads_) * (start + n)), 1,
                                                                static_cast<std::size_t>(n)));
        for (int t0 = 0; t0 < n; t0 += nb) {
            const int m = std::min(nb, n - t0);
            const int ctx = start + t0 + m;
            for (int j = 0; j < group; ++j) {
                k::GemmArgs s;
                s.M = m;
                s.N = ctx;
                s.K = hd;
                s.A = static_cast<const std::uint8_t*>(q_) + (static_cast<std::size_t>(t0) * qs + j * hd) * a;
                s.aType = act_;
                s.lda = qs;
                s.strideA = static_cast<std::int64_t>(group) * hd;
                s.B = seq.keys[layer];
                s.bType = act_;
                s.bLayout = k::BLayout::NK;
                s.ldb = kvw;
                s.strideB = hd;
                s.C = scores_;
                s.cType = k::DType::F32;
                s.ldc = ctx;
                s.strideC = static_cast<std::int64_t>(m) * ctx;
                s.batch = kvHeads_;
                s.math = math_;
                check(k::gemm(gemm_, s, stream_), "attention scores");
                k::SoftmaxArgs sm;
                sm.scores = scores_;
                sm.rows = kvHeads_ * m;
                sm.context = ctx;
                sm.ld = ctx;
                sm.firstVisible = start + t0;
                sm.tokenDiv = 1;
                sm.tokenMod = m;
                sm.scale = attentionScale_;
                sm.out = probs_;
                sm.outType = act_;
                sm.ldo = ctx;
                check(k::causalSoftmax(sm, stream_), "attention softmax");
                k::GemmArgs pv;
                pv.M = m;
                pv.N = hd;
                pv.K = ctx;
                pv.A = probs_;
                pv.aType = act_;
                pv.lda = ctx;
                pv.strideA = static_cast<std::int64_t>(m) * ctx;
                pv.B = seq.values[layer];
                pv.bType = act_;
                pv.bLayout = k::BLayout::KN;
                pv.ldb = kvw;
                pv.strideB = hd;
                pv.C = static_cast<std::uint8_t*>(ctx_) + (static_cast<std::size_t>(t0) * qs + j * hd) * a;
                pv.cType = act_;
                pv.ldc = qs;
                pv.strideC = static_cast<std::int64_t>(group) * hd;
                pv.batch = kvHeads_;
                pv.math = math_;
                check(k::gemm(gemm_, pv, stream_), "attention values");
            }
        }
    }
    if (runs(kStageOutput, decode))
        linear(ctx_, qs, n, lw.attnOut, h_, k::DType::F32, hidden_, 1.f);
}

void CudaLanguageModel::attentionMla(SequenceState& seq, int layer, int start, int n, bool decode)
{
    const LanguageLayerWeights& lw = weights_.layers[layer];
    const std::size_t a = k::dtypeBytes(act_);
    const int width = rank_ + rope_, qhd = nope_ + rope_;
    if (decode && fusedAttention_) {
        if (runs(kStageAttention, decode))
            check(k::mlaDecode(mlaDecodeArgs(seq, layer), stream_), "mla attention (fused decode)");
        return;
    }
    if (runs(kStageAttentionInput, decode))
        linear(x_, hidden_, n, lw.attnIn, proj_, act_, projWidth_);
    k::MlaPrepareArgs prep;
    prep.fused = proj_;
    prep.fusedType = act_;
    prep.n = n;
    prep.heads = heads_;
    prep.nope = nope_;
    prep.rope = rope_;
    prep.rank = rank_;
    prep.kvNorm = lw.kvNorm.data;
    prep.eps = 1e-6f;  // kv_a_layernorm is built with the RMSNorm default, not rms_norm_eps
    prep.start = start;
    prep.startOnDevice = decode ? seq.lengthOnDevice : nullptr;
    prep.qcat = q_;
    prep.qType = act_;
    prep.cache = seq.keys[layer];
    prep.cacheType = act_;
    prep.rotary = {cos_, sin_, rope_};
    // Decode: the attention launch makes the cache row and the queries' rotary columns itself
    // (DecodeAttentionArgs::fusePrepare; where its kernel cannot, it launches mlaPrepare first),
    // after the absorption, which reads only the projection.
    const bool prepareInAttention = decode && runs(kStagePrepare, decode) && runs(kStageAttention, decode);
    if (runs(kStagePrepare, decode) && !prepareInAttention)
        check(k::mlaPrepare(prep, stream_), "mla rotary embedding and latent cache");
    if (decode) {
        k::GemvArgs absorb;
        absorb.N = rank_;
        absorb.K = nope_;
        absorb.batch = heads_;
        absorb.x = proj_;
        absorb.xType = act_;
        absorb.strideX = qhd;
        absorb.W = lw.wUkT.data;
        absorb.ldw = nope_;
        absorb.strideW = static_cast<std::int64_t>(rank_) * nope_;
        absorb.y = q_;
        absorb.yType = act_;
        absorb.strideY = width;
        if (runs(kStageAbsorb, decode))
            check(k::gemv(absorb, stream_), "mla query absorption");
        k::DecodeAttentionArgs d;
        d.q = q_;
        d.qType = act_;
        d.qHeadStride = width;
        d.heads = heads_;
        d.headsPerKv = heads_;
        d.keys = seq.keys[layer];
        d.keyLd = width;
        d.keyHeadStride = 0;
        d.keyDim = width;
        d.values = seq.keys[layer];
        d.valueLd = width;
        d.valueHeadStride = 0;
        d.valueDim = rank_;
        d.cacheType = act_;
        d.lengthOnDevice = seq.lengthOnDevice;
        d.capacity = seq.graphCapacity;
        d.scale = attentionScale_;
        d.workspace = attnWorkspace_;
        d.out = olat_;
        d.outType = act_;
        d.outHeadStride = rank_;
        d.fusePrepare = prepareInAttention;
        d.latentPrepare = prep;
        if (runs(kStageAttention, decode))
            check(k::decodeAttention(d, stream_), "mla decode attention");
        k::GemvArgs expand;
        expand.N = vDim_;
        expand.K = rank_;
        expand.batch = heads_;
        expand.x = olat_;
        expand.xType = act_;
        expand.strideX = rank_;
        expand.W = lw.wUv.data;
        expand.ldw = rank_;
        expand.strideW = static_cast<std::int64_t>(vDim_) * rank_;
        expand.y = ctx_;
        expand.yType = act_;
        expand.strideY = vDim_;
        if (runs(kStageExpand, decode))
            check(k::gemv(expand, stream_), "mla value expansion");
    } else if (mlaFlash_) {
        // Fast prefill in the expanded form: k_nope and v of every visible position from the
        // latent cache (kv_b_proj per head), k_pe / q_pe beside them, then the fused causal
        // attention over nope + rope columns (a third of the absorbed form's work at 2k tokens).
        const int ctx = start + n, kw = heads_ * qhd;
        k::GemmArgs kn;
        kn.M = ctx;
        kn.N = nope_;
        kn.K = rank_;
        kn.A = seq.keys[layer];
        kn.aType = act_;
        kn.lda = width;
        kn.strideA = 0;
        kn.B = lw.wUkT.data;
        kn.bType = k::DType::BF16;
        kn.bLayout = k::BLayout::KN;
        kn.ldb = nope_;
        kn.strideB = static_cast<std::int64_t>(rank_) * nope_;
        kn.C = kexp_;
        kn.cType = act_;
        kn.ldc = kw;
        kn.strideC = qhd;
        kn.batch = heads_;
        kn.math = math_;
        check(k::gemm(gemm_, kn, stream_), "mla key expansion");
        k::GemmArgs vv = kn;
        vv.N = vDim_;
        vv.B = lw.wUv.data;
        vv.bLayout = k::BLayout::NK;
        vv.ldb = rank_;
        vv.strideB = static_cast<std::int64_t>(vDim_) * rank_;
        vv.C = vexp_;
        vv.ldc = static_cast<std::int64_t>(heads_) * vDim_;
        vv.strideC = vDim_;
        check(k::gemm(gemm_, vv, stream_), "mla value expansion (prefill)");
        k::MlaPackArgs pack;
        pack.n = n;
        pack.ctx = ctx;
        pack.heads = heads_;
        pack.nope = nope_;
        pack.rope = rope_;
        pack.rank = rank_;
        pack.qcat = q_;
        pack.q = proj_;
        pack.ldq = projWidth_;
        pack.cache = seq.keys[layer];
        pack.keys = kexp_;
        pack.ldk = kw;
        check(k::mlaPrefillPack(pack, stream_), "mla rope columns");
        k::FlashAttentionArgs fa;
        fa.q = proj_;
        fa.ldq = projWidth_;
        fa.qHeadStride = qhd;
        fa.k = kexp_;
        fa.ldk = kw;
        fa.kHeadStride = qhd;
        fa.v = vexp_;
        fa.ldv = static_cast<std::int64_t>(heads_) * vDim_;
        fa.vHeadStride = vDim_;
        fa.o = ctx_;
        fa.ldo = fa.ldv;
        fa.oHeadStride = vDim_;
        fa.heads = heads_;
        fa.queries = n;
        fa.keys = ctx;
        fa.headDim = qhd;
        fa.valueDim = vDim_;
        fa.causal = true;
        fa.qPosition0 = start;
        fa.scale = attentionScale_;
        check(k::flashAttention(fa, stream_), "mla attention (fused)");
    } else {
        k::GemmArgs absorb;
        absorb.M = n;
        absorb.N = rank_;
        absorb.K = nope_;
        absorb.A = proj_;
        absorb.aType = act_;
        absorb.lda = projWidth_;
        absorb.strideA = qhd;
        absorb.B = lw.wUkT.data;
        absorb.bType = k::DType::BF16;
        absorb.ldb = nope_;
        absorb.strideB = static_cast<std::int64_t>(rank_) * nope_;
        absorb.C = q_;
        absorb.cType = act_;
        absorb.ldc = static_cast<std::int64_t>(heads_) * width;
        absorb.strideC = width;
        absorb.batch = heads_;
        absorb.math = math_;
        check(k::gemm(gemm_, absorb, stream_), "mla query absorption");
        const int nb = static_cast<int>(std::clamp<std::size_t>(scoreFloats_ / (static_cast<std::size_t>(heads_) * (start + n)), 1,
                                                                static_cast<std::size_t>(n)));
        for (int t0 = 0; t0 < n; t0 += nb) {
            const int m = std::min(nb, n - t0);
            const int ctx = start + t0 + m;
            const int rows = m * heads_;
            k::GemmArgs s;
            s.M = rows;
            s.N = ctx;
            s.K = width;
            s.A = static_cast<const std::uint8_t*>(q_) + static_cast<std::size_t>(t0) * heads_ * width * a;
            s.aType = act_;
            s.lda = width;
            s.B = seq.keys[layer];
            s.bType = act_;
            s.bLayout = k::BLayout::NK;
            s.ldb = width;
            s.C = scores_;
            s.cType = k::DType::F32;
            s.ldc = ctx;
            s.math = math_;
            check(k::gemm(gemm_, s, stream_), "mla attention scores");
            k::SoftmaxArgs sm;
            sm.scores = scores_;
            sm.rows = rows;
            sm.context = ctx;
            sm.ld = ctx;
            sm.firstVisible = start + t0;
            sm.tokenDiv = heads_;
            sm.scale = attentionScale_;
            sm.out = probs_;
            sm.outType = act_;
            sm.ldo = ctx;
            check(k::causalSoftmax(sm, stream_), "mla attention softmax");
            k::GemmArgs pv;
            pv.M = rows;
            pv.N = rank_;
            pv.K = ctx;
            pv.A = probs_;
            pv.aType = act_;
            pv.lda = ctx;
            pv.B = seq.keys[layer];
            pv.bType = act_;
            pv.bLayout = k::BLayout::KN;
            pv.ldb = width;
            pv.C = static_cast<std::uint8_t*>(olat_) + static_cast<std::size_t>(t0) * heads_ * rank_ * a;
            pv.cType = act_;
            pv.ldc = rank_;
            pv.math = math_;
            check(k::gemm(gemm_, pv, stream_), "mla attention values");
        }
        k::GemmArgs expand;
        expand.M = n;
        expand.N = vDim_;
        expand.K = rank_;
        expand.A = olat_;
        expand.aType = act_;
        expand.lda = static_cast<std::int64_t>(heads_) * rank_;
        expand.strideA = rank_;
        expand.B = lw.wUv.data;
        expand.bType = k::DType::BF16;
        expand.ldb = rank_;
        expand.strideB = static_cast<std::int64_t>(vDim_) * rank_;
        expand.C = ctx_;
        expand.cType = act_;
        expand.ldc = static_cast<std::int64_t>(heads_) * vDim_;
        expand.strideC = vDim_;
        expand.batch = heads_;
        expand.math = math_;
        check(k::gemm(gemm_, expand, stream_), "mla value expansion");
    }
    if (runs(kStageOutput, decode))
        linear(ctx_, static_cast<std::int64_t>(heads_) * vDim_, n, lw.attnOut, h_, k::DType::F32, hidden_, 1.f);
}

void CudaLanguageModel::denseMlp(const DeviceMatrix& gateUp, const DeviceMatrix& down, int n, float* out, float beta)
{
    const int I = down.cols;
    if (n == 1) {
        // Decode: gate and up rows in one pass that writes silu(gate) · up.
        k::GemvArgs g;
        g.N = I;
        g.K = hidden_;
        g.x = x_;
        g.xType = act_;
        g.W = gateUp.data;
        g.ldw = hidden_;
        g.y = mlpAct_;
        g.yType = act_;
        g.gatedOutput = true;
        check(k::gemv(g, stream_), "mlp gate/up (gated gemv)");
    } else {
        linear(x_, hidden_, n, gateUp, gu_, act_, 2 * I);
        check(k::siluGate(gu_, act_, 2 * I, n, I, mlpAct_, act_, I, stream_), "mlp activation");
    }
    linear(mlpAct_, I, n, down, out, k::DType::F32, hidden_, beta);
}

k::RouteArgs CudaLanguageModel::routeArgs(int layer, int n) const
{
    const LanguageLayerWeights& lw = weights_.layers[layer];
    k::RouteArgs r;
    r.scores = router_;
    r.n = n;
    r.experts = experts_;
    r.k = topK_;
    r.routing = config_.topkMethod == TopkMethod::NoAuxTc ? k::Routing::NoAuxTc : k::Routing::Greedy;
    r.scoring = config_.scoringFunc == ScoringFunc::Sigmoid ? k::Scoring::Sigmoid : k::Scoring::Softmax;
    r.bias = lw.routerBias.data;
    r.groups = config_.nGroup;
    r.topkGroups = config_.topkGroup;
    r.normalize = config_.normTopkProb;
    r.scaling = static_cast<float>(config_.routedScalingFactor);
    r.sharedExperts = lw.sharedExperts;
    r.idx = idx_;
    r.weight = weight_;
    return r;
}

k::MoeDecodeArgs CudaLanguageModel::moeDecodeArgs(int layer, const float* nextNorm) const
{
    const LanguageLayerWeights& lw = weights_.layers[layer];
    k::MoeDecodeArgs f;
    f.residual = h_;
    f.postNorm = lw.postNorm.data;
    f.nextNorm = nextNorm;
    f.eps = static_cast<float>(config_.rmsNormEps);
    f.hidden = hidden_;
    f.normOut = x_;
    f.xType = act_;
    f.logits = router_;
    f.partials = moePartials_;
    f.sync = moeSync_;
    if (!lw.moe) {
        f.route.n = 1;
        f.route.sharedExperts = 1;  // no router: the dense MLP is the one "shared expert"
        f.inter = lw.gateUp.rows / 2;
        f.gateUp = lw.gateUp.data;
        f.down = lw.down.data;
        f.act = mlpAct_;  // the dense MLP's own activation buffer
        return f;
    }
    f.route = routeArgs(layer, 1);
    f.inter = moeInter_;
    f.routerWeight = lw.router.data;
    f.gateUp = lw.expertsGateUp.data;
    f.down = lw.expertsDown.data;
    f.act = eact_;
    if (layer + 1 < layerCount()) {
        const DeviceMatrix& next = weights_.layers[layer + 1].attnIn;
        f.prefetchNext = next.data;
        f.prefetchNextBytes = static_cast<std::size_t>(next.rows) * next.cols * 2;
    }
    return f;
}

void CudaLanguageModel::moe(int layer, int n, bool decode, LanguageTrace* trace, const float* nextNorm)
{
    const LanguageLayerWeights& lw = weights_.layers[layer];
    const int H = hidden_, I = moeInter_, E = experts_, K = topK_, S = lw.sharedExperts;
    const int KS = K + S;  // routed experts, then the shared ones, per token
    const k::RouteArgs r = routeArgs(layer, n);
    if (decode && fusedMoe_) {
        if (runs(kStageRouter, decode))
            check(k::moeDecode(moeDecodeArgs(layer, nextNorm), stream_), "moe layer (fused decode)");
        return;  // decode steps keep no trace
    }
    if (decode) {
        k::RouteDecodeArgs rd;
        rd.residual = h_;
        rd.normWeight = lw.postNorm.data;
        rd.eps = static_cast<float>(config_.rmsNormEps);
        rd.hidden = H;
        rd.routerWeight = lw.router.data;
        rd.normOut = x_;
        rd.xType = act_;
        rd.logits = router_;
        rd.counter = routeCounter_;
        if (runs(kStageRouter, decode))
            check(k::routeDecode(r, rd, stream_), "post_attention_layernorm + moe router");
    } else {
        linear(x_, H, n, lw.router, router_, k::DType::F32, E);
        check(k::routeTokens(r, stream_), "moe router");
    }
    if (decode) {
        // Only the chosen experts' rows are read: gemv batches indexed by the routing result.
        k::GemvArgs gu;
        gu.N = I;
        gu.K = H;
        gu.batch = KS;
        gu.x = x_;
        gu.xType = act_;
        gu.strideX = 0;
        gu.W = lw.expertsGateUp.data;
        gu.ldw = H;
        gu.strideW = static_cast<std::int64_t>(2) * I * H;
        gu.batchIndex = idx_;
        gu.fixedFrom = K;  // the shared experts follow the routed ones
        gu.fixedBase = E;
        gu.y = eact_;
        gu.yType = act_;
        gu.strideY = I;
        gu.gatedOutput = true;
        // gate/up lets the down product start once the routing is known, and the down product
        // copies the chosen experts' rows while gate/up still runs where its grid is small (see
        // GemvArgs::indexEarly).
        const bool prefetch = runs(kStageExpertsGateUp, decode) && runs(kStageRouter, decode);
        gu.triggerLate = prefetch;
        if (runs(kStageExpertsGateUp, decode))
            check(k::gemv(gu, stream_), "moe experts gate/up");
        k::GemvArgs dn;
        dn.N = H;
        dn.K = I;
        dn.batch = KS;
        dn.x = eact_;
        dn.xType = act_;
        dn.strideX = I;
        dn.W = lw.expertsDown.data;
        dn.ldw = I;
        dn.strideW = static_cast<std::int64_t>(H) * I;
        dn.batchIndex = idx_;
        dn.fixedFrom = K;
        dn.fixedBase = E;
        dn.y = eout_;
        dn.yType = k::DType::F32;
        dn.strideY = H;
        dn.indexEarly = prefetch;
        if (runs(kStageExpertsDown, decode))
            check(k::gemv(dn, stream_), "moe experts down");
    } else {
        k::DispatchArgs d;
        d.idx = idx_;
        d.n = n;
        d.k = KS;
        d.experts = E + S;
        d.tileRows = k::groupedTileRows(math_);
        d.counts = counts_;
        d.fill = fill_;
        d.offsets = offsets_;
        d.tileOffsets = tileOffsets_;
        d.pairRows = slots_;
        d.x = x_;
        d.xType = act_;
        d.width = H;
        d.gathered = gathered_;
        check(k::dispatchTokens(d, stream_), "moe dispatch");
        k::GroupedGemmArgs gu;
        gu.N = 2 * I;
        gu.K = H;
        gu.groups = E + S;
        gu.maxRows = n * KS;
        gu.A = gathered_;
        gu.aType = act_;
        gu.lda = H;
        gu.B = lw.expertsGateUp.data;
        gu.ldb = H;
        gu.strideB = static_cast<std::int64_t>(2) * I * H;
        gu.C = egu_;
        gu.cType = act_;
        gu.ldc = 2 * I;
        gu.offsets = offsets_;
        gu.tileOffsets = tileOffsets_;
        gu.math = math_;
        // silu(gate)·up straight from the product's accumulators where the tensor-core kernel can
        // (the same bits as the product then siluGate, without the gate/up rows in memory).
        k::GroupedGemmArgs gated = gu;
        gated.N = I;
        gated.C = eact_;
        gated.ldc = I;
        gated.gatedOutput = true;
        if (k::gatedExpertsEnabled() && k::groupedGemmGates(gated)) {
            check(k::groupedGemm(gated, stream_), "moe experts gate/up + activation");
        } else {
            check(k::groupedGemm(gu, stream_), "moe experts gate/up");
            check(k::siluGate(egu_, act_, 2 * I, n * KS, I, eact_, act_, I, stream_), "moe experts activation");
        }
        k::GroupedGemmArgs dn = gu;
        dn.N = H;
        dn.K = I;
        dn.A = eact_;
        dn.lda = I;
        dn.B = lw.expertsDown.data;
        dn.ldb = I;
        dn.strideB = static_cast<std::int64_t>(H) * I;
        // The experts' outputs in the activation type (bf16 in fast mode, as each expert's output
        // is a bf16 tensor in the reference); the combine sums them in fp32.
        dn.C = eout_;
        dn.cType = act_;
        dn.ldc = H;
        check(k::groupedGemm(dn, stream_), "moe experts down");
    }
    k::CombineArgs c;
    c.expertOut = eout_;
    c.expertType = decode ? k::DType::F32 : act_;
    c.pairRows = decode ? nullptr : slots_;
    c.weight = weight_;
    c.n = n;
    c.k = KS;
    c.width = H;
    c.residual = h_;
    c.normWeight = nextNorm;
    c.normEps = config_.rmsNormEps;
    c.normOut = x_;
    c.normType = act_;
    if (runs(kStageExpertsDown, decode))
        check(k::combineExperts(c, stream_), "moe combine");
    if (trace && trace->wantRouting) {
        // Rows of later prefill chunks are appended to the same MoE layer's list; the shared
        // experts' entries are left out.
        int ordinal = 0;
        for (int i = 0; i < layer; ++i)
            ordinal += weights_.layers[i].moe ? 1 : 0;
        if (static_cast<int>(trace->moeTopkIdx.size()) <= ordinal) {
            trace->moeTopkIdx.resize(ordinal + 1);
            trace->moeTopkWeight.resize(ordinal + 1);
        }
        std::vector<std::int32_t> idx(static_cast<std::size_t>(n) * KS);
        std::vector<float> w(idx.size());
        download(idx.data(), idx_, idx.size() * sizeof(std::int32_t), stream_);
        download(w.data(), weight_, w.size() * sizeof(float), stream_);
        auto& ti = trace->moeTopkIdx[ordinal];
        auto& tw = trace->moeTopkWeight[ordinal];
        for (int t = 0; t < n; ++t) {
            ti.insert(ti.end(), idx.begin() + static_cast<std::ptrdiff_t>(t) * KS, idx.begin() + static_cast<std::ptrdiff_t>(t) * KS + K);
            tw.insert(tw.end(), w.begin() + static_cast<std::ptrdiff_t>(t) * KS, w.begin() + static_cast<std::ptrdiff_t>(t) * KS + K);
        }
    }
}

void CudaLanguageModel::logitsOfRow(SequenceState& seq, int row, bool normed)
{
    // normed: x_ already holds the final RMSNorm of every row (fused into the last MoE combine).
    const std::size_t a = k::dtypeBytes(act_);
    const void* x = static_cast<const std::uint8_t*>(x_) + (normed ? static_cast<std::size_t>(row) * hidden_ * a : 0);
    if (!normed)
        check(k::rmsNorm(h_ + static_cast<std::size_t>(row) * hidden_, hidden_, 1, hidden_, weights_.finalNorm.data,
                         config_.rmsNormEps, x_, act_, hidden_, stream_),
              "norm");
    k::GemvArgs g;
    g.N = vocab_;
    g.K = hidden_;
    g.x = x;
    g.xType = act_;
    g.W = weights_.lmHead.data;
    g.ldw = hidden_;
    g.y = seq.logits;
    g.yType = k::DType::F32;
    check(k::gemv(g, stream_), "lm_head");
    seq.hasLogits = true;
}

}  // namespace tessera::cuda
