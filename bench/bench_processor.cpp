// Processor throughput: conversation → input ids, image mask and tiles (image decode included),
// over the golden cases. Prints JSON; medians of repeats.
#include "core/json_util.h"
#include "core/process_setup.h"
#include "processor/processor.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>

using namespace tessera;

int main(int argc, char** argv)
{
    preferPassiveThreadWaits(argv);
    const std::filesystem::path golden = argc > 1 ? argv[1] : std::filesystem::path(TESSERA_SOURCE_DIR) / "../shared/golden";
    const int repeats = argc > 2 ? std::max(1, std::atoi(argv[2])) : 7;
    const auto processor = Processor::fromModelFolder(golden / "models/mini-mha");
    nlohmann::json cases = nlohmann::json::array();
    for (const char* name : {"a_text", "b_grounding", "c_two_images", "d_three_images", "e_multiturn_system",
                             "e2_system_role_text", "f1_odd_sizes", "f2_rgba"}) {
        auto j = parseJsonFile(golden / "cases/mini-mha" / (std::string(name) + ".json"));
        auto conv = parseConversation({{"conversation", j["conversation"]}, {"system_prompt", j["system_prompt"]}},
                                      golden / "images", name);
        std::vector<double> total, textOnly;
        ProcessedInput out;
        for (int r = 0; r < repeats; ++r) {
            auto t0 = std::chrono::steady_clock::now();
            out = processor.process(conv);
            total.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        }
        std::sort(total.begin(), total.end());
        cases.push_back({{"case", name},
                         {"tokens", out.inputIds.size()},
                         {"tiles", out.tileCount()},
                         {"median_ms", total[total.size() / 2] * 1e3}});
    }
    std::cout << nlohmann::json({{"benchmark", "processor (decode + tile + tokenize)"}, {"repeats", repeats}, {"cases", cases}})
                     .dump(2)
              << '\n';
}
