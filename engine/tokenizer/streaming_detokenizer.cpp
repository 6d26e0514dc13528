#include "tokenizer/tokenizer.h"

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace tessera {

StreamingDetokenizer::StreamingDetokenizer(const Tokenizer& tokenizer) : StreamingDetokenizer(tokenizer, DecodeOptions{}) {}

StreamingDetokenizer::StreamingDetokenizer(const Tokenizer& tokenizer, DecodeOptions options)
    : tokenizer_(tokenizer), options_(options)
{
}

std::string StreamingDetokenizer::push(std::int32_t id)
{
    if (!tokenizer_.isKnownId(id)) {
        if (options_.skipUnknownIds)
            return {};
        throw Error("StreamingDetokenizer::push: token id " + std::to_string(id) +
                    " is not in the vocabulary (valid ids are 0.." + std::to_string(tokenizer_.vocabSize() - 1) + ")");
    }
    if (options_.skipSpecialTokens && tokenizer_.isSpecial(id))
        return {};
    pending_ += tokenizer_.tokenBytes(id);
    // Lossy conversion is decided left to right, so emitting everything except a tail that may
    // still become a character gives exactly what decoding the whole sequence would.
    std::string out;
    const std::size_t used = utf8::appendLossyPrefix(out, pending_);
    pending_.erase(0, used);
    return out;
}

std::string StreamingDetokenizer::flush()
{
    std::string out;
    utf8::appendLossy(out, pending_);
    pending_.clear();
    return out;
}

void StreamingDetokenizer::reset() { pending_.clear(); }

}  // namespace tessera
