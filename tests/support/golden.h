#pragma once
// Where the reference data lives, for tests. TESSERA_GOLDEN_DIR in the environment overrides the
// configure-time default (../shared/golden beside the source tree).
#include "processor/conversation.h"

#include <filesystem>
#include <string>

namespace tessera::test {

// Empty path when the golden data is not present (tests then QSKIP, never pass).
std::filesystem::path goldenDir();
std::filesystem::path sourceDir();
std::filesystem::path goldenModel(const std::string& name);  // "mini-mha" / "mini-mla"
// The conversation (and system prompt) of golden case `name`, images resolved in golden/images.
Conversation goldenConversation(const std::string& model, const std::string& name);

}  // namespace tessera::test

// QSKIPs the current test when the golden data is missing.
#define TESSERA_REQUIRE_GOLDEN()                                                              \
    do {                                                                                      \
        if (::tessera::test::goldenDir().empty())                                             \
            QSKIP("golden data not found (set TESSERA_GOLDEN_DIR or check ../shared/golden)"); \
    } while (0)
