#include "tokenizer/tokenizer.h"

#include "core/error.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer_json.h"
#include "tokenizer/utf8.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <unordered_map>

namespace tessera {

struct ContentHash {
    using is_transparent = void;  // tokenId(string_view) without building a std::string
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

struct Tokenizer::Impl {
    BpeModel model;
    PreTokenizer preTokenizer;
    std::vector<AddedToken> addedTokens;
    std::unordered_map<std::string, std::int32_t, ContentHash, std::equal_to<>> addedByContent;
    AddedTokenMatcher rawMatcher;         // added tokens with normalized=false: matched on the input
    AddedTokenMatcher normalizedMatcher;  // normalized=true: matched after the (identity) normalizer

    // Per id, indexed 0..vocabSize: raw text, decoded bytes (a slice of decodeArena), kind.
    enum Kind : std::uint8_t { kUnknown = 0, kRegular = 1, kSpecial = 2 };
    std::vector<std::string_view> idText;  // views into the vocab arena or addedTokens
    std::vector<std::uint32_t> decodeOffset;  // vocabSize + 1 entries
    std::string decodeArena;
    std::vector<std::uint8_t> kind;

    bool known(std::int32_t id) const
    {
        return id >= 0 && static_cast<std::size_t>(id) < kind.size() && kind[static_cast<std::size_t>(id)] != kUnknown;
    }
    std::string_view bytesOf(std::int32_t id) const
    {
        const auto i = static_cast<std::size_t>(id);
        return std::string_view(decodeArena).substr(decodeOffset[i], decodeOffset[i + 1] - decodeOffset[i]);
    }
};

namespace {

using json = nlohmann::json;

[[noreturn]] void unknownId(std::int32_t id, std::size_t vocabSize, const char* what)
{
    throw Error(std::string(what) + ": token id " + std::to_string(id) + " is not in the vocabulary (valid ids are 0.." +
                std::to_string(vocabSize - 1) + ")");
}

const json& member(const json& object, const char* key, const std::string& where)
{
    auto it = object.find(key);
    if (it == object.end())
        throw Error(where + ": field \"" + key + "\" is missing");
    return *it;
}

bool optionalFlag(const json& object, const char* key, bool fallback, const std::string& where)
{
    auto it = object.find(key);
    if (it == object.end() || it->is_null())
        return fallback;
    if (!it->is_boolean())
        throw Error(where + ": field \"" + key + "\" must be true or false, found " + it->dump());
    return it->get<bool>();
}

// Empty or absent string options are HF's "off".
bool isOffString(const json& object, const char* key)
{
    auto it = object.find(key);
    return it == object.end() || it->is_null() || (it->is_string() && it->get_ref<const std::string&>().empty());
}

std::int32_t tokenIdValue(const json& value, const std::string& where)
{
    constexpr std::int64_t kMaxId = (1 << 24) - 1;  // far above any real vocabulary; guards huge allocations
    if (!value.is_number_integer() || value.get<std::int64_t>() < 0 || value.get<std::int64_t>() > kMaxId)
        throw Error(where + ": token id must be an integer in 0.." + std::to_string(kMaxId) + ", found " + value.dump());
    return static_cast<std::int32_t>(value.get<std::int64_t>());
}

void checkNormalizer(const json& root, const std::string& where)
{
    auto it = root.find("normalizer");
    if (it == root.end() || it->is_null())
        return;
    const json& n = *it;
    const std::string type = n.is_object() && n.contains("type") && n["type"].is_string() ? n["type"].get<std::string>() : "";
    if (type == "Sequence") {
        auto list = n.find("normalizers");
        if (list != n.end() && list->is_array() && list->empty())
            return;
    }
    throw Error(where + ": normalizer " + n.dump().substr(0, 200) +
                " is not supported (only none or an empty Sequence, as DeepSeek tokenizers use)");
}

void checkDecoder(const json& root, const std::string& where)
{
    auto it = root.find("decoder");
    if (it != root.end() && it->is_object() && it->contains("type") && (*it)["type"] == "ByteLevel")
        return;
    throw Error(where + ": decoder " + (it == root.end() ? std::string("(missing)") : it->dump().substr(0, 200)) +
                " is not supported (only ByteLevel)");
}

BpeModel loadModel(const json& root, BpeTablesBuilder& bpe, const std::string& where)
{
    const std::string base = where + ": model";
    const json& model = member(root, "model", where);
    if (!model.is_object())
        throw Error(base + " must be an object, found " + model.type_name());
    if (auto t = model.find("type"); t != model.end()) {
        if (!t->is_string() || t->get<std::string>() != "BPE")
            throw Error(base + ": model type " + t->dump() + " is not supported (only BPE)");
    }
    if (auto d = model.find("dropout"); d != model.end() && !d->is_null() && !(d->is_number() && d->get<double>() == 0.0))
        throw Error(base + ": BPE dropout " + d->dump() + " is not supported (encoding must be deterministic)");
    if (!isOffString(model, "continuing_subword_prefix") || !isOffString(model, "end_of_word_suffix"))
        throw Error(base + ": continuing_subword_prefix / end_of_word_suffix are not supported (byte-level BPE has none)");
    if (optionalFlag(model, "byte_fallback", false, base))
        throw Error(base + ": byte_fallback is not supported (byte-level BPE covers every byte already)");

    BpeTablesBuilder::Tables tables = bpe.finish();
    BpeModel::Options options;
    options.ignoreMerges = optionalFlag(model, "ignore_merges", false, base);
    options.fuseUnk = optionalFlag(model, "fuse_unk", false, base);
    if (!isOffString(model, "unk_token")) {
        const json& unk = model["unk_token"];
        if (!unk.is_string())
            throw Error(base + ": unk_token must be a string or null, found " + unk.dump());
        const std::int32_t id = tables.vocab.find(unk.get<std::string>());
        if (id < 0)
            throw Error(base + ": unk_token \"" + unk.get<std::string>() + "\" is not in the vocabulary");
        options.unkId = id;
    }
    return BpeModel(std::move(tables.vocab), tables.merges, options);
}

std::vector<AddedToken> loadAddedTokens(const json& root, const std::string& where)
{
    std::vector<AddedToken> result;
    auto it = root.find("added_tokens");
    if (it == root.end() || it->is_null())
        return result;
    if (!it->is_array())
        throw Error(where + ": added_tokens must be an array, found " + it->type_name());
    for (std::size_t i = 0; i < it->size(); ++i) {
        const json& t = (*it)[i];
        const std::string at = where + ": added_tokens[" + std::to_string(i) + "]";
        if (!t.is_object())
            throw Error(at + " must be an object, found " + t.type_name());
        AddedToken token;
        token.id = tokenIdValue(member(t, "id", at), at + ".id");
        const json& content = member(t, "content", at);
        if (!content.is_string())
            throw Error(at + ".content must be a string, found " + content.dump());
        token.content = content.get<std::string>();
        token.special = optionalFlag(t, "special", false, at);
        token.singleWord = optionalFlag(t, "single_word", false, at);
        token.lstrip = optionalFlag(t, "lstrip", false, at);
        token.rstrip = optionalFlag(t, "rstrip", false, at);
        token.normalized = optionalFlag(t, "normalized", !token.special, at);
        result.push_back(std::move(token));
    }
    return result;
}

}  // namespace

Tokenizer::Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::fromFile(const std::filesystem::path& tokenizerJson)
{
    TokenizerJson parts = readTokenizerJson(tokenizerJson);
    return build(parts, tokenizerJson.string());
}

Tokenizer Tokenizer::fromJson(const nlohmann::json& tokenizerJson, const std::string& sourceName)
{
    TokenizerJson parts = splitTokenizerJson(tokenizerJson, sourceName);
    return build(parts, sourceName);
}

Tokenizer Tokenizer::build(TokenizerJson& parts, const std::string& where)
{
    const json& root = parts.config;
    if (!root.is_object())
        throw Error(where + ": expected a tokenizer.json object, found " + root.type_name());
    auto impl = std::make_shared<Impl>();
    checkNormalizer(root, where);
    checkDecoder(root, where);
    impl->model = loadModel(root, parts.bpe, where);
    impl->preTokenizer = PreTokenizer::fromJson(root.contains("pre_tokenizer") ? root["pre_tokenizer"] : json(), where);
    impl->addedTokens = loadAddedTokens(root, where);

    const TokenTable& vocab = impl->model.vocab();
    std::size_t vocabSize = vocab.idLimit();
    for (const AddedToken& t : impl->addedTokens)
        vocabSize = std::max(vocabSize, static_cast<std::size_t>(t.id) + 1);

    // Id → text: an added token wins over a vocab entry with the same id, as in HF.
    impl->idText.assign(vocabSize, std::string_view());
    impl->kind.assign(vocabSize, Impl::kUnknown);
    for (std::size_t id = 0; id < vocab.idLimit(); ++id) {
        if (vocab.has(static_cast<std::int32_t>(id))) {
            impl->idText[id] = vocab.text(static_cast<std::int32_t>(id));
            impl->kind[id] = Impl::kRegular;
        }
    }
    std::vector<const AddedToken*> raw, normalized;
    for (const AddedToken& t : impl->addedTokens) {
        impl->idText[static_cast<std::size_t>(t.id)] = t.content;
        impl->addedByContent[t.content] = t.id;
        (t.normalized ? normalized : raw).push_back(&t);
    }
    // HF's special set is by content: every id whose text is a special added token is special.
    for (const AddedToken& t : impl->addedTokens) {
        if (t.special)
            impl->kind[static_cast<std::size_t>(t.id)] = Impl::kSpecial;
        else if (impl->kind[static_cast<std::size_t>(t.id)] == Impl::kUnknown)
            impl->kind[static_cast<std::size_t>(t.id)] = Impl::kRegular;
    }
    impl->rawMatcher = AddedTokenMatcher(raw);
    impl->normalizedMatcher = AddedTokenMatcher(normalized);

    // Decoded bytes of every token, computed once: ByteLevel maps each character back to its
    // byte; a token with a character outside that alphabet keeps its own UTF-8 (HF does the same).
    impl->decodeOffset.assign(vocabSize + 1, 0);
    impl->decodeArena.reserve(vocabSize * 6);
    for (std::size_t id = 0; id < vocabSize; ++id) {
        impl->decodeOffset[id] = static_cast<std::uint32_t>(impl->decodeArena.size());
        if (impl->kind[id] != Impl::kUnknown && !byte_level::decodeAppend(impl->decodeArena, impl->idText[id]))
            impl->decodeArena += impl->idText[id];
    }
    impl->decodeOffset[vocabSize] = static_cast<std::uint32_t>(impl->decodeArena.size());
    return Tokenizer(std::move(impl));
}

std::vector<std::int32_t> Tokenizer::encode(std::string_view text) const
{
    std::vector<std::int32_t> out;
    out.reserve(text.size() / 3 + 4);
    encodeAppend(text, out);
    return out;
}

void Tokenizer::encodeAppend(std::string_view text, std::vector<std::int32_t>& out) const
{
    if (const std::size_t bad = utf8::firstInvalid(text); bad != std::string_view::npos)
        throw Error("Tokenizer::encode: text is not valid UTF-8 (byte " + std::to_string(bad) + " of " +
                    std::to_string(text.size()) + ")");
    const Impl& impl = *impl_;
    static thread_local RegexScratch scratch;
    auto bpe = [&](std::string_view piece) { impl.model.tokenize(piece, out); };

    std::vector<TextSegment> outer, inner;
    impl.rawMatcher.split(text, 0, text.size(), outer, scratch);
    for (const TextSegment& s : outer) {
        if (s.tokenId >= 0) {
            out.push_back(s.tokenId);
            continue;
        }
        inner.clear();
        impl.normalizedMatcher.split(text, s.begin, s.end, inner, scratch);
        for (const TextSegment& t : inner) {
            if (t.tokenId >= 0)
                out.push_back(t.tokenId);
            else
                impl.preTokenizer.run(text.substr(t.begin, t.end - t.begin), scratch, bpe);
        }
    }
}

std::string Tokenizer::decode(std::span<const std::int32_t> ids, bool skipSpecialTokens) const
{
    DecodeOptions options;
    options.skipSpecialTokens = skipSpecialTokens;
    return decode(ids, options);
}

std::string Tokenizer::decode(std::span<const std::int32_t> ids, const DecodeOptions& options) const
{
    const Impl& impl = *impl_;
    std::string bytes;
    bytes.reserve(ids.size() * 4);
    for (std::int32_t id : ids) {
        if (!impl.known(id)) {
            if (options.skipUnknownIds)
                continue;
            unknownId(id, impl.kind.size(), "Tokenizer::decode");
        }
        if (options.skipSpecialTokens && impl.kind[static_cast<std::size_t>(id)] == Impl::kSpecial)
            continue;
        bytes += impl.bytesOf(id);
    }
    if (utf8::isValid(bytes))
        return bytes;
    std::string out;
    out.reserve(bytes.size() + 8);
    utf8::appendLossy(out, bytes);
    return out;
}

std::optional<std::int32_t> Tokenizer::tokenId(std::string_view token) const
{
    if (auto it = impl_->addedByContent.find(token); it != impl_->addedByContent.end())
        return it->second;
    return impl_->model.find(token);
}

std::string Tokenizer::tokenText(std::int32_t id) const
{
    if (!impl_->known(id))
        unknownId(id, impl_->kind.size(), "Tokenizer::tokenText");
    return std::string(impl_->idText[static_cast<std::size_t>(id)]);
}

std::string_view Tokenizer::tokenBytes(std::int32_t id) const
{
    if (!impl_->known(id))
        unknownId(id, impl_->kind.size(), "Tokenizer::tokenBytes");
    return impl_->bytesOf(id);
}

bool Tokenizer::isSpecial(std::int32_t id) const
{
    return impl_->known(id) && impl_->kind[static_cast<std::size_t>(id)] == Impl::kSpecial;
}

bool Tokenizer::isKnownId(std::int32_t id) const { return impl_->known(id); }

std::size_t Tokenizer::vocabSize() const { return impl_->kind.size(); }

}  // namespace tessera
