#include "backend/cuda/cuda_backend.h"

#include "core/error.h"
#include "runtime/image_layout.h"

#include "tessera_kernels/device_info.h"
#include "tessera_kernels/elementwise.h"
#include "tessera_kernels/sampling.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace tessera::cuda {

namespace {

// CUDA context, cuBLAS workspace and allocator slack that the plan keeps free.
constexpr std::size_t kReserveBytes = std::size_t(512) << 20;

class CudaEncodedImage final : public EncodedImage {
public:
    DeviceBuffer rows;  // [tokens, hidden] F32
    int tokens = 0;
    int tokenCount() const override { return tokens; }
};

class CudaSequence final : public Sequence {
public:
    CudaSequence(std::unique_ptr<SequenceState> s, k::Stream stream) : state(std::move(s)), stream_(stream) {}
    int length() const override { return state->length; }
    int capacity() const override { return state->capacity; }
    void truncate(int length) override
    {
        if (length < 0 || length > state->length)
            throw Error("cannot truncate a KV cache of " + std::to_string(state->length) + " positions to " +
                        std::to_string(length));
        state->length = length;
        state->hasLogits = false;  // the last position's logits are gone with it
        check(k::setInt(state->lengthOnDevice, length, stream_), "truncate");
    }
    std::unique_ptr<SequenceState> state;

private:
    k::Stream stream_;
};

int maxTilesPerImage(const ModelConfig& config, const ProcessorConfig& processor)
{
    const int size = config.vision.imageSize;
    int most = 1;
    const auto& candidates = processor.candidateResolutions.empty() ? config.candidateResolutions : processor.candidateResolutions;
    for (const auto& r : candidates)
        if (size > 0)
            most = std::max(most, (r.width / size) * (r.height / size));
    return 1 + most;
}

k::MathMode mathOf(const CudaBackendOptions& o) { return o.math; }

}  // namespace

std::string MemoryPlan::describe() const
{
    return "weights " + mib(weights) + " + KV cache for " + std::to_string(context) + " positions " + mib(kvCache) +
           " + workspace " + mib(workspace) + " + reserve " + mib(reserve) + " = " + mib(needed()) + "; " + mib(freeBytes) +
           " free of " + mib(totalBytes) + " on " + gpu;
}

MemoryPlan CudaBackend::planMemory(const ModelConfig& config, const ProcessorConfig& processor, const CudaBackendOptions& options)
{
    const auto gpus = kernels::queryGpus();
    if (gpus.gpus.empty())
        throw Error("no CUDA GPU available (" + gpus.problem + "); use --backend cpu");
    if (options.device < 0 || options.device >= static_cast<int>(gpus.gpus.size()))
        throw Error("GPU " + std::to_string(options.device) + " does not exist (" + std::to_string(gpus.gpus.size()) + " found)");
    check(k::setDevice(options.device), "select GPU");
    MemoryPlan plan;
    plan.gpu = gpus.gpus[options.device].name;
    plan.context = options.planContext > 0 ? options.planContext : config.language.maxPositionEmbeddings;
    auto shapes = DeviceWeights::shapesOnly(config);
    plan.weights = shapes->bytes();
    k::Stream stream = nullptr;
    check(k::streamCreate(&stream), "stream");
    try {
        CudaLanguageModel lm(config, *shapes, mathOf(options), stream, nullptr, options.prefillChunk,
                             config.language.maxPositionEmbeddings);
        CudaVision vision(config, *shapes, processor.imageMean, processor.imageStd, mathOf(options), stream, nullptr,
                          maxTilesPerImage(config, processor));
        plan.kvCache = lm.cacheBytes(plan.context);
        const int vocab = static_cast<int>(config.language.vocabSize);
        plan.workspace = std::max(lm.workspaceBytes(), vision.workspaceBytes()) + k::samplingWorkspaceBytes(vocab) +
                         static_cast<std::size_t>(vocab) * 8 + (std::size_t(1) << 20);
    } catch (...) {
        k::streamDestroy(stream);
        throw;
    }
    k::streamDestroy(stream);
    plan.reserve = kReserveBytes;
    check(k::memoryInfo(plan.freeBytes, plan.totalBytes), "memory query");
    return plan;
}

