#include "tokenizer/regex.h"

#include "core/error.h"

#include <oniguruma.h>

#include <mutex>
#include <utility>

namespace tessera {
namespace {

void initializeOniguruma()
{
    static std::once_flag once;
    std::call_once(once, [] {
        OnigEncoding encodings[] = {ONIG_ENCODING_UTF8};
        onig_initialize(encodings, 1);
    });
}

const OnigUChar* bytes(std::string_view s) { return reinterpret_cast<const OnigUChar*>(s.data()); }

}  // namespace

RegexScratch::RegexScratch() : region_(onig_region_new())
{
    if (!region_)
        throw Error("tokenizer: out of memory allocating a regex match region");
}

RegexScratch::~RegexScratch() { onig_region_free(region_, 1); }

Regex::Regex(std::string_view pattern, const std::string& where)
{
    initializeOniguruma();
    OnigErrorInfo info{};
    // The same settings as HF's onig::Regex::new: no options, the library's default syntax.
    const int rc = onig_new(&regex_, bytes(pattern), bytes(pattern) + pattern.size(), ONIG_OPTION_NONE,
                            ONIG_ENCODING_UTF8, ONIG_SYNTAX_DEFAULT, &info);
    if (rc != ONIG_NORMAL) {
        OnigUChar message[ONIG_MAX_ERROR_MESSAGE_LEN];
        onig_error_code_to_str(message, rc, &info);
        regex_ = nullptr;
        throw Error(where + ": invalid regular expression \"" + std::string(pattern) +
                    "\": " + reinterpret_cast<const char*>(message));
    }
}

Regex::~Regex()
{
    if (regex_)
        onig_free(regex_);
}

Regex::Regex(Regex&& other) noexcept : regex_(std::exchange(other.regex_, nullptr)) {}

Regex& Regex::operator=(Regex&& other) noexcept
{
    if (this != &other) {
        if (regex_)
            onig_free(regex_);
        regex_ = std::exchange(other.regex_, nullptr);
    }
    return *this;
}

bool Regex::search(std::string_view subject, std::size_t from, Match& match, RegexScratch& scratch) const
{
    const OnigUChar* str = bytes(subject);
    const OnigUChar* end = str + subject.size();
    const int rc = onig_search(regex_, str, end, str + from, end, scratch.region(), ONIG_OPTION_NONE);
    if (rc == ONIG_MISMATCH)
        return false;
    if (rc < 0) {
        OnigUChar message[ONIG_MAX_ERROR_MESSAGE_LEN];
        onig_error_code_to_str(message, rc);
        throw Error(std::string("tokenizer: regular expression search failed: ") +
                    reinterpret_cast<const char*>(message));
    }
    match.begin = static_cast<std::size_t>(scratch.region()->beg[0]);
    match.end = static_cast<std::size_t>(scratch.region()->end[0]);
    return true;
}

long Regex::matchAt(std::string_view subject, std::size_t at, RegexScratch& scratch) const
{
    const OnigUChar* str = bytes(subject);
    const int rc = onig_match(regex_, str, str + subject.size(), str + at, scratch.region(), ONIG_OPTION_NONE);
    if (rc == ONIG_MISMATCH)
        return -1;
    if (rc < 0)
        throw Error("tokenizer: regular expression match failed");
    return rc;
}

std::string Regex::escape(std::string_view literal)
{
    static const char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(literal.size() * 4);
    for (char c : literal) {
        const auto u = static_cast<unsigned char>(c);
        const bool alnum = (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z');
        if (u < 0x80 && !alnum) {
            // \xHH is unambiguous for every ASCII byte, unlike "\<" which some syntaxes read as an anchor.
            out += "\\x";
            out.push_back(hex[u >> 4]);
            out.push_back(hex[u & 15]);
        } else {
            out.push_back(c);
        }
    }
    return out;
}

}  // namespace tessera
