#pragma once
// Tokens added on top of the BPE vocabulary (special markers like <|User|>, <image>, ...).
// They are cut out of the text before pre-tokenization, leftmost-longest like HF's Aho-Corasick.
#include "tokenizer/regex.h"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace tessera {

struct AddedToken {
    std::int32_t id = 0;
    std::string content;
    bool special = false;
    bool singleWord = false;  // only match when not inside a word
    bool lstrip = false;      // swallow whitespace on the left
    bool rstrip = false;      // swallow whitespace on the right
    bool normalized = false;  // matched against the normalized text (second pass)
};

// A piece of the input: either an added token or plain text still to pre-tokenize.
struct TextSegment {
    std::size_t begin;
    std::size_t end;
    std::int32_t tokenId;  // -1 for plain text
};

class AddedTokenMatcher {
public:
    AddedTokenMatcher() = default;
    explicit AddedTokenMatcher(const std::vector<const AddedToken*>& tokens);

    bool empty() const { return terminal_.size() <= 1; }
    // Splits text[begin, end) into segments, appending them to `out` in order.
    void split(std::string_view text, std::size_t begin, std::size_t end, std::vector<TextSegment>& out,
               RegexScratch& scratch) const;

private:
    // Longest token starting at text[pos] (within `end`): index into tokens_, or -1.
    int longestAt(std::string_view text, std::size_t pos, std::size_t end, std::size_t& length) const;
    std::int32_t child(std::int32_t node, unsigned char byte) const;

    std::vector<const AddedToken*> tokens_;
    // Byte trie: edges keyed by node * 256 + byte; terminal_[node] = token index or -1.
    std::unordered_map<std::uint64_t, std::int32_t> edges_;
    std::vector<std::int32_t> terminal_{-1};
    std::array<bool, 256> firstByte_{};
    bool needsWordRules_ = false;
    std::vector<Regex> wordRules_;  // \w and \s, only built when a token uses single_word/lstrip/rstrip
};

}  // namespace tessera
