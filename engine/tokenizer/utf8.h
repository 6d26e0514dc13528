#pragma once
// UTF-8 validation and the lossy conversion Hugging Face decoding uses (Rust's
// String::from_utf8_lossy): each maximal invalid subpart becomes one U+FFFD.
#include <cstddef>
#include <string>
#include <string_view>

namespace tessera::utf8 {

inline constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Offset of the first byte that does not start a complete, valid UTF-8 sequence; npos if all valid.
std::size_t firstInvalid(std::string_view bytes);
inline bool isValid(std::string_view bytes) { return firstInvalid(bytes) == std::string_view::npos; }

// Appends `bytes` with every invalid subpart replaced by U+FFFD, exactly like from_utf8_lossy.
void appendLossy(std::string& out, std::string_view bytes);

// Like appendLossy, but stops before a trailing sequence that is incomplete yet could still become
// valid with more bytes; returns how many bytes were consumed (the rest must be kept for later).
std::size_t appendLossyPrefix(std::string& out, std::string_view bytes);

void appendCodepoint(std::string& out, char32_t cp);

}  // namespace tessera::utf8