CudaBackend::CudaBackend(const ModelConfig& config, const WeightMap& weights, const ProcessorConfig& processor,
                         const CudaBackendOptions& options, const std::function<void(double)>& progress)
    : config_(config), options_(options)
{
    initialise(config, processor, &weights, 0, progress);
}

CudaBackend::CudaBackend(const ModelConfig& config, std::uint64_t randomSeed, const ProcessorConfig& processor,
                         const CudaBackendOptions& options)
    : config_(config), options_(options)
{
    initialise(config, processor, nullptr, randomSeed, {});
}

void CudaBackend::initialise(const ModelConfig& config, const ProcessorConfig& processor, const WeightMap* weights,
                             std::uint64_t seed, const std::function<void(double)>& progress)
{
    plan_ = planMemory(config, processor, options_);
    gpuName_ = plan_.gpu;
    if (!plan_.fits())
        throw Error("the model does not fit on the GPU: it needs " + plan_.describe() +
                    ". Close other GPU programs, choose a smaller model, or use --backend cpu");
    try {
        check(k::streamCreate(&stream_), "stream");
        check(k::gemmContextCreate(&gemm_, stream_), "cuBLAS");
        weights_ = weights ? DeviceWeights::upload(config, *weights, stream_, progress) : DeviceWeights::random(config, seed, stream_);
        language_ = std::make_unique<CudaLanguageModel>(config, *weights_, options_.math, stream_, gemm_, options_.prefillChunk,
                                                        config.language.maxPositionEmbeddings);
        language_->setFusedMoeDecode(options_.fusedMoeDecode);
        language_->setFusedAttentionDecode(options_.fusedAttentionDecode);
        language_->setFusedLayerDecode(options_.fusedLayerDecode);
        language_->setFusedStepDecode(options_.fusedStepDecode);
        vision_ = std::make_unique<CudaVision>(config, *weights_, processor.imageMean, processor.imageStd, options_.math, stream_,
                                               gemm_, maxTilesPerImage(config, processor));
        workspace_ = DeviceBuffer(std::max(language_->workspaceBytes(), vision_->workspaceBytes()), "the workspace");
        language_->bindWorkspace(workspace_.get());
        vision_->bindWorkspace(workspace_.get());

        const int V = vocabSize();
        sortBytes_ = std::max(k::samplingWorkspaceBytes(V), k::argmaxWorkspaceBytes());
        Carver measure;
        measure.take<float>(V);
        measure.take<int>(V);
        measure.take<std::int32_t>(2);
        measure.takeBytes(sortBytes_);
        sampling_ = DeviceBuffer(measure.used(), "sampling");
        Carver c(sampling_.get());
        scratchLogits_ = c.take<float>(V);
        stamps_ = c.take<int>(V);
        sampled_ = c.take<std::int32_t>(2);  // the token, and whether the draw needs the sorted vocabulary
        sortWorkspace_ = c.takeBytes(sortBytes_);
        check(k::fillZero(stamps_, sizeof(int) * V, stream_), "sampling");
        pinnedToken_ = PinnedBuffer(2 * sizeof(std::int32_t));
        check(k::eventCreate(&tokenCopied_), "sampling event");
        synchronize();
    } catch (...) {
        // Members free their device memory; the handle and stream are freed here.
        language_.reset();
        vision_.reset();
        weights_.reset();
        k::gemmContextDestroy(gemm_);
        gemm_ = nullptr;
        k::eventDestroy(tokenCopied_);
        tokenCopied_ = nullptr;
        k::streamDestroy(stream_);
        stream_ = nullptr;
        throw;
    }
}

