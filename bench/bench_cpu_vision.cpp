// Seconds per tile of the CPU vision tower and projector (medians of repeats), printed as JSON:
// the two golden mini models on a golden case's tiles, then random bf16 weights at the shapes of
// the published models (SigLIP-SO400M/14 at 384: width 1152, 27 layers, 16 heads, MLP 4304;
// projector 4608 → 1280 → 1280), written as a sharded checkpoint into a temporary folder.
// Usage: tessera-bench-cpu-vision [golden_dir] [repeats] [real_repeats] [real_tiles]
//        (defaults: ../shared/golden beside the source, 5, 3, 1; real_repeats 0 skips the real shapes)
#include "core/process_setup.h"
#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/cpu_vision.h"
#include "core/error.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "model/weight_map.h"

#include <nlohmann/json.hpp>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace {

double medianOf(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

template <class Fn>
double seconds(Fn&& fn)
{
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double peakRssMiB()
{
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_maxrss) / 1024.0;  // Linux reports KiB
}

struct Timing {
    double encodePerTile = 0;
    double projectPerTile = 0;
};

// One warm-up pass (maps the weights in), then `repeats` timed passes over the same tiles.
Timing timeEncoder(const tessera::cpu::CpuVisionEncoder& enc, const std::uint8_t* tiles, int n, int repeats)
{
    std::vector<float> vision(static_cast<std::size_t>(n) * enc.featuresPerTile() * enc.visionWidth());
    std::vector<float> projected(static_cast<std::size_t>(n) * enc.tokensPerTile() * enc.projectorWidth());
    enc.encode(tiles, n, vision.data());
    enc.project(vision.data(), n, projected.data());
    std::vector<double> e, p;
    for (int r = 0; r < repeats; ++r) {
        e.push_back(seconds([&] { enc.encode(tiles, n, vision.data()); }) / n);
        p.push_back(seconds([&] { enc.project(vision.data(), n, projected.data()); }) / n);
    }
    return {medianOf(e), medianOf(p)};
}

// Deterministic uniform values in [-1, 1) (splitmix64), enough for timing.
struct Random {
    std::uint64_t s;
    float next()
    {
        std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        return static_cast<float>(z >> 40) * (2.0f / 16777216.0f) - 1.0f;
    }
};

std::uint16_t toBf16(float f)
{
    std::uint32_t u = std::bit_cast<std::uint32_t>(f);
    u += 0x7fff + ((u >> 16) & 1);
    return static_cast<std::uint16_t>(u >> 16);
}

// The published vision tower and projector; a token language part so the weight map is complete.
tessera::ModelConfig realVisionConfig()
{
    tessera::ModelConfig c;
    c.vision = tessera::VisionConfig{};  // its defaults are SigLIP-SO400M/14 at 384
    c.vision.modelName = "siglip_so400m_patch14_384";
    c.projector.type = "downsample_mlp_gelu";
    c.projector.inputDim = c.vision.width;
    c.projector.nEmbed = 1280;
    c.projector.depth = 2;
    c.projector.mlpRatio = 1;
    c.projector.downsampleRatio = 2;
    c.language.vocabSize = 8;
    c.language.hiddenSize = c.projector.nEmbed;
    c.language.numHiddenLayers = 0;
    c.language.useMla = false;
    return c;
}

// Random bf16 tensors of every expected name, one shard per ViT block so that no more than one
// block is ever held in memory here, plus model.safetensors.index.json.
void writeRandomCheckpoint(const tessera::ModelConfig& config, const std::filesystem::path& dir)
{
    std::map<std::string, std::vector<tessera::ExpectedTensor>> shards;
    for (auto& t : tessera::expectedTensors(config)) {
        std::string shard = "model-rest.safetensors";
        if (t.name.rfind("vision.blocks.", 0) == 0)
            shard = "model-block" + t.name.substr(14, t.name.find('.', 14) - 14) + ".safetensors";
        shards[shard].push_back(std::move(t));
    }
    nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", nlohmann::json::object()}};
    std::uint64_t total = 0;
    std::uint64_t seed = 1;
    for (const auto& [file, tensors] : shards) {
        std::vector<std::vector<std::uint16_t>> data;
        std::vector<tessera::TensorToWrite> out;
        for (const auto& t : tensors) {
            std::int64_t numel = 1;
            for (auto d : t.shape)
                numel *= d;
            const bool isBias = t.name.size() > 5 && t.name.ends_with(".bias");
            const bool isNorm = t.name.find("norm") != std::string::npos && t.shape.size() == 1;
            float scale = 1.f;
            float offset = 0.f;
            if (isNorm && !isBias) {
                scale = 0.1f;
                offset = 1.f;
            } else if (isBias) {
                scale = 0.05f;
            } else if (t.name == "vision.pos_embed") {
                scale = 0.5f;
            } else if (t.shape.size() >= 2) {
                scale = 1.f / std::sqrt(static_cast<float>(numel / t.shape[0]));
            }
            scale *= std::sqrt(3.f);  // uniform [-a, a) has standard deviation a/√3
            Random rng{seed++ * 0x2545f4914f6cdd1dull};
            std::vector<std::uint16_t> v(static_cast<std::size_t>(numel));
            for (auto& x : v)
                x = toBf16(offset + scale * rng.next());
            data.push_back(std::move(v));
            out.push_back({t.name, tessera::DType::BF16, t.shape,
                           {reinterpret_cast<const std::uint8_t*>(data.back().data()), data.back().size() * 2}});
            index["weight_map"][t.name] = file;
            total += data.back().size() * 2;
        }
        tessera::writeSafetensors(dir / file, out, {{"format", "pt"}});
    }
    index["metadata"]["total_size"] = total;
    std::ofstream(dir / "model.safetensors.index.json") << index.dump(2);
}

}  // namespace

