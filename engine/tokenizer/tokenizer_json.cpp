#include "tokenizer/tokenizer_json.h"

#include "core/error.h"
#include "core/mapped_file.h"

namespace tessera {
namespace {

using json = nlohmann::json;

constexpr std::int64_t kMaxId = (1 << 24) - 1;  // far above any real vocabulary; guards huge allocations

std::string describe(const json& value)
{
    std::string text = value.dump();
    return text.size() > 200 ? text.substr(0, 200) + "..." : text;
}

// SAX handler: model.vocab and model.merges go to the builder, the rest into a JSON tree.
class TokenizerJsonSax final : public nlohmann::json_sax<json> {
public:
    TokenizerJsonSax(BpeTablesBuilder& bpe, std::string where) : bpe_(bpe), where_(std::move(where)) {}

    json takeRoot() { return std::move(root_); }

    bool null() override { return scalar(json(nullptr)); }
    bool boolean(bool v) override { return scalar(json(v)); }
    bool number_integer(number_integer_t v) override { return scalar(json(v)); }
    bool number_unsigned(number_unsigned_t v) override { return scalar(json(v)); }
    bool number_float(number_float_t v, const string_t&) override { return scalar(json(v)); }
    bool binary(binary_t&) override { return scalar(json()); }

    bool string(string_t& v) override
    {
        switch (top().kind) {
        case Kind::Merges:
            bpe_.addMergeString(v);
            return true;
        case Kind::MergePair:
            if (pairCount_ < 2)
                pair_[pairCount_] = v;
            ++pairCount_;
            return true;
        default:
            return scalar(json(std::move(v)));
        }
    }

    bool key(string_t& k) override
    {
        top().key = std::move(k);
        return true;
    }

    bool start_object(std::size_t) override
    {
        if (!stack_.empty()) {
            rejectContainerIn(top().kind, "an object");
            if (top().isModel && top().key == "vocab") {
                bpe_.beginVocab();
                stack_.push_back({Kind::Vocab, nullptr, false, {}});
                return true;
            }
        }
        const bool isModel = stack_.size() == 1 && top().key == "model";
        json* node = insert(json::object());
        stack_.push_back({Kind::Generic, node, isModel, {}});
        return true;
    }

    bool start_array(std::size_t) override
    {
        if (!stack_.empty()) {
            if (top().kind == Kind::Merges) {
                pairCount_ = 0;
                stack_.push_back({Kind::MergePair, nullptr, false, {}});
                return true;
            }
            rejectContainerIn(top().kind, "an array");
            if (top().isModel && top().key == "merges") {
                bpe_.beginMerges();
                stack_.push_back({Kind::Merges, nullptr, false, {}});
                return true;
            }
        }
        json* node = insert(json::array());
        stack_.push_back({Kind::Generic, node, false, {}});
        return true;
    }

    bool end_object() override
    {
        stack_.pop_back();
        return true;
    }

    bool end_array() override
    {
        if (top().kind == Kind::MergePair) {
            if (pairCount_ != 2)
                bpe_.badMerge("an array of " + std::to_string(pairCount_) + " strings");
            bpe_.addMergePair(pair_[0], pair_[1]);
        }
        stack_.pop_back();
        return true;
    }

    bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) override
    {
        throw Error(where_ + ": invalid JSON at byte " + std::to_string(position) + ": " + e.what());
    }

private:
    enum class Kind { Generic, Vocab, Merges, MergePair };
    struct Frame {
        Kind kind;
        json* node;
        bool isModel;     // the top-level "model" object, whose vocab/merges are streamed
        std::string key;  // last key seen in an object
    };

    Frame& top() { return stack_.back(); }

    void rejectContainerIn(Kind kind, const char* what)
    {
        if (kind == Kind::Vocab)
            bpe_.addVocab(top().key, json(what));  // reports "token id must be an integer"
        if (kind == Kind::Merges || kind == Kind::MergePair)
            bpe_.badMerge(kind == Kind::Merges ? what : std::string("an array holding ") + what);
    }

    bool scalar(json value)
    {
        if (!stack_.empty()) {
            switch (top().kind) {
            case Kind::Vocab:
                bpe_.addVocab(top().key, value);
                return true;
            case Kind::Merges:
            case Kind::MergePair:
                bpe_.badMerge(describe(value));
            case Kind::Generic:
                break;
            }
        }
        insert(std::move(value));
        return true;
    }

    // Places a value in the innermost open container (or as the root). Pointers to open
    // containers stay valid: only the innermost one ever grows.
    json* insert(json value)
    {
        if (stack_.empty()) {
            root_ = std::move(value);
            return &root_;
        }
        json& parent = *top().node;
        if (parent.is_object()) {
            json& slot = parent[top().key];
            slot = std::move(value);
            return &slot;
        }
        parent.push_back(std::move(value));
        return &parent.back();
    }

    BpeTablesBuilder& bpe_;
    std::string where_;
    json root_;
    std::vector<Frame> stack_;
    std::string pair_[2];
    int pairCount_ = 0;
};

}  // namespace

BpeTablesBuilder::BpeTablesBuilder(std::string where) : where_(std::move(where)) {}

void BpeTablesBuilder::beginVocab()
{
    sawVocab_ = true;
    vocab_.reserve(1 << 17);
}

