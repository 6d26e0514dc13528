#include "golden.h"

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

}  // namespace tessera::test
