#include "golden.h"

#include "core/json_util.h"

#include <nlohmann/json.hpp>

#include <cstdlib>

namespace tessera::test {

std::filesystem::path goldenDir()
{
    std::filesystem::path dir;
    if (const char* env = std::getenv("TESSERA_GOLDEN_DIR"); env && *env)
        dir = env;
    else
        dir = TESSERA_GOLDEN_DIR;
    std::error_code ec;
    if (!std::filesystem::is_directory(dir / "models", ec))
        return {};
    return std::filesystem::weakly_canonical(dir, ec);
}

std::filesystem::path sourceDir() { return TESSERA_SOURCE_DIR; }

std::filesystem::path goldenModel(const std::string& name)
{
    auto dir = goldenDir();
    return dir.empty() ? dir : dir / "models" / name;
}

Conversation goldenConversation(const std::string& model, const std::string& name)
{
    const auto dir = goldenDir();
    const auto j = parseJsonFile(dir / "cases" / model / (name + ".json"));
    const nlohmann::json wrapped = {{"conversation", j["conversation"]}, {"system_prompt", j["system_prompt"]}};
    return parseConversation(wrapped, dir / "images", name);
}

}  // namespace tessera::test