void BpeTablesBuilder::addVocab(std::string_view token, const json& id)
{
    if (!id.is_number_integer() || id.get<std::int64_t>() < 0 || id.get<std::int64_t>() > kMaxId)
        throw Error(where_ + ".vocab[\"" + std::string(token) + "\"]: token id must be an integer in 0.." +
                    std::to_string(kMaxId) + ", found " + describe(id));
    if (!vocab_.insert(token, static_cast<std::int32_t>(id.get<std::int64_t>())))
        throw Error(where_ + ".vocab: token \"" + std::string(token) + "\" is listed twice");
}

void BpeTablesBuilder::beginMerges()
{
    sawMerges_ = true;
    merges_.reserve(1 << 17);
    mergeChars_.reserve(1 << 21);
}

void BpeTablesBuilder::addMergeString(std::string_view entry)
{
    // Exactly one space, as HF requires of the legacy layout.
    const std::size_t space = entry.find(' ');
    if (space == std::string_view::npos || entry.find(' ', space + 1) != std::string_view::npos)
        throw Error(where_ + ".merges[" + std::to_string(merges_.size()) + "]: \"" + std::string(entry) +
                    "\" is not two tokens separated by one space");
    addMergePair(entry.substr(0, space), entry.substr(space + 1));
}

void BpeTablesBuilder::addMergePair(std::string_view left, std::string_view right)
{
    merges_.push_back({static_cast<std::uint32_t>(mergeChars_.size()), static_cast<std::uint32_t>(left.size()),
                       static_cast<std::uint32_t>(right.size())});
    mergeChars_.append(left);
    mergeChars_.append(right);
}

void BpeTablesBuilder::badMerge(const std::string& found) const
{
    throw Error(where_ + ".merges[" + std::to_string(merges_.size()) + "]: expected \"a b\" or [\"a\", \"b\"], found " +
                found);
}

BpeTablesBuilder::Tables BpeTablesBuilder::finish()
{
    if (!sawVocab_)
        throw Error(where_ + ": field \"vocab\" is missing (or is not an object)");
    if (!sawMerges_)
        throw Error(where_ + ": field \"merges\" is missing (or is not an array)");
    if (auto clash = vocab_.finishIds())
        throw Error(where_ + ".vocab: id " + std::to_string(clash->id) + " is used by both \"" + clash->first + "\" and \"" +
                    clash->second + "\"");
    Tables tables;
    tables.merges.reserve(merges_.size());
    const std::string_view chars = mergeChars_;
    for (std::size_t i = 0; i < merges_.size(); ++i) {
        const RawMerge& m = merges_[i];
        const std::string_view left = chars.substr(m.offset, m.leftLength);
        const std::string_view right = chars.substr(m.offset + m.leftLength, m.rightLength);
        const std::string_view joined = chars.substr(m.offset, m.leftLength + m.rightLength);
        auto fail = [&](const std::string& problem) {
            throw Error(where_ + ".merges[" + std::to_string(i) + "] (\"" + std::string(left) + "\" + \"" +
                        std::string(right) + "\"): " + problem);
        };
        const std::int32_t l = vocab_.find(left);
        if (l < 0)
            fail("token \"" + std::string(left) + "\" is not in the vocabulary");
        const std::int32_t r = vocab_.find(right);
        if (r < 0)
            fail("token \"" + std::string(right) + "\" is not in the vocabulary");
        const std::int32_t merged = vocab_.find(joined);
        if (merged < 0)
            fail("the merged token \"" + std::string(joined) + "\" is not in the vocabulary");
        tables.merges.push_back({l, r, merged});
    }
    tables.vocab = std::move(vocab_);
    std::string().swap(mergeChars_);
    std::vector<RawMerge>().swap(merges_);
    return tables;
}

TokenizerJson readTokenizerJson(const std::filesystem::path& path)
{
    const std::string where = path.string();
    const std::string text = readTextFile(path);
    TokenizerJson result{json(), BpeTablesBuilder(where + ": model")};
    TokenizerJsonSax sax(result.bpe, where);
    json::sax_parse(text, &sax);
    result.config = sax.takeRoot();
    return result;
}

TokenizerJson splitTokenizerJson(const json& root, const std::string& where)
{
    TokenizerJson result{json(), BpeTablesBuilder(where + ": model")};
    if (!root.is_object()) {
        result.config = root;
        return result;
    }
    result.config = json::object();
    for (auto it = root.begin(); it != root.end(); ++it) {
        if (it.key() != "model" || !it->is_object()) {
            result.config[it.key()] = *it;
            continue;
        }
        json model = json::object();
        for (auto m = it->begin(); m != it->end(); ++m) {
            if (m.key() == "vocab" && m->is_object()) {
                result.bpe.beginVocab();
                for (auto v = m->begin(); v != m->end(); ++v)
                    result.bpe.addVocab(v.key(), v.value());
            } else if (m.key() == "merges" && m->is_array()) {
                result.bpe.beginMerges();
                for (const json& entry : *m) {
                    if (entry.is_string())
                        result.bpe.addMergeString(entry.get_ref<const std::string&>());
                    else if (entry.is_array() && entry.size() == 2 && entry[0].is_string() && entry[1].is_string())
                        result.bpe.addMergePair(entry[0].get_ref<const std::string&>(), entry[1].get_ref<const std::string&>());
                    else
                        result.bpe.badMerge(describe(entry));
                }
            } else {
                model[m.key()] = *m;
            }
        }
        result.config["model"] = std::move(model);
    }
    return result;
}

}  // namespace tessera
