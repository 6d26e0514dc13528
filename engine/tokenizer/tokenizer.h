#pragma once
// The DeepSeek-VL2 tokenizer: byte-level BPE read from a Hugging Face tokenizer.json, matching
// HF `tokenizers` id for id (added tokens first, then regex pre-tokenization, then BPE merges).
//
// Thread safety: a Tokenizer is immutable after loading except for an internal, synchronised word
// cache, so one instance may encode and decode from many threads. Copies share their data.
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tessera {

struct TokenizerJson;

struct DecodeOptions {
    bool skipSpecialTokens = false;
    // Ids that name no token (negative, >= vocabSize(), or a hole in the vocabulary) throw
    // tessera::Error by default. HF's decode silently drops them; set this to do the same. The
    // model's embedding is padded past the tokenizer (129280 rows vs 128823 tokens), so sampling
    // can produce such ids: the golden mini-mla a_text generation contains 129265.
    bool skipUnknownIds = false;
};

class Tokenizer {
public:
    static Tokenizer fromFile(const std::filesystem::path& tokenizerJson);  // throws tessera::Error
    // `sourceName` is used in error messages in place of a file name.
    static Tokenizer fromJson(const nlohmann::json& tokenizerJson, const std::string& sourceName);

    Tokenizer(const Tokenizer&) = default;
    Tokenizer(Tokenizer&&) noexcept = default;
    Tokenizer& operator=(const Tokenizer&) = default;
    Tokenizer& operator=(Tokenizer&&) noexcept = default;
    ~Tokenizer();

    // HF encode(text, add_special_tokens=False): added tokens matched first, then pre-tokenizer +
    // BPE on the rest. Throws tessera::Error when `text` is not valid UTF-8.
    std::vector<std::int32_t> encode(std::string_view text) const;
    // The same, appending to `out` (for building prompts chunk by chunk without copies).
    void encodeAppend(std::string_view text, std::vector<std::int32_t>& out) const;

    // HF decode(ids, skip_special_tokens): token bytes concatenated, invalid UTF-8 → U+FFFD.
    // Throws tessera::Error naming the first id that is not a token.
    std::string decode(std::span<const std::int32_t> ids, bool skipSpecialTokens = false) const;
    std::string decode(std::span<const std::int32_t> ids, const DecodeOptions& options) const;

    std::optional<std::int32_t> tokenId(std::string_view token) const;  // vocab or added token
    std::string tokenText(std::int32_t id) const;  // raw token string as in tokenizer.json; throws for unknown ids
    // The bytes a token decodes to (may be part of a UTF-8 character); throws for unknown ids.
    std::string_view tokenBytes(std::int32_t id) const;
    bool isSpecial(std::int32_t id) const;  // false for unknown ids
    bool isKnownId(std::int32_t id) const;  // names a vocab or added token
    std::size_t vocabSize() const;          // largest id + 1

private:
    struct Impl;
    explicit Tokenizer(std::shared_ptr<const Impl> impl);
    static Tokenizer build(TokenizerJson& parts, const std::string& where);
    std::shared_ptr<const Impl> impl_;  // never null except in a moved-from Tokenizer
};

// Streaming detokenizer: tokens in, text out as soon as it is complete UTF-8 (never half a
// character); special tokens are kept as text (grounding tags <|ref|> etc. are special tokens).
// The concatenation of everything push() and flush() return equals Tokenizer::decode of the ids.
class StreamingDetokenizer {
public:
    explicit StreamingDetokenizer(const Tokenizer& tokenizer);
    StreamingDetokenizer(const Tokenizer& tokenizer, DecodeOptions options);

    // Returns newly completed text (may be empty). An unknown id throws tessera::Error (unless
    // options.skipUnknownIds) and leaves the state unchanged.
    std::string push(std::int32_t id);
    // Whatever remains; invalid trailing bytes become U+FFFD like HF decode does. Resets.
    std::string flush();
    void reset();
    // Bytes held back because they end in an incomplete UTF-8 character (at most 3).
    std::size_t pendingBytes() const { return pending_.size(); }

private:
    Tokenizer tokenizer_;  // a cheap shared copy, so the detokenizer cannot outlive its data
    DecodeOptions options_;
    std::string pending_;
};

}  // namespace tessera
