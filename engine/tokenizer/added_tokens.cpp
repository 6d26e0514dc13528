#include "tokenizer/added_tokens.h"

namespace tessera {
namespace {

enum WordRule { kWordChar = 0, kSpaceChar = 1 };

// Start of the UTF-8 character that ends right before `pos`.
std::size_t previousCharStart(std::string_view text, std::size_t pos)
{
    std::size_t i = pos - 1;
    while (i > 0 && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80)
        --i;
    return i;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(const std::vector<const AddedToken*>& tokens) : tokens_(tokens)
{
    for (std::size_t t = 0; t < tokens_.size(); ++t) {
        const std::string& s = tokens_[t]->content;
        if (s.empty())
            continue;  // HF ignores empty added tokens
        std::int32_t node = 0;
        for (char c : s) {
            const auto b = static_cast<unsigned char>(c);
            const std::uint64_t key = static_cast<std::uint64_t>(node) * 256 + b;
            auto it = edges_.find(key);
            if (it == edges_.end()) {
                const auto fresh = static_cast<std::int32_t>(terminal_.size());
                terminal_.push_back(-1);
                it = edges_.emplace(key, fresh).first;
            }
            node = it->second;
        }
        // A later duplicate replaces an earlier one, as in HF's token map.
        terminal_[node] = static_cast<std::int32_t>(t);
        firstByte_[static_cast<unsigned char>(s[0])] = true;
        needsWordRules_ = needsWordRules_ || tokens_[t]->singleWord || tokens_[t]->lstrip || tokens_[t]->rstrip;
    }
    if (needsWordRules_) {
        wordRules_.emplace_back("\\w", "added_tokens");
        wordRules_.emplace_back("\\s", "added_tokens");
    }
}

std::int32_t AddedTokenMatcher::child(std::int32_t node, unsigned char byte) const
{
    auto it = edges_.find(static_cast<std::uint64_t>(node) * 256 + byte);
    return it == edges_.end() ? -1 : it->second;
}

int AddedTokenMatcher::longestAt(std::string_view text, std::size_t pos, std::size_t end, std::size_t& length) const
{
    int best = -1;
    std::int32_t node = 0;
    for (std::size_t i = pos; i < end; ++i) {
        node = child(node, static_cast<unsigned char>(text[i]));
        if (node < 0)
            break;
        if (terminal_[node] >= 0) {
            best = terminal_[node];
            length = i + 1 - pos;
        }
    }
    return best;
}

void AddedTokenMatcher::split(std::string_view text, std::size_t begin, std::size_t end,
                              std::vector<TextSegment>& out, RegexScratch& scratch) const
{
    if (empty()) {
        if (begin < end)
            out.push_back({begin, end, -1});
        return;
    }
    // Matching is done on the segment alone, as HF does on each split, so word rules see its edges.
    const std::string_view sentence = text.substr(begin, end - begin);
    const std::size_t n = sentence.size();
    auto isWordCharAt = [&](std::size_t at) { return wordRules_[kWordChar].matchAt(sentence, at, scratch) > 0; };
    auto isSpaceAt = [&](std::size_t at) { return wordRules_[kSpaceChar].matchAt(sentence, at, scratch) > 0; };

    std::size_t emitted = 0;  // end of the last emitted segment
    std::size_t pos = 0;
    while (pos < n) {
        if (!firstByte_[static_cast<unsigned char>(sentence[pos])]) {
            ++pos;
            continue;
        }
        std::size_t length = 0;
        const int t = longestAt(sentence, pos, n, length);
        if (t < 0) {
            ++pos;
            continue;
        }
        const AddedToken& token = *tokens_[t];
        std::size_t start = pos;
        std::size_t stop = pos + length;
        pos = stop;  // the scan resumes after this match even when the match is discarded
        if (token.singleWord) {
            const bool wordBefore = start > 0 && isWordCharAt(previousCharStart(sentence, start));
            const bool wordAfter = stop < n && isWordCharAt(stop);
            if (wordBefore || wordAfter)
                continue;
        }
        if (token.lstrip) {
            std::size_t s = start;
            while (s > emitted) {
                const std::size_t prev = previousCharStart(sentence, s);
                if (!isSpaceAt(prev))
                    break;
                s = prev;
            }
            start = s;
        }
        if (token.rstrip) {
            while (stop < n) {
                const long len = wordRules_[kSpaceChar].matchAt(sentence, stop, scratch);
                if (len <= 0)
                    break;
                stop += static_cast<std::size_t>(len);
            }
            pos = stop;
        }
        if (emitted < start)
            out.push_back({begin + emitted, begin + start, -1});
        out.push_back({begin + start, begin + stop, token.id});
        emitted = stop;
    }
    if (emitted < n)
        out.push_back({begin + emitted, begin + n, -1});
}

}  // namespace tessera