CudaBackend::~CudaBackend()
{
    if (stream_)
        (void)k::streamSynchronize(stream_);
    language_.reset();
    vision_.reset();
    k::gemmContextDestroy(gemm_);
    k::eventDestroy(tokenCopied_);
    k::streamDestroy(stream_);
}

namespace {
bool environmentSays(const char* name)
{
    const char* v = std::getenv(name);
    return v && std::strcmp(v, "1") == 0;
}
bool environmentRefuses(const char* name)
{
    const char* v = std::getenv(name);
    return v && std::strcmp(v, "0") == 0;
}
}  // namespace

bool fusedMoeDecodeByDefault() { return environmentSays("TESSERA_FUSED_MOE"); }
bool fusedAttentionDecodeByDefault() { return environmentSays("TESSERA_FUSED_ATTENTION"); }
bool fusedLayerDecodeByDefault() { return environmentSays("TESSERA_FUSED_LAYER"); }
bool fusedStepDecodeByDefault() { return environmentSays("TESSERA_FUSED_STEP"); }
bool candidateSamplingByDefault() { return !environmentRefuses("TESSERA_SAMPLE_CANDIDATES"); }

std::string CudaBackend::description() const
{
    return "CUDA on " + gpuName_ +
           (options_.math == k::MathMode::ExactFp32 ? ", fp32 compute on bf16 weights (exact mode)"
                                                    : ", bf16 weights and activations, fp32 accumulation");
}

int CudaBackend::vocabSize() const { return static_cast<int>(config_.language.vocabSize); }

int CudaBackend::maxContext() const { return config_.language.maxPositionEmbeddings; }

void CudaBackend::synchronize() { check(k::streamSynchronize(stream_), "synchronize"); }

std::shared_ptr<EncodedImage> CudaBackend::encodeImage(const ImageTiles& tiles, const std::atomic<bool>* cancel)
{
    const int n = tiles.count();
    if (tiles.tileSize != config_.vision.imageSize)
        throw Error("tiles of " + std::to_string(tiles.tileSize) + " pixels given to a vision tower of " +
                    std::to_string(config_.vision.imageSize));
    if (tiles.pixels.size() < tiles.tileBytes() * n)
        throw Error("internal error: image tiles are shorter than their count says");
    const int H = language_->hiddenSize();
    const int perTile = vision_->tokensPerTile();
    DeviceBuffer extra;
    float* projected = vision_->projectedBuffer();
    if (n > vision_->maxTiles()) {
        extra = DeviceBuffer(static_cast<std::size_t>(n) * perTile * H * sizeof(float), "image features");
        projected = extra.as<float>();
    }
    if (!vision_->encode(tiles.pixels.data(), n, projected, nullptr, cancel))
        return nullptr;
    const auto sources = imageTokenSources(tiles.widthTiles, tiles.heightTiles, vision_->tokensPerSide());
    DeviceBuffer sourcesDev(sources.size() * sizeof(std::int32_t), "the image layout");
    check(k::copyToDevice(sourcesDev.get(), sources.data(), sources.size() * sizeof(std::int32_t), stream_), "image layout");
    auto image = std::make_shared<CudaEncodedImage>();
    image->tokens = static_cast<int>(sources.size());
    image->rows = DeviceBuffer(sources.size() * H * sizeof(float), "image token rows");
    check(k::gatherImageRows(projected, sourcesDev.as<std::int32_t>(), image->tokens, H, weights_->imageNewline.data,
                             weights_->viewSeparator.data, image->rows.as<float>(), stream_),
          "image token layout");
    synchronize();  // the temporaries above are freed on return
    return image;
}

void CudaBackend::encodeTiles(const ImageTiles& tiles, std::vector<float>* visionOut, std::vector<float>* projectorOut)
{
    const int n = tiles.count();
    const int H = language_->hiddenSize();
    const std::size_t count = static_cast<std::size_t>(n) * vision_->tokensPerTile() * H;
    DeviceBuffer out(count * sizeof(float), "image features");
    vision_->encode(tiles.pixels.data(), n, out.as<float>(), visionOut, nullptr);
    if (projectorOut) {
        projectorOut->resize(count);
        check(k::copyToHost(projectorOut->data(), out.get(), count * sizeof(float), stream_), "projector output");
    }
    synchronize();
}

