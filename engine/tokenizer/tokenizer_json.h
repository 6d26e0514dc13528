#pragma once
// Reading tokenizer.json. The two big tables (model.vocab, model.merges: ~10 MB of the file) are
// streamed with a SAX parser straight into compact form; everything else becomes a small JSON tree.
#include "tokenizer/bpe_model.h"
#include "tokenizer/token_table.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace tessera {

// Collects vocab entries and merges from either source, with the same checks and messages.
class BpeTablesBuilder {
public:
    explicit BpeTablesBuilder(std::string where);  // where: "<file>: model"

    void beginVocab();
    void addVocab(std::string_view token, const nlohmann::json& id);
    void beginMerges();
    void addMergeString(std::string_view entry);  // legacy "a b"
    void addMergePair(std::string_view left, std::string_view right);
    [[noreturn]] void badMerge(const std::string& found) const;  // names the current merge index

    struct Tables {
        TokenTable vocab;  // ids finished
        std::vector<BpeModel::MergeRule> merges;
    };
    // Checks presence, id clashes and that every merge names vocab tokens; call once.
    Tables finish();

private:
    struct RawMerge {
        std::uint32_t offset;
        std::uint32_t leftLength;
        std::uint32_t rightLength;
    };
    std::string where_;
    bool sawVocab_ = false;
    bool sawMerges_ = false;
    TokenTable vocab_;
    std::string mergeChars_;
    std::vector<RawMerge> merges_;
};

struct TokenizerJson {
    nlohmann::json config;  // the file without model.vocab and model.merges
    BpeTablesBuilder bpe;
};

// Both throw tessera::Error naming `where` (the file) and the field at fault.
TokenizerJson readTokenizerJson(const std::filesystem::path& path);
TokenizerJson splitTokenizerJson(const nlohmann::json& root, const std::string& where);

}  // namespace tessera
