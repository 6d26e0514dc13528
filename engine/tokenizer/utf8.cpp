#include "tokenizer/utf8.h"

namespace tessera::utf8 {
namespace {

enum class Status { Valid, Invalid, Truncated };

struct Step {
    Status status;
    std::size_t length;  // bytes of the valid character, or of the maximal invalid subpart
};

// Decides what the sequence at p[0..avail) is; the ranges of the second byte follow the
// Unicode table of well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
Step inspect(const unsigned char* p, std::size_t avail)
{
    const unsigned char b0 = p[0];
    if (b0 < 0x80)
        return {Status::Valid, 1};
    std::size_t need = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        need = 1;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        need = 2;
        if (b0 == 0xE0)
            lo = 0xA0;
        else if (b0 == 0xED)
            hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        need = 3;
        if (b0 == 0xF0)
            lo = 0x90;
        else if (b0 == 0xF4)
            hi = 0x8F;
    } else {
        return {Status::Invalid, 1};
    }
    for (std::size_t i = 1; i <= need; ++i) {
        if (i >= avail)
            return {Status::Truncated, i};
        const unsigned char b = p[i];
        const unsigned char l = i == 1 ? lo : 0x80;
        const unsigned char h = i == 1 ? hi : 0xBF;
        if (b < l || b > h)
            return {Status::Invalid, i};
    }
    return {Status::Valid, need + 1};
}

std::size_t appendImpl(std::string& out, std::string_view bytes, bool keepTruncatedTail)
{
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
    const std::size_t n = bytes.size();
    std::size_t i = 0;
    std::size_t validStart = 0;  // copy runs of valid text in one append
    while (i < n) {
        if (p[i] < 0x80) {
            ++i;
            continue;
        }
        const Step s = inspect(p + i, n - i);
        if (s.status == Status::Valid) {
            i += s.length;
            continue;
        }
        out.append(bytes.data() + validStart, i - validStart);
        if (s.status == Status::Truncated && keepTruncatedTail)
            return i;
        out.append(kReplacement);
        i += s.length;
        validStart = i;
    }
    out.append(bytes.data() + validStart, n - validStart);
    return n;
}

}  // namespace

std::size_t firstInvalid(std::string_view bytes)
{
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
    std::size_t i = 0;
    while (i < bytes.size()) {
        if (p[i] < 0x80) {
            ++i;
            continue;
        }
        const Step s = inspect(p + i, bytes.size() - i);
        if (s.status != Status::Valid)
            return i;
        i += s.length;
    }
    return std::string_view::npos;
}

void appendLossy(std::string& out, std::string_view bytes) { appendImpl(out, bytes, false); }

std::size_t appendLossyPrefix(std::string& out, std::string_view bytes)
{
    return appendImpl(out, bytes, true);
}

void appendCodepoint(std::string& out, char32_t cp)
{
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

}  // namespace tessera::utf8