std::unique_ptr<Sequence> CudaBackend::createSequence(int capacity)
{
    return std::make_unique<CudaSequence>(language_->createSequence(capacity), stream_);
}

int CudaBackend::checkSegments(std::span<const PromptSegment> segments) const
{
    std::size_t total = 0;
    const int V = vocabSize();
    for (const auto& s : segments) {
        if (s.image) {
            const auto* img = dynamic_cast<const CudaEncodedImage*>(s.image);
            if (!img)
                throw Error("an image encoded by another backend was given to the CUDA backend");
            if (s.imageOffset < 0 || static_cast<std::size_t>(s.imageOffset) + s.tokens.size() > static_cast<std::size_t>(img->tokens))
                throw Error("internal error: image segment [" + std::to_string(s.imageOffset) + ", +" +
                            std::to_string(s.tokens.size()) + ") outside the image's " + std::to_string(img->tokens) + " tokens");
        } else {
            for (auto id : s.tokens)
                if (id < 0 || id >= V)
                    throw Error("token id " + std::to_string(id) + " is outside the vocabulary (0.." + std::to_string(V - 1) + ")");
        }
        total += s.tokens.size();
    }
    return static_cast<int>(total);
}

void CudaBackend::fillEmbeddings(std::span<const PromptSegment> segments, int from, int n, float* out)
{
    const int H = language_->hiddenSize();
    idsHost_.assign(static_cast<std::size_t>(n), 0);
    struct Run {
        int row, count;
        const CudaEncodedImage* image;
        int imageRow;
    };
    std::vector<Run> runs;
    int pos = 0;
    for (const auto& s : segments) {
        const int len = static_cast<int>(s.tokens.size());
        const int a = std::max(pos, from), b = std::min(pos + len, from + n);
        if (a < b) {
            if (s.image) {
                runs.push_back({a - from, b - a, static_cast<const CudaEncodedImage*>(s.image), s.imageOffset + (a - pos)});
            } else {
                for (int i = a; i < b; ++i)
                    idsHost_[i - from] = s.tokens[i - pos];
                runs.push_back({a - from, b - a, nullptr, 0});
            }
        }
        pos += len;
    }
    check(k::copyToDevice(language_->idsInput(), idsHost_.data(), idsHost_.size() * sizeof(std::int32_t), stream_), "token ids");
    for (const Run& r : runs) {
        float* dst = out + static_cast<std::size_t>(r.row) * H;
        if (r.image)
            check(k::copyOnDevice(dst, r.image->rows.as<float>() + static_cast<std::size_t>(r.imageRow) * H,
                                  static_cast<std::size_t>(r.count) * H * sizeof(float), stream_),
                  "image rows");
        else
            language_->embedTokens(language_->idsInput() + r.row, r.count, dst);
    }
}

std::vector<float> CudaBackend::embeddings(std::span<const PromptSegment> segments)
{
    const int total = checkSegments(segments);
    const int H = language_->hiddenSize();
    std::vector<float> out(static_cast<std::size_t>(total) * H);
    const int chunk = language_->prefillChunk();
    for (int from = 0; from < total; from += chunk) {
        const int n = std::min(chunk, total - from);
        fillEmbeddings(segments, from, n, language_->hiddenInput());
        check(k::copyToHost(out.data() + static_cast<std::size_t>(from) * H, language_->hiddenInput(),
                            static_cast<std::size_t>(n) * H * sizeof(float), stream_),
              "embeddings download");
        synchronize();
    }
    return out;
}

