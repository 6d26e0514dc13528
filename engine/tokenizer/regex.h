#pragma once
// A compiled Oniguruma pattern, the regex engine Hugging Face tokenizers uses, so that Unicode
// classes, \s and look-ahead behave exactly as in the reference.
#include <cstddef>
#include <string>
#include <string_view>

struct re_pattern_buffer;  // OnigRegexType
struct re_registers;       // OnigRegion

namespace tessera {

// Scratch space for match positions; one per thread, reused across searches.
class RegexScratch {
public:
    RegexScratch();
    ~RegexScratch();
    RegexScratch(const RegexScratch&) = delete;
    RegexScratch& operator=(const RegexScratch&) = delete;
    re_registers* region() const { return region_; }

private:
    re_registers* region_;
};

class Regex {
public:
    // `where` names the file and field for the error message if the pattern does not compile.
    Regex(std::string_view pattern, const std::string& where);
    ~Regex();
    Regex(Regex&& other) noexcept;
    Regex& operator=(Regex&& other) noexcept;
    Regex(const Regex&) = delete;
    Regex& operator=(const Regex&) = delete;

    struct Match {
        std::size_t begin;
        std::size_t end;
    };
    // Leftmost match in subject[from, size); the subject's edges are the string's edges for
    // anchors and look-around. Returns false when there is none.
    bool search(std::string_view subject, std::size_t from, Match& match, RegexScratch& scratch) const;
    // Length of the match anchored at subject[at]; -1 when the pattern does not match there.
    long matchAt(std::string_view subject, std::size_t at, RegexScratch& scratch) const;

    // The pattern that matches `literal` verbatim (for Split patterns given as plain strings).
    static std::string escape(std::string_view literal);

private:
    re_pattern_buffer* regex_ = nullptr;
};

}  // namespace tessera
