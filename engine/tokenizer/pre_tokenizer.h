#pragma once
// HF's pre-tokenizer as DeepSeek configures it: regex Split stages, each applied to every piece
// the previous stage produced, followed by the byte-level mapping (implied: BPE works on bytes).
#include "tokenizer/regex.h"

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace tessera {

class RegexSplit {
public:
    enum class Behavior { Isolated, Removed };
    RegexSplit(Regex regex, Behavior behavior, bool invert);

    // Calls sink(piece) for every non-empty piece of `text`, in order.
    template <class Sink>
    void split(std::string_view text, RegexScratch& scratch, Sink&& sink) const;

private:
    Regex regex_;
    Behavior behavior_;
    bool invert_;
};

class PreTokenizer {
public:
    PreTokenizer() = default;
    // `config` is tokenizer.json's "pre_tokenizer"; `where` names the file for errors.
    static PreTokenizer fromJson(const nlohmann::json& config, const std::string& where);

    // Calls sink(piece) for each final piece of `text` (raw bytes, before byte-level mapping).
    template <class Sink>
    void run(std::string_view text, RegexScratch& scratch, Sink&& sink) const
    {
        runFrom(0, text, scratch, sink);
    }

private:
    template <class Sink>
    void runFrom(std::size_t stage, std::string_view text, RegexScratch& scratch, Sink& sink) const
    {
        if (stage == stages_.size()) {
            sink(text);
            return;
        }
        stages_[stage].split(text, scratch, [&](std::string_view piece) { runFrom(stage + 1, piece, scratch, sink); });
    }

    std::vector<RegexSplit> stages_;
};

template <class Sink>
void RegexSplit::split(std::string_view text, RegexScratch& scratch, Sink&& sink) const
{
    // Pieces alternate gap / match; Isolated keeps both, Removed drops the matches. With `invert`
    // the roles swap. Empty matches never produce pieces, and the scan steps over them the way
    // Rust's find_iter does (no empty match right where the previous match ended).
    const bool keepMatches = behavior_ == Behavior::Isolated || invert_;
    const bool keepGaps = behavior_ == Behavior::Isolated || !invert_;
    std::size_t gapStart = 0;
    std::size_t from = 0;
    std::size_t lastMatchEnd = std::string_view::npos;
    Regex::Match m{};
    while (from <= text.size() && regex_.search(text, from, m, scratch)) {
        if (m.begin == m.end) {
            if (m.end == lastMatchEnd || m.begin >= text.size()) {
                if (m.begin >= text.size())
                    break;
                // Advance one character and retry.
                std::size_t step = 1;
                while (from + step < text.size() && (static_cast<unsigned char>(text[from + step]) & 0xC0) == 0x80)
                    ++step;
                from += step;
                continue;
            }
            lastMatchEnd = m.end;
            from = m.end;
            if (gapStart < m.begin && keepGaps)
                sink(text.substr(gapStart, m.begin - gapStart));
            gapStart = m.begin;
            continue;
        }
        if (gapStart < m.begin && keepGaps)
            sink(text.substr(gapStart, m.begin - gapStart));
        if (keepMatches)
            sink(text.substr(m.begin, m.end - m.begin));
        gapStart = m.end;
        from = m.end;
        lastMatchEnd = m.end;
    }
    if (gapStart < text.size() && keepGaps)
        sink(text.substr(gapStart));
}

}  // namespace tessera
