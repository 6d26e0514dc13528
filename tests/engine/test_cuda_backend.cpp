// The CUDA backend on the GPU machine: every kernel family against a CPU reference over a sweep of
// shapes (the real tiny/small/base shapes among them); the exact fp32 mode against the CPU
// backend on every golden model and conversation at the golden tolerances (vision, projector,
// embeddings, per-layer hidden states, routing, logits, greedy tokens through the KV cache); the
// fast bf16 mode against the fp32 mode with statistical tolerances; GPU sampling against the host
// sampler; the runtime (sessions, prefix reuse) on the GPU. Skips without a GPU.
#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "core/json_util.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "model/weight_map.h"
#include "processor/processor.h"
#include "runtime/prompt_segments.h"
#include "runtime/model.h"
#include "runtime/sampler.h"
#include "runtime/session.h"

#include "tessera_kernels/device_info.h"

#if TESSERA_HAVE_CUDA_BACKEND
#include "backend/cuda/cuda_backend.h"
#include "tessera_kernels/attention.h"
#include "tessera_kernels/elementwise.h"
#include "tessera_kernels/gemm.h"
#include "tessera_kernels/mla_prefill.h"
#include "tessera_kernels/moe.h"
#include "tessera_kernels/norm.h"
#include "tessera_kernels/runtime.h"
#include "tessera_kernels/sampling.h"
#endif

#include "golden.h"

#include <QtTest>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <functional>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <numeric>
#include <random>

using namespace tessera;

namespace {

const char* const kModels[] = {"mini-mha", "mini-mla"};
const char* const kCases[] = {"a_text",         "b_grounding", "c_two_images", "d_three_images", "e_multiturn_system",
                              "e2_system_role_text", "f1_odd_sizes", "f2_rgba"};

bool haveGpu() { return !kernels::queryGpus().gpus.empty(); }

#define REQUIRE_GPU()                                                                                        \
    do {                                                                                                     \
        if (!haveGpu())                                                                                      \
            QSKIP(qPrintable(QString("no CUDA GPU: %1").arg(QString::fromStdString(kernels::queryGpus().problem)))); \
    } while (0)

std::map<std::string, double>& figures()
{
    static std::map<std::string, double> f;
    return f;
}
void recordMax(const std::string& key, double v)
{
    auto [it, fresh] = figures().emplace(key, v);
    if (!fresh)
        it->second = std::max(it->second, v);
}
void recordMin(const std::string& key, double v)
{
    auto [it, fresh] = figures().emplace(key, v);
    if (!fresh)
        it->second = std::min(it->second, v);
}

struct Diff {
    double maxAbs = 0;
    std::size_t failures = 0;
    std::size_t first = 0;
};

Diff compare(const float* got, const float* ref, std::size_t n, double atol, double rtol)
{
    Diff d;
    for (std::size_t i = 0; i < n; ++i) {
        const double e = std::abs(static_cast<double>(got[i]) - ref[i]);
        if (!(e <= atol + rtol * std::abs(ref[i]))) {
            if (d.failures++ == 0)
                d.first = i;
            d.maxAbs = std::max(d.maxAbs, std::isnan(e) ? INFINITY : e);
        }
        d.maxAbs = std::max(d.maxAbs, e);
    }
    return d;
}

// Cosine similarity and relative L2 error of got against ref.
struct Stats {
    double cosine = 1, relError = 0;
};
Stats stats(const float* got, const float* ref, std::size_t n)
{
    double dot = 0, gg = 0, rr = 0, dd = 0;
    for (std::size_t i = 0; i < n; ++i) {
        dot += double(got[i]) * ref[i];
        gg += double(got[i]) * got[i];
        rr += double(ref[i]) * ref[i];
        const double d = double(got[i]) - ref[i];
        dd += d * d;
    }
    Stats s;
    s.cosine = (gg > 0 && rr > 0) ? dot / std::sqrt(gg * rr) : (gg == rr ? 1 : 0);
    s.relError = rr > 0 ? std::sqrt(dd / rr) : std::sqrt(dd);
    return s;
}

std::uint16_t bf16Bits(float f)
{
    std::uint32_t u = std::bit_cast<std::uint32_t>(f);
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<std::uint16_t>(u >> 16);
}
float bf16Value(std::uint16_t b) { return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16); }

Conversation goldenConversation(const std::string& model, const std::string& name, std::vector<std::int64_t>* genIds = nullptr)
{
    auto dir = test::goldenDir();
    auto j = parseJsonFile(dir / "cases" / model / (name + ".json"));
    if (genIds)
        *genIds = j["gen_ids"].get<std::vector<std::int64_t>>();
    nlohmann::json wrapped = {{"conversation", j["conversation"]}, {"system_prompt", j["system_prompt"]}};
    return parseConversation(wrapped, dir / "images", name);
}

#if TESSERA_HAVE_CUDA_BACKEND
namespace k = tessera::kernels;
using cuda::DeviceBuffer;

// Device copies of host vectors for the kernel sweep.
template <typename T>
DeviceBuffer upload(const std::vector<T>& v)
{
    DeviceBuffer b(std::max<std::size_t>(1, v.size() * sizeof(T)), "test data");
    cuda::check(k::copyToDevice(b.get(), v.data(), v.size() * sizeof(T), nullptr), "upload");
    return b;
}
template <typename T>
std::vector<T> download(const DeviceBuffer& b, std::size_t n)
{
    std::vector<T> v(n);
    cuda::check(k::copyToHost(v.data(), b.get(), n * sizeof(T), nullptr), "download");
    cuda::check(k::streamSynchronize(nullptr), "download");
    return v;
}

// Routing of the grouped-product tests: `topk` distinct experts per token; with `uneven`, every
// third token picks among the first half of the experts only.
std::vector<std::int32_t> testRouting(int tokens, int experts, int topk, bool uneven, std::mt19937& rng)
{
    std::vector<std::int32_t> idx(std::size_t(tokens) * topk);
    for (int t = 0; t < tokens; ++t) {
        std::vector<int> all(experts);
        std::iota(all.begin(), all.end(), 0);
        std::shuffle(all.begin(), all.end() - (uneven && t % 3 == 0 ? experts / 2 : 0), rng);
        std::sort(all.begin(), all.begin() + topk);
        for (int i = 0; i < topk; ++i)
            idx[std::size_t(t) * topk + i] = all[i];
    }
    return idx;
}

// dispatchTokens of x (tokens rows of `width`) by idx into `gathered`, with its bookkeeping in one
// buffer: counts, fill, offsets and tileOffsets (experts + 1 ints each), then pairRows.
struct TestDispatch {
    DeviceBuffer ints;
    k::DispatchArgs args;
    TestDispatch(const DeviceBuffer& idx, const DeviceBuffer& x, k::DType xType, const DeviceBuffer& gathered, int tokens, int experts,
                 int topk, int width, k::MathMode math)
        : ints(std::size_t(4 * (experts + 1) + tokens * topk) * sizeof(int), "dispatch")
    {
        const int E1 = experts + 1;
        args.idx = idx.as<std::int32_t>();
        args.n = tokens;
        args.k = topk;
        args.experts = experts;
        args.tileRows = k::groupedTileRows(math);
        args.counts = ints.as<int>();
        args.fill = args.counts + E1;
        args.offsets = args.counts + 2 * E1;
        args.tileOffsets = args.counts + 3 * E1;
        args.pairRows = args.counts + 4 * E1;
        args.x = x.get();
        args.xType = xType;
        args.width = width;
        args.gathered = gathered.get();
        cuda::check(k::dispatchTokens(args, nullptr), "dispatch");
    }
};

struct LoadedModel {
    ModelConfig config;
    TensorStore store;
    std::unique_ptr<WeightMap> weights;
    std::unique_ptr<Processor> processor;
    std::unique_ptr<cpu::CpuBackend> cpu;
    std::unique_ptr<cuda::CudaBackend> exact;
    std::unique_ptr<cuda::CudaBackend> fast;
};
#endif

}  // namespace

class TestCudaBackend : public QObject {
    Q_OBJECT

#if TESSERA_HAVE_CUDA_BACKEND
    std::map<std::string, std::unique_ptr<LoadedModel>> models_;

    // A backend to decode with: a golden mini model's (shared with other tests; null when the model
    // is not staged) or its own with random weights at a config of tests/data/configs. odd: widths
    // that are not multiples of 8; promptLength > 0: a prompt that long in a full-length cache.
    struct DecodeSubject {
        std::unique_ptr<cuda::CudaBackend> own;
        cuda::CudaBackend* be = nullptr;
        std::vector<std::int32_t> prompt;
        bool mla = false;
        int experts = 0;  // routed experts per MoE layer
        const char* skip = nullptr;  // rowSubject(): why there is none (be null)
    };
    DecodeSubject decodeSubject(const std::string& name, bool exact, bool odd = false, int promptLength = 0)
    {
        DecodeSubject d;
        if (name.rfind("mini-", 0) == 0) {
            LoadedModel* lm = model(name);
            if (!lm)
                return d;
            d.be = exact ? lm->exact.get() : lm->fast.get();
            d.prompt = lm->processor->process(goldenConversation(name, "a_text")).inputIds;
            d.mla = lm->config.language.useMla;
            d.experts = lm->config.language.nRoutedExperts.value_or(0);
            return d;
        }
        std::filesystem::path source = test::sourceDir();
        if (const char* env = std::getenv("TESSERA_SOURCE_DIR"); env && *env)
            source = env;
        ModelConfig config = loadModelConfig(source / "tests/data/configs" / (name + ".config.json"));
        if (odd) {
            // MHA derives the head width from the hidden size: keep it even (rotary pairs), not a multiple of 8.
            config.language.hiddenSize -= config.language.useMla ? 4 : 2 * config.language.numAttentionHeads;
            config.language.moeIntermediateSize -= 4;
            config.language.kvLoraRank -= 4;
        }
        d.mla = config.language.useMla;
        d.experts = config.language.nRoutedExperts.value_or(0);
        cuda::CudaBackendOptions o;
        o.math = exact ? k::MathMode::ExactFp32 : k::MathMode::FastBf16;
        o.planContext = promptLength > 0 ? 0 : 256;
        d.own = std::make_unique<cuda::CudaBackend>(config, 7, ProcessorConfig{}, o);
        d.be = d.own.get();
        for (int i = 0; i < (promptLength > 0 ? promptLength : 40); ++i)
            d.prompt.push_back((1 + i * 7919) % d.be->vocabSize());
        return d;
    }

    // The subject of the current row of routerCluster_data()'s table (columns model, exact); be
    // null, and skip the reason, where its golden model is not there.
    DecodeSubject rowSubject()
    {
        QFETCH(QString, model);
        QFETCH(bool, exact);
        const std::string name = model.toStdString();
        DecodeSubject none;
        if (name.rfind("mini-", 0) == 0 && test::goldenDir().empty()) {
            none.skip = "golden data not found (set TESSERA_GOLDEN_DIR or check ../shared/golden)";
            return none;
        }
        DecodeSubject subject = decodeSubject(name, exact);
        if (!subject.be)
            subject.skip = "this golden model was not staged on this machine";
        return subject;
    }

    // For the current row of routerCluster_data()'s table: greedy decode of 8 steps with set(false),
    // then with set(true), the same tokens and logits bit for bit. The one-token MoE kernels these
    // forms belong to run only with the cooperative MoE kernel off, so it is off meanwhile. `applies`
    // checks that the subject takes the forms at all (else both runs would take one path).
    void sameDecodeBothWays(const std::function<void(bool)>& set,
                            const std::function<bool(const DecodeSubject&)>& applies = {})
    {
        DecodeSubject subject = rowSubject();
        if (!subject.be)
            QSKIP(subject.skip);
        if (applies)
            QVERIFY(applies(subject));
        struct Restore {
            cuda::CudaBackend* be;
            bool fusedMoe = be->fusedMoeDecode();
            ~Restore() { be->setFusedMoeDecode(fusedMoe); }
        } restore{subject.be};
        subject.be->setFusedMoeDecode(false);
        std::vector<std::int32_t> offIds, onIds;
        set(false);
        const auto off = greedyDecodeLogits(*subject.be, subject.prompt, 8, offIds);
        set(true);
        const auto on = greedyDecodeLogits(*subject.be, subject.prompt, 8, onIds);
        QCOMPARE(onIds, offIds);
        for (std::size_t s = 0; s < off.size(); ++s)
            QVERIFY2(std::memcmp(on[s].data(), off[s].data(), off[s].size() * sizeof(float)) == 0,
                     qPrintable(QString("step %1: the logits differ").arg(s)));
    }

    LoadedModel* model(const std::string& name)
    {
        auto& slot = models_[name];
        if (!slot) {
            const auto dir = test::goldenModel(name);
            if (dir.empty() || !std::filesystem::exists(dir / "config.json"))
                return nullptr;
            auto m = std::make_unique<LoadedModel>();
            m->config = loadModelConfig(dir / "config.json");
            m->store = TensorStore::openFolder(dir);
            m->weights = std::make_unique<WeightMap>(m->config, m->store);
            m->processor = std::make_unique<Processor>(Processor::fromModelFolder(dir));
            m->cpu = std::make_unique<cpu::CpuBackend>(m->config, *m->weights, m->processor->config());
            cuda::CudaBackendOptions exact;
            exact.math = k::MathMode::ExactFp32;
            m->exact = std::make_unique<cuda::CudaBackend>(m->config, *m->weights, m->processor->config(), exact);
            cuda::CudaBackendOptions fast;
            fast.math = k::MathMode::FastBf16;
            m->fast = std::make_unique<cuda::CudaBackend>(m->config, *m->weights, m->processor->config(), fast);
            slot = std::move(m);
        }
        return slot.get();
    }
#endif

private slots:
    void initTestCase()
    {
#if !TESSERA_HAVE_CUDA_BACKEND
        QSKIP("this build has no CUDA backend (no CUDA toolkit at configure time)");
#else
        REQUIRE_GPU();
        const auto g = kernels::queryGpus().gpus.front();
        qInfo("GPU: %s, %d SMs, %.1f GiB", g.name.c_str(), g.multiprocessors, g.totalMemoryBytes / 1073741824.0);
#endif
    }

    void cleanupTestCase()
    {
        for (const auto& [key, v] : figures())
            qInfo("figure %-58s %.4g", key.c_str(), v);
    }

#if TESSERA_HAVE_CUDA_BACKEND
    // ---- kernels against CPU references -------------------------------------------------------