bool CudaBackend::prefillSegments(Sequence& sequence, std::span<const PromptSegment> segments, const std::atomic<bool>* cancel,
                                  LanguageTrace* trace)
{
    auto& seq = dynamic_cast<CudaSequence&>(sequence);
    const int total = checkSegments(segments);
    if (total == 0)
        return true;
    SequenceState& st = *seq.state;
    if (st.length + total > st.capacity)
        throw Error("the conversation needs " + std::to_string(st.length + total) + " positions but the context holds " +
                    std::to_string(st.capacity));
    const int start = st.length;
    const int chunk = language_->prefillChunk();
    try {
        for (int from = 0; from < total; from += chunk) {
            if (cancel && cancel->load()) {
                synchronize();
                seq.truncate(start);
                return false;
            }
            const int n = std::min(chunk, total - from);
            fillEmbeddings(segments, from, n, language_->hiddenInput());
            language_->prefill(st, n, trace);
            synchronize();  // surfaces device errors per chunk and keeps cancel responsive
        }
    } catch (...) {
        st.length = start;
        st.hasLogits = false;
        throw;
    }
    return true;
}

bool CudaBackend::append(Sequence& sequence, std::span<const PromptSegment> segments, const std::atomic<bool>* cancel)
{
    auto& seq = dynamic_cast<CudaSequence&>(sequence);
    if (segments.size() == 1 && !segments[0].image && segments[0].tokens.size() == 1) {
        // One token: the captured decode step.
        checkSegments(segments);
        check(k::setInt(seq.state->tokenOnDevice, segments[0].tokens[0], stream_), "decode");
        language_->decode(*seq.state);
        return true;
    }
    return prefillSegments(sequence, segments, cancel, nullptr);
}

void CudaBackend::appendTraced(Sequence& sequence, std::span<const PromptSegment> segments, LanguageTrace& trace)
{
    prefillSegments(sequence, segments, nullptr, &trace);
}

void CudaBackend::lastLogits(const Sequence& sequence, std::span<float> out)
{
    const auto& seq = dynamic_cast<const CudaSequence&>(sequence);
    if (!seq.state->hasLogits)
        throw Error("internal error: no position has been computed since the sequence changed");
    if (out.size() != static_cast<std::size_t>(vocabSize()))
        throw Error("internal error: logits buffer has the wrong size");
    check(k::copyToHost(out.data(), seq.state->logits, out.size() * sizeof(float), stream_), "logits download");
    synchronize();
}

// The logits a draw reads: the sequence's last position's, through the repetition penalty when one
// is set (into scratchLogits_).
const float* CudaBackend::drawLogits(const Sequence& sequence, std::span<const std::int32_t> seen, const SamplingParams& params)
{
    const auto& seq = dynamic_cast<const CudaSequence&>(sequence);
    if (!seq.state->hasLogits)
        throw Error("internal error: no position has been computed since the sequence changed");
    if (params.repetitionPenalty <= 0.f || !std::isfinite(params.repetitionPenalty))
        throw Error("repetition penalty must be a positive number");
    const int V = vocabSize();
    const float* logits = seq.state->logits;
    if (params.repetitionPenalty != 1.f) {
        // Upload only what was appended to `seen` since the last call (usually one token).
        std::size_t same = 0;
        if (seen.size() >= seenMirror_.size() &&
            std::equal(seenMirror_.begin(), seenMirror_.end(), seen.begin()))
            same = seenMirror_.size();
        if (seenIds_.bytes() < seen.size() * sizeof(std::int32_t)) {
            seenIds_ = DeviceBuffer(std::max<std::size_t>(seen.size(), 8192) * 2 * sizeof(std::int32_t), "sampling history");
            same = 0;
        }
        check(k::copyToDevice(seenIds_.as<std::int32_t>() + same, seen.data() + same, (seen.size() - same) * sizeof(std::int32_t),
                              stream_),
              "sampling history");
        seenMirror_.assign(seen.begin(), seen.end());
        if (++stamp_ == 0x7fffffff) {
            check(k::fillZero(stamps_, sizeof(int) * V, stream_), "sampling");
            stamp_ = 1;
        }
        check(k::repetitionPenalty(logits, scratchLogits_, V, seenIds_.as<std::int32_t>(), static_cast<int>(seen.size()),
                                   params.repetitionPenalty, stamps_, stamp_, stream_),
              "repetition penalty");
        logits = scratchLogits_;
    }
    return logits;
}

