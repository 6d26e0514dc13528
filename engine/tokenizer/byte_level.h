#pragma once
// The GPT-2 byte-level alphabet: every byte maps to one printable character, so BPE vocabularies
// can store arbitrary bytes as text ("Ġ" is the space byte, "Ċ" the newline byte).
#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace tessera::byte_level {

// The UTF-8 text of the character that stands for `byte`.
std::string_view charFor(unsigned char byte);

// Maps every byte of `bytes` to its character (what HF's ByteLevel pre-tokenizer produces).
std::string encode(std::string_view bytes);

// Maps a token back to bytes; nullopt when some character is outside the alphabet (HF's ByteLevel
// decoder then keeps the token's own UTF-8, which is how added tokens like "<｜end▁of▁sentence｜>" survive).
std::optional<std::string> decode(std::string_view token);
// The same, appending to `out`; on failure `out` is left as it was and false is returned.
bool decodeAppend(std::string& out, std::string_view token);

}  // namespace tessera::byte_level
