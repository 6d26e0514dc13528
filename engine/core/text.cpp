#include "core/text.h"

#include <cstdint>

namespace tessera {

namespace {

bool isPythonSpace(char32_t c)
{
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
           c == 0x3000;
}

// Decodes the code point starting at s[i]; returns its length, 0 if the bytes are not valid UTF-8.
std::size_t decodeAt(std::string_view s, std::size_t i, char32_t& c)
{
    auto b = static_cast<unsigned char>(s[i]);
    std::size_t len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size())
        return 0;
    c = len == 1 ? b : len == 2 ? (b & 0x1f) : len == 3 ? (b & 0x0f) : (b & 0x07);
    for (std::size_t k = 1; k < len; ++k) {
        auto cb = static_cast<unsigned char>(s[i + k]);
        if ((cb & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (cb & 0x3f);
    }
    return len;
}

}  // namespace

std::string_view pythonStrip(std::string_view text)
{
    std::size_t begin = 0;
    while (begin < text.size()) {
        char32_t c = 0;
        std::size_t len = decodeAt(text, begin, c);
        if (len == 0 || !isPythonSpace(c))
            break;
        begin += len;
    }
    std::size_t end = text.size();
    while (end > begin) {
        // Step back to the start of the last code point (at most 4 bytes).
        std::size_t start = end - 1;
        while (start > begin && end - start < 4 && (static_cast<unsigned char>(text[start]) & 0xc0) == 0x80)
            --start;
        char32_t c = 0;
        std::size_t len = decodeAt(text, start, c);
        if (len != end - start || !isPythonSpace(c))
            break;
        end = start;
    }
    return text.substr(begin, end - begin);
}

}  // namespace tessera