std::int32_t CudaBackend::sampleNext(const Sequence& sequence, std::span<const std::int32_t> seen, const SamplingParams& params,
                                     Rng& rng)
{
    const int V = vocabSize();
    const float* logits = drawLogits(sequence, seen, params);
    if (params.greedy()) {
        check(k::argmaxToken(logits, V, sampled_, sortWorkspace_, stream_), "greedy choice");
    } else {
        if (!(params.topP > 0.f && params.topP <= 1.f))
            throw Error("top-p must be in (0, 1]");
        k::SampleArgs s;
        s.logits = logits;
        s.vocab = V;
        s.temperature = params.temperature;
        s.topP = params.topP;
        s.topK = params.topK;
        s.uniform = rng.uniform();
        s.workspace = sortWorkspace_;
        s.workspaceBytes = sortBytes_;
        s.token = sampled_;
        s.needsSort = sampled_ + 1;
        if (options_.candidateSampling) {
            check(k::sampleToken(s, stream_), "sampling");
            check(k::copyToHost(pinnedToken_.as<std::int32_t>(), sampled_, 2 * sizeof(std::int32_t), stream_), "sampled token");
            synchronize();
            if (pinnedToken_.as<std::int32_t>()[1] == 0)
                return pinnedToken_.as<std::int32_t>()[0];
        }
        // The candidates near the maximum could not decide (a flat distribution): sort everything.
        ++sortedDraws_;
        check(k::sampleTokenSorted(s, stream_), "sampling (whole vocabulary sorted)");
    }
    check(k::copyToHost(pinnedToken_.as<std::int32_t>(), sampled_, sizeof(std::int32_t), stream_), "sampled token");
    synchronize();
    return *pinnedToken_.as<std::int32_t>();
}

int CudaBackend::replayDecodeSteps(Sequence& sequence, int steps)
{
    auto& seq = dynamic_cast<CudaSequence&>(sequence);
    const int run = std::max(0, std::min(steps, seq.state->capacity - seq.state->length));
    for (int i = 0; i < run; ++i)
        language_->decode(*seq.state);
    synchronize();
    return run;
}

Backend::Step CudaBackend::sampleAndAppend(Sequence& sequence, std::span<const std::int32_t> seen, const SamplingParams& params, Rng& rng)
{
    auto& seq = dynamic_cast<CudaSequence&>(sequence);
    // A draw decides on the host whether it needs the whole vocabulary sorted; a full sequence takes
    // no position. Both as sampleNext() then append().
    if (!params.greedy() || seq.state->length >= seq.state->capacity)
        return Backend::sampleAndAppend(sequence, seen, params, rng);
    // Greedy: the choice goes straight into the sequence's input token (and into pinned memory,
    // where the host reads it), the decode step is queued behind it, and the host waits for the
    // token only, not for the step.
    const float* logits = drawLogits(sequence, seen, params);
    std::int32_t* host = pinnedToken_.as<std::int32_t>();
    const bool direct = k::argmaxToHostEnabled();
    check(k::argmaxToken(logits, vocabSize(), seq.state->tokenOnDevice, sortWorkspace_, stream_, direct ? host : nullptr), "greedy choice");
    if (!direct)
        check(k::copyToHost(host, seq.state->tokenOnDevice, sizeof(std::int32_t), stream_), "sampled token");
    check(k::eventRecord(tokenCopied_, stream_), "sampled token");
    language_->decode(*seq.state);
    check(k::eventSynchronize(tokenCopied_), "sampled token");
    return {*host, true};
}

}  // namespace tessera::cuda
