#pragma once
// Byte-level BPE: a piece of raw bytes becomes one symbol per byte, then the adjacent pair with
// the lowest merge rank is merged until no ranked pair is left (HF tokenizers' BPE model).
#include "tokenizer/token_table.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tessera {

class BpeWordCache;

class BpeModel {
public:
    struct Options {
        bool ignoreMerges = false;          // a piece that is itself a vocab token is taken whole
        std::optional<std::int32_t> unkId;  // used for bytes whose symbol is not in the vocab
        bool fuseUnk = false;               // consecutive unknown symbols become one unk token
    };
    struct MergeRule {
        std::int32_t left;
        std::int32_t right;
        std::int32_t merged;
    };
    BpeModel();
    // `vocab` must have its ids finished; `merges` are in rank order (earlier = merged first); a
    // pair listed twice keeps its last rank, as HF's merge map does.
    BpeModel(TokenTable vocab, const std::vector<MergeRule>& merges, Options options);
    ~BpeModel();
    BpeModel(BpeModel&&) noexcept;
    BpeModel& operator=(BpeModel&&) noexcept;

    std::optional<std::int32_t> find(std::string_view token) const;
    const TokenTable& vocab() const { return vocab_; }

    // Appends the ids of one pre-tokenized piece (raw bytes; the byte-level mapping is implied).
    void tokenize(std::string_view piece, std::vector<std::int32_t>& out) const;
    // The same without the word cache (for measuring and for testing the cache).
    void tokenizeUncached(std::string_view piece, std::vector<std::int32_t>& out) const;

private:
    class PairTable;
    void mergeSmall(std::int32_t* ids, std::size_t n, std::vector<std::int32_t>& out) const;
    void mergeLarge(const std::int32_t* ids, std::size_t n, std::vector<std::int32_t>& out) const;

    TokenTable vocab_;
    std::unique_ptr<PairTable> pairs_;
    std::int32_t byteIds_[256];  // id of each byte's symbol; -1 when the vocab lacks it
    Options options_;
    std::unique_ptr<BpeWordCache> cache_;
};

}  // namespace tessera
