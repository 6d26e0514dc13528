// CPU language model throughput: prefill and decode tokens/s at ~128 and ~1024 positions of
// context, for the two golden mini models and for random bf16 weights at the real
// deepseek-vl2-tiny language-model shapes (hidden 1280, 10 heads, 64 experts top-6, vocab 129280).
// Prints one JSON object; every figure is the median of the repeats.
//
// Usage: tessera-bench-cpu-language-model [--repeats R] [--tiny-layers N] [--weights-dir DIR]
//                                         [--tiny-config FILE] [--no-tiny] [--no-mini]
//   --tiny-layers N  decoder layers of the tiny-shaped model (default 2: layer 0 dense + 1 MoE
//                    layer, at full width; 12 is the whole language model, ~5.9 GB of weights)
//   --weights-dir D  keep the generated weights in D and reuse them on the next run
#include "core/process_setup.h"
#include "backend/cpu/cpu_language_model.h"
#include "backend/cpu/cpu_ops.h"
#include "core/error.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "model/weight_map.h"

#include <nlohmann/json.hpp>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace tessera;
using namespace tessera::cpu;
using Clock = std::chrono::steady_clock;

namespace {

double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double peakRssMb()
{
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return u.ru_maxrss / 1024.0;  // kilobytes on Linux
}

// splitmix64: a deterministic stream per tensor.
struct Rng {
    std::uint64_t s;
    std::uint64_t next()
    {
        std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    // Approximately N(0, 1): Irwin-Hall of four uniforms, rescaled.
    float normal()
    {
        const std::uint64_t r = next();
        float s = 0.f;
        for (int i = 0; i < 4; ++i)
            s += static_cast<float>((r >> (16 * i)) & 0xffff) / 65536.f;
        return (s - 2.f) * 1.7320508f;
    }
};

std::uint16_t toBf16(float f)
{
    std::uint32_t u = std::bit_cast<std::uint32_t>(f);
    u += 0x7fff + ((u >> 16) & 1);
    return static_cast<std::uint16_t>(u >> 16);
}

std::uint64_t nameHash(const std::string& s)
{
    std::uint64_t h = 1469598103934665603ull;
    for (unsigned char c : s)
        h = (h ^ c) * 1099511628211ull;
    return h;
}

// The tiny language model at full width with `layers` decoder layers; the vision tower (unused
// here) shrunk to almost nothing so its weights cost no time or disk.
ModelConfig tinyConfig(const fs::path& path, int layers)
{
    ModelConfig c = loadModelConfig(path);
    if (layers < 1 || layers > c.language.numHiddenLayers)
        throw Error("--tiny-layers must be between 1 and " + std::to_string(c.language.numHiddenLayers));
    c.language.numHiddenLayers = layers;
    c.vision.width = 16;
    c.vision.layers = 1;
    c.vision.heads = 1;
    c.vision.mlpHidden = 16;
    c.projector.inputDim = 16;
    return c;
}

// Writes deterministic random bf16 weights for `config` as sharded safetensors + index. Runs in a
// child process so that the generation buffers do not count in this process's peak RSS.
void generateWeights(const ModelConfig& config, const fs::path& dir)
{
    std::fflush(nullptr);
    const pid_t pid = fork();
    if (pid < 0)
        throw Error("fork failed");
    if (pid > 0) {
        int status = 0;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            throw Error("weight generation failed");
        return;
    }
    try {
        fs::create_directories(dir);
        const auto tensors = expectedTensors(config);
        nlohmann::json weightMap = nlohmann::json::object();
        std::uint64_t total = 0;
        constexpr std::uint64_t kShardBytes = 1ull << 30;
        std::vector<std::vector<std::uint8_t>> buffers;
        std::vector<TensorToWrite> shard;
        std::uint64_t shardBytes = 0;
        int shardIndex = 0;
        auto flush = [&] {
            if (shard.empty())
                return;
            char name[64];
            std::snprintf(name, sizeof name, "model-%05d.safetensors", ++shardIndex);
            writeSafetensors(dir / name, shard, {{"format", "pt"}});
            for (const auto& t : shard)
                weightMap[t.name] = name;
            shard.clear();
            buffers.clear();
            shardBytes = 0;
        };
        buffers.reserve(tensors.size());
        for (const auto& t : tensors) {
            std::uint64_t numel = 1;
            for (auto d : t.shape)
                numel *= static_cast<std::uint64_t>(d);
            const std::string& n = t.name;
            const std::uint64_t fanIn = t.shape.size() > 1 ? numel / static_cast<std::uint64_t>(t.shape[0]) : 1;
            float mean = 0.f, stddev = 1.f / std::sqrt(static_cast<float>(fanIn));
            if (n.ends_with("norm.weight") || n.ends_with("norm1.weight") || n.ends_with("norm2.weight")) {
                mean = 1.f;
                stddev = 0.1f;
            } else if (n.ends_with(".bias")) {
                stddev = 0.05f;
            } else if (n.find("embed_tokens") != std::string::npos || n == "image_newline" || n == "view_seperator") {
                stddev = 1.f;
            }
            std::vector<std::uint8_t> bytes(numel * 2);
            Rng rng{nameHash(n)};
            for (std::uint64_t i = 0; i < numel; ++i) {
                const std::uint16_t b = toBf16(mean + stddev * rng.normal());
                std::memcpy(bytes.data() + 2 * i, &b, 2);
            }
            if (shardBytes + bytes.size() > kShardBytes)
                flush();
            shardBytes += bytes.size();
            total += bytes.size();
            buffers.push_back(std::move(bytes));
            shard.push_back({n, DType::BF16, t.shape, std::span<const std::uint8_t>(buffers.back())});
        }
        flush();
        nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weightMap}};
        std::ofstream(dir / "model.safetensors.index.json") << index.dump(1);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "weight generation: %s\n", e.what());
        std::_Exit(1);
    }
    std::_Exit(0);
}