    void gemmSweep_data()
    {
        QTest::addColumn<int>("M");
        QTest::addColumn<int>("N");
        QTest::addColumn<int>("K");
        QTest::addColumn<int>("batch");
        QTest::addColumn<bool>("kn");
        QTest::addColumn<bool>("bf16Out");  // bf16 output (no accumulation) instead of F32 += product
        QTest::addColumn<bool>("gelu");     // tanh GELU epilogue
        QTest::addRow("odd 7x129x67") << 7 << 129 << 67 << 1 << false << false << false;
        QTest::addRow("kn batched 33x40x300") << 33 << 40 << 300 << 3 << true << false << false;
        QTest::addRow("mini 64x64x64") << 64 << 64 << 64 << 1 << false << false << false;
        QTest::addRow("tiny qkv 96x3840x1280") << 96 << 3840 << 1280 << 1 << false << false << false;
        QTest::addRow("small o_proj 40x2048x2048") << 40 << 2048 << 2048 << 1 << false << false << false;
        QTest::addRow("base dense down 17x2560x12288") << 17 << 2560 << 12288 << 1 << false << false << false;
        QTest::addRow("vision fc1 200x4304x1152") << 200 << 4304 << 1152 << 1 << false << false << false;
        QTest::addRow("mla scores kn 64x576x300") << 64 << 576 << 300 << 1 << true << false << false;
        // The vision tower's fused epilogues (bias, bias + GELU) at its real widths.
        QTest::addRow("vision fc1 bias+gelu bf16 out 200x4304x1152") << 200 << 4304 << 1152 << 1 << false << true << true;
        QTest::addRow("vision qkv bias bf16 out 150x3456x1152") << 150 << 3456 << 1152 << 1 << false << true << false;
        QTest::addRow("vision fc2 bias accumulate 129x1152x4304") << 129 << 1152 << 4304 << 1 << false << false << false;
        QTest::addRow("projector bias bf16 out 77x1280x4608") << 77 << 1280 << 4608 << 1 << false << true << false;
        QTest::addRow("mini vision fc1 bias+gelu 100x239x64") << 100 << 239 << 64 << 1 << false << true << true;
        QTest::addRow("gelu only, F32 out, odd 33x130x72") << 33 << 130 << 72 << 1 << false << false << true;
    }
    void gemmSweep()
    {
        REQUIRE_GPU();
        QFETCH(int, M);
        QFETCH(int, N);
        QFETCH(int, K);
        QFETCH(int, batch);
        QFETCH(bool, kn);
        QFETCH(bool, bf16Out);
        QFETCH(bool, gelu);
        std::mt19937 rng(M * 131 + N * 7 + K + (gelu ? 5 : 0));
        const bool noBias = gelu && N == 130;  // the GELU-only epilogue
        std::normal_distribution<float> nd(0.f, 1.f);
        const std::size_t aCount = std::size_t(batch) * M * K, bCount = std::size_t(batch) * N * K;
        std::vector<float> a(aCount), bias(N);
        std::vector<std::uint16_t> b(bCount), a16(aCount);
        for (std::size_t i = 0; i < aCount; ++i) {
            a16[i] = bf16Bits(nd(rng));
            a[i] = bf16Value(a16[i]);  // bf16-exact, so both paths see the same operands
        }
        for (auto& v : b)
            v = bf16Bits(nd(rng) / std::sqrt(float(K)));
        for (auto& v : bias)
            v = bf16Value(bf16Bits(nd(rng) * 0.1f));  // checkpoint biases are bf16 values
        std::vector<float> c0(std::size_t(batch) * M * N);
        for (auto& v : c0)
            v = nd(rng);
        // Reference in double: C = A·op(B) + bias + C0.
        std::vector<double> ref(c0.size());
        for (int z = 0; z < batch; ++z)
            for (int m = 0; m < M; ++m)
                for (int n = 0; n < N; ++n) {
                    double s = 0;
                    for (int kk = 0; kk < K; ++kk) {
                        const float bv = kn ? bf16Value(b[std::size_t(z) * N * K + std::size_t(kk) * N + n])
                                            : bf16Value(b[std::size_t(z) * N * K + std::size_t(n) * K + kk]);
                        s += double(a[std::size_t(z) * M * K + std::size_t(m) * K + kk]) * bv;
                    }
                    double v = s + (noBias ? 0.0 : bias[n]) + (bf16Out || gelu ? 0.0 : c0[std::size_t(z) * M * N + std::size_t(m) * N + n]);
                    if (gelu)
                        v = 0.5 * v * (1.0 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
                    ref[std::size_t(z) * M * N + std::size_t(m) * N + n] = v;
                }
        k::Stream stream = nullptr;
        k::GemmContext* ctx = nullptr;
        cuda::check(k::gemmContextCreate(&ctx, stream), "gemm context");
        auto dA = upload(a), dA16 = upload(a16), dB = upload(b), dBias = upload(bias);
        for (k::MathMode math : {k::MathMode::ExactFp32, k::MathMode::FastBf16}) {
            // bf16 outputs start poisoned (NaN): every element must be written.
            auto dC = bf16Out ? upload(std::vector<std::uint16_t>(c0.size(), 0x7fc0)) : upload(c0);
            k::GemmArgs g;
            g.M = M;
            g.N = N;
            g.K = K;
            const bool fast = math == k::MathMode::FastBf16;
            g.A = fast ? dA16.get() : dA.get();
            g.aType = fast ? k::DType::BF16 : k::DType::F32;
            g.lda = K;
            g.strideA = std::int64_t(M) * K;
            g.B = dB.get();
            g.bType = k::DType::BF16;
            g.bLayout = kn ? k::BLayout::KN : k::BLayout::NK;
            g.ldb = kn ? N : K;
            g.strideB = std::int64_t(N) * K;
            g.C = dC.get();
            g.cType = bf16Out ? k::DType::BF16 : k::DType::F32;
            g.ldc = N;
            g.strideC = std::int64_t(M) * N;
            g.batch = batch;
            g.beta = bf16Out || gelu ? 0.f : 1.f;  // a GELU epilogue goes without accumulation
            g.bias = noBias ? nullptr : dBias.as<float>();
            g.epilogue = gelu ? k::Epilogue::GeluTanh : k::Epilogue::None;
            g.math = math;
            cuda::check(k::gemm(ctx, g, stream), "gemm");
            std::vector<float> got(c0.size());
            if (bf16Out) {
                const auto got16 = download<std::uint16_t>(dC, c0.size());
                for (std::size_t i = 0; i < got.size(); ++i)
                    got[i] = bf16Value(got16[i]);
            } else {
                got = download<float>(dC, c0.size());
            }
            double worst = 0;
            for (std::size_t i = 0; i < got.size(); ++i) {
                const double e = std::abs(got[i] - ref[i]) / (1.0 + std::abs(ref[i]));
                worst = std::max(worst, std::isnan(e) ? INFINITY : e);
            }
            const std::string kind = std::string(fast ? "bf16" : "fp32") + (bf16Out ? " (bf16 out)" : "") + (gelu ? " gelu" : "");
            recordMax("kernel gemm " + kind + " max rel err", worst);
            // fp32 FMA over K terms of magnitude ~1: well under 1e-5 · sqrt(K) relative; a bf16
            // output adds at most two roundings of 2^-8 relative (product, then a separate
            // bias / GELU pass where the epilogue is not fused).
            const double bound = (fast ? 2e-4 : 1e-5 * std::sqrt(double(K)) + 1e-6) + (bf16Out ? 8e-3 : 0.0);
            QVERIFY2(worst < bound, qPrintable(QString("%1 path: error %2").arg(QString::fromStdString(kind)).arg(worst)));
        }
        k::gemmContextDestroy(ctx);
    }

    void gemvSweep_data()
    {
        QTest::addColumn<int>("N");
        QTest::addColumn<int>("K");
        QTest::addColumn<int>("batch");
        QTest::addColumn<bool>("indexed");
        QTest::addColumn<bool>("gated");
        QTest::addColumn<bool>("bf16x");
        QTest::addColumn<bool>("accumulate");
        QTest::addColumn<int>("fixedFrom");  // entries from here on are "shared experts" (-1: none)
        QTest::addRow("odd 77x131") << 77 << 131 << 1 << false << false << false << false << -1;
        QTest::addRow("odd gated 45x99") << 45 << 99 << 2 << false << true << false << true << -1;
        QTest::addRow("tiny lm_head 129280x1280") << 129280 << 1280 << 1 << false << false << true << false << -1;
        QTest::addRow("tiny o_proj 1280x1280 accumulate") << 1280 << 1280 << 1 << false << false << true << true << -1;
        QTest::addRow("tiny qkv 3840x1280") << 3840 << 1280 << 1 << false << false << true << false << -1;
        QTest::addRow("tiny experts gate/up 1792x1280 of 64") << 1792 << 1280 << 6 << true << false << false << false << -1;
        QTest::addRow("tiny experts gated 896x1280 of 64") << 896 << 1280 << 8 << true << true << true << false << -1;
        QTest::addRow("tiny experts down 1280x896 of 64") << 1280 << 896 << 8 << true << false << true << false << -1;
        QTest::addRow("tiny dense down 1280x6848") << 1280 << 6848 << 1 << false << false << true << true << -1;
        QTest::addRow("base experts down 2560x1536 of 72") << 2560 << 1536 << 6 << true << false << false << false << -1;
        QTest::addRow("10 KB gated rows (base gate/up) 160x2560 of 72, 2 shared") << 160 << 2560 << 8 << true << true << true << false << 6;
        QTest::addRow("base o_proj 2560x4096") << 2560 << 4096 << 1 << false << false << true << true << -1;
        QTest::addRow("mla absorption 512x128 x32 heads") << 512 << 128 << 32 << false << false << true << false << -1;
        QTest::addRow("mla expansion 128x512 x32 heads") << 128 << 512 << 32 << false << false << true << false << -1;
        QTest::addRow("over the tile 64x20000") << 64 << 20000 << 1 << false << false << true << false << -1;
        QTest::addRow("tiny experts gated 896x1280, 2 shared") << 896 << 1280 << 8 << true << true << true << false << 6;
        QTest::addRow("base experts down 2560x1536, 2 shared") << 2560 << 1536 << 8 << true << false << true << false << 6;
        QTest::addRow("odd experts gated 45x99, 2 shared") << 45 << 99 << 8 << true << true << false << false << 6;
    }
    void gemvSweep()
    {
        REQUIRE_GPU();
        QFETCH(int, N);
        QFETCH(int, K);
        QFETCH(int, batch);
        QFETCH(bool, indexed);
        QFETCH(bool, gated);
        QFETCH(bool, bf16x);
        QFETCH(bool, accumulate);
        QFETCH(int, fixedFrom);
        const int pool = indexed ? 72 : batch;
        const int rowsPer = gated ? 2 * N : N;  // gated: gate rows, then up rows
        std::mt19937 rng(N + K + (gated ? 7 : 0));
        std::normal_distribution<float> nd(0.f, 1.f);
        std::vector<std::uint16_t> w(std::size_t(pool) * rowsPer * K);
        for (auto& v : w)
            v = bf16Bits(nd(rng) / std::sqrt(float(K)));
        std::vector<float> x(std::size_t(batch) * K);
        for (auto& v : x)
            v = bf16x ? bf16Value(bf16Bits(nd(rng))) : nd(rng);
        std::vector<std::uint16_t> xb(x.size());
        for (std::size_t i = 0; i < x.size(); ++i)
            xb[i] = bf16Bits(x[i]);
        std::vector<float> y0(std::size_t(batch) * N);
        for (auto& v : y0)
            v = nd(rng);
        // Fixed entries use matrices 64, 65, ... without reading the index list, whose entries for
        // them are poisoned on the device.
        std::vector<std::int32_t> index(batch), deviceIndex(batch);
        for (int b = 0; b < batch; ++b) {
            const bool fixed = fixedFrom >= 0 && b >= fixedFrom;
            index[b] = fixed ? 64 + b - fixedFrom : indexed ? (b * 11 + 5) % 64 : b;
            deviceIndex[b] = fixed ? -12345 : index[b];
        }
        auto dW = upload(w), dX = bf16x ? upload(xb) : upload(x), dI = upload(deviceIndex);
        auto dot = [&](int b, int row) {
            double s = 0;
            const std::uint16_t* wr = w.data() + (std::size_t(index[b]) * rowsPer + row) * K;
            for (int kk = 0; kk < K; ++kk)
                s += double(bf16Value(wr[kk])) * x[std::size_t(b) * K + kk];
            return s;
        };
        std::vector<double> ref(std::size_t(batch) * N);  // the same for every way of copying
        for (int b = 0; b < batch; ++b)
            for (int n = 0; n < N; ++n) {
                double s = dot(b, n);
                if (gated)
                    s = s / (1.0 + std::exp(-s)) * dot(b, N + n);
                if (accumulate)
                    s += y0[std::size_t(b) * N + n];
                ref[std::size_t(b) * N + n] = s;
            }
        // Both ways of copying the weight rows (bulk copies: setGemvBulkMinK; the odd shapes take
        // the scalar kernel either way), each with and without evict-first L2 lines.
        struct RestoreCopies {
            int minK;
            bool evictFirst;
            ~RestoreCopies()
            {
                k::setGemvBulkMinK(minK);
                k::setGemvEvictFirst(evictFirst);
            }
        } restoreCopies{k::gemvBulkMinK(), k::gemvEvictFirstEnabled()};
        for (const int copies : {0, 1, 2, 3}) {
            const bool bulk = copies & 1, evictFirst = copies & 2;
            k::setGemvBulkMinK(bulk ? 1 : 0);
            k::setGemvEvictFirst(evictFirst);
            auto dY = upload(y0);
            k::GemvArgs g;
            g.N = N;
            g.K = K;
            g.batch = batch;
            g.x = dX.get();
            g.xType = bf16x ? k::DType::BF16 : k::DType::F32;
            g.strideX = K;
            g.W = dW.get();
            g.ldw = K;
            g.strideW = std::int64_t(rowsPer) * K;
            g.batchIndex = indexed ? dI.as<std::int32_t>() : nullptr;
            g.fixedFrom = fixedFrom;
            g.fixedBase = 64;
            g.y = dY.get();
            g.yType = k::DType::F32;
            g.strideY = N;
            g.gatedOutput = gated;
            g.beta = accumulate ? 1.f : 0.f;
            cuda::check(k::gemv(g, nullptr), "gemv");
            const auto got = download<float>(dY, std::size_t(batch) * N);
            double worst = 0;
            for (std::size_t i = 0; i < ref.size(); ++i)
                worst = std::max(worst, std::abs(got[i] - ref[i]) / (1.0 + std::abs(ref[i])));
            recordMax(bulk ? "kernel gemv max rel err (bulk copies)" : "kernel gemv max rel err", worst);
            QVERIFY2(worst < 1e-5 * std::sqrt(double(K)),
                     qPrintable(QString("%1 (bulk copies %2, evict-first %3)").arg(worst).arg(bulk).arg(evictFirst)));
        }
    }

    void groupedGemmSweep_data()
    {
        QTest::addColumn<int>("tokens");
        QTest::addColumn<int>("experts");
        QTest::addColumn<int>("topk");
        QTest::addColumn<int>("N");
        QTest::addColumn<int>("K");
        QTest::addColumn<bool>("bf16Out");
        QTest::addRow("mini 300 tok 8 exp 64x64") << 300 << 8 << 2 << 64 << 64 << false;
        QTest::addRow("mini down 300 tok 32->64") << 300 << 8 << 2 << 64 << 32 << false;
        QTest::addRow("mini gate/up bf16 out 300 tok 64->64") << 300 << 8 << 2 << 64 << 64 << true;
        QTest::addRow("tiny gate/up 160 tok 64 exp 1792x1280") << 160 << 64 << 6 << 1792 << 1280 << true;
        QTest::addRow("base down 96 tok 72 exp 2560x1536") << 96 << 72 << 6 << 2560 << 1536 << false;
        QTest::addRow("small gate/up 400 tok 66 exp top-8 2816x2048") << 400 << 66 << 8 << 2816 << 2048 << true;
        QTest::addRow("base gate/up 700 tok 74 exp top-8 3072x2560") << 700 << 74 << 8 << 3072 << 2560 << true;
        QTest::addRow("multi-tile experts 1000 tok 8 exp 1280x896") << 1000 << 8 << 2 << 1280 << 896 << false;
    }
    void groupedGemmSweep()
    {
        REQUIRE_GPU();
        QFETCH(int, tokens);
        QFETCH(int, experts);
        QFETCH(int, topk);
        QFETCH(int, N);
        QFETCH(int, K);
        QFETCH(bool, bf16Out);
        std::mt19937 rng(tokens * experts + N);
        std::normal_distribution<float> nd(0.f, 1.f);
        const auto idx = testRouting(tokens, experts, topk, true, rng);  // uneven loads
        std::vector<float> x(std::size_t(tokens) * K);
        std::vector<std::uint16_t> x16(x.size());
        for (std::size_t i = 0; i < x.size(); ++i) {
            x16[i] = bf16Bits(nd(rng));
            x[i] = bf16Value(x16[i]);
        }
        std::vector<std::uint16_t> w(std::size_t(experts) * N * K);
        for (auto& v : w)
            v = bf16Bits(nd(rng) / std::sqrt(float(K)));
        auto dIdx = upload(idx), dW = upload(w);
        const int E1 = experts + 1;
        for (const k::MathMode math : {k::MathMode::ExactFp32, k::MathMode::FastBf16}) {
            const bool fast = math == k::MathMode::FastBf16;
            auto dX = fast ? upload(x16) : upload(x);
            const std::size_t eb = fast ? 2 : 4;
            DeviceBuffer gathered(std::size_t(tokens) * topk * K * eb, "gathered");
            // Poisoned output (NaN in both types): every routed row must be written.
            const std::size_t outCount = std::size_t(tokens) * topk * N;
            auto out = bf16Out ? upload(std::vector<std::uint16_t>(outCount, 0x7fc0)) : upload(std::vector<float>(outCount, NAN));
            const TestDispatch dispatch(dIdx, dX, fast ? k::DType::BF16 : k::DType::F32, gathered, tokens, experts, topk, K, math);
            const k::DispatchArgs& d = dispatch.args;
            k::GroupedGemmArgs g;
            g.N = N;
            g.K = K;
            g.groups = experts;
            g.maxRows = tokens * topk;
            g.A = gathered.get();
            g.aType = d.xType;
            g.lda = K;
            g.B = dW.get();
            g.ldb = K;
            g.strideB = std::int64_t(N) * K;
            g.C = out.get();
            g.cType = bf16Out ? k::DType::BF16 : k::DType::F32;
            g.ldc = N;
            g.offsets = d.offsets;
            g.tileOffsets = d.tileOffsets;
            g.math = math;
            cuda::check(k::groupedGemm(g, nullptr), "grouped gemm");
            std::vector<float> got(outCount);
            if (bf16Out) {
                const auto got16 = download<std::uint16_t>(out, outCount);
                for (std::size_t i = 0; i < outCount; ++i)
                    got[i] = bf16Value(got16[i]);
            } else {
                got = download<float>(out, outCount);
            }
            std::vector<std::int32_t> pairRows(std::size_t(tokens) * topk);
            cuda::check(k::copyToHost(pairRows.data(), d.pairRows, pairRows.size() * 4, nullptr), "pairRows");
            std::vector<int> book(std::size_t(4) * E1);  // counts, fill, offsets, tileOffsets
            cuda::check(k::copyToHost(book.data(), d.counts, book.size() * 4, nullptr), "dispatch bookkeeping");
            cuda::check(k::streamSynchronize(nullptr), "pairRows");
            std::vector<int> perExpert(experts);
            for (const int e : idx)
                ++perExpert[e];
            QCOMPARE(book[2 * E1], 0);
            QCOMPARE(book[3 * E1], 0);
            for (int e = 0; e < experts; ++e) {
                QCOMPARE(book[e], perExpert[e]);
                QCOMPARE(book[E1 + e], perExpert[e]);  // every slot of the expert taken
                QCOMPARE(book[2 * E1 + e + 1] - book[2 * E1 + e], perExpert[e]);
                QCOMPARE(book[3 * E1 + e + 1] - book[3 * E1 + e], (perExpert[e] + d.tileRows - 1) / d.tileRows);
            }
            double worst = 0;
            for (int t = 0; t < tokens; ++t)
                for (int i = 0; i < topk; ++i) {
                    const int e = idx[std::size_t(t) * topk + i];
                    const int row = pairRows[std::size_t(t) * topk + i];
                    QVERIFY(row >= 0 && row < tokens * topk);
                    // Every row's first and last columns and ~97 between them.
                    for (int n = 0; n < N; n = n + 1 == N ? N : std::min(N - 1, n + std::max(1, N / 97))) {
                        double s = 0;
                        for (int kk = 0; kk < K; ++kk)
                            s += double(x[std::size_t(t) * K + kk]) * bf16Value(w[(std::size_t(e) * N + n) * K + kk]);
                        const double err = std::abs(got[std::size_t(row) * N + n] - s) / (1.0 + std::abs(s));
                        worst = std::max(worst, std::isnan(err) ? INFINITY : err);
                    }
                }
            recordMax(std::string("kernel grouped gemm ") + (fast ? "bf16" : "fp32") + (bf16Out ? " (bf16 out)" : "") +
                          " max rel err",
                      worst);
            QVERIFY2(worst < (fast ? 2e-4 : 1e-5 * std::sqrt(double(K))) + (bf16Out ? 4e-3 : 0.0), qPrintable(QString::number(worst)));
        }
    }

    // The grouped gate/up product that stores silu(gate)·up itself (GroupedGemmArgs::gatedOutput)
    // against the product of the gate and up rows, then siluGate: the same bits.
    void groupedGemmGated_data()
    {
        QTest::addColumn<int>("tokens");
        QTest::addColumn<int>("experts");
        QTest::addColumn<int>("topk");
        QTest::addColumn<int>("inter");
        QTest::addColumn<int>("K");
        QTest::addRow("tiny 300 tok 66 exp top-8 896x1280") << 300 << 66 << 8 << 896 << 1280;
        QTest::addRow("small 500 tok 66 exp top-8 1408x2048") << 500 << 66 << 8 << 1408 << 2048;
        QTest::addRow("base 400 tok 74 exp top-8 1536x2560") << 400 << 74 << 8 << 1536 << 2560;
        QTest::addRow("units not a multiple of 128: 700 tok 8 exp 200x64") << 700 << 8 << 2 << 200 << 64;
    }
    void groupedGemmGated()
    {
        REQUIRE_GPU();
        QFETCH(int, tokens);
        QFETCH(int, experts);
        QFETCH(int, topk);
        QFETCH(int, inter);
        QFETCH(int, K);
        std::mt19937 rng(tokens + experts * inter);
        std::normal_distribution<float> nd(0.f, 1.f);
        const auto idx = testRouting(tokens, experts, topk, false, rng);
        std::vector<std::uint16_t> x(std::size_t(tokens) * K), w(std::size_t(experts) * 2 * inter * K);
        for (auto& v : x)
            v = bf16Bits(nd(rng));
        for (auto& v : w)
            v = bf16Bits(nd(rng) / std::sqrt(float(K)));
        auto dIdx = upload(idx), dX = upload(x), dW = upload(w);
        const int rows = tokens * topk;
        DeviceBuffer gathered(std::size_t(rows) * K * 2, "gathered");
        const TestDispatch dispatch(dIdx, dX, k::DType::BF16, gathered, tokens, experts, topk, K, k::MathMode::FastBf16);
        const k::DispatchArgs& d = dispatch.args;
        k::GroupedGemmArgs g;
        g.N = 2 * inter;
        g.K = K;
        g.groups = experts;
        g.maxRows = rows;
        g.A = gathered.get();
        g.aType = k::DType::BF16;
        g.lda = K;
        g.B = dW.get();
        g.ldb = K;
        g.strideB = std::int64_t(2) * inter * K;
        g.cType = k::DType::BF16;
        g.offsets = d.offsets;
        g.tileOffsets = d.tileOffsets;
        g.math = k::MathMode::FastBf16;
        k::GroupedGemmArgs gated = g;
        gated.N = inter;
        gated.ldc = inter;
        gated.gatedOutput = true;
        if (!k::groupedGemmGates(gated))
            QSKIP("the gated grouped product needs the tensor-core kernel of a Hopper GPU");
        // Poisoned outputs (bf16 NaN): every routed row must be written.
        const std::vector<std::uint16_t> poison(std::size_t(rows) * inter, 0x7fc0);
        auto gateUp = upload(std::vector<std::uint16_t>(std::size_t(rows) * 2 * inter, 0x7fc0));
        auto twoStep = upload(poison), oneStep = upload(poison);
        g.C = gateUp.get();
        g.ldc = 2 * inter;
        cuda::check(k::groupedGemm(g, nullptr), "grouped gate/up");
        cuda::check(k::siluGate(gateUp.get(), k::DType::BF16, 2 * inter, rows, inter, twoStep.get(), k::DType::BF16, inter, nullptr),
                    "siluGate");
        gated.C = oneStep.get();
        cuda::check(k::groupedGemm(gated, nullptr), "grouped gated gate/up");
        const auto want = download<std::uint16_t>(twoStep, poison.size()), got = download<std::uint16_t>(oneStep, poison.size());
        std::size_t differ = 0, nan = 0, nonzero = 0;
        for (std::size_t i = 0; i < want.size(); ++i) {
            differ += got[i] != want[i] ? 1 : 0;
            nan += std::isnan(bf16Value(got[i])) ? 1 : 0;
            nonzero += bf16Value(got[i]) != 0.f ? 1 : 0;
        }
        QVERIFY2(differ == 0, qPrintable(QString("%1 of %2 values differ").arg(differ).arg(want.size())));
        QCOMPARE(nan, std::size_t(0));
        QVERIFY(nonzero > want.size() / 2);
    }

    void flashAttentionSweep_data()
    {
        QTest::addColumn<int>("batch");
        QTest::addColumn<int>("heads");
        QTest::addColumn<int>("group");
        QTest::addColumn<int>("queries");
        QTest::addColumn<int>("keys");
        QTest::addColumn<int>("dim");
        QTest::addColumn<int>("valueDim");
        QTest::addColumn<bool>("causal");
        QTest::addColumn<bool>("wgmma");  // the Hopper kernel where the GPU has one (the default)
        QTest::addRow("vision 2 tiles 16 heads 729 d72") << 2 << 16 << 1 << 729 << 729 << 72 << 72 << false << true;
        QTest::addRow("vision 10 tiles 16 heads 729 d72 (one 1152x1152 image)") << 10 << 16 << 1 << 729 << 729 << 72 << 72 << false << true;
        QTest::addRow("tiny prefill after 100 cached, d128") << 1 << 10 << 1 << 300 << 400 << 128 << 128 << true << true;
        QTest::addRow("grouped kv, d64, one query") << 1 << 4 << 2 << 1 << 77 << 64 << 64 << true << true;
        QTest::addRow("mini-mha d32 causal from 0") << 1 << 2 << 1 << 130 << 130 << 32 << 32 << true << true;
        // MLA prefill in the expanded form: keys nope + rope, narrower values.
        QTest::addRow("base mla 32 heads 192/128 after 70 cached") << 1 << 32 << 1 << 130 << 200 << 192 << 128 << true << true;
        QTest::addRow("small mla 16 heads 192/128 from 0") << 1 << 16 << 1 << 257 << 257 << 192 << 128 << true << true;
        QTest::addRow("small mla 16 heads 192/128 520 after 300 cached") << 1 << 16 << 1 << 520 << 820 << 192 << 128 << true << true;
        QTest::addRow("mla 192/128 2 batches 4 heads, kv groups of 2, not causal") << 2 << 4 << 2 << 200 << 300 << 192 << 128 << false << true;
        QTest::addRow("mha d128 2 batches 6 heads, kv groups of 3, 300 after 260 cached") << 2 << 6 << 3 << 300 << 560 << 128 << 128 << true << true;
        // The same shapes on the mma.sync kernel (what GPUs other than Hopper run).
        QTest::addRow("vision 2 tiles 16 heads 729 d72, mma.sync kernel") << 2 << 16 << 1 << 729 << 729 << 72 << 72 << false << false;
        QTest::addRow("tiny prefill after 100 cached, d128, mma.sync kernel") << 1 << 10 << 1 << 300 << 400 << 128 << 128 << true << false;
        QTest::addRow("base mla after 70 cached, mma.sync kernel") << 1 << 32 << 1 << 130 << 200 << 192 << 128 << true << false;
        QTest::addRow("small mla 520 after 300 cached, mma.sync kernel") << 1 << 16 << 1 << 520 << 820 << 192 << 128 << true << false;
        QTest::addRow("mini-mla 4 heads 24/16 after 33 cached") << 1 << 4 << 1 << 100 << 133 << 24 << 16 << true << true;
    }
    void flashAttentionSweep()
    {
        REQUIRE_GPU();
        QFETCH(int, batch);
        QFETCH(int, heads);
        QFETCH(int, group);
        QFETCH(int, queries);
        QFETCH(int, keys);
        QFETCH(int, dim);
        QFETCH(int, valueDim);
        QFETCH(bool, causal);
        QFETCH(bool, wgmma);
        const bool wgmmaBefore = k::wgmmaAttentionEnabled();
        k::setWgmmaAttention(wgmma);
        const auto restore = qScopeGuard([&] { k::setWgmmaAttention(wgmmaBefore); });
        const int kvHeads = heads / group;
        std::mt19937 rng(queries + keys + dim + valueDim);
        std::normal_distribution<float> nd(0.f, 1.f);
        auto make = [&](std::size_t n) {
            std::vector<std::uint16_t> v(n);
            for (auto& x : v)
                x = bf16Bits(nd(rng));
            return v;
        };
        const auto q = make(std::size_t(batch) * queries * heads * dim);
        const auto kk = make(std::size_t(batch) * keys * kvHeads * dim);
        const auto vv = make(std::size_t(batch) * keys * kvHeads * valueDim);
        auto dQ = upload(q), dK = upload(kk), dV = upload(vv);
        const std::size_t outCount = std::size_t(batch) * queries * heads * valueDim;
        // Poisoned (NaN) output: every element must be written.
        auto dO = upload(std::vector<std::uint16_t>(outCount, 0x7fc0));
        k::FlashAttentionArgs fa;
        fa.q = dQ.get();
        fa.ldq = std::int64_t(heads) * dim;
        fa.qHeadStride = dim;
        fa.qBatchStride = std::int64_t(queries) * heads * dim;
        fa.k = dK.get();
        fa.ldk = std::int64_t(kvHeads) * dim;
        fa.kHeadStride = dim;
        fa.kBatchStride = std::int64_t(keys) * kvHeads * dim;
        fa.v = dV.get();
        fa.ldv = std::int64_t(kvHeads) * valueDim;
        fa.vHeadStride = valueDim;
        fa.vBatchStride = std::int64_t(keys) * kvHeads * valueDim;
        fa.o = dO.get();
        fa.ldo = std::int64_t(heads) * valueDim;
        fa.oHeadStride = valueDim;
        fa.oBatchStride = std::int64_t(queries) * heads * valueDim;
        fa.batch = batch;
        fa.heads = heads;
        fa.headsPerKv = group;
        fa.queries = queries;
        fa.keys = keys;
        fa.headDim = dim;
        fa.valueDim = valueDim;
        fa.causal = causal;
        fa.qPosition0 = keys - queries;
        fa.scale = 1.f / std::sqrt(float(dim));
        // The wgmma rows of the family's head shapes must run that kernel on a Hopper GPU (CC 9.0).
        const auto gpus = k::queryGpus().gpus;
        const bool hopper = !gpus.empty() && gpus.front().computeMajor == 9 && gpus.front().computeMinor == 0;
        const bool familyShape = (dim == 192 && valueDim == 128) || (dim == valueDim && (dim == 128 || dim == 72));
        const bool expectWgmma = hopper && wgmma && familyShape;
        QCOMPARE(k::flashAttentionOnWgmma(fa), expectWgmma);
        cuda::check(k::flashAttention(fa, nullptr), "flash attention");
        const auto o16 = download<std::uint16_t>(dO, outCount);
        std::vector<float> got(o16.size()), ref(o16.size());
        for (std::size_t i = 0; i < got.size(); ++i)
            got[i] = bf16Value(o16[i]);
        for (int b = 0; b < batch; ++b)
            for (int h = 0; h < heads; ++h)
                for (int i = 0; i < queries; ++i) {
                    const int visible = causal ? fa.qPosition0 + i + 1 : keys;
                    std::vector<double> p(visible);
                    double mx = -1e300, sum = 0;
                    const std::size_t qo = (std::size_t(b) * queries + i) * heads * dim + std::size_t(h) * dim;
                    for (int j = 0; j < visible; ++j) {
                        const std::size_t ko = (std::size_t(b) * keys + j) * kvHeads * dim + std::size_t(h / group) * dim;
                        double d = 0;
                        for (int c = 0; c < dim; ++c)
                            d += double(bf16Value(q[qo + c])) * bf16Value(kk[ko + c]);
                        p[j] = d * fa.scale;
                        mx = std::max(mx, p[j]);
                    }
                    for (auto& x : p)
                        sum += (x = std::exp(x - mx));
                    const std::size_t oo = (std::size_t(b) * queries + i) * heads * valueDim + std::size_t(h) * valueDim;
                    for (int c = 0; c < valueDim; ++c) {
                        double acc = 0;
                        for (int j = 0; j < visible; ++j)
                            acc += p[j] * bf16Value(vv[(std::size_t(b) * keys + j) * kvHeads * valueDim + std::size_t(h / group) * valueDim + c]);
                        ref[oo + c] = float(acc / sum);
                    }
                }
        const Stats st = stats(got.data(), ref.data(), ref.size());
        recordMax("kernel flash attention rel err (bf16)", st.relError);
        QVERIFY2(st.relError < 1e-2, qPrintable(QString("relative error %1").arg(st.relError)));
    }

    void mlaPrefillPack_data()
    {
        QTest::addColumn<int>("n");
        QTest::addColumn<int>("ctx");
        QTest::addColumn<int>("heads");
        QTest::addColumn<int>("nope");
        QTest::addColumn<int>("rope");
        QTest::addColumn<int>("rank");
        QTest::addRow("base 70 new after 80 cached") << 70 << 150 << 32 << 128 << 64 << 512;
        QTest::addRow("small 33 from 0") << 33 << 33 << 16 << 128 << 64 << 512;
        QTest::addRow("mini-mla 40 after 9") << 40 << 49 << 4 << 16 << 8 << 32;
    }
    // The rope columns land where the expanded MLA prefill reads them; nothing else is touched.
    void mlaPrefillPack()
    {
        REQUIRE_GPU();
        QFETCH(int, n);
        QFETCH(int, ctx);
        QFETCH(int, heads);
        QFETCH(int, nope);
        QFETCH(int, rope);
        QFETCH(int, rank);
        std::mt19937 rng(n * 7 + ctx + heads);
        std::uniform_int_distribution<int> bits(0, 0x7f00);
        auto make = [&](std::size_t count) {
            std::vector<std::uint16_t> v(count);
            for (auto& x : v)
                x = static_cast<std::uint16_t>(bits(rng));
            return v;
        };
        const int qhd = nope + rope, width = rank + rope;
        const std::int64_t ldq = std::int64_t(heads) * qhd + width, ldk = std::int64_t(heads) * qhd;
        const auto qcat = make(std::size_t(n) * heads * width), cache = make(std::size_t(ctx) * width);
        auto q = make(std::size_t(n) * ldq), keys = make(std::size_t(ctx) * ldk);
        auto dQcat = upload(qcat), dCache = upload(cache), dQ = upload(q), dKeys = upload(keys);
        k::MlaPackArgs a;
        a.n = n;
        a.ctx = ctx;
        a.heads = heads;
        a.nope = nope;
        a.rope = rope;
        a.rank = rank;
        a.qcat = dQcat.get();
        a.q = dQ.get();
        a.ldq = ldq;
        a.cache = dCache.get();
        a.keys = dKeys.get();
        a.ldk = ldk;
        cuda::check(k::mlaPrefillPack(a, nullptr), "mla pack");
        for (int t = 0; t < n; ++t)
            for (int h = 0; h < heads; ++h)
                for (int j = 0; j < rope; ++j)
                    q[std::size_t(t) * ldq + h * qhd + nope + j] = qcat[(std::size_t(t) * heads + h) * width + rank + j];
        for (int t = 0; t < ctx; ++t)
            for (int h = 0; h < heads; ++h)
                for (int j = 0; j < rope; ++j)
                    keys[std::size_t(t) * ldk + h * qhd + nope + j] = cache[std::size_t(t) * width + rank + j];
        QVERIFY(download<std::uint16_t>(dQ, q.size()) == q);
        QVERIFY(download<std::uint16_t>(dKeys, keys.size()) == keys);
    }

    // The MHA decode attention with its rotary embedding and cache write fused
    // (DecodeAttentionArgs::fusePrepare) against mhaPrepare then decodeAttention: the same output
    // and the same cache, bit for bit, wherever the newest position falls in its split; and the
    // fallback (a shape the kernel does not fuse) gives them too.
    void fusedPrepare_data()
    {
        QTest::addColumn<int>("heads");
        QTest::addColumn<int>("kvHeads");
        QTest::addColumn<int>("headDim");
        QTest::addColumn<int>("context");
        QTest::addColumn<bool>("fusable");
        for (const int context : {1, 17, 64, 65, 1024, 3001})
            QTest::addRow("tiny 10x128 @%d", context) << 10 << 10 << 128 << context << true;
        QTest::addRow("gqa 16 heads / 4 x64 @130") << 16 << 4 << 64 << 130 << true;
        QTest::addRow("odd head dim 6 heads x40 @77") << 6 << 6 << 40 << 77 << true;
        QTest::addRow("head dim 36 (portable kernel) @50") << 4 << 4 << 36 << 50 << false;
    }
    void fusedPrepare()
    {
        REQUIRE_GPU();
        QFETCH(int, heads);
        QFETCH(int, kvHeads);
        QFETCH(int, headDim);
        QFETCH(int, context);
        QFETCH(bool, fusable);
        const int capacity = 4096, hd = headDim, half = hd / 2;
        const int qw = heads * hd, kw = kvHeads * hd;
        std::mt19937 rng(heads * hd + context);
        std::normal_distribution<float> nd(0.f, 1.f);
        auto bits = [&](std::size_t n) {
            std::vector<std::uint16_t> v(n);
            for (auto& x : v)
                x = bf16Bits(nd(rng));
            return v;
        };
        const auto qkv = bits(std::size_t(qw + 2 * kw));
        const auto oldKeys = bits(std::size_t(capacity) * kw), oldValues = bits(std::size_t(capacity) * kw);
        std::vector<float> cosT(std::size_t(capacity) * half), sinT(cosT.size());
        for (int p = 0; p < capacity; ++p)
            for (int i = 0; i < half; ++i) {
                const double angle = p / std::pow(10000.0, 2.0 * i / hd);
                cosT[std::size_t(p) * half + i] = float(std::cos(angle));
                sinT[std::size_t(p) * half + i] = float(std::sin(angle));
            }
        auto dQkv = upload(qkv), dCos = upload(cosT), dSin = upload(sinT), dLen = upload(std::vector<int>{context - 1});
        struct Run {
            std::vector<float> out;
            std::vector<std::uint16_t> keys, values;
        };
        struct RestoreFusion {
            bool on = k::mhaFusedPrepareEnabled();
            ~RestoreFusion() { k::setMhaFusedPrepare(on); }
        } restoreFusion;
        k::setMhaFusedPrepare(true);
        bool fusedInKernel = false;
        auto run = [&](bool fuse) {
            auto dK = upload(oldKeys), dV = upload(oldValues);
            DeviceBuffer dQ(std::size_t(qw) * 2, "q"), ws(k::decodeAttentionWorkspaceFloats(heads, hd, capacity) * sizeof(float), "ws");
            DeviceBuffer dOut(std::size_t(heads) * hd * sizeof(float), "out");
            DeviceBuffer counters = upload(std::vector<int>(kvHeads, 0));
            k::MhaPrepareArgs prep;
            prep.qkv = dQkv.get();
            prep.qkvType = k::DType::BF16;
            prep.n = 1;
            prep.heads = heads;
            prep.kvHeads = kvHeads;
            prep.headDim = hd;
            prep.startOnDevice = dLen.as<int>();
            prep.q = dQ.get();
            prep.qType = k::DType::BF16;
            prep.keys = dK.get();
            prep.values = dV.get();
            prep.cacheType = k::DType::BF16;
            prep.rotary = {dCos.as<float>(), dSin.as<float>(), hd};
            if (!fuse)
                cuda::check(k::mhaPrepare(prep, nullptr), "mhaPrepare");
            k::DecodeAttentionArgs d;
            d.q = dQ.get();
            d.qType = k::DType::BF16;
            d.qHeadStride = hd;
            d.heads = heads;
            d.headsPerKv = heads / kvHeads;
            d.keys = dK.get();
            d.keyLd = kw;
            d.keyHeadStride = hd;
            d.keyDim = hd;
            d.values = dV.get();
            d.valueLd = kw;
            d.valueHeadStride = hd;
            d.valueDim = hd;
            d.cacheType = k::DType::BF16;
            d.lengthOnDevice = dLen.as<int>();
            d.capacity = capacity;
            d.scale = 1.f / std::sqrt(float(hd));
            d.workspace = ws.as<float>();
            d.counters = counters.as<int>();
            d.out = dOut.get();
            d.outType = k::DType::F32;
            d.outHeadStride = hd;
            d.fusePrepare = fuse;
            d.prepare = prep;
            if (fuse)
                fusedInKernel = k::decodeAttentionFusesPrepare(d);
            cuda::check(k::decodeAttention(d, nullptr), "decodeAttention");
            return Run{download<float>(dOut, std::size_t(heads) * hd), download<std::uint16_t>(dK, oldKeys.size()),
                       download<std::uint16_t>(dV, oldValues.size())};
        };
        const Run twoLaunches = run(false), fused = run(true);
        QCOMPARE(fused.keys, twoLaunches.keys);
        QCOMPARE(fused.values, twoLaunches.values);
        QVERIFY2(std::memcmp(fused.out.data(), twoLaunches.out.data(), fused.out.size() * sizeof(float)) == 0, "the outputs differ");
        // The new row did land (the cache differs from its old contents there and only there).
        QVERIFY(twoLaunches.keys != oldKeys);
        QVERIFY(std::equal(twoLaunches.keys.begin(), twoLaunches.keys.begin() + std::size_t(context - 1) * kw, oldKeys.begin()));
        QCOMPARE(fusedInKernel, fusable);  // the kernel did take the prepare on (or the fallback ran)
    }

    // The same for MLA (DecodeAttentionArgs::latentPrepare): the latent decode attention making the
    // cache row and its queries' rotary columns against mlaPrepare then decodeAttention.
    void fusedLatentPrepare_data()
    {
        QTest::addColumn<int>("heads");
        QTest::addColumn<int>("rank");
        QTest::addColumn<int>("rope");
        QTest::addColumn<int>("context");
        QTest::addColumn<bool>("fusable");
        for (const int context : {1, 31, 33, 1024, 3001})
            QTest::addRow("small 16 heads 512+64 @%d", context) << 16 << 512 << 64 << context << true;
        QTest::addRow("base 32 heads 512+64 @1000") << 32 << 512 << 64 << 1000 << true;
        QTest::addRow("base 32 heads 512+64 @65") << 32 << 512 << 64 << 65 << true;
        QTest::addRow("mini 4 heads 32+8 @77 (no latent kernel)") << 4 << 32 << 8 << 77 << false;
    }
    void fusedLatentPrepare()
    {
        REQUIRE_GPU();
        QFETCH(int, heads);
        QFETCH(int, rank);
        QFETCH(int, rope);
        QFETCH(int, context);
        QFETCH(bool, fusable);
        const int capacity = 4096, nope = 128, half = rope / 2, width = rank + rope, qhd = nope + rope;
        std::mt19937 rng(heads * rank + context);
        std::normal_distribution<float> nd(0.f, 1.f);
        auto bits = [&](std::size_t n) {
            std::vector<std::uint16_t> v(n);
            for (auto& x : v)
                x = bf16Bits(nd(rng));
            return v;
        };
        const auto fused = bits(std::size_t(heads) * qhd + width);  // q_proj | kv_a_proj_with_mqa of one token
        const auto oldCache = bits(std::size_t(capacity) * width);
        const auto qcat = bits(std::size_t(heads) * width);  // the first rank columns: the absorbed queries
        std::vector<float> kvNorm(rank), cosT(std::size_t(capacity) * half), sinT(cosT.size());
        for (auto& w : kvNorm)
            w = 1.f + 0.1f * nd(rng);
        for (int p = 0; p < capacity; ++p)
            for (int i = 0; i < half; ++i) {
                const double angle = p / std::pow(10000.0, 2.0 * i / rope);
                cosT[std::size_t(p) * half + i] = float(std::cos(angle));
                sinT[std::size_t(p) * half + i] = float(std::sin(angle));
            }
        auto dFused = upload(fused), dNorm = upload(kvNorm), dCos = upload(cosT), dSin = upload(sinT);
        auto dLen = upload(std::vector<int>{context - 1});
        struct RestoreFusion {
            bool on = k::mlaFusedPrepareEnabled();
            ~RestoreFusion() { k::setMlaFusedPrepare(on); }
        } restoreFusion;
        k::setMlaFusedPrepare(true);
        bool fusedInKernel = false;
        auto run = [&](bool fuse) {
            auto dCache = upload(oldCache), dQ = upload(qcat);
            DeviceBuffer ws(k::decodeAttentionWorkspaceFloats(heads, rank, capacity) * sizeof(float), "ws");
            DeviceBuffer dOut(std::size_t(heads) * rank * sizeof(float), "out");
            k::MlaPrepareArgs prep;
            prep.fused = dFused.get();
            prep.fusedType = k::DType::BF16;
            prep.n = 1;
            prep.heads = heads;
            prep.nope = nope;
            prep.rope = rope;
            prep.rank = rank;
            prep.kvNorm = dNorm.as<float>();
            prep.startOnDevice = dLen.as<int>();
            prep.qcat = dQ.get();
            prep.qType = k::DType::BF16;
            prep.cache = dCache.get();
            prep.cacheType = k::DType::BF16;
            prep.rotary = {dCos.as<float>(), dSin.as<float>(), rope};
            if (!fuse)
                cuda::check(k::mlaPrepare(prep, nullptr), "mlaPrepare");
            k::DecodeAttentionArgs d;
            d.q = dQ.get();
            d.qType = k::DType::BF16;
            d.qHeadStride = width;
            d.heads = heads;
            d.headsPerKv = heads;
            d.keys = dCache.get();
            d.keyLd = width;
            d.keyDim = width;
            d.values = dCache.get();
            d.valueLd = width;
            d.valueDim = rank;
            d.cacheType = k::DType::BF16;
            d.lengthOnDevice = dLen.as<int>();
            d.capacity = capacity;
            d.scale = 1.f / std::sqrt(float(qhd));
            d.workspace = ws.as<float>();
            d.out = dOut.get();
            d.outType = k::DType::F32;
            d.outHeadStride = rank;
            d.fusePrepare = fuse;
            d.latentPrepare = prep;
            if (fuse)
                fusedInKernel = k::decodeAttentionFusesPrepare(d);
            cuda::check(k::decodeAttention(d, nullptr), "decodeAttention");
            return std::make_pair(download<float>(dOut, std::size_t(heads) * rank), download<std::uint16_t>(dCache, oldCache.size()));
        };
        const auto twoLaunches = run(false), fusedRun = run(true);
        QCOMPARE(fusedRun.second, twoLaunches.second);
        QVERIFY2(std::memcmp(fusedRun.first.data(), twoLaunches.first.data(), fusedRun.first.size() * sizeof(float)) == 0,
                 "the outputs differ");
        QVERIFY(twoLaunches.second != oldCache);  // the new row did land
        QCOMPARE(fusedInKernel, fusable);
    }

    void decodeAttentionSweep_data()
    {
        QTest::addColumn<int>("heads");
        QTest::addColumn<int>("group");
        QTest::addColumn<int>("keyDim");
        QTest::addColumn<int>("valueDim");
        QTest::addColumn<int>("context");
        QTest::addColumn<bool>("shared");
        QTest::addColumn<bool>("bf16");
        QTest::addRow("base mla 32 heads 576/512 @1000 bf16") << 32 << 32 << 576 << 512 << 1000 << true << true;
        QTest::addRow("base mla 32 heads 576/512 @1 bf16") << 32 << 32 << 576 << 512 << 1 << true << true;
        QTest::addRow("base mla 32 heads 576/512 @3001 bf16") << 32 << 32 << 576 << 512 << 3001 << true << true;
        QTest::addRow("small mla 16 heads 576/512 @129 bf16") << 16 << 16 << 576 << 512 << 129 << true << true;
        QTest::addRow("small mla 16 heads 576/512 @1024 bf16 (last split full)") << 16 << 16 << 576 << 512 << 1024 << true << true;
        QTest::addRow("tiny mha 10x128 @17 bf16") << 10 << 1 << 128 << 128 << 17 << false << true;
        QTest::addRow("mini mla 4 heads 40/32 @77 bf16") << 4 << 4 << 40 << 32 << 77 << true << true;
        QTest::addRow("mini mla 4 heads 40/32 @77 fp32") << 4 << 4 << 40 << 32 << 77 << true << false;
        QTest::addRow("tiny mha 10x128 @1024 bf16") << 10 << 1 << 128 << 128 << 1024 << false << true;
        QTest::addRow("tiny mha 10x128 @129 bf16") << 10 << 1 << 128 << 128 << 129 << false << true;
        QTest::addRow("tiny mha 10x128 @2048 bf16 (the clusters' last context)") << 10 << 1 << 128 << 128 << 2048 << false << true;
        QTest::addRow("tiny mha 10x128 @2049 bf16 (33 splits)") << 10 << 1 << 128 << 128 << 2049 << false << true;
        QTest::addRow("tiny mha 10x128 @1 bf16") << 10 << 1 << 128 << 128 << 1 << false << true;
        QTest::addRow("tiny mha 10x128 @600 bf16 (clusters: 5 of 8 blocks, 2 splits each)") << 10 << 1 << 128 << 128 << 600 << false << true;
        QTest::addRow("tiny mha 10x128 @1500 bf16 (clusters: 3 splits a block)") << 10 << 1 << 128 << 128 << 1500 << false << true;
        QTest::addRow("gqa 8 heads/2 x128 @1500 bf16") << 8 << 4 << 128 << 128 << 1500 << false << true;
        QTest::addRow("gqa 8 heads/2 x64 @130 fp32") << 8 << 4 << 64 << 64 << 130 << false << false;
    }
    void decodeAttentionSweep()
    {
        REQUIRE_GPU();
        QFETCH(int, heads);
        QFETCH(int, group);
        QFETCH(int, keyDim);
        QFETCH(int, valueDim);
        QFETCH(int, context);
        QFETCH(bool, shared);
        QFETCH(bool, bf16);
        const int capacity = 4096;
        const int kvHeads = heads / group;
        const std::int64_t ld = shared ? keyDim : std::int64_t(kvHeads) * keyDim;
        std::mt19937 rng(heads * keyDim + context);
        std::normal_distribution<float> nd(0.f, 1.f);
        auto rounded = [&](std::size_t n) {
            std::vector<float> v(n);
            for (auto& x : v)
                x = bf16Value(bf16Bits(nd(rng)));
            return v;
        };
        const auto q = rounded(std::size_t(heads) * keyDim);
        const auto keys = rounded(std::size_t(context) * ld);
        const auto values = shared ? keys : rounded(std::size_t(context) * ld);
        auto toDevice = [&](const std::vector<float>& v) {
            if (!bf16)
                return upload(v);
            std::vector<std::uint16_t> b(v.size());
            for (std::size_t i = 0; i < v.size(); ++i)
                b[i] = bf16Bits(v[i]);
            return upload(b);
        };
        auto dQ = toDevice(q), dK = toDevice(keys), dV = shared ? DeviceBuffer() : toDevice(values);
        auto dLen = upload(std::vector<int>{context - 1});
        DeviceBuffer ws(k::decodeAttentionWorkspaceFloats(heads, valueDim, capacity) * sizeof(float), "ws");
        DeviceBuffer dOut(std::size_t(heads) * valueDim * sizeof(float), "out");
        k::DecodeAttentionArgs d;
        d.q = dQ.get();
        d.qType = bf16 ? k::DType::BF16 : k::DType::F32;
        d.qHeadStride = keyDim;
        d.heads = heads;
        d.headsPerKv = group;
        d.keys = dK.get();
        d.keyLd = ld;
        d.keyHeadStride = shared ? 0 : keyDim;
        d.keyDim = keyDim;
        d.values = shared ? dK.get() : dV.get();
        d.valueLd = ld;
        d.valueHeadStride = shared ? 0 : keyDim;
        d.valueDim = valueDim;
        d.cacheType = d.qType;
        d.lengthOnDevice = dLen.as<int>();
        d.capacity = capacity;
        d.scale = 1.f / std::sqrt(float(keyDim));
        d.workspace = ws.as<float>();
        std::vector<float> ref(std::size_t(heads) * valueDim);  // the same for both split sizes
        for (int h = 0; h < heads; ++h) {
            const int g = h / group;
            std::vector<double> p(context);
            double mx = -1e300, sum = 0;
            for (int j = 0; j < context; ++j) {
                double dot = 0;
                for (int c = 0; c < keyDim; ++c)
                    dot += double(q[std::size_t(h) * keyDim + c]) * keys[std::size_t(j) * ld + (shared ? 0 : g * keyDim) + c];
                p[j] = dot * d.scale;
                mx = std::max(mx, p[j]);
            }
            for (auto& x : p)
                sum += (x = std::exp(x - mx));
            for (int c = 0; c < valueDim; ++c) {
                double acc = 0;
                for (int j = 0; j < context; ++j)
                    acc += p[j] * values[std::size_t(j) * ld + (shared ? 0 : g * keyDim) + c];
                ref[std::size_t(h) * valueDim + c] = float(acc / sum);
            }
        }
        // Both split sizes of the latent kernel (setLatentShortSplits; the MHA kernel has one, the
        // fp32 cases take the portable kernel either way), the MHA kernel's warps with their score
        // columns split or not (setAttentionSplitScores), the latent kernel's value columns shared
        // by 1, 2 or 4 blocks (setLatentValueParts), and, where the context fits, launches sized for
        // the short decode graph's capacity (kDecodeClusterContext), the MHA kernel's splits merged
        // in clusters there or not (setAttentionClusters), the clusters' splits four a block or
        // spread over every block (setAttentionSpreadSplits): forms of one split size give the same bits.
        struct RestoreSplits {
            bool latent, splitScores, clusters, asyncStores, spread;
            int valueParts;
            ~RestoreSplits()
            {
                k::setLatentShortSplits(latent);
                k::setAttentionSplitScores(splitScores);
                k::setAttentionClusters(clusters);
                k::setClusterAsyncStores(asyncStores);
                k::setAttentionSpreadSplits(spread);
                k::setLatentValueParts(valueParts);
            }
        } restoreSplits{k::latentShortSplitsEnabled(), k::attentionSplitScoresEnabled(), k::attentionClustersEnabled(),
                        k::clusterAsyncStoresEnabled(), k::attentionSpreadSplitsEnabled(), k::latentValueParts()};
        struct Form {
            bool shortSplits, splitScores;
            int valueParts;
            bool shortCapacity, clusters, asyncStores = false, spread = true;
        };
        std::vector<float> firstForm[2];  // per split size
        for (const Form f : {Form{false, true, 1, false, true}, Form{false, false, 1, false, true}, Form{false, true, 2, false, true},
                             Form{true, true, 1, false, true}, Form{true, true, 2, false, true}, Form{true, true, 4, false, true},
                             Form{false, true, 1, true, true}, Form{false, false, 1, true, true}, Form{false, true, 1, true, false},
                             Form{false, true, 1, true, true, true}, Form{false, true, 1, true, true, true, false},
                             Form{false, true, 1, true, true, false, false}, Form{true, true, 1, true, true}}) {
            if (f.shortCapacity && context > k::kDecodeClusterContext)
                continue;
            const bool shortSplits = f.shortSplits;
            k::setLatentShortSplits(shortSplits);
            k::setAttentionSplitScores(f.splitScores);
            k::setAttentionClusters(f.clusters);
            k::setClusterAsyncStores(f.asyncStores);
            k::setAttentionSpreadSplits(f.spread);
            k::setLatentValueParts(f.valueParts);
            d.capacity = f.shortCapacity ? k::kDecodeClusterContext : capacity;
            DeviceBuffer counters = upload(std::vector<int>(kvHeads, 0));
            d.counters = counters.as<int>();  // where the kernel can, it merges the splits itself
            d.out = dOut.get();
            d.outType = k::DType::F32;
            d.outHeadStride = valueDim;
            // The clusters run only in launches sized for the short graph, and there at least for
            // tiny's heads (bf16, one query head of 128 a kv head) on a GPU that holds clusters of 8
            // (an H100 / H200 does).
            const bool clustered = k::decodeAttentionMergesInClusters(d);
            QVERIFY(!clustered || (f.clusters && f.shortCapacity));
            if (f.clusters && f.shortCapacity && bf16 && !shared && group == 1 && keyDim == 128)
                QVERIFY2(clustered, "tiny's heads did not take the clusters");
            // Twice: the second launch must find the counters reset by the first.
            cuda::check(k::fillZero(dOut.get(), std::size_t(heads) * valueDim * sizeof(float), nullptr), "poison");
            cuda::check(k::decodeAttention(d, nullptr), "decode attention");
            const auto first = download<float>(dOut, std::size_t(heads) * valueDim);
            cuda::check(k::fillZero(dOut.get(), std::size_t(heads) * valueDim * sizeof(float), nullptr), "poison");
            cuda::check(k::decodeAttention(d, nullptr), "decode attention");
            const auto got = download<float>(dOut, std::size_t(heads) * valueDim);
            QVERIFY2(first == got, "a second launch gave another result");
            QVERIFY(download<int>(counters, std::size_t(kvHeads)) == std::vector<int>(kvHeads, 0));
            const Stats st = stats(got.data(), ref.data(), ref.size());
            recordMax(std::string("kernel decode attention rel err ") + (bf16 ? "(bf16)" : "(fp32)") + (shortSplits ? " 32-position splits" : ""),
                      st.relError);
            // bf16: the probabilities enter the value product as bf16 (relative 2^-9 each).
            const QString form =
                QString("32-position splits %1, split scores %2, value parts %3, capacity %4, clusters %5, async stores %6, spread %7")
                    .arg(shortSplits)
                    .arg(f.splitScores)
                    .arg(f.valueParts)
                    .arg(d.capacity)
                    .arg(f.clusters)
                    .arg(f.asyncStores)
                    .arg(f.spread);
            QVERIFY2(st.relError < (bf16 ? 1e-2 : 1e-5), qPrintable(QString("relative error %1 (%2)").arg(st.relError).arg(form)));
            std::vector<float>& firstOfSize = firstForm[shortSplits ? 1 : 0];
            if (firstOfSize.empty())
                firstOfSize = got;
            else
                QVERIFY2(got == firstOfSize, qPrintable("other bits than the first form's of this split size: " + form));
        }
    }

    // embedRmsNorm against embedRows then rmsNorm: the same embedded rows and the same normalised
    // bits, for rows held in registers (1280, 2048: tiny, small) and rows past them (2560: base).
    void embedNorm()
    {
        REQUIRE_GPU();
        std::mt19937 rng(17);
        std::normal_distribution<float> nd(0.f, 1.f);
        for (const int n : {1280, 2048, 2560}) {
            const int vocab = 50, rows = 3;
            std::vector<std::uint16_t> table(std::size_t(vocab) * n);
            for (auto& v : table)
                v = bf16Bits(nd(rng) * 0.05f);
            std::vector<float> w(n);
            for (auto& v : w)
                v = 1.f + nd(rng) * 0.1f;
            const std::vector<std::int32_t> ids{7, 0, 49};
            auto dT = upload(table), dW = upload(w), dI = upload(ids);
            for (const k::DType outType : {k::DType::BF16, k::DType::F32}) {
                const std::size_t ob = k::dtypeBytes(outType);
                DeviceBuffer h1(std::size_t(rows) * n * 4, "embedded"), h2(std::size_t(rows) * n * 4, "embedded");
                DeviceBuffer x1(std::size_t(rows) * n * ob, "normed"), x2(std::size_t(rows) * n * ob, "normed");
                cuda::check(k::embedRows(dT.as<std::uint16_t>(), dI.as<std::int32_t>(), rows, n, h1.as<float>(), nullptr), "embed");
                cuda::check(k::rmsNorm(h1.as<float>(), n, rows, n, dW.as<float>(), 1e-6f, x1.get(), outType, n, nullptr), "norm");
                cuda::check(k::embedRmsNorm(dT.as<std::uint16_t>(), dI.as<std::int32_t>(), rows, n, h2.as<float>(), dW.as<float>(), 1e-6f,
                                            x2.get(), outType, n, nullptr),
                            "embed + norm");
                QVERIFY2(download<float>(h1, std::size_t(rows) * n) == download<float>(h2, std::size_t(rows) * n),
                         qPrintable(QString("width %1: other embedded rows").arg(n)));
                QVERIFY2(download<std::uint8_t>(x1, std::size_t(rows) * n * ob) == download<std::uint8_t>(x2, std::size_t(rows) * n * ob),
                         qPrintable(QString("width %1, %2 output: other normalised bits").arg(n).arg(ob == 2 ? "bf16" : "fp32")));
                const auto got = download<float>(h2, std::size_t(rows) * n);
                QCOMPARE(got[std::size_t(2) * n + 5], bf16Value(table[std::size_t(49) * n + 5]));
            }
        }
    }

    void normsAndSoftmax()
    {
        REQUIRE_GPU();
        std::mt19937 rng(5);
        std::normal_distribution<float> nd(0.f, 2.f);
        for (int n : {64, 239, 1152, 2560}) {
            const int rows = 37;
            std::vector<float> x(std::size_t(rows) * n), w(n), b(n);
            for (auto& v : x)
                v = nd(rng) + 3.f;
            for (auto& v : w)
                v = 1.f + nd(rng) * 0.1f;
            for (auto& v : b)
                v = nd(rng) * 0.1f;
            auto dX = upload(x), dW = upload(w), dB = upload(b);
            DeviceBuffer out(x.size() * sizeof(float), "out");
            cuda::check(k::rmsNorm(dX.as<float>(), n, rows, n, dW.as<float>(), 1e-6f, out.get(), k::DType::F32, n, nullptr), "rms");
            auto got = download<float>(out, x.size());
            double worst = 0;
            for (int r = 0; r < rows; ++r) {
                double ss = 0;
                for (int i = 0; i < n; ++i)
                    ss += double(x[r * n + i]) * x[r * n + i];
                const double inv = 1.0 / std::sqrt(ss / n + 1e-6);
                for (int i = 0; i < n; ++i)
                    worst = std::max(worst, std::abs(got[r * n + i] - w[i] * x[r * n + i] * inv));
            }
            cuda::check(k::layerNorm(dX.as<float>(), n, rows, n, dW.as<float>(), dB.as<float>(), 1e-6f, out.get(), k::DType::F32, n,
                                     nullptr),
                        "layer norm");
            got = download<float>(out, x.size());
            for (int r = 0; r < rows; ++r) {
                double mean = 0, var = 0;
                for (int i = 0; i < n; ++i)
                    mean += x[r * n + i];
                mean /= n;
                for (int i = 0; i < n; ++i)
                    var += (x[r * n + i] - mean) * (x[r * n + i] - mean);
                var /= n;
                for (int i = 0; i < n; ++i)
                    worst = std::max(worst, std::abs(got[r * n + i] - ((x[r * n + i] - mean) / std::sqrt(var + 1e-6) * w[i] + b[i])));
            }
            // The same LayerNorm rounded to bf16 (to within half a bf16 step of the fp32 result).
            DeviceBuffer outBf(x.size() * 2, "out bf16");
            cuda::check(k::layerNorm(dX.as<float>(), n, rows, n, dW.as<float>(), dB.as<float>(), 1e-6f, outBf.get(), k::DType::BF16, n,
                                     nullptr),
                        "layer norm (bf16)");
            const auto gotBf = download<std::uint16_t>(outBf, x.size());
            double worstBf = 0;
            for (std::size_t i = 0; i < got.size(); ++i)
                worstBf = std::max(worstBf, std::abs(bf16Value(gotBf[i]) - got[i]) / (std::abs(got[i]) + 1e-3));
            recordMax("kernel layer norm bf16 out, rel err to fp32 out", worstBf);
            QVERIFY2(worstBf < 4e-3, qPrintable(QString("width %1, bf16: %2").arg(n).arg(worstBf)));
            // silu(gate) · up over rows of [gate | up], n wide each (odd n: the element-wise kernel).
            {
                std::vector<float> gu(std::size_t(rows) * 2 * n);
                for (auto& v : gu)
                    v = nd(rng);
                auto dGu = upload(gu);
                DeviceBuffer act(std::size_t(rows) * n * sizeof(float), "silu gate out");
                cuda::check(k::siluGate(dGu.get(), k::DType::F32, 2 * n, rows, n, act.get(), k::DType::F32, n, nullptr), "silu gate");
                const auto a = download<float>(act, std::size_t(rows) * n);
                double worstAct = 0;
                for (int r = 0; r < rows; ++r)
                    for (int i = 0; i < n; ++i) {
                        const double g = gu[std::size_t(r) * 2 * n + i], u = gu[std::size_t(r) * 2 * n + n + i];
                        worstAct = std::max(worstAct, std::abs(a[std::size_t(r) * n + i] - g / (1 + std::exp(-g)) * u));
                    }
                recordMax("kernel silu gate max abs err", worstAct);
                QVERIFY2(worstAct < 1e-5, qPrintable(QString("silu gate, width %1: %2").arg(n).arg(worstAct)));
            }
            // Causal soft-max: row r sees firstVisible + r + 1 columns.
            const int ctx = n;
            std::vector<float> s(std::size_t(rows) * ctx);
            for (auto& v : s)
                v = nd(rng) * 3.f;
            auto dS = upload(s);
            k::SoftmaxArgs sm;
            sm.scores = dS.as<float>();
            sm.rows = rows;
            sm.context = ctx;
            sm.ld = ctx;
            sm.firstVisible = ctx - rows - 3;
            sm.tokenMod = rows;
            sm.scale = 0.125f;
            sm.out = dS.get();
            sm.outType = k::DType::F32;
            sm.ldo = ctx;
            cuda::check(k::causalSoftmax(sm, nullptr), "softmax");
            got = download<float>(dS, s.size());
            for (int r = 0; r < rows; ++r) {
                const int visible = std::min(ctx, sm.firstVisible + r + 1);
                double mx = -1e300, sum = 0;
                for (int j = 0; j < visible; ++j)
                    mx = std::max(mx, 0.125 * s[r * ctx + j]);
                for (int j = 0; j < visible; ++j)
                    sum += std::exp(0.125 * s[r * ctx + j] - mx);
                for (int j = 0; j < ctx; ++j) {
                    const double ref = j < visible ? std::exp(0.125 * s[r * ctx + j] - mx) / sum : 0.0;
                    worst = std::max(worst, std::abs(got[r * ctx + j] - ref));
                }
            }
            recordMax("kernel norms/softmax max abs err", worst);
            QVERIFY2(worst < 2e-5, qPrintable(QString("width %1: %2").arg(n).arg(worst)));
        }
    }

    // ---- the model against the CPU reference ---------------------------------------------------

    void goldenParity_data()
    {
        QTest::addColumn<QString>("model");
        QTest::addColumn<QString>("caseName");
        for (const char* m : kModels)
            for (const char* c : kCases)
                QTest::addRow("%s/%s", m, c) << QString(m) << QString(c);
    }
    void goldenParity()
    {
        REQUIRE_GPU();
        TESSERA_REQUIRE_GOLDEN();
        QFETCH(QString, model);
        QFETCH(QString, caseName);
        const std::string mname = model.toStdString(), cname = caseName.toStdString();
        LoadedModel* lm = this->model(mname);
        if (!lm)
            QSKIP("this golden model was not staged on this machine");
        std::vector<std::int64_t> goldenIds;
        const auto conv = goldenConversation(mname, cname, &goldenIds);
        const auto input = lm->processor->process(conv);
        const int H = lm->config.language.hiddenSize;
        const int V = static_cast<int>(lm->config.language.vocabSize);
        const int T = static_cast<int>(input.inputIds.size());
        const std::size_t TH = std::size_t(T) * H;
        const std::string tag = mname + " ";

        auto checkTensor = [&](const std::string& what, const std::vector<float>& got, const std::vector<float>& ref, double atol,
                               double rtol) {
            QCOMPARE(got.size(), ref.size());
            const Diff d = compare(got.data(), ref.data(), ref.size(), atol, rtol);
            recordMax(tag + "fp32 |cuda-cpu| " + what, d.maxAbs);
            QVERIFY2(d.failures == 0, qPrintable(QString("%1: %2 of %3 out of tolerance, max %4 at %5")
                                                     .arg(QString::fromStdString(what)).arg(d.failures).arg(ref.size())
                                                     .arg(d.maxAbs).arg(d.first)));
        };
        auto bf16Stats = [&](const std::string& what, const std::vector<float>& got, const std::vector<float>& ref) {
            const Stats s = stats(got.data(), ref.data(), ref.size());
            recordMin(tag + "bf16 vs fp32 cosine " + what, s.cosine);
            recordMax(tag + "bf16 vs fp32 rel err " + what, s.relError);
            return s;
        };

        // Vision and projector, tile by tile as the reference stores them.
        for (const auto& tiles : input.images) {
            const int n = tiles.count();
            const auto& vis = lm->cpu->vision();
            std::vector<float> cpuVision(std::size_t(n) * vis.featuresPerTile() * vis.visionWidth());
            std::vector<float> cpuProj(std::size_t(n) * vis.tokensPerTile() * vis.projectorWidth());
            vis.encode(tiles.pixels.data(), n, cpuVision.data());
            vis.project(cpuVision.data(), n, cpuProj.data());
            std::vector<float> gv, gp, fv, fp;
            lm->exact->encodeTiles(tiles, &gv, &gp);
            checkTensor("vision_out", gv, cpuVision, 1e-4, 1e-4);
            checkTensor("projector_out", gp, cpuProj, 1e-4, 1e-4);
            lm->fast->encodeTiles(tiles, &fv, &fp);
            const Stats sv = bf16Stats("vision_out", fv, gv);
            const Stats sp = bf16Stats("projector_out", fp, gp);
            QVERIFY2(sv.cosine > 0.999 && sp.cosine > 0.999, qPrintable(QString("bf16 vision cosine %1, projector %2").arg(sv.cosine).arg(sp.cosine)));
        }

        // Input embeddings.
        std::vector<std::shared_ptr<EncodedImage>> cpuImages, exactImages, fastImages;
        for (const auto& tiles : input.images) {
            cpuImages.push_back(lm->cpu->encodeImage(tiles, nullptr));
            exactImages.push_back(lm->exact->encodeImage(tiles, nullptr));
            fastImages.push_back(lm->fast->encodeImage(tiles, nullptr));
        }
        const auto cpuSegs = promptSegments(input, cpuImages), exactSegs = promptSegments(input, exactImages),
                   fastSegs = promptSegments(input, fastImages);
        const auto cpuEmb = lm->cpu->embeddings(cpuSegs);
        const auto exactEmb = lm->exact->embeddings(exactSegs);
        checkTensor("inputs_embeds", exactEmb, cpuEmb, 1e-4, 1e-4);
        bf16Stats("inputs_embeds", lm->fast->embeddings(fastSegs), exactEmb);

        // Prefill with traces: per-layer hidden states, routing, final hidden, logits.
        auto cpuCache = lm->cpu->language().createCache(T + 32);
        cpu::LanguageModelTrace cpuTrace;
        cpuTrace.wantHiddenStates = cpuTrace.wantRouting = true;
        std::vector<float> cpuFinal(TH);
        QVERIFY(lm->cpu->language().forward(cpuCache, cpuEmb.data(), T, cpuFinal.data(), &cpuTrace));
        std::vector<float> cpuLogits(V);
        lm->cpu->language().logits(cpuFinal.data() + TH - H, 1, cpuLogits.data());

        auto exactSeq = lm->exact->createSequence(T + 32);
        auto fastSeq = lm->fast->createSequence(T + 32);
        cuda::LanguageTrace exactTrace, fastTrace;
        exactTrace.wantHiddenStates = exactTrace.wantRouting = true;
        fastTrace.wantHiddenStates = fastTrace.wantRouting = true;
        lm->exact->appendTraced(*exactSeq, exactSegs, exactTrace);
        lm->fast->appendTraced(*fastSeq, fastSegs, fastTrace);
        const int L = lm->cpu->language().layerCount();
        QCOMPARE(int(exactTrace.hiddenStates.size()), L + 1);
        for (int l = 0; l < L; ++l)
            checkTensor("hidden_states", exactTrace.hiddenStates[l], cpuTrace.hiddenStates[l], 3e-4, 1e-4);
        checkTensor("last_layer_output", exactTrace.lastLayerOutput, cpuTrace.lastLayerOutput, 3e-4, 1e-4);
        checkTensor("final_hidden", exactTrace.hiddenStates[L], cpuFinal, 3e-4, 1e-4);
        for (int l = 1; l < L; ++l)
            bf16Stats("hidden layer " + std::to_string(l), fastTrace.hiddenStates[l], exactTrace.hiddenStates[l]);
        bf16Stats("final_hidden", fastTrace.hiddenStates[L], exactTrace.hiddenStates[L]);

        QCOMPARE(exactTrace.moeTopkIdx.size(), cpuTrace.moeTopkIdx.size());
        std::size_t agree = 0, total = 0;
        for (std::size_t l = 0; l < cpuTrace.moeTopkIdx.size(); ++l) {
            QVERIFY2(exactTrace.moeTopkIdx[l] == cpuTrace.moeTopkIdx[l], qPrintable(QString("routing differs in MoE layer %1").arg(l)));
            checkTensor("moe_topk_weight", exactTrace.moeTopkWeight[l], cpuTrace.moeTopkWeight[l], 1e-4, 0);
            const auto& f = fastTrace.moeTopkIdx[l];
            const auto& e = exactTrace.moeTopkIdx[l];
            const int kk = lm->config.language.numExpertsPerTok;
            for (std::size_t t = 0; t * kk < e.size(); ++t) {
                total++;
                agree += std::equal(e.begin() + t * kk, e.begin() + (t + 1) * kk, f.begin() + t * kk) ? 1 : 0;
            }
        }
        if (total) {
            const double rate = double(agree) / total;
            recordMin(tag + "bf16 vs fp32 routing agreement (token sets)", rate);
            QVERIFY2(rate > 0.85, qPrintable(QString("bf16 routing agreement %1").arg(rate)));
        }

        std::vector<float> exactLogits(V), fastLogits(V);
        lm->exact->lastLogits(*exactSeq, exactLogits);
        lm->fast->lastLogits(*fastSeq, fastLogits);
        checkTensor("logits_last", exactLogits, cpuLogits, 1e-3, 0);
        const Stats sl = bf16Stats("logits_last", fastLogits, exactLogits);
        // Tolerances of the bf16 mode, from the measured spread on the golden models: mini-mha keeps
        // cosine ≥ 0.9999 and routes 99% of tokens alike; the base-like mini-mla, whose routing gaps
        // (≥ 3.2e-5) sit far below bf16 noise, routes ~92% alike and its last-position logits keep
        // cosine ≥ 0.95 (0.9576 seen). The bounds leave headroom below those figures.
        QVERIFY2(sl.cosine > 0.9, qPrintable(QString("bf16 logits cosine %1").arg(sl.cosine)));

        // Greedy decode through the KV cache (the CUDA side through its captured decode step and
        // GPU argmax): 16 tokens, as the golden gen_ids.
        SamplingParams greedy;
        greedy.temperature = 0;
        greedy.repetitionPenalty = 1;
        Rng rng(1);
        std::vector<std::int32_t> seen(input.inputIds);
        std::vector<std::int32_t> cpuIds, exactIds, fastIds;
        {
            auto seq = lm->cpu->createSequence(T + 32);
            QVERIFY(lm->cpu->append(*seq, cpuSegs, nullptr));
            for (int s = 0; s < 16; ++s) {
                std::vector<float> l(V);
                lm->cpu->lastLogits(*seq, l);
                const std::int32_t id = argmax(l);
                cpuIds.push_back(id);
                QVERIFY(lm->cpu->appendToken(*seq, id));
            }
        }
        double worstDecodeLogit = 0;
        auto decodeCuda = [&](cuda::CudaBackend& be, Sequence& seq, std::vector<std::int32_t>& ids, bool compareLogits) {
            for (int s = 0; s < 16; ++s) {
                const std::int32_t id = be.sampleNext(seq, seen, greedy, rng);
                ids.push_back(id);
                QVERIFY(be.appendToken(seq, id));
                if (compareLogits && s == 7) {
                    // Position T + 8 through the decode graph against a cold prefill on the CPU.
                    std::vector<float> got(V);
                    be.lastLogits(seq, got);
                    auto cache = lm->cpu->language().createCache(T + 32);
                    std::vector<std::int32_t> all(input.inputIds);
                    all.insert(all.end(), ids.begin(), ids.end());
                    std::vector<float> emb(cpuEmb);
                    std::vector<float> tail(std::size_t(ids.size()) * H);
                    lm->cpu->language().embed(ids, tail.data());
                    emb.insert(emb.end(), tail.begin(), tail.end());
                    std::vector<float> fin(emb.size());
                    QVERIFY(lm->cpu->language().forward(cache, emb.data(), int(all.size()), fin.data()));
                    std::vector<float> ref(V);
                    lm->cpu->language().logits(fin.data() + fin.size() - H, 1, ref.data());
                    worstDecodeLogit = compare(got.data(), ref.data(), V, 1e-3, 0).maxAbs;
                }
            }
        };
        decodeCuda(*lm->exact, *exactSeq, exactIds, true);
        decodeCuda(*lm->fast, *fastSeq, fastIds, false);
        recordMax(tag + "fp32 |cuda-cpu| decode-step logits (graph, step 8)", worstDecodeLogit);
        QVERIFY2(worstDecodeLogit <= 1e-3, qPrintable(QString("decode logits differ by %1").arg(worstDecodeLogit)));
        QCOMPARE(exactIds, cpuIds);
        std::vector<std::int32_t> golden(goldenIds.begin(), goldenIds.end());
        QCOMPARE(exactIds, golden);
        int same = 0;
        while (same < 16 && fastIds[same] == exactIds[same])
            ++same;
        recordMin(tag + "bf16 greedy tokens equal to fp32 before first divergence (of 16)", same);
        figures()[tag + "cases"] += 1;
    }

    // ---- the fused MoE decode layer against the separate kernels -------------------------------

    // Greedy decode of `steps` tokens after `prompt`; the logits after each decode step.
    static std::vector<std::vector<float>> greedyDecodeLogits(cuda::CudaBackend& be, const std::vector<std::int32_t>& prompt,
                                                             int steps, std::vector<std::int32_t>& ids, int capacity = 0)
    {
        const int V = be.vocabSize();
        auto seq = be.createSequence(capacity > 0 ? capacity : static_cast<int>(prompt.size()) + steps + 1);
        const std::vector<PromptSegment> segs{{std::span<const std::int32_t>(prompt), nullptr, 0}};
        if (!be.append(*seq, segs, nullptr))
            throw Error("prompt not appended");
        std::vector<std::vector<float>> out;
        std::vector<float> l(V);
        be.lastLogits(*seq, l);
        for (int s = 0; s < steps; ++s) {
            const std::int32_t id = argmax(l);
            ids.push_back(id);
            if (!be.appendToken(*seq, id))
                throw Error("token not appended");
            be.lastLogits(*seq, l);
            out.push_back(l);
        }
        return out;
    }

    // Each cooperative decode kernel (the MoE layer; the attention half, MHA or MLA), both, both
    // halves in one kernel per layer, and the whole step in one kernel against the separate
    // kernels, on the golden mini models and on random weights at the real shapes.
    void fusedDecode_data()
    {
        QTest::addColumn<QString>("model");  // a golden mini model, or a config of tests/data/configs (random weights)
        QTest::addColumn<bool>("exact");
        QTest::addColumn<bool>("odd");  // widths that are not multiples of 8: the kernels' element-wise paths
        QTest::addColumn<int>("promptLength");  // 0: the golden case's prompt or 40 tokens; a full-size cache then
        for (const char* m : kModels) {
            QTest::addRow("%s/fp32", m) << QString(m) << true << false << 0;
            QTest::addRow("%s/bf16", m) << QString(m) << false << false << 0;
        }
        for (const char* c : {"deepseek-vl2-tiny", "deepseek-vl2-small", "deepseek-vl2"})
            QTest::addRow("%s/fp32-random", c) << QString(c) << true << false << 0;
        QTest::addRow("deepseek-vl2-tiny/bf16-random") << QString("deepseek-vl2-tiny") << false << false << 0;
        QTest::addRow("deepseek-vl2-tiny/fp32-random-odd") << QString("deepseek-vl2-tiny") << true << true << 0;
        QTest::addRow("deepseek-vl2-small/fp32-random-odd") << QString("deepseek-vl2-small") << true << true << 0;
        // A long context in a cache of the model's full length: many positions per slice.
        QTest::addRow("deepseek-vl2-tiny/fp32-random-long") << QString("deepseek-vl2-tiny") << true << false << 3000;
        QTest::addRow("deepseek-vl2/fp32-random-long") << QString("deepseek-vl2") << true << false << 3000;
    }
    void fusedDecode()
    {
        REQUIRE_GPU();
        QFETCH(QString, model);
        QFETCH(bool, exact);
        QFETCH(bool, odd);
        QFETCH(int, promptLength);
        const std::string name = model.toStdString();
        if (name.rfind("mini-", 0) == 0)
            TESSERA_REQUIRE_GOLDEN();
        DecodeSubject subject = decodeSubject(name, exact, odd, promptLength);
        if (!subject.be)
            QSKIP("this golden model was not staged on this machine");
        cuda::CudaBackend* be = subject.be;
        const std::vector<std::int32_t>& prompt = subject.prompt;
        const bool mla = subject.mla;
        // The golden models' backends are shared with other tests: put their switches back.
        struct Restore {
            cuda::CudaBackend* be;
            bool moe, attention, layer, step;
            ~Restore()
            {
                be->setFusedMoeDecode(moe);
                be->setFusedAttentionDecode(attention);
                be->setFusedLayerDecode(layer);
                be->setFusedStepDecode(step);
            }
        } restore{be, be->fusedMoeDecode(), be->fusedAttentionDecode(), be->fusedLayerDecode(), be->fusedStepDecode()};
        const int steps = 8;
        auto run = [&](bool moe, bool attention, bool layer, bool step, std::vector<std::int32_t>& ids) {
            be->setFusedMoeDecode(moe);
            be->setFusedAttentionDecode(attention);
            be->setFusedLayerDecode(layer);
            be->setFusedStepDecode(step);
            if (be->fusedMoeDecode() != moe || be->fusedAttentionDecode() != attention || be->fusedLayerDecode() != layer ||
                be->fusedStepDecode() != step)
                throw Error("a cooperative decode kernel does not take this shape");
            const int captures = be->decodeStepKernelCaptures();
            auto logits = greedyDecodeLogits(*be, prompt, steps, ids, promptLength > 0 ? be->maxContext() : 0);
            if (step && be->decodeStepKernelCaptures() != captures + 1)
                throw Error("the one-kernel decode step fell back to the separate kernels");
            return logits;
        };
        struct Variant {
            const char* what;
            bool moe, attention, layer, step;
        };
        const std::vector<Variant> variants{{"moe layer", true, false, false, false},
                                            {mla ? "mla attention half" : "mha attention half", false, true, false, false},
                                            {"both", true, true, false, false},
                                            {"one kernel per layer", true, true, true, false},
                                            {"one kernel per step", true, true, false, true}};
        std::vector<std::int32_t> plainIds;
        const auto plain = run(false, false, false, false, plainIds);
        for (const Variant& v : variants) {
            const std::string tag = name + (exact ? " fp32 " : " bf16 ") + v.what;
            be->setFusedMoeDecode(v.moe);
            be->setFusedAttentionDecode(v.attention);
            if (v.attention && !be->fusedAttentionDecode()) {
                // The one shape a cooperative kernel refuses here: the MHA kernel takes head widths
                // that are multiples of 8 only (the odd-width model has 126).
                QVERIFY2(odd && !mla, qPrintable(QString::fromStdString(tag + ": the attention kernel refused the shape")));
                recordMax("fused decode: variants left out, MHA head width not a multiple of 8, " + tag, 1);
                continue;
            }
            std::vector<std::int32_t> ids;
            const auto got = run(v.moe, v.attention, v.layer, v.step, ids);
            if (exact) {
                // Same arithmetic in other summation orders: logits within float noise at every step
                // of the same prefix, and the same greedy token wherever the separate path's margin
                // between its two best logits is clear of that noise (a near-tie may go either way;
                // the sequences then part and the comparison ends there). plain[s] follows the
                // tokens ids[0..s]; ids[0] comes from the prompt, which both paths run alike.
                double tolerance = 0;
                for (int s = 0; s < steps; ++s) {
                    if (ids[s] != plainIds[s]) {
                        QVERIFY2(s > 0, qPrintable(QString::fromStdString(tag + ": another first token from the same prompt")));
                        std::vector<float> sorted(plain[s - 1]);
                        std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<float>());
                        const double margin = double(sorted[0]) - double(sorted[1]);
                        QVERIFY2(margin <= 2 * tolerance, qPrintable(QString("%1, step %2: token %3 instead of %4 with a margin of %5")
                                                                          .arg(QString::fromStdString(tag)).arg(s).arg(ids[s])
                                                                          .arg(plainIds[s]).arg(margin)));
                        recordMax("fused decode: steps ended by a near-tie, " + tag, 1);
                        break;
                    }
                    double scale = 0;
                    for (float x : plain[s])
                        scale = std::max(scale, double(std::abs(x)));
                    tolerance = 1e-5 + 1e-4 * scale;
                    const Diff d = compare(got[s].data(), plain[s].data(), plain[s].size(), tolerance, 0);
                    recordMax("fused decode: |fused - separate| / max|logit|, " + tag, d.maxAbs / std::max(scale, 1e-30));
                    QVERIFY2(d.failures == 0, qPrintable(QString("%1, step %2: logits differ by %3 (max |logit| %4)")
                                                              .arg(QString::fromStdString(tag)).arg(s).arg(d.maxAbs).arg(scale)));
                }
                QVERIFY(ids.size() == plainIds.size());
            } else {
                // bf16: roundings in other places may route a token differently (see goldenParity's
                // bounds); the first decode step follows the same prefix in both.
                const Stats st = stats(got[0].data(), plain[0].data(), plain[0].size());
                recordMin("fused decode: cosine of the first step's logits, " + tag, st.cosine);
                QVERIFY2(st.cosine > 0.9, qPrintable(QString("%1, first decode step: cosine %2").arg(QString::fromStdString(tag)).arg(st.cosine)));
                for (float x : got.back())
                    QVERIFY(std::isfinite(x));
            }
        }
    }