int main(int argc, char** argv)
{
    tessera::preferPassiveThreadWaits(argv);
    const std::filesystem::path golden =
        argc > 1 ? std::filesystem::path(argv[1]) : std::filesystem::path(TESSERA_SOURCE_DIR) / ".." / "shared" / "golden";
    const int repeats = argc > 2 ? std::max(1, std::atoi(argv[2])) : 5;
    const int realRepeats = argc > 3 ? std::max(0, std::atoi(argv[3])) : 3;
    const int realTiles = argc > 4 ? std::max(1, std::atoi(argv[4])) : 1;
    const char* goldenCase = "c_two_images";
    std::filesystem::path tmp;
    try {
        nlohmann::json report;
        report["threads"] = tessera::cpu::threadCount();
        report["hardware_threads"] = std::thread::hardware_concurrency();
        report["models"] = nlohmann::json::array();

        const auto tilesPath = golden / "cases" / "tiles" / (std::string(goldenCase) + ".safetensors");
        if (std::filesystem::exists(tilesPath)) {
            const tessera::SafetensorsFile tilesFile(tilesPath);
            const tessera::TensorView* tiles = tilesFile.find("tiles");
            if (!tiles || tiles->dtype != tessera::DType::U8 || tiles->shape.size() != 4)
                throw tessera::Error(tilesPath.string() + ": no U8 tensor \"tiles\" [n, 384, 384, 3]");
            const int n = static_cast<int>(tiles->shape[0]);
            for (const char* name : {"mini-mha", "mini-mla"}) {
                const auto dir = golden / "models" / name;
                const auto config = tessera::loadModelConfig(dir / "config.json");
                const auto store = tessera::TensorStore::openFolder(dir);
                const tessera::WeightMap weights(config, store);
                const tessera::cpu::CpuVisionEncoder enc(config, weights);
                const Timing t = timeEncoder(enc, tiles->data, n, repeats);
                report["models"].push_back({{"name", name},
                                            {"case", goldenCase},
                                            {"tiles_per_call", n},
                                            {"repeats", repeats},
                                            {"encode_s_per_tile", t.encodePerTile},
                                            {"project_s_per_tile", t.projectPerTile}});
            }
        } else {
            std::fprintf(stderr, "skipping the mini models: %s not found (pass the golden folder first)\n",
                         tilesPath.string().c_str());
        }
        report["peak_rss_mib_after_mini"] = peakRssMiB();

        if (realRepeats > 0) {
            const auto config = realVisionConfig();
            tmp = std::filesystem::temp_directory_path() / ("tessera-bench-vision-" + std::to_string(getpid()));
            std::filesystem::create_directories(tmp);
            const double writeSeconds = seconds([&] { writeRandomCheckpoint(config, tmp); });
            const auto store = tessera::TensorStore::openFolder(tmp);
            const tessera::WeightMap weights(config, store);
            const tessera::cpu::CpuVisionEncoder enc(config, weights);
            Random rng{42};
            std::vector<std::uint8_t> tiles(static_cast<std::size_t>(realTiles) * 384 * 384 * 3);
            for (auto& b : tiles)
                b = static_cast<std::uint8_t>((rng.next() + 1.f) * 127.99f);
            const Timing t = timeEncoder(enc, tiles.data(), realTiles, realRepeats);
            report["models"].push_back(
                {{"name", "random bf16, deepseek-vl2 vision shapes"},
                 {"vision", {{"width", config.vision.width}, {"layers", config.vision.layers},
                             {"heads", config.vision.heads}, {"mlp", config.vision.mlpHidden},
                             {"patch", config.vision.patchSize}, {"image", config.vision.imageSize}}},
                 {"projector", std::to_string(enc.visionWidth() * 4) + " -> " + std::to_string(enc.projectorWidth()) +
                                   " -> " + std::to_string(enc.projectorWidth())},
                 {"weight_mib", static_cast<double>(weights.usedBytes()) / (1 << 20)},
                 {"write_checkpoint_s", writeSeconds},
                 {"tiles_per_call", realTiles},
                 {"repeats", realRepeats},
                 {"encode_s_per_tile", t.encodePerTile},
                 {"project_s_per_tile", t.projectPerTile}});
        }
        report["peak_rss_mib"] = peakRssMiB();
        std::printf("%s\n", report.dump(2).c_str());
    } catch (const tessera::Error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        if (!tmp.empty())
            std::filesystem::remove_all(tmp);
        return 1;
    }
    if (!tmp.empty())
        std::filesystem::remove_all(tmp);
    return 0;
}