struct Options {
    int repeats = 3;
    int tinyLayers = 2;
    fs::path weightsDir;
    fs::path tinyConfig = fs::path(TESSERA_SOURCE_DIR) / "tests/data/configs/deepseek-vl2-tiny.config.json";
    bool tiny = true;
    bool mini = true;
};

// Deterministic token ids spread over the vocabulary.
std::vector<std::int32_t> tokenIds(int n, int vocab)
{
    std::vector<std::int32_t> ids(n);
    Rng rng{12345};
    for (auto& id : ids)
        id = static_cast<std::int32_t>(rng.next() % static_cast<std::uint64_t>(vocab));
    return ids;
}

nlohmann::json benchModel(const std::string& label, const ModelConfig& config, const fs::path& folder,
                          const Options& opt)
{
    const auto t0 = Clock::now();
    const TensorStore store = TensorStore::openFolder(folder);
    const WeightMap weights(config, store);
    const CpuLanguageModel lm(config, weights);
    const double loadSeconds = seconds(t0, Clock::now());
    const int H = lm.hiddenSize();
    const int V = lm.vocabSize();
    const auto ids = tokenIds(1024 + 64, V);
    std::vector<float> embeds(ids.size() * H);
    lm.embed(ids, embeds.data());
    std::vector<float> logits(V);

    nlohmann::json prefill = nlohmann::json::object(), decode = nlohmann::json::object(), cacheMb = nlohmann::json::object();
    for (int n : {128, 1024}) {
        std::vector<double> times;
        std::vector<float> hidden(static_cast<std::size_t>(n) * H);
        for (int r = 0; r < opt.repeats; ++r) {
            auto cache = lm.createCache(n);
            const auto a = Clock::now();
            lm.forward(cache, embeds.data(), n, hidden.data());
            lm.logits(hidden.data() + static_cast<std::size_t>(n - 1) * H, 1, logits.data());
            times.push_back(seconds(a, Clock::now()));
        }
        prefill[std::to_string(n)] = n / median(times);
    }
    const int steps = 16;
    for (int context : {128, 1024}) {
        std::vector<double> times;
        std::vector<float> hidden(static_cast<std::size_t>(context) * H), emb(H);
        for (int r = 0; r < opt.repeats; ++r) {
            auto cache = lm.createCache(context + steps);
            lm.forward(cache, embeds.data(), context, hidden.data());
            std::copy_n(hidden.data() + static_cast<std::size_t>(context - 1) * H, H, emb.data());
            std::vector<float> last(emb);
            const auto a = Clock::now();
            for (int s = 0; s < steps; ++s) {
                lm.logits(last.data(), 1, logits.data());
                const std::int32_t next = static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
                lm.embed({&next, 1}, emb.data());
                lm.forward(cache, emb.data(), 1, last.data());
            }
            times.push_back(seconds(a, Clock::now()));
            cacheMb[std::to_string(context)] = cache.bytes() / 1048576.0;
        }
        decode[std::to_string(context)] = steps / median(times);
    }
    const auto& l = config.language;
    return {
        {"model", label},
        {"layers", l.numHiddenLayers},
        {"hidden", H},
        {"attention", l.useMla ? "MLA" : "MHA"},
        {"routing", l.topkMethod == TopkMethod::NoAuxTc ? "noaux_tc" : "greedy"},
        {"experts", l.nRoutedExperts.value_or(0)},
        {"top_k", l.numExpertsPerTok},
        {"weights_gb", weights.usedBytes() / 1e9},
        {"load_seconds", loadSeconds},
        {"prefill_tokens_per_s", prefill},
        {"decode_tokens_per_s", decode},
        {"decode_step", "forward(1) + lm_head + argmax, 16 steps after the context"},
        {"kv_cache_mb", cacheMb},
        {"peak_rss_mb_so_far", peakRssMb()},
    };
}

