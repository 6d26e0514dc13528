// tessera-cli commands that read a model folder without running it.
#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "model/weight_map.h"
#include "processor/processor.h"
#include "tokenizer/tokenizer.h"

#include "tessera_kernels/device_info.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <iostream>

namespace tessera::cli {

using nlohmann::json;


int tokenize(const Args& args)
{
    const std::filesystem::path dir = args.require("--model");
    std::string text;
    if (auto t = args.get("--text"))
        text = *t;
    else if (auto f = args.get("--file"))
        text = tessera::readTextFile(*f, 256u << 20);
    else
        throw UsageError("tokenize needs --text or --file");
    if (args.get("--text") && args.get("--file"))
        throw UsageError("give either --text or --file, not both");
    auto tok = tessera::Tokenizer::fromFile(dir / "tokenizer.json");
    auto ids = tok.encode(text);
    if (args.has("--json")) {
        printJson({{"ids", ids}});
    } else {
        for (std::size_t i = 0; i < ids.size(); ++i)
            std::cout << (i ? " " : "") << ids[i];
        std::cout << '\n';
    }
    return 0;
}

int preprocess(const Args& args)
{
    const std::filesystem::path dir = args.require("--model");
    auto conversation = tessera::loadConversationFile(args.require("--conversation"));
    auto processor = tessera::Processor::fromModelFolder(dir);
    auto input = processor.process(conversation);

    if (auto dump = args.get("--dump-tiles")) {
        const auto tileBytes = static_cast<std::size_t>(processor.tileSize()) * processor.tileSize() * 3;
        std::vector<std::uint8_t> all;
        all.reserve(static_cast<std::size_t>(input.tileCount()) * tileBytes);
        for (const auto& img : input.images)
            all.insert(all.end(), img.pixels.begin(), img.pixels.end());
        tessera::writeSafetensors(*dump,
                                  {{"tiles", tessera::DType::U8,
                                    {input.tileCount(), processor.tileSize(), processor.tileSize(), 3}, all}},
                                  {{"format", "tessera"}, {"layout", "NHWC RGB uint8, per image global then local"}});
    }

    json crop = json::array();
    for (const auto& c : input.imagesSpatialCrop)
        crop.push_back({c[0], c[1]});
    if (crop.empty())
        crop.push_back({0, 0});  // text only: upstream reports one empty grid
    if (args.has("--json")) {
        printJson({{"input_ids", input.inputIds},
                   {"images_seq_mask", input.imageSeqMask},
                   {"images_spatial_crop", crop},
                   {"num_image_tokens", input.numImageTokens},
                   {"prompt", input.prompt}});
    } else {
        std::cout << "tokens: " << input.inputIds.size() << " (" << std::count(input.imageSeqMask.begin(), input.imageSeqMask.end(), 1)
                  << " image tokens)\n"
                  << "images: " << input.images.size() << ", tiles: " << input.tileCount() << '\n';
        for (std::size_t i = 0; i < input.images.size(); ++i)
            std::cout << "  image " << i << ": " << input.imagesSpatialCrop[i][0] << "x" << input.imagesSpatialCrop[i][1]
                      << " tiles, " << input.numImageTokens[i] << " tokens\n";
        std::cout << "prompt:\n" << input.prompt << '\n';
    }
    return 0;
}

int info(const Args& args)
{
    const std::filesystem::path dir = args.require("--model");
    auto config = tessera::loadModelConfig(dir / "config.json");
    auto processorConfig = tessera::loadProcessorConfig(dir / "processor_config.json");
    auto tokenizer = tessera::Tokenizer::fromFile(dir / "tokenizer.json");
    auto store = tessera::TensorStore::openFolder(dir);
    auto check = tessera::checkWeights(config, store);
    std::int64_t params = 0;
    for (const auto& t : tessera::expectedTensors(config)) {
        std::int64_t n = 1;
        for (auto d : t.shape)
            n *= d;
        params += n;
    }
    const auto& l = config.language;
    json out = {{"variant", config.variantName()},
                {"attention", l.useMla ? "MLA" : "MHA"},
                {"layers", l.numHiddenLayers},
                {"hidden_size", l.hiddenSize},
                {"routed_experts", l.nRoutedExperts.value_or(0)},
                {"experts_per_token", l.numExpertsPerTok},
                {"routing", l.topkMethod == tessera::TopkMethod::NoAuxTc ? "noaux_tc" : "greedy"},
                {"context", l.maxPositionEmbeddings},
                {"parameters", params},
                {"file_bytes", store.totalBytes()},
                {"vocab", tokenizer.vocabSize()},
                {"candidate_resolutions", processorConfig.candidateResolutions.size()},
                {"weights_ok", check.ok()},
                {"missing", check.missing},
                {"mismatched", check.mismatched},
                {"unexpected", check.unexpected},
                {"ignored", check.ignored}};
    if (args.has("--json")) {
        printJson(out);
    } else {
        std::cout << "variant:    " << config.variantName() << '\n'
                  << "parameters: " << params << " (" << store.totalBytes() / (1 << 20) << " MiB on disk)\n"
                  << "weights:    " << check.describe() << '\n';
    }
    if (!check.ok()) {
        std::cerr << "tessera-cli: " << dir.string() << ": " << check.describe() << '\n';
        return 1;
    }
    return 0;
}

int devices(const Args& args)
{
    auto q = tessera::kernels::queryGpus();
    json gpus = json::array();
    for (const auto& g : q.gpus)
        gpus.push_back({{"index", g.index},
                        {"name", g.name},
                        {"compute_capability", std::to_string(g.computeMajor) + "." + std::to_string(g.computeMinor)},
                        {"multiprocessors", g.multiprocessors},
                        {"total_memory_bytes", g.totalMemoryBytes},
                        {"free_memory_bytes", g.freeMemoryBytes}});
    if (args.has("--json")) {
        printJson({{"cuda_build", q.compiledWithCuda}, {"gpus", gpus}, {"problem", q.problem}});
    } else {
        if (q.gpus.empty())
            std::cout << "no usable GPU: " << q.problem << '\n';
        for (const auto& g : q.gpus)
            std::cout << g.index << ": " << g.name << " (sm_" << g.computeMajor << g.computeMinor << ", "
                      << g.totalMemoryBytes / (1 << 20) << " MiB)\n";
    }
    return 0;
}

}  // namespace tessera::cli
