#include "tokenizer/byte_level.h"

#include "tokenizer/utf8.h"

namespace tessera::byte_level {
namespace {

struct Alphabet {
    std::array<std::string, 256> byteToText;
    std::array<int, 512> charToByte{};  // every mapped code point is below 512; -1 = not in the alphabet

    Alphabet()
    {
        charToByte.fill(-1);
        // Printable Latin-1 bytes stand for themselves; the others take 256, 257, ... in byte order.
        auto keepsItself = [](int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); };
        char32_t next = 256;
        for (int b = 0; b < 256; ++b) {
            const char32_t cp = keepsItself(b) ? static_cast<char32_t>(b) : next++;
            utf8::appendCodepoint(byteToText[b], cp);
            charToByte[cp] = b;
        }
    }
};

const Alphabet& alphabet()
{
    static const Alphabet a;
    return a;
}

}  // namespace

std::string_view charFor(unsigned char byte) { return alphabet().byteToText[byte]; }

std::string encode(std::string_view bytes)
{
    const Alphabet& a = alphabet();
    std::string out;
    out.reserve(bytes.size() * 2);
    for (char c : bytes)
        out += a.byteToText[static_cast<unsigned char>(c)];
    return out;
}

std::optional<std::string> decode(std::string_view token)
{
    std::string out;
    if (!decodeAppend(out, token))
        return std::nullopt;
    return out;
}

bool decodeAppend(std::string& out, std::string_view token)
{
    const Alphabet& a = alphabet();
    const std::size_t before = out.size();
    const auto* p = reinterpret_cast<const unsigned char*>(token.data());
    const std::size_t n = token.size();
    for (std::size_t i = 0; i < n;) {
        // Alphabet characters are U+0021..U+0143: one or two UTF-8 bytes.
        char32_t cp;
        if (p[i] < 0x80) {
            cp = p[i];
            i += 1;
        } else if ((p[i] & 0xE0) == 0xC0 && i + 1 < n && (p[i + 1] & 0xC0) == 0x80) {
            cp = (static_cast<char32_t>(p[i] & 0x1F) << 6) | (p[i + 1] & 0x3F);
            i += 2;
        } else {
            cp = 0x7FFFFFFF;
        }
        if (cp >= a.charToByte.size() || a.charToByte[cp] < 0) {
            out.resize(before);
            return false;
        }
        out.push_back(static_cast<char>(a.charToByte[cp]));
    }
    return true;
}

}  // namespace tessera::byte_level