fs::path goldenModels()
{
    if (const char* env = std::getenv("TESSERA_GOLDEN_DIR"); env && *env)
        return fs::path(env) / "models";
    return fs::path(TESSERA_SOURCE_DIR) / "../shared/golden/models";
}

}  // namespace

int main(int argc, char** argv)
{
    tessera::preferPassiveThreadWaits(argv);
    Options opt;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "%s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--repeats")
            opt.repeats = std::max(1, std::atoi(value().c_str()));
        else if (a == "--tiny-layers")
            opt.tinyLayers = std::atoi(value().c_str());
        else if (a == "--weights-dir")
            opt.weightsDir = value();
        else if (a == "--tiny-config")
            opt.tinyConfig = value();
        else if (a == "--no-tiny")
            opt.tiny = false;
        else if (a == "--no-mini")
            opt.mini = false;
        else {
            std::fprintf(stderr,
                         "usage: %s [--repeats R] [--tiny-layers N] [--weights-dir DIR] [--tiny-config FILE] [--no-tiny] "
                         "[--no-mini]\n",
                         argv[0]);
            return 2;
        }
    }
    try {
        nlohmann::json out;
        out["threads"] = threadCount();
        out["repeats"] = opt.repeats;
        out["statistic"] = "median of repeats";
        const char* wait = std::getenv("OMP_WAIT_POLICY");
        const char* blas = std::getenv("OPENBLAS_NUM_THREADS");
        out["env"] = {{"OMP_WAIT_POLICY", wait ? wait : ""}, {"OPENBLAS_NUM_THREADS", blas ? blas : ""}};
        out["models"] = nlohmann::json::array();
        if (opt.mini) {
            for (const char* name : {"mini-mha", "mini-mla"}) {
                const fs::path dir = goldenModels() / name;
                if (!fs::exists(dir / "config.json")) {
                    std::fprintf(stderr, "golden model %s not found; skipped\n", dir.c_str());
                    continue;
                }
                out["models"].push_back(benchModel(std::string("golden ") + name, loadModelConfig(dir / "config.json"), dir, opt));
            }
        }
        if (opt.tiny) {
            const ModelConfig config = tinyConfig(opt.tinyConfig, opt.tinyLayers);
            const bool temporary = opt.weightsDir.empty();
            const fs::path dir = temporary ? fs::temp_directory_path() / ("tessera-bench-tiny-" + std::to_string(getpid()))
                                           : opt.weightsDir;
            double genSeconds = 0;
            if (!fs::exists(dir / "model.safetensors.index.json")) {
                const auto a = Clock::now();
                generateWeights(config, dir);
                genSeconds = seconds(a, Clock::now());
            }
            const std::string label = "deepseek-vl2-tiny language model shapes, random bf16, " +
                                      std::to_string(opt.tinyLayers) + " of 12 decoder layers" +
                                      (opt.tinyLayers < 12 ? " (layer 0 dense, the rest MoE; full width)" : "");
            auto result = benchModel(label, config, dir, opt);
            result["weight_generation_seconds"] = genSeconds;
            out["models"].push_back(result);
            if (temporary)
                fs::remove_all(dir);
        }
        out["peak_rss_mb"] = peakRssMb();
        std::printf("%s\n", out.dump(2).c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
