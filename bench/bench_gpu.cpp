// tessera-bench: the CUDA backend at the real DeepSeek-VL2 shapes with random bf16 weights made
// on the GPU (no files needed), or a real model folder (--model DIR). Prints one JSON document:
// vision ms per tile, time to first token for one 1152x1152 image (10 tiles) plus a question,
// prefill tokens/s, decode tokens/s at 128 / 1024 / 3000 positions of context, peak GPU memory,
// and decode as a fraction of the HBM roofline (activated bytes per token over 4.8 TB/s).
#include "model/config.h"

#if TESSERA_HAVE_CUDA_BACKEND
#include "backend/cuda/cuda_backend.h"
#include "runtime/model.h"
#include "tessera_kernels/attention.h"
#include "tessera_kernels/elementwise.h"
#include "tessera_kernels/gemm.h"
#include "tessera_kernels/norm.h"
#include "tessera_kernels/runtime.h"
#include "tessera_kernels/sampling.h"
#include "tessera_kernels/trace.h"
#endif

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <vector>

using namespace tessera;
using Clock = std::chrono::steady_clock;

namespace {

constexpr double kHbmBytesPerSecond = 4.8e12;  // H200 datasheet

double secondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

// bf16 bytes of the weights one decode token reads: attention, the routed experts it uses, the
// shared experts, dense MLPs, router, lm_head and one embedding row.
double activatedWeightBytes(const ModelConfig& c)
{
    const auto& l = c.language;
    const double H = l.hiddenSize, heads = l.numAttentionHeads;
    double b = 0;
    for (int i = 0; i < l.numHiddenLayers; ++i) {
        if (l.useMla) {
            const double qhd = l.qkNopeHeadDim + l.qkRopeHeadDim;
            b += H * (heads * qhd + l.kvLoraRank + l.qkRopeHeadDim);                       // q | kv_a
            b += heads * (l.qkNopeHeadDim + l.vHeadDim) * l.kvLoraRank;                  // kv_b
            b += heads * l.vHeadDim * H;                                                   // o_proj
        } else {
            const double hd = l.headDim();
            b += H * hd * (heads + 2.0 * l.numKeyValueHeads) + heads * hd * H;
        }
        if (l.isMoeLayer(i)) {
            b += H * l.nRoutedExperts.value_or(0);
            b += 3.0 * H * l.moeIntermediateSize * (l.numExpertsPerTok + l.nSharedExperts.value_or(0));
        } else {
            b += 3.0 * H * l.intermediateSize;
        }
    }
    b += static_cast<double>(l.vocabSize) * H + H;
    return 2.0 * b;
}

double kvBytesPerToken(const ModelConfig& c, int context)
{
    const auto& l = c.language;
    const double perPos = l.useMla ? (l.kvLoraRank + l.qkRopeHeadDim) : 2.0 * l.numKeyValueHeads * l.headDim();
    return 2.0 * perPos * context * l.numHiddenLayers;
}

#if TESSERA_HAVE_CUDA_BACKEND

std::size_t usedGpuBytes()
{
    std::size_t freeBytes = 0, total = 0;
    cuda::check(kernels::memoryInfo(freeBytes, total), "memory query");
    return total - freeBytes;
}

struct Options {
    std::vector<std::string> models = {"tiny", "small", "base"};
    std::string folder;
    std::string configs = std::string(TESSERA_SOURCE_DIR) + "/tests/data/configs";
    int decodeSteps = 64;
    std::vector<int> contexts = {128, 1024, 3000};  // decode figures at these prompt lengths
    int repeats = 3;
    bool kernels = true;
    bool decodeOnly = false;  // skip the image, time to first token and prefill figures
    int profileSteps = 0;     // decode steps at 1024 context bracketed for `ncu --profile-from-start off`
    bool profileTtft = false; // likewise one image encode and prefill (after the timed ones)
    bool stageCosts = false;  // time decode at 1024 without each stage in turn
    int traceSteps = 0;       // decode steps at 1024 context traced by the kernels themselves
};

// Which decode paths that are not yet the default ran (see the README's Engines section).
void noteFusedPaths(const cuda::CudaBackend& be, nlohmann::json& out)
{
    out["fused_moe_decode"] = be.fusedMoeDecode();
    out["fused_attention_decode"] = be.fusedAttentionDecode();
    out["fused_layer_decode"] = be.fusedLayerDecode();
    out["fused_step_decode_captures"] = be.decodeStepKernelCaptures();
}

// Token ids past the special ones, for prompts of random text.
std::vector<std::int32_t> randomIds(std::mt19937& rng, int n)
{
    std::vector<std::int32_t> v(static_cast<std::size_t>(n));
    for (auto& id : v)
        id = 3 + static_cast<std::int32_t>(rng() % 100000);
    return v;
}

SamplingParams greedyParams()
{
    SamplingParams p;
    p.temperature = 0;
    p.repetitionPenalty = 1;
    return p;
}

// Decode after a prompt, one step at a time as the session loop takes them
// (Backend::sampleAndAppend); the first four greedy steps (the decode graph's capture) are taken at
// once. The sequence starts empty.
class DecodeLoop {
public:
    DecodeLoop(cuda::CudaBackend& be, Sequence& seq, std::vector<std::int32_t> prompt) : be_(be), seq_(seq), seen_(std::move(prompt))
    {
        seq_.truncate(0);
        be_.append(seq_, std::vector<PromptSegment>{{seen_, nullptr, 0}}, nullptr);
        for (int i = 0; i < 4; ++i)
            step();
    }
    void step() { step(greedy_); }
    void step(const SamplingParams& params)
    {
        const Backend::Step next = be_.sampleAndAppend(seq_, seen_, params, sampler_);
        if (!next.appended)
            throw Error("tessera-bench: the decode runs past the KV cache's " + std::to_string(seq_.capacity()) +
                        " positions (--decode-steps)");
        seen_.push_back(next.token);
    }

private:
    cuda::CudaBackend& be_;
    Sequence& seq_;
    std::vector<std::int32_t> seen_;
    const SamplingParams greedy_ = greedyParams();
    Rng sampler_{1};
};

// What each stage of a decode step costs inside the step: the step at 1024 positions of context,
// then the step with that stage left out; the difference is the stage's share (its kernels, their
// launch gaps and the waits they cause). The steps without a stage compute nothing meaningful.
nlohmann::json stageCosts(cuda::CudaBackend& be, int decodeSteps)
{
    using LM = cuda::CudaLanguageModel;
    unsigned seed = 11;
    auto msPerToken = [&](unsigned mask) {
        be.setDecodeOmissions(mask);
        std::mt19937 rng(seed++);
        auto seq = be.createSequence(2048);
        DecodeLoop decode(be, *seq, randomIds(rng, 1024));
        std::vector<double> runs;
        for (int r = 0; r < 3; ++r) {
            const auto t = Clock::now();
            for (int i = 0; i < decodeSteps; ++i)
                decode.step();
            runs.push_back(secondsSince(t) * 1e3 / decodeSteps);
        }
        return median(runs);
    };
    nlohmann::json out;
    const double whole = msPerToken(0);
    out["step_ms"] = whole;
    nlohmann::json costs = nlohmann::json::object();
    // The router is only left out together with the experts: the buffers of a layer's parts share
    // memory, so a skipped router would leave the experts garbage indices.
    for (unsigned stage = LM::kStageAttentionInput; stage <= LM::kStageLogits; stage <<= 1) {
        if (stage == LM::kStageRouter)
            continue;
        costs[LM::decodeStageName(stage)] = (whole - msPerToken(stage)) * 1e3;
    }
    costs["moe block (router + experts + combine)"] =
        (whole - msPerToken(LM::kStageRouter | LM::kStageExpertsGateUp | LM::kStageExpertsDown)) * 1e3;
    be.setDecodeOmissions(0);
    out["stage_cost_us"] = costs;
    noteFusedPaths(be, out);
    return out;
}

// The kernels' own timeline of decode steps at 1024 positions of context (tessera_kernels/trace.h).
// A step's block records, sorted by the time their wait returned, fall into its launches in order:
// no block of a launch passes its wait before every block of the launch before has ended. For each
// launch: `gap_us`, from the last block of the launch before ending to this launch's first wait
// returning (the hand-over), and `run_us`, from there to its last block ending. Blocks that left
// before their wait (empty attention splits) are counted apart. Each kind of launch (site, rows,
// grid) gets the medians over the steps of its per-step sums, and the step its total.
nlohmann::json decodeTrace(cuda::CudaBackend& be, int steps)
{
    namespace k = tessera::kernels;
    std::mt19937 rng(13);
    auto seq = be.createSequence(2048);
    DecodeLoop decode(be, *seq, randomIds(rng, 1024));
    be.synchronize();
    constexpr unsigned kCapacity = 1u << 20;
    cuda::DeviceBuffer records(sizeof(k::TraceRecord) * kCapacity, "trace records");
    cuda::DeviceBuffer counter(sizeof(unsigned), "trace counter");
    struct Launch {
        std::string kind;
        int blocks = 0;
        double gap = 0;  // µs
        std::uint64_t firstWait = 0, lastWait = 0, lastEnd = 0;
        std::vector<double> toMark0, mark0To1, toEnd;  // per block, µs: wait → mark 0 → mark 1 → end
        std::vector<std::uint64_t> starts, marks0, ends;  // per block, the clock at start / mark 0 / end
        k::TraceRecord lastBlock{};                    // the block that ended last
        double run() const { return (lastEnd - firstWait) * 1e-3; }
        double waitSpread() const { return (lastWait - firstWait) * 1e-3; }
    };
    std::map<std::string, std::vector<double>> gapOf, runOf, countOf;
    std::vector<double> totals, stepSpans, leftEarly;
    std::vector<Launch> lastStep;
    auto kindOf = [](const k::TraceRecord& x) {
        std::string s = k::traceSiteName(x.site);
        if (x.site == static_cast<std::uint32_t>(k::TraceSite::Gemv))
            s += " " + std::to_string(x.aux) + " rows";
        return s + " [" + std::to_string(x.gridX) + "x" + std::to_string(x.gridY) + "]";
    };
    struct TraceOff {  // however the loop leaves
        ~TraceOff() { (void)tessera::kernels::setDecodeTrace(nullptr, nullptr, 0); }
    } traceOff;
    for (int t = 0; t < steps; ++t) {
        cuda::check(k::fillZero(counter.get(), sizeof(unsigned), nullptr), "trace");
        cuda::check(k::streamSynchronize(nullptr), "trace");
        cuda::check(k::setDecodeTrace(records.as<k::TraceRecord>(), counter.as<unsigned>(), kCapacity), "trace");
        decode.step();
        be.synchronize();
        cuda::check(k::setDecodeTrace(nullptr, nullptr, 0), "trace");
        unsigned n = 0;
        cuda::check(k::copyToHost(&n, counter.get(), sizeof n, nullptr), "trace");
        cuda::check(k::streamSynchronize(nullptr), "trace");
        n = std::min(n, kCapacity);
        std::vector<k::TraceRecord> r(n);
        cuda::check(k::copyToHost(r.data(), records.get(), sizeof(k::TraceRecord) * n, nullptr), "trace");
        cuda::check(k::streamSynchronize(nullptr), "trace");
        std::vector<k::TraceRecord> waited;
        int early = 0;
        for (const auto& x : r)
            (x.waited ? waited.push_back(x) : void(++early));
        std::sort(waited.begin(), waited.end(), [](const auto& a, const auto& b) { return a.waited < b.waited; });
        std::vector<Launch> launches;
        std::uint64_t stepStart = UINT64_MAX, stepEnd = 0;
        for (const auto& x : waited) {
            const std::string kind = kindOf(x);
            if (launches.empty() || launches.back().kind != kind) {
                Launch next;
                next.kind = kind;
                next.firstWait = x.waited;
                if (!launches.empty())
                    next.gap = (static_cast<double>(x.waited) - static_cast<double>(launches.back().lastEnd)) * 1e-3;
                launches.push_back(std::move(next));
            }
            Launch& l = launches.back();
            ++l.blocks;
            l.starts.push_back(x.start);
            l.ends.push_back(x.end);
            if (x.mark[0] >= x.waited) {
                l.marks0.push_back(x.mark[0]);
                l.toMark0.push_back((x.mark[0] - x.waited) * 1e-3);
                if (x.mark[1] >= x.mark[0])
                    l.mark0To1.push_back((x.mark[1] - x.mark[0]) * 1e-3);
                const std::uint64_t last = x.mark[1] >= x.mark[0] ? x.mark[1] : x.mark[0];
                l.toEnd.push_back((x.end - last) * 1e-3);
            }
            if (x.end >= l.lastEnd) {
                l.lastEnd = x.end;
                l.lastBlock = x;
            }
            l.lastWait = x.waited;
            stepStart = std::min<std::uint64_t>(stepStart, x.start);
            stepEnd = std::max<std::uint64_t>(stepEnd, x.end);
        }
        std::map<std::string, double> gap, run, count;
        double total = 0;
        for (const auto& l : launches) {
            gap[l.kind] += l.gap;
            run[l.kind] += l.run();
            count[l.kind] += 1;
            total += l.gap + l.run();
        }
        for (const auto& [kind, v] : gap) {
            gapOf[kind].push_back(v);
            runOf[kind].push_back(run[kind]);
            countOf[kind].push_back(count[kind]);
        }
        totals.push_back(total);
        stepSpans.push_back((stepEnd - stepStart) * 1e-3);
        leftEarly.push_back(early);
        lastStep = std::move(launches);
    }
    nlohmann::json out;
    out["traced_steps"] = steps;
    out["step_span_us"] = median(stepSpans);
    out["launch_sum_us"] = median(totals);
    out["blocks_left_before_wait"] = median(leftEarly);
    nlohmann::json kinds = nlohmann::json::object();
    for (const auto& [kind, v] : gapOf)
        kinds[kind] = {{"launches", median(countOf[kind])}, {"gap_us", median(v)}, {"run_us", median(runOf[kind])}};
    out["per_kind_per_step"] = kinds;
    nlohmann::json seqOut = nlohmann::json::array();
    // Marks (see the kernels): the medians over the blocks and the last block's wait → mark 0 →
    // mark 1 → end (−1: no such mark).
    auto since = [](std::uint64_t from, std::uint64_t to) { return from && to >= from ? (to - from) * 1e-3 : -1.0; };
    // When the blocks started, had their rows (mark 0) and ended, µs from the launch's first wait:
    // the 10th, 50th and 90th percentiles and the last.
    auto spread = [](std::vector<std::uint64_t> v, std::uint64_t from) {
        if (v.empty())
            return nlohmann::json::array();
        std::sort(v.begin(), v.end());
        auto at = [&](double q) { return (static_cast<double>(v[static_cast<std::size_t>(q * (v.size() - 1))]) - static_cast<double>(from)) * 1e-3; };
        return nlohmann::json::array({at(0.1), at(0.5), at(0.9), at(1.0)});
    };
    for (const auto& l : lastStep) {
        const auto& b = l.lastBlock;
        seqOut.push_back({{"kind", l.kind}, {"blocks", l.blocks}, {"gap_us", l.gap}, {"run_us", l.run()}, {"wait_spread_us", l.waitSpread()},
                          {"start_us", spread(l.starts, l.firstWait)}, {"mark0_us", spread(l.marks0, l.firstWait)}, {"end_us", spread(l.ends, l.firstWait)},
                          {"median_block_us", {l.toMark0.empty() ? -1.0 : median(l.toMark0), l.mark0To1.empty() ? -1.0 : median(l.mark0To1),
                                               l.toEnd.empty() ? -1.0 : median(l.toEnd)}},
                          {"last_block_us", {since(b.waited, b.mark[0]), since(b.mark[0], b.mark[1]), since(b.mark[1] ? b.mark[1] : b.mark[0], b.end)}}});
    }
    out["last_step_launches"] = seqOut;
    noteFusedPaths(be, out);
    return out;
}

nlohmann::json benchBackend(cuda::CudaBackend& be, const ModelConfig& config, std::size_t baseline, const Options& o)
{
    nlohmann::json out;
    std::mt19937 rng(7);
    const int V = be.vocabSize();
    std::size_t peak = usedGpuBytes();
    auto notePeak = [&] { peak = std::max(peak, usedGpuBytes()); };

    auto seq = be.createSequence(config.language.maxPositionEmbeddings);
    notePeak();
    const SamplingParams greedy = greedyParams();
    Rng sampler(1);
    if (!o.decodeOnly) {
    // One 1152x1152 image: 3x3 local tiles + the global view, random pixels.
    ImageTiles tiles;
    tiles.widthTiles = 3;
    tiles.heightTiles = 3;
    tiles.tileSize = config.vision.imageSize;
    tiles.pixels.resize(tiles.tileBytes() * tiles.count());
    for (auto& p : tiles.pixels)
        p = static_cast<std::uint8_t>(rng());
    auto warm = be.encodeImage(tiles, nullptr);  // module load, cuBLAS heuristics
    notePeak();
    std::vector<double> vision;
    for (int r = 0; r < o.repeats; ++r) {
        const auto t = Clock::now();
        auto img = be.encodeImage(tiles, nullptr);
        vision.push_back(secondsSince(t));
    }
    out["vision_ms_per_tile"] = median(vision) * 1e3 / tiles.count();
    out["image_tokens"] = warm->tokenCount();

    // Prompt: bos, a few words, the image, a short question, "<|Assistant|>:".
    std::vector<std::int32_t> head = randomIds(rng, 6), question = randomIds(rng, 14);
    head[0] = 0;
    std::vector<std::int32_t> imageIds(static_cast<std::size_t>(warm->tokenCount()), 128815);
    // One answer's first token from an empty sequence: encode, prefill, draw. Returns the prefill's
    // seconds.
    auto firstToken = [&] {
        seq->truncate(0);
        auto img = be.encodeImage(tiles, nullptr);
        const std::vector<PromptSegment> segs{{head, nullptr, 0}, {imageIds, img.get(), 0}, {question, nullptr, 0}};
        const auto tp = Clock::now();
        be.append(*seq, segs, nullptr);
        const double p = secondsSince(tp);
        std::vector<std::int32_t> seen(head);
        be.sampleNext(*seq, seen, greedy, sampler);
        return p;
    };
    std::vector<double> ttft, prefill;
    int promptTokens = 0;
    for (int r = 0; r < o.repeats + 1; ++r) {
        const auto t = Clock::now();
        const double p = firstToken();
        if (r > 0) {  // the first run warms the prefill shapes
            ttft.push_back(secondsSince(t));
            prefill.push_back(p);
        }
        promptTokens = seq->length();
        notePeak();
    }
    if (o.profileTtft) {
        cuda::check(kernels::profilerStart(), "profiler");
        firstToken();
        cuda::check(kernels::profilerStop(), "profiler");
    }
    out["prompt_tokens"] = promptTokens;
    out["ttft_ms"] = median(ttft) * 1e3;
    out["prefill_ms"] = median(prefill) * 1e3;
    out["prefill_tokens_per_s"] = promptTokens / median(prefill);
    }

    // Decode at several context lengths: the session's loop (GPU choice, then the graph step).
    const double weightBytes = activatedWeightBytes(config);
    nlohmann::json decode = nlohmann::json::object();
    for (int context : o.contexts) {
        DecodeLoop loop(be, *seq, randomIds(rng, context));
        const auto t = Clock::now();
        for (int i = 0; i < o.decodeSteps; ++i)
            loop.step();
        const double perToken = secondsSince(t) / o.decodeSteps;
        const double bytes = weightBytes + kvBytesPerToken(config, context + o.decodeSteps / 2);
        nlohmann::json d;
        d["tokens_per_s"] = 1.0 / perToken;
        d["ms_per_token"] = perToken * 1e3;
        d["activated_bytes_per_token"] = bytes;
        d["roofline_fraction"] = (bytes / kHbmBytesPerSecond) / perToken;
        if (context == 1024) {
            // The same steps without the host between them: what the per-token choice and its
            // hand-back cost on top of the graph.
            const auto tg = Clock::now();
            const int run = be.replayDecodeSteps(*seq, o.decodeSteps);
            if (run > 0)
                d["graph_only_tokens_per_s"] = run / secondsSince(tg);
        }
        if (context == 1024 && o.profileSteps > 0) {
            cuda::check(kernels::profilerStart(), "profiler");
            for (int i = 0; i < o.profileSteps; ++i)
                loop.step();
            cuda::check(kernels::profilerStop(), "profiler");
        }
        if (context == 1024) {
            SamplingParams demo;  // upstream demo defaults: temperature 0.1, top-p 0.9, penalty 1.1
            const auto ts = Clock::now();
            for (int i = 0; i < o.decodeSteps; ++i)
                loop.step(demo);
            d["sampled_tokens_per_s"] = o.decodeSteps / secondsSince(ts);
        }
        decode[std::to_string(context)] = d;
        notePeak();
    }
    out["decode"] = decode;
    out["activated_weight_bytes_per_token"] = weightBytes;
    out["weights_bytes"] = be.memoryPlan().weights;
    out["peak_gpu_bytes"] = peak - baseline;
    out["peak_over_weights_bytes"] = static_cast<double>(peak - baseline) - static_cast<double>(be.memoryPlan().weights);
    out["kv_cache_context"] = config.language.maxPositionEmbeddings;
    out["description"] = be.description();
    noteFusedPaths(be, out);
    return out;
}

// Time to first token at the real shapes, piece by piece (10 vision tiles = 7290 rows; a 2037-token
// prompt): the vision products with their fused epilogues, the fused attentions, the grouped
// expert products. weights: ≥ 1 GiB of bf16, bias: F32 values, out: ≥ 64 MiB.
void prefillKernels(const std::function<void(const char*, double, const std::function<void(int)>&, const char*)>& time,
                    void* weights, const float* bias, void* out, kernels::Stream s)
{
    namespace k = tessera::kernels;
    cuda::DeviceBuffer act(std::size_t(64) << 20, "bench activations");
    cuda::check(k::fillRandomBf16(act.as<std::uint16_t>(), (std::size_t(64) << 20) / 2, 1.f, 0.f, 3, s), "fill");
    k::GemmContext* ctx = nullptr;
    cuda::check(k::gemmContextCreate(&ctx, s), "cublas");
    auto linear = [&](const char* name, int M, int N, int K, bool withBias, k::Epilogue epi, k::DType cType, float beta) {
        time(name, 2.0 * M * N * K, [&, M, N, K, withBias, epi, cType, beta](int) {
            k::GemmArgs g;
            g.M = M;
            g.N = N;
            g.K = K;
            g.A = act.get();
            g.aType = k::DType::BF16;
            g.lda = K;
            g.B = weights;
            g.ldb = K;
            g.C = out;
            g.cType = cType;
            g.ldc = N;
            g.beta = beta;
            g.bias = withBias ? bias : nullptr;
            g.epilogue = epi;
            g.math = k::MathMode::FastBf16;
            cuda::check(k::gemm(ctx, g, s), "gemm");
        }, "GFLOP_per_s");
    };
    const int rows = 7290;
    linear("vision qkv 7290x3456x1152 +bias (bf16 out)", rows, 3456, 1152, true, k::Epilogue::None, k::DType::BF16, 0.f);
    linear("vision proj 7290x1152x1152 +bias, F32 +=", rows, 1152, 1152, true, k::Epilogue::None, k::DType::F32, 1.f);
    linear("vision fc1 7290x4304x1152 +bias +gelu (bf16 out)", rows, 4304, 1152, true, k::Epilogue::GeluTanh, k::DType::BF16, 0.f);
    linear("vision fc1 7290x4304x1152 plain (bf16 out)", rows, 4304, 1152, false, k::Epilogue::None, k::DType::BF16, 0.f);
    linear("vision fc2 7290x1152x4304 +bias, F32 +=", rows, 1152, 4304, true, k::Epilogue::None, k::DType::F32, 1.f);
    linear("base q|kv_a 2037x6720x2560 (bf16 out)", 2037, 6720, 2560, false, k::Epilogue::None, k::DType::BF16, 0.f);
    auto flash = [&](const char* name, int batch, int heads, int n, int qk, int v, bool causal, std::int64_t ldq, std::int64_t ldk,
                     std::int64_t ldv) {
        const double pairs = causal ? 0.5 * n * (n + 1.0) : double(n) * n;
        time(name, 2.0 * batch * heads * pairs * (qk + v), [&, batch, heads, n, qk, v, causal, ldq, ldk, ldv](int) {
            k::FlashAttentionArgs fa;
            fa.q = act.get();
            fa.ldq = ldq;
            fa.qHeadStride = qk;
            fa.qBatchStride = ldq * n;
            fa.k = weights;
            fa.ldk = ldk;
            fa.kHeadStride = qk;
            fa.kBatchStride = ldk * n;
            fa.v = static_cast<std::uint16_t*>(weights) + (std::size_t(64) << 20);
            fa.ldv = ldv;
            fa.vHeadStride = v;
            fa.vBatchStride = ldv * n;
            fa.o = out;
            fa.ldo = std::int64_t(heads) * v;
            fa.oHeadStride = v;
            fa.oBatchStride = fa.ldo * n;
            fa.batch = batch;
            fa.heads = heads;
            fa.queries = n;
            fa.keys = n;
            fa.headDim = qk;
            fa.valueDim = v;
            fa.causal = causal;
            fa.scale = 0.1f;
            cuda::check(k::flashAttention(fa, s), "flash attention");
        }, "GFLOP_per_s");
    };
    flash("vision flash attention 10 tiles x 16 heads x 729, d72", 10, 16, 729, 72, 72, false, 3 * 1152, 3 * 1152, 3 * 1152);
    flash("mla prefill flash attention base 32 heads x 2037 causal, 192/128", 1, 32, 2037, 192, 128, true, 32 * 192 + 576, 32 * 192,
          32 * 128);
    flash("mha prefill flash attention tiny 10 heads x 2037 causal, d128", 1, 10, 2037, 128, 128, true, 3 * 1280, 3 * 1280, 3 * 1280);
    {
        // The small model's grouped down product (F32 out), same routing shape as the gate/up case.
        const int rowsE = 8192, experts = 66, N = 2048, K = 1408;
        std::vector<int> meta(2 * (experts + 1));
        const int tileRows = k::groupedTileRows(k::MathMode::FastBf16);
        for (int e = 0; e <= experts; ++e)
            meta[e] = static_cast<int>(static_cast<long long>(rowsE) * e / experts);
        for (int e = 0; e < experts; ++e)
            meta[experts + 1 + e + 1] = meta[experts + 1 + e] + (meta[e + 1] - meta[e] + tileRows - 1) / tileRows;
        cuda::DeviceBuffer dMeta(sizeof(int) * meta.size(), "offsets");
        cuda::check(k::copyToDevice(dMeta.get(), meta.data(), sizeof(int) * meta.size(), s), "offsets");
        time("grouped gemm bf16 8192x2048x1408 F32 out (66 experts)", 2.0 * rowsE * N * K, [&](int) {
            k::GroupedGemmArgs g;
            g.N = N;
            g.K = K;
            g.groups = experts;
            g.maxRows = rowsE;
            g.A = act.get();
            g.aType = k::DType::BF16;
            g.lda = K;
            g.B = weights;
            g.ldb = K;
            g.strideB = std::int64_t(N) * K;
            g.C = out;
            g.cType = k::DType::F32;
            g.ldc = N;
            g.offsets = dMeta.as<int>();
            g.tileOffsets = dMeta.as<int>() + experts + 1;
            g.math = k::MathMode::FastBf16;
            cuda::check(k::groupedGemm(g, s), "grouped gemm");
        }, "GFLOP_per_s");
    }
    k::gemmContextDestroy(ctx);
}

// Microbenchmarks of the decode kernels at the tiny / base shapes (device time per launch from
// CUDA events over 200 launches, and the bandwidth that implies), plus the host round trip of
// one decode step's bookkeeping. They say where a decode step's time goes.
nlohmann::json kernelBench()
{
    namespace k = tessera::kernels;
    nlohmann::json out = nlohmann::json::object();
    k::Stream s = nullptr;
    cuda::check(k::streamCreate(&s), "stream");
    k::Event e0 = nullptr, e1 = nullptr;
    cuda::check(k::eventCreate(&e0), "event");
    cuda::check(k::eventCreate(&e1), "event");
    const std::size_t big = std::size_t(1) << 30;  // 1 GiB of weights: no L2 reuse across launches
    cuda::DeviceBuffer w(big, "bench weights"), x(std::size_t(64) << 20, "bench x"), y(std::size_t(64) << 20, "bench y");
    cuda::check(k::fillRandomBf16(w.as<std::uint16_t>(), big / 2, 0.02f, 0.f, 1, s), "fill");
    cuda::check(k::fillRandomF32(x.as<float>(), (std::size_t(64) << 20) / 4, 1.f, 0.f, 2, s), "fill");
    auto time = [&](const char* name, double bytes, const std::function<void(int)>& launch, const char* rate = "GB_per_s") {
        for (int i = 0; i < 5; ++i)
            launch(i);
        const int reps = 200;
        cuda::check(k::eventRecord(e0, s), "event");
        for (int i = 0; i < reps; ++i)
            launch(i);
        cuda::check(k::eventRecord(e1, s), "event");
        float ms = 0;
        cuda::check(k::eventElapsedMs(e0, e1, ms), "event");
        const double us = ms * 1e3 / reps;
        out[name] = {{"us", us}, {rate, bytes / (us * 1e-6) / 1e9}};
    };
    auto gemvCase = [&](const char* name, int N, int K, int batch, bool gated, k::DType xt) {
        const std::size_t per = std::size_t(N) * K * batch * (gated ? 2 : 1);
        const int slots = static_cast<int>(std::min<std::size_t>(64, big / 2 / per));
        time(name, double(per) * 2, [&](int i) {
            k::GemvArgs g;
            g.N = N;
            g.K = K;
            g.batch = batch;
            g.x = x.get();
            g.xType = xt;
            g.strideX = 0;
            g.gatedOutput = gated;
            g.W = w.as<std::uint16_t>() + (i % slots) * per;
            g.ldw = K;
            g.strideW = std::int64_t(N) * K * (gated ? 2 : 1);
            g.y = y.get();
            g.yType = k::DType::F32;
            g.strideY = N;
            cuda::check(k::gemv(g, s), "gemv");
        });
    };
    gemvCase("gemv tiny qkv 3840x1280", 3840, 1280, 1, false, k::DType::BF16);
    gemvCase("gemv tiny o_proj 1280x1280", 1280, 1280, 1, false, k::DType::BF16);
    gemvCase("gemv tiny experts gate/up 8x(2x896)x1280 gated", 896, 1280, 8, true, k::DType::BF16);
    gemvCase("gemv tiny experts down 8x1280x896", 1280, 896, 8, false, k::DType::BF16);
    gemvCase("gemv tiny router 64x1280", 64, 1280, 1, false, k::DType::BF16);
    gemvCase("gemv lm_head 129280x1280", 129280, 1280, 1, false, k::DType::BF16);
    gemvCase("gemv small lm_head 102400x2048", 102400, 2048, 1, false, k::DType::BF16);
    gemvCase("gemv base lm_head 102400x2560", 102400, 2560, 1, false, k::DType::BF16);
    gemvCase("gemv base q|kv_a 6720x2560", 6720, 2560, 1, false, k::DType::BF16);
    gemvCase("gemv base experts gate/up 8x(2x1536)x2560 gated", 1536, 2560, 8, true, k::DType::BF16);
    gemvCase("gemv base experts down 8x2560x1536", 2560, 1536, 8, false, k::DType::BF16);
    gemvCase("gemv base mla absorb 32x512x128", 512, 128, 32, false, k::DType::BF16);

    // Decode attention at 1024 positions: tiny MHA (10 heads × 128) and base MLA (32 heads, 576/512).
    const int len = 1023;
    cuda::DeviceBuffer lenDev(sizeof(int), "len"), ws(std::size_t(16) << 20, "attention workspace");
    cuda::check(k::setInt(lenDev.as<int>(), len, s), "len");
    cuda::DeviceBuffer counters(64 * sizeof(int), "attention counters");
    cuda::check(k::fillZero(counters.get(), 64 * sizeof(int), s), "counters");
    auto attention = [&](const char* name, int heads, int group, int keyDim, int valueDim, bool mla) {
        const std::int64_t kvw = mla ? keyDim : std::int64_t(heads / group) * keyDim;
        time(name, double(len + 1) * (mla ? keyDim : 2 * kvw) * 2, [&](int) {
            k::DecodeAttentionArgs d;
            d.q = x.get();
            d.qType = k::DType::BF16;
            d.qHeadStride = keyDim;
            d.heads = heads;
            d.headsPerKv = group;
            d.keys = w.get();
            d.keyLd = kvw;
            d.keyHeadStride = mla ? 0 : keyDim;
            d.keyDim = keyDim;
            d.values = mla ? w.get() : static_cast<void*>(w.as<std::uint16_t>() + (std::size_t(64) << 20));
            d.valueLd = kvw;
            d.valueHeadStride = mla ? 0 : keyDim;
            d.valueDim = valueDim;
            d.cacheType = k::DType::BF16;
            d.lengthOnDevice = lenDev.as<int>();
            d.capacity = 4096;
            d.scale = 0.1f;
            d.workspace = ws.as<float>();
            d.counters = counters.as<int>();
            d.out = y.get();
            d.outType = k::DType::BF16;
            d.outHeadStride = valueDim;
            cuda::check(k::decodeAttention(d, s), "decode attention");
        });
    };
    attention("decode attention tiny 10x128 @1024", 10, 1, 128, 128, false);
    attention("decode attention base mla 32x576/512 @1024", 32, 32, 576, 512, true);

    // Prefill products at the small model's shapes: the grouped expert product (our tensor-core
    // kernel, 1024 tokens × 8 experts each over 66 experts) against a dense cuBLAS product.
    {
        const int rows = 8192, experts = 66, N = 2816, K = 2048;
        std::vector<int> offsets(experts + 1), tiles(experts + 1);
        for (int e = 0; e <= experts; ++e)
            offsets[e] = static_cast<int>(static_cast<long long>(rows) * e / experts);
        const int tileRows = k::groupedTileRows(k::MathMode::FastBf16);
        for (int e = 0; e < experts; ++e)
            tiles[e + 1] = tiles[e] + (offsets[e + 1] - offsets[e] + tileRows - 1) / tileRows;
        cuda::DeviceBuffer meta(sizeof(int) * 2 * (experts + 1), "offsets");
        cuda::check(k::copyToDevice(meta.get(), offsets.data(), sizeof(int) * (experts + 1), s), "offsets");
        cuda::check(k::copyToDevice(meta.as<int>() + experts + 1, tiles.data(), sizeof(int) * (experts + 1), s), "tiles");
        cuda::DeviceBuffer out(std::size_t(rows) * N * 2, "out");
        const double flops = 2.0 * rows * N * K;
        time("grouped gemm bf16 8192x2816x2048 (66 experts)", flops, [&](int) {
            k::GroupedGemmArgs g;
            g.N = N;
            g.K = K;
            g.groups = experts;
            g.maxRows = rows;
            g.A = x.get();
            g.aType = k::DType::BF16;
            g.lda = K;
            g.B = w.get();
            g.ldb = K;
            g.strideB = std::int64_t(N) * K;
            g.C = out.get();
            g.cType = k::DType::BF16;
            g.ldc = N;
            g.offsets = meta.as<int>();
            g.tileOffsets = meta.as<int>() + experts + 1;
            g.math = k::MathMode::FastBf16;
            cuda::check(k::groupedGemm(g, s), "grouped gemm");
        }, "GFLOP_per_s");
        k::GemmContext* ctx = nullptr;
        cuda::check(k::gemmContextCreate(&ctx, s), "cublas");
        time("cublas gemm bf16 8192x2816x2048", flops, [&](int) {
            k::GemmArgs g;
            g.M = rows;
            g.N = N;
            g.K = K;
            g.A = x.get();
            g.aType = k::DType::BF16;
            g.lda = K;
            g.B = w.get();
            g.bType = k::DType::BF16;
            g.ldb = K;
            g.C = out.get();
            g.cType = k::DType::BF16;
            g.ldc = N;
            g.math = k::MathMode::FastBf16;
            cuda::check(k::gemm(ctx, g, s), "gemm");
        }, "GFLOP_per_s");
        k::gemmContextDestroy(ctx);
    }
    prefillKernels(time, w.get(), x.as<float>(), y.get(), s);

    // The next-token choice over a 129,280-entry vocabulary: greedy; a draw that the candidates near
    // the maximum decide (peaked logits, as a trained model gives); the draw over the sorted
    // vocabulary (what flat logits, such as random weights give, fall back to).
    {
        const int V = 129280;
        std::vector<float> peaked(V);
        std::mt19937 gen(3);
        std::uniform_real_distribution<float> noise(-50.f, -40.f);
        for (auto& v : peaked)
            v = noise(gen);
        for (int j = 0; j < 40; ++j)
            peaked[(j * 3251 + 17) % V] = 2.f - 0.125f * j;
        cuda::DeviceBuffer logits(V * sizeof(float), "bench logits"), ws(k::samplingWorkspaceBytes(V), "sampling workspace"),
            token(8, "token");
        cuda::check(k::copyToDevice(logits.get(), peaked.data(), V * sizeof(float), s), "upload");
        cuda::check(k::streamSynchronize(s), "upload");
        k::SampleArgs a;
        a.logits = logits.as<float>();
        a.vocab = V;
        a.temperature = 0.1f;
        a.topP = 0.9f;
        a.workspace = ws.get();
        a.workspaceBytes = ws.bytes();
        a.token = token.as<std::int32_t>();
        a.needsSort = token.as<std::int32_t>() + 1;
        time("sampling: greedy argmax", V * 4.0, [&](int) {
            cuda::check(k::argmaxToken(a.logits, V, a.token, ws.get(), s), "argmax");
        });
        time("sampling: t 0.1, top-p 0.9, candidates (peaked logits)", V * 4.0, [&](int i) {
            a.uniform = (i % 97) / 97.0;
            cuda::check(k::sampleToken(a, s), "sample");
        });
        time("sampling: t 0.1, top-p 0.9, sorted vocabulary", V * 4.0, [&](int i) {
            a.uniform = (i % 97) / 97.0;
            cuda::check(k::sampleTokenSorted(a, s), "sample");
        });
    }

    // Chains of dependent launches replayed as one graph, with overlapped launches on and off: the
    // cost of one kernel inside a decode step (launch gap, ramp-up, tail) next to its bytes.
    {
        cuda::DeviceBuffer a(std::size_t(1) << 20, "chain a"), b(std::size_t(1) << 20, "chain b");
        cuda::check(k::fillRandomF32(a.as<float>(), (std::size_t(1) << 20) / 4, 1.f, 0.f, 3, s), "fill");
        cuda::check(k::fillRandomF32(b.as<float>(), (std::size_t(1) << 20) / 4, 1.f, 0.f, 4, s), "fill");
        cuda::DeviceBuffer normW(4 * 8192, "norm weight");
        cuda::check(k::fillRandomF32(normW.as<float>(), 8192, 0.1f, 1.f, 5, s), "fill");
        auto chain = [&](const std::string& name, double bytesPerLaunch, const std::function<void(int)>& launch) {
            const int count = 60;
            for (const bool overlap : {true, false}) {
                k::setOverlappedLaunches(overlap);
                k::GraphExec g = nullptr;
                cuda::check(k::captureBegin(s), "capture");
                for (int i = 0; i < count; ++i)
                    launch(i);
                cuda::check(k::captureEnd(s, &g), "capture");
                for (int i = 0; i < 3; ++i)
                    cuda::check(k::graphLaunch(g, s), "replay");
                std::vector<double> per;
                for (int r = 0; r < 9; ++r) {
                    cuda::check(k::eventRecord(e0, s), "event");
                    cuda::check(k::graphLaunch(g, s), "replay");
                    cuda::check(k::eventRecord(e1, s), "event");
                    float ms = 0;
                    cuda::check(k::eventElapsedMs(e0, e1, ms), "event");
                    per.push_back(ms * 1e3 / count);
                }
                k::graphDestroy(g);
                const double us = median(per);
                nlohmann::json j = {{"us_per_launch", us}};
                if (bytesPerLaunch > 0)
                    j["GB_per_s"] = bytesPerLaunch / (us * 1e-6) / 1e9;
                out["chain " + name + (overlap ? " (overlapped)" : " (plain)")] = j;
            }
            k::setOverlappedLaunches(true);
        };
        // The fused MoE layer's grid barrier (one block of 512 threads per SM), and a cooperative
        // launch inside a graph.
        {
            cuda::DeviceBuffer sync(16, "barrier state");
            cuda::check(k::fillZero(sync.get(), 16, s), "fill");
            auto barrierUs = [&](int barriers) {
                std::vector<double> per;
                for (int r = 0; r < 7; ++r) {
                    cuda::check(k::eventRecord(e0, s), "event");
                    cuda::check(k::gridBarriers(sync.as<unsigned>(), barriers, 512, s), "grid barriers");
                    cuda::check(k::eventRecord(e1, s), "event");
                    float ms = 0;
                    cuda::check(k::eventElapsedMs(e0, e1, ms), "event");
                    per.push_back(ms * 1e3);
                }
                return median(per);
            };
            barrierUs(10);
            const double few = barrierUs(1), many = barrierUs(2001);
            out["grid barrier, one 512-thread block per SM"] = {{"us_per_barrier", (many - few) / 2000}};
            chain("cooperative launch, one barrier", 0, [&](int) {
                cuda::check(k::gridBarriers(sync.as<unsigned>(), 1, 512, s), "grid barriers");
            });
        }
        chain("rms_norm 1280", 0, [&](int i) {
            float* in = (i % 2 ? b : a).as<float>();
            cuda::check(k::rmsNorm(in, 1280, 1, 1280, normW.as<float>(), 1e-6f, (i % 2 ? a : b).get(), k::DType::F32, 1280, s), "norm");
        });
        auto gemvChain = [&](const char* name, int N, int K, int batch, bool gated) {
            const std::size_t per = std::size_t(N) * K * batch * (gated ? 2 : 1);
            chain(name, double(per) * 2, [&, N, K, batch, gated](int i) {
                k::GemvArgs g;
                g.N = N;
                g.K = K;
                g.batch = batch;
                g.x = (i % 2 ? b : a).get();
                g.xType = k::DType::BF16;
                g.gatedOutput = gated;
                g.W = w.as<std::uint16_t>() + (std::size_t(i) * per) % (big / 2 - per);
                g.ldw = K;
                g.strideW = std::int64_t(N) * K * (gated ? 2 : 1);
                g.y = (i % 2 ? a : b).get();
                g.yType = k::DType::BF16;
                g.strideY = N;
                cuda::check(k::gemv(g, s), "gemv");
            });
        };
        gemvChain("gemv tiny o_proj 1280x1280", 1280, 1280, 1, false);
        gemvChain("gemv tiny qkv 3840x1280", 3840, 1280, 1, false);
        gemvChain("gemv tiny experts gate/up 8x(2x896)x1280", 896, 1280, 8, true);
        gemvChain("gemv base experts down 8x2560x1536", 2560, 1536, 8, false);
    }

    cuda::DeviceBuffer argWs(std::max<std::size_t>(k::argmaxWorkspaceBytes(), 4096), "argmax"), tok(4, "token");
    time("greedy argmax 129280", 129280.0 * 4, [&](int) {
        cuda::check(k::argmaxToken(x.as<float>(), 129280, tok.as<std::int32_t>(), argWs.get(), s), "argmax");
    });
    // Host round trip of a decode step's bookkeeping: a tiny kernel, a 4-byte copy back, a sync.
    cuda::PinnedBuffer pinned(4);
    {
        const auto t = Clock::now();
        const int reps = 200;
        for (int i = 0; i < reps; ++i) {
            cuda::check(k::setInt(tok.as<int>(), i, s), "set");
            cuda::check(k::copyToHost(pinned.as<int>(), tok.get(), 4, s), "copy");
            cuda::check(k::streamSynchronize(s), "sync");
        }
        out["host round trip (launch, copy, sync)"] = {{"us", secondsSince(t) * 1e6 / reps}};
    }
    k::eventDestroy(e0);
    k::eventDestroy(e1);
    k::streamDestroy(s);
    return out;
}

int run(const Options& o)
{
    nlohmann::json doc;
    doc["hbm_bytes_per_s"] = kHbmBytesPerSecond;
    if (o.kernels)
        doc["kernels"] = kernelBench();
    doc["models"] = nlohmann::json::array();
    if (!o.folder.empty()) {
        const std::size_t baseline = usedGpuBytes();
        ModelLoadOptions lo;
        lo.backend = BackendKind::Cuda;
        const auto t = Clock::now();
        auto m = Model::load(o.folder, lo);
        const double load = secondsSince(t);
        auto& be = dynamic_cast<cuda::CudaBackend&>(m->backend());
        auto r = benchBackend(be, m->config(), baseline, o);
        r["model"] = m->variant();
        r["folder"] = o.folder;
        r["load_seconds"] = load;
        doc["models"].push_back(r);
    }
    for (const auto& name : o.models) {
        if (name.empty())
            continue;
        const std::string file = name == "base" ? "deepseek-vl2" : "deepseek-vl2-" + name;
        const ModelConfig config = loadModelConfig(o.configs + "/" + file + ".config.json");
        ProcessorConfig processor;
        const std::size_t baseline = usedGpuBytes();
        const auto t = Clock::now();
        std::cerr << "tessera-bench: " << file << " (random weights on the GPU)\n";
        cuda::CudaBackend be(config, 20250101, processor, {});
        const double init = secondsSince(t);
        auto r = o.traceSteps > 0 ? decodeTrace(be, o.traceSteps)
                 : o.stageCosts    ? stageCosts(be, o.decodeSteps)
                                   : benchBackend(be, config, baseline, o);
        r["model"] = file;
        r["random_init_seconds"] = init;
        doc["models"].push_back(r);
        std::cerr << r.dump() << "\n";
    }
    std::cout << doc.dump(2) << std::endl;
    return 0;
}

#endif

}  // namespace

