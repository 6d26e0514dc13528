#pragma once
#include <string_view>

namespace tessera {

// Python's str.strip(): removes leading and trailing characters that str.isspace() accepts
// (ASCII whitespace, U+001C..U+001F, U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029,
// U+202F, U+205F, U+3000). The chat template strips every message this way.
std::string_view pythonStrip(std::string_view text);

}  // namespace tessera