    // The routers' top-k against the documented rule on the host: the k highest scores, of equal
    // ones the lowest expert (many ties here, and −0 beside +0), never a NaN; a row of NaN logits
    // still yields valid distinct experts (0, 1, ...). Weights in increasing expert order.
    void routerTopK_data()
    {
        QTest::addColumn<bool>("softmax");
        QTest::addColumn<int>("experts");
        QTest::addRow("softmax, 64 experts") << true << 64;
        QTest::addRow("sigmoid, 72 experts") << false << 72;
        QTest::addRow("softmax, 256 experts") << true << 256;
    }
    void routerTopK()
    {
        REQUIRE_GPU();
        QFETCH(bool, softmax);
        QFETCH(int, experts);
        const int E = experts, K = 6, rows = 64;
        std::mt19937 rng(E);
        std::normal_distribution<float> nd(0.f, 1.f);
        std::vector<float> logits(std::size_t(rows) * E);
        for (int t = 0; t < rows; ++t)
            for (int e = 0; e < E; ++e) {
                float& v = logits[std::size_t(t) * E + e];
                switch (t % 4) {
                case 0: v = nd(rng); break;                                      // distinct
                case 1: v = float(int(rng() % 3)) * 0.5f; break;                 // three values, many ties
                case 2: v = (rng() % 2) ? 0.f : -0.f; break;                     // all tied, signed zeros
                default: v = t == 3 ? NAN : (e % 5 == 0 ? 2.f : nd(rng)); break; // one NaN row; a tied top
                }
            }
        auto dScores = upload(logits);
        DeviceBuffer dIdx(std::size_t(rows) * K * sizeof(std::int32_t), "idx"), dW(std::size_t(rows) * K * sizeof(float), "w");
        k::RouteArgs r;
        r.scores = dScores.as<float>();
        r.n = rows;
        r.experts = E;
        r.k = K;
        r.scoring = softmax ? k::Scoring::Softmax : k::Scoring::Sigmoid;
        r.idx = dIdx.as<std::int32_t>();
        r.weight = dW.as<float>();
        cuda::check(k::routeTokens(r, nullptr), "routeTokens");
        const auto idx = download<std::int32_t>(dIdx, std::size_t(rows) * K);
        const auto w = download<float>(dW, std::size_t(rows) * K);
        for (int t = 0; t < rows; ++t) {
            const float* l = logits.data() + std::size_t(t) * E;
            std::vector<double> score(E);
            const double mx = *std::max_element(l, l + E);
            double sum = 0;
            for (int e = 0; e < E; ++e)
                sum += softmax ? std::exp(double(l[e]) - mx) : 0.0;
            for (int e = 0; e < E; ++e)
                score[e] = softmax ? std::exp(double(l[e]) - mx) / sum : 1.0 / (1.0 + std::exp(-double(l[e])));
            std::vector<int> order(E);
            std::iota(order.begin(), order.end(), 0);
            std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return score[a] > score[b]; });
            std::vector<int> want(order.begin(), order.begin() + K);
            if (std::isnan(l[0]))
                std::iota(want.begin(), want.end(), 0);
            std::sort(want.begin(), want.end());
            const std::vector<int> got(idx.begin() + std::size_t(t) * K, idx.begin() + std::size_t(t + 1) * K);
            QVERIFY2(got == want, qPrintable(QString("row %1: experts differ").arg(t)));
            if (!std::isnan(l[0]))
                for (int i = 0; i < K; ++i)
                    QVERIFY2(std::abs(w[std::size_t(t) * K + i] - score[want[i]]) <= 1e-6 + 1e-5 * score[want[i]],
                             qPrintable(QString("row %1: weight %2").arg(t).arg(i)));
        }
        // The top-k by keys with k known when compiling (the default), by keys in the general
        // routine, and by argmax rounds: the same experts and weights, bit for bit, ties, signed
        // zeros and the NaN row included.
        struct Restore {
            bool keyed = k::routerKeyedTopKEnabled(), fixedK = k::routerFixedKEnabled();
            ~Restore()
            {
                k::setRouterKeyedTopK(keyed);
                k::setRouterFixedK(fixedK);
            }
        } restore;
        for (const bool keyed : {true, false})
            for (const bool fixedK : {true, false}) {
                k::setRouterKeyedTopK(keyed);
                k::setRouterFixedK(fixedK);
                cuda::check(k::fillZero(dIdx.get(), dIdx.bytes(), nullptr), "poison");
                cuda::check(k::routeTokens(r, nullptr), "routeTokens (another top-k)");
                const QString form = QString("keyed %1, k fixed %2").arg(keyed).arg(fixedK);
                QVERIFY2(download<std::int32_t>(dIdx, std::size_t(rows) * K) == idx, qPrintable(form));
                const auto other = download<float>(dW, std::size_t(rows) * K);
                QVERIFY2(std::memcmp(other.data(), w.data(), w.size() * sizeof(float)) == 0, qPrintable(form));
            }
    }

    // The one-token router as one thread-block cluster (the logits handed to the first block
    // through distributed shared memory) against the counter and read-back through global memory:
    // the same blocks and arithmetic, so the same tokens and logits bit for bit.
    void routerCluster_data()
    {
        QTest::addColumn<QString>("model");
        QTest::addColumn<bool>("exact");
        for (const char* m : kModels) {
            QTest::addRow("%s/fp32", m) << QString(m) << true;
            QTest::addRow("%s/bf16", m) << QString(m) << false;
        }
        for (const char* c : {"deepseek-vl2-tiny", "deepseek-vl2-small", "deepseek-vl2"})
            QTest::addRow("%s/bf16-random", c) << QString(c) << false;
    }
    void routerCluster()
    {
        REQUIRE_GPU();
        struct Restore {
            bool cluster = k::clusterRoutingEnabled(), asyncStores = k::clusterAsyncStoresEnabled();
            ~Restore()
            {
                k::setClusterRouting(cluster);
                k::setClusterAsyncStores(asyncStores);
            }
        } restore;
        // The cluster with its logits stored into block 0 asynchronously (setClusterAsyncStores)
        // against the cluster barrier: the same bits. Routers of one block (8 experts or fewer: the
        // mini models') keep the barrier either way; tiny's, small's and base's take both.
        k::setClusterRouting(true);
        sameDecodeBothWays([](bool on) { k::setClusterAsyncStores(on); },
                           [](const DecodeSubject& subject) { return subject.experts > 0 && subject.experts <= 128; });
        k::setClusterAsyncStores(false);
        sameDecodeBothWays([](bool on) { k::setClusterRouting(on); },
                           [](const DecodeSubject& subject) {
                               // As one cluster only up to 128 experts (16 blocks): otherwise both
                               // runs would take the same path.
                               return subject.experts > 0 && subject.experts <= 128;
                           });
    }

    // The decode kernels that load earlier (the one-token MoE combine in one round trip, the router's
    // rows staged in shared memory, the one-row products that read the residual they add to beside
    // x, the shared experts' gate/up blocks started first), the one-row products' row pairs, the
    // combine's early hand-over, the attention's late one, its partials published by one
    // release-acquire add, the routers' keyed top-k and their fixed-k routine, the experts' larger
    // product tiles, the MHA attention compiled for its value tiles, the down product's rows
    // copied before its wait, the MHA attention's score columns split among its warps, the
    // lm_head's wide tiles, the products' blocks of 8 rows where 6 to 11 would fit, the embedding
    // with the first norm in one launch, the MHA attention's clusters (and the short graph they run
    // in), the clusters' asynchronous stores and their splits spread over every block, against the
    // kernels they replace: the same arithmetic in the same order, so the same tokens and logits
    // bit for bit.
    void earlyLoadsDecode_data() { routerCluster_data(); }
    void earlyLoadsDecode()
    {
        REQUIRE_GPU();
        struct Switch {
            bool (*enabled)();
            void (*set)(bool);
        };
        static constexpr Switch kSwitches[] = {{k::combineOneEnabled, k::setCombineOne},
                                               {k::routerRowsStagedEnabled, k::setRouterRowsStaged},
                                               {k::gemvEarlyYEnabled, k::setGemvEarlyY},
                                               {k::gemvFixedFirstEnabled, k::setGemvFixedFirst},
                                               {k::gemvRowPairsEnabled, k::setGemvRowPairs},
                                               {k::combineTriggerFirstEnabled, k::setCombineTriggerFirst},
                                               {k::attentionTriggerLateEnabled, k::setAttentionTriggerLate},
                                               {k::attentionMergeReleaseEnabled, k::setAttentionMergeRelease},
                                               {k::routerKeyedTopKEnabled, k::setRouterKeyedTopK},
                                               {k::gemvExpertTilesEnabled, k::setGemvExpertTiles},
                                               {k::routerFixedKEnabled, k::setRouterFixedK},
                                               {k::fittedTilesEnabled, k::setFittedTiles},
                                               {k::downRowsEarlyEnabled, k::setDownRowsEarly},
                                               {k::attentionSplitScoresEnabled, k::setAttentionSplitScores},
                                               {k::gemvWideTilesEnabled, k::setGemvWideTiles},
                                               {k::gemvEvenRowsEnabled, k::setGemvEvenRows},
                                               {k::embedNormEnabled, k::setEmbedNorm},
                                               {k::attentionClustersEnabled, k::setAttentionClusters},
                                               {k::shortDecodeGraphsEnabled, k::setShortDecodeGraphs},
                                               {k::clusterAsyncStoresEnabled, k::setClusterAsyncStores},
                                               {k::attentionSpreadSplitsEnabled, k::setAttentionSpreadSplits}};
        struct Restore {
            std::vector<bool> was;
            ~Restore()
            {
                for (std::size_t i = 0; i < was.size(); ++i)
                    kSwitches[i].set(was[i]);
            }
        } restore;
        for (const Switch& s : kSwitches)
            restore.was.push_back(s.enabled());
        sameDecodeBothWays([](bool on) {
            for (const Switch& s : kSwitches)
                s.set(on);
        });
    }

    // A sequence whose cache outgrows kDecodeClusterContext decodes across it: the short graph (its
    // attention launches sized for 2,048 positions, the MHA splits merged in clusters) up to there,
    // then a second graph sized for the capacity. Against one graph for every context without the
    // clusters (the kernels the golden tests check): the same tokens and logits bit for bit at
    // every step, on tiny's shapes in bf16 (MHA) and small's (MLA: the short graph's smaller grids).
    void shortDecodeGraph_data()
    {
        QTest::addColumn<QString>("model");
        QTest::addRow("deepseek-vl2-tiny/bf16-random") << QString("deepseek-vl2-tiny");
        QTest::addRow("deepseek-vl2-small/bf16-random") << QString("deepseek-vl2-small");
    }
    void shortDecodeGraph()
    {
        REQUIRE_GPU();
        QFETCH(QString, model);
        const int promptLength = k::kDecodeClusterContext - 8, steps = 16;  // positions 2,040 .. 2,055
        DecodeSubject subject = decodeSubject(model.toStdString(), false, false, promptLength);
        QVERIFY(subject.be);
        cuda::CudaBackend& be = *subject.be;
        QVERIFY(be.maxContext() > k::kDecodeClusterContext + steps);
        struct Restore {
            bool clusters = k::attentionClustersEnabled(), graphs = k::shortDecodeGraphsEnabled();
            ~Restore()
            {
                k::setAttentionClusters(clusters);
                k::setShortDecodeGraphs(graphs);
            }
        } restore;
        auto run = [&](bool on, std::vector<std::int32_t>& ids, int expectedGraphs) {
            k::setAttentionClusters(on);
            k::setShortDecodeGraphs(on);
            const int before = be.decodeGraphCaptures();
            auto logits = greedyDecodeLogits(be, subject.prompt, steps, ids, be.maxContext());
            if (be.decodeGraphCaptures() - before != expectedGraphs)
                throw Error("decode graphs captured: " + std::to_string(be.decodeGraphCaptures() - before) + " instead of " +
                            std::to_string(expectedGraphs));
            return logits;
        };
        std::vector<std::int32_t> offIds, onIds;
        const auto off = run(false, offIds, 1);
        const auto on = run(true, onIds, 2);
        QCOMPARE(onIds, offIds);
        for (std::size_t s = 0; s < off.size(); ++s)
            QVERIFY2(std::memcmp(on[s].data(), off[s].data(), off[s].size() * sizeof(float)) == 0,
                     qPrintable(QString("step %1 (context %2): the logits differ").arg(s).arg(promptLength + 1 + int(s))));
    }

    // ---- sampling and the runtime on the GPU ---------------------------------------------------

    void samplingMatchesHost()
    {
        REQUIRE_GPU();
        TESSERA_REQUIRE_GOLDEN();
        LoadedModel* lm = model("mini-mha");
        if (!lm)
            lm = model("mini-mla");
        if (!lm)
            QSKIP("no golden model staged");
        const auto input = lm->processor->process(goldenConversation("mini-mha", "e2_system_role_text"));
        const int V = static_cast<int>(lm->config.language.vocabSize);
        auto seq = lm->exact->createSequence(256);
        const std::vector<PromptSegment> segs{{std::span<const std::int32_t>(input.inputIds), nullptr, 0}};
        QVERIFY(lm->exact->append(*seq, segs, nullptr));
        std::vector<float> logits(V);
        lm->exact->lastLogits(*seq, logits);
        // Sharpen the random model's flat logits so that top-p keeps a handful of tokens.
        struct Setting {
            float t, p, pen;
            int k;
        };
        const Setting settings[] = {{0.f, 1.f, 1.1f, 0},   {0.1f, 0.9f, 1.1f, 0}, {1.f, 0.9f, 1.f, 0},  {1.f, 1.f, 1.3f, 50},
                                    {0.7f, 0.5f, 1.1f, 20}, {2.f, 0.95f, 1.f, 0},  {0.8f, 1.f, 1.f, 0},  {0.02f, 0.9f, 1.f, 0},
                                    {0.05f, 1.f, 1.f, 3}};
        const std::size_t sortedBefore = lm->exact->sortedDraws();
        int agree = 0, draws = 0;
        for (const auto& s : settings) {
            // Plain temperature sampling: the sorted path draws in sorted order, the host (and the
            // candidate path) in index order: same distribution, other tokens for the same number.
            if (s.k == 0 && s.p >= 1.f && s.t > 0.f && !lm->exact->candidateSampling())
                continue;
            SamplingParams p;
            p.temperature = s.t;
            p.topP = s.p;
            p.repetitionPenalty = s.pen;
            p.topK = s.k;
            Rng host(99), device(99);
            for (int i = 0; i < 40; ++i) {
                std::vector<float> l(logits);
                const std::int32_t want = sampleToken(l, input.inputIds, p, host);
                const std::int32_t got = lm->exact->sampleNext(*seq, input.inputIds, p, device);
                agree += want == got ? 1 : 0;
                ++draws;
            }
        }
        recordMin("sampling: GPU draws equal to the host sampler's (same seed)", double(agree) / draws);
        recordMax("sampling: draws that needed the whole vocabulary sorted", double(lm->exact->sortedDraws() - sortedBefore));
        QVERIFY2(agree >= draws * 97 / 100, qPrintable(QString("%1 of %2 draws agree").arg(agree).arg(draws)));
    }

    // The greedy argmax also storing its token into pinned host memory (the decode loop reads it
    // there without a copy): the host sees the token the device holds, the first of equal maxima.
    void argmaxToHost()
    {
        REQUIRE_GPU();
        const int V = 129280;
        std::mt19937 rng(3);
        std::uniform_real_distribution<float> noise(-1.f, 1.f);
        std::vector<float> base(V);
        for (auto& x : base)
            x = noise(rng);
        auto dLogits = upload(base);
        DeviceBuffer ws(k::argmaxWorkspaceBytes(), "argmax workspace"), dTok(sizeof(std::int32_t), "token");
        void* pinned = nullptr;
        cuda::check(k::pinnedAlloc(&pinned, sizeof(std::int32_t)), "pinned");
        struct Free {
            void* p;
            ~Free() { k::pinnedFree(p); }
        } freePinned{pinned};
        auto* host = static_cast<std::int32_t*>(pinned);
        for (const int top : {77, 129279, 5000}) {
            std::vector<float> logits(base);
            logits[top] = 3.f;
            logits[(top + 1) % V] = 3.f;  // a tie behind it (the lower index wins) ...
            if (top == 129279)
                logits[0] = 3.f;  // ... or in front of it
            cuda::check(k::copyToDevice(dLogits.get(), logits.data(), V * sizeof(float), nullptr), "logits");
            *host = -1;
            cuda::check(k::argmaxToken(dLogits.as<float>(), V, dTok.as<std::int32_t>(), ws.get(), nullptr, host), "argmax");
            cuda::check(k::streamSynchronize(nullptr), "argmax");
            const int want = int(std::max_element(logits.begin(), logits.end()) - logits.begin());
            QCOMPARE(*host, want);
            QCOMPARE(download<std::int32_t>(dTok, 1)[0], want);
        }
    }

    // The draw from the candidates near the maximum against the draw over the sorted vocabulary
    // (which samplingMatchesHost ties to the host sampler), on synthetic logits: peaked ones, where
    // the candidates must decide, and flat ones, where they may hand over to the sort.
    void samplingCandidates()
    {
        REQUIRE_GPU();
        const int V = 129280;
        std::mt19937 rng(5);
        std::uniform_real_distribution<float> noise(-1.f, 1.f);
        std::vector<float> flat(V), peaked(V);
        for (int i = 0; i < V; ++i) {
            flat[i] = noise(rng);
            peaked[i] = noise(rng) * 5.f - 45.f;  // 42 or more below the head: outside the candidates up to t = 1
        }
        for (int j = 0; j < 40; ++j)
            peaked[(j * 3251 + 17) % V] = 2.f - 0.125f * j;  // a head of 40 distinct values
        peaked[999] = peaked[(3 * 3251 + 17) % V];  // and a tie at the 4th and 5th place: 41 candidates
        DeviceBuffer ws(k::samplingWorkspaceBytes(V), "sampling workspace"), out(2 * sizeof(std::int32_t), "token");
        struct Setting {
            float t, p;
            int k;
        };
        // {0.5, 1, 4}: the tie straddles the top-k cut (5 kept); {1, 0.9, 50}: top-k past the 41
        // candidates, which must hand over; t 2: the noise joins the candidates, which overflow.
        const Setting settings[] = {{0.1f, 0.9f, 0}, {1.f, 0.9f, 0},  {0.7f, 1.f, 20},   {0.5f, 0.5f, 5}, {1.f, 1.f, 0},
                                    {2.f, 0.95f, 0}, {1.f, 0.99f, 3}, {0.3f, 1.f, 40},   {0.5f, 1.f, 4},  {1.f, 0.9f, 50}};
        for (const bool isPeaked : {true, false}) {
            const std::vector<float>& logits = isPeaked ? peaked : flat;
            DeviceBuffer d = upload(logits);
            int decided = 0, draws = 0;
            for (const auto& st : settings) {
                for (int i = 0; i < 48; ++i) {
                    k::SampleArgs a;
                    a.logits = d.as<float>();
                    a.vocab = V;
                    a.temperature = st.t;
                    a.topP = st.p;
                    a.topK = st.k;
                    a.uniform = (i + 0.5) / 48.0;
                    a.workspace = ws.get();
                    a.workspaceBytes = ws.bytes();
                    a.token = out.as<std::int32_t>();
                    a.needsSort = out.as<std::int32_t>() + 1;
                    cuda::check(k::sampleToken(a, nullptr), "sampleToken");
                    const auto fast = download<std::int32_t>(out, 2);
                    ++draws;
                    std::int32_t want = -1;
                    if (st.k <= 0 && st.p >= 1.f) {
                        // Index order over the whole vocabulary, as the host draws.
                        const float mx = *std::max_element(logits.begin(), logits.end());
                        std::vector<double> w(V);
                        double total = 0;
                        for (int j = 0; j < V; ++j)
                            total += w[j] = std::exp(double((logits[j] - mx) * (1.f / st.t)));
                        double r = a.uniform * total;
                        want = V - 1;
                        for (int j = 0; j < V; ++j)
                            if ((r -= w[j]) < 0) {
                                want = j;
                                break;
                            }
                        QCOMPARE(fast[1], 0);
                    } else {
                        cuda::check(k::sampleTokenSorted(a, nullptr), "sampleTokenSorted");
                        want = download<std::int32_t>(out, 1)[0];
                    }
                    if (fast[1] == 0) {
                        ++decided;
                        QVERIFY2(fast[0] == want, qPrintable(QString("%1 logits, t %2 top-p %3 top-k %4, u %5: %6 against %7")
                                                                  .arg(isPeaked ? "peaked" : "flat").arg(st.t).arg(st.p).arg(st.k)
                                                                  .arg(a.uniform).arg(fast[0]).arg(want)));
                    } else {
                        // Only a head wider than the candidates may hand over.
                        QVERIFY2(!isPeaked || st.t > 1.f || st.k > 41,
                                 qPrintable(QString("peaked logits, t %1 top-p %2 top-k %3 needed the sort").arg(st.t).arg(st.p).arg(st.k)));
                    }
                    if (isPeaked && st.k > 41)
                        QVERIFY2(fast[1] == 1, "top-k past the candidates was decided without them");
                }
            }
            recordMin(std::string("sampling: draws the candidates decided, ") + (isPeaked ? "peaked" : "flat") + " logits",
                      double(decided) / draws);
        }
    }

    // Greedy decode through sampleAndAppend (the step queued before its token reaches the host,
    // which reads it from pinned memory the argmax stored it into) against the host's argmax of the
    // logits, token for token; in between, the speculative position dropped as a session that stops
    // drops it and the token appended again.
    void greedyStepsAhead_data() { routerCluster_data(); }
    void greedyStepsAhead()
    {
        REQUIRE_GPU();
        DecodeSubject subject = rowSubject();
        if (!subject.be)
            QSKIP(subject.skip);
        cuda::CudaBackend& be = *subject.be;
        constexpr int kSteps = 10, kDropAt = 4;
        std::vector<std::int32_t> want;
        greedyDecodeLogits(be, subject.prompt, kSteps, want);
        SamplingParams greedy;
        greedy.temperature = 0;
        greedy.repetitionPenalty = 1;
        auto seq = be.createSequence(static_cast<int>(subject.prompt.size()) + kSteps + 2);
        QVERIFY(be.append(*seq, std::vector<PromptSegment>{{std::span<const std::int32_t>(subject.prompt), nullptr, 0}}, nullptr));
        std::vector<std::int32_t> seen(subject.prompt), got;
        Rng rng(1);
        for (int s = 0; s < kSteps; ++s) {
            const Backend::Step step = be.sampleAndAppend(*seq, seen, greedy, rng);
            QVERIFY(step.appended);
            got.push_back(step.token);
            seen.push_back(step.token);
            if (s == kDropAt) {
                seq->truncate(seq->length() - 1);
                QVERIFY(be.appendToken(*seq, step.token));
            }
        }
        QCOMPARE(got, want);
        QCOMPARE(seq->length(), static_cast<int>(subject.prompt.size()) + kSteps);
    }

    void sessionsOnGpu()
    {
        REQUIRE_GPU();
        TESSERA_REQUIRE_GOLDEN();
        const auto dir = test::goldenModel("mini-mla");
        if (!std::filesystem::exists(dir / "config.json"))
            QSKIP("mini-mla not staged");
        qputenv("TESSERA_CUDA_PRECISION", "fp32");
        ModelLoadOptions o;
        o.backend = BackendKind::Auto;  // a GPU is present: Auto must pick it
        auto m = Model::load(dir, o);
        qunsetenv("TESSERA_CUDA_PRECISION");
        QCOMPARE(QString::fromStdString(m->backend().name()), QString("cuda"));
        ModelLoadOptions c;
        c.backend = BackendKind::Cpu;
        auto ref = Model::load(dir, c);
        GenerationOptions g;
        g.sampling.temperature = 0;
        g.sampling.repetitionPenalty = 1;
        g.maxNewTokens = 8;
        const auto images = test::goldenDir() / "images";
        Conversation conv;
        conv.messages.push_back({Role::User, "<image>\nWhat is in the picture?", {images / "multi_image_1.jpeg"}});
        Session gpu(*m), cpu(*ref);
        auto a = gpu.generate(conv, g);
        auto b = cpu.generate(conv, g);
        QVERIFY(a.outputIds == b.outputIds);
        conv.messages.push_back({Role::Assistant, a.text, {}});
        conv.messages.push_back({Role::User, "And the colours?", {}});
        auto a2 = gpu.generate(conv, g);
        auto b2 = cpu.generate(conv, g);
        QVERIFY(a2.reusedPositions > 600);
        // The GPU appends each greedy token's position ahead of the session's decision to go on and
        // drops it where the session stops: the cache it leaves is the CPU's, position for position.
        QCOMPARE(a2.reusedPositions, b2.reusedPositions);
        QVERIFY(a2.outputIds == b2.outputIds);
        qInfo("session on %s: %d prompt tokens, TTFT %.1f ms, decode %.0f tokens/s", m->backend().description().c_str(),
              int(a.promptIds.size()), a.timings.ttftSeconds * 1e3, a.timings.decodeTokensPerSecond());
    }

    void memoryPlanSaysWhatDoesNotFit()
    {
        REQUIRE_GPU();
        // The configs travel with the source tree; on the GPU machine it lies elsewhere.
        std::filesystem::path source = test::sourceDir();
        if (const char* env = std::getenv("TESSERA_SOURCE_DIR"); env && *env)
            source = env;
        ModelConfig config = loadModelConfig(source / "tests/data/configs/deepseek-vl2.config.json");
        ProcessorConfig processor;
        const auto plan = cuda::CudaBackend::planMemory(config, processor, {});
        qInfo("base plan: %s", plan.describe().c_str());
        QVERIFY(plan.weights > (std::size_t(50) << 30));
        // 40 base models do not fit: the constructor must say so before allocating anything.
        config.language.numHiddenLayers *= 40;
        try {
            cuda::CudaBackend be(config, 1, processor, {});
            QFAIL("a model larger than the GPU was accepted");
        } catch (const Error& e) {
            QVERIFY2(std::string(e.what()).find("does not fit") != std::string::npos, e.what());
        }
    }
#endif
};

QTEST_GUILESS_MAIN(TestCudaBackend)
#include "test_cuda_backend.moc"