int main(int argc, char** argv)
{
#if !TESSERA_HAVE_CUDA_BACKEND
    (void)argc;
    (void)argv;
    std::cout << R"({"error": "this build has no CUDA backend"})" << std::endl;
    return 1;
#else
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc)
                throw std::runtime_error(a + " needs a value");
            return argv[++i];
        };
        if (a == "--models") {
            o.models.clear();
            std::string list = next();
            if (list == "none")  // the kernel figures only
                continue;
            for (std::size_t p = 0; p <= list.size();) {
                const std::size_t q = std::min(list.find(',', p), list.size());
                o.models.push_back(list.substr(p, q - p));
                p = q + 1;
            }
        } else if (a == "--model") {
            o.folder = next();
            o.models.clear();
        } else if (a == "--no-kernels") {
            o.kernels = false;
        } else if (a == "--configs") {
            o.configs = next();
        } else if (a == "--contexts") {
            o.contexts.clear();
            const std::string list = next();
            for (std::size_t p = 0; p < list.size();) {
                const std::size_t q = std::min(list.find(',', p), list.size());
                const int c = std::atoi(list.substr(p, q - p).c_str());
                if (c < 1)
                    throw std::runtime_error("--contexts takes positive prompt lengths, e.g. 128,1024,3000");
                o.contexts.push_back(c);
                p = q + 1;
            }
        } else if (a == "--decode-steps") {
            o.decodeSteps = std::max(1, std::atoi(next().c_str()));
        } else if (a == "--stage-costs") {
            o.stageCosts = true;
        } else if (a == "--trace") {
            o.traceSteps = std::max(1, std::atoi(next().c_str()));
        } else if (a == "--decode-only") {
            o.decodeOnly = true;
        } else if (a == "--profile-decode") {
            o.profileSteps = std::max(0, std::atoi(next().c_str()));
        } else if (a == "--profile-ttft") {
            o.profileTtft = true;
        } else if (a == "--repeats") {
            o.repeats = std::max(1, std::atoi(next().c_str()));
        } else {
            std::cerr << "usage: tessera-bench [--models tiny,small,base] [--model DIR] [--configs DIR] [--decode-steps N] [--repeats N] [--no-kernels]\n"
                         "                     [--contexts 128,1024,3000]\n"
                         "                     [--decode-only] [--profile-decode STEPS] [--profile-ttft] [--stage-costs]\n"
                         "                     [--trace STEPS]\n"
                         "  (--models none: the kernel figures only)\n";
            return 2;
        }
    }
    try {
        return run(o);
    } catch (const std::exception& e) {
        std::cout << nlohmann::json{{"error", e.what()}}.dump() << std::endl;
        return 1;
    }
#endif
}
