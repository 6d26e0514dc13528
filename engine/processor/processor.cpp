#include "processor/processor.h"

#include "core/error.h"
#include "core/text.h"

namespace tessera {

namespace {

constexpr const char* kBosToken = "<｜begin▁of▁sentence｜>";
constexpr const char* kEosToken = "<｜end▁of▁sentence｜>";

std::size_t countOccurrences(std::string_view text, std::string_view needle)
{
    std::size_t n = 0;
    for (std::size_t pos = text.find(needle); pos != std::string_view::npos; pos = text.find(needle, pos + needle.size()))
        ++n;
    return n;
}

std::int32_t requireToken(const Tokenizer& tok, const std::string& text, const char* what)
{
    auto id = tok.tokenId(text);
    if (!id)
        throw Error(std::string("tokenizer.json has no ") + what + " token \"" + text + "\"");
    return *id;
}

}  // namespace

int ProcessedInput::tileCount() const
{
    int n = 0;
    for (const auto& t : images)
        n += t.count();
    return n;
}

Processor::Processor(Tokenizer tokenizer, ProcessorConfig config)
    : tokenizer_(std::move(tokenizer)), config_(std::move(config))
{
    if (config_.candidateResolutions.empty())
        throw Error("processor_config.json: no candidate_resolutions");
    // The tile size is the smallest candidate (384): upstream takes candidate_resolutions[0][0].
    tileSize_ = config_.candidateResolutions.front().width;
    for (const auto& r : config_.candidateResolutions)
        candidates_.push_back({r.width, r.height});
    const int grid = tileSize_ / config_.patchSize;
    tokensPerSide_ = (grid + config_.downsampleRatio - 1) / config_.downsampleRatio;
    imageTokenId_ = requireToken(tokenizer_, config_.imageToken, "image");
    bosId_ = requireToken(tokenizer_, kBosToken, "begin-of-sentence");
    eosId_ = requireToken(tokenizer_, kEosToken, "end-of-sentence");
}

Processor Processor::fromModelFolder(const std::filesystem::path& dir)
{
    return Processor(Tokenizer::fromFile(dir / "tokenizer.json"), loadProcessorConfig(dir / "processor_config.json"));
}

int Processor::imageTokenCount(int widthTiles, int heightTiles) const
{
    const int s = tokensPerSide_;
    return s * (s + 1) + 1 + (heightTiles * s) * (widthTiles * s + 1);
}

std::array<int, 2> Processor::tileGrid(int width, int height, bool dynamicTiling) const
{
    if (!dynamicTiling)
        return {1, 1};
    Resolution best = selectBestResolution(width, height, candidates_);
    return {best.width / tileSize_, best.height / tileSize_};
}

std::string Processor::formatPrompt(const Conversation& conversation) const
{
    // The "deepseek" template: optional system text, then "role: message" ended by "\n\n" on even
    // message indices and by the end-of-sentence text on odd ones; an empty message is "role:".
    std::string out;
    if (!conversation.systemPrompt.empty())
        out = conversation.systemPrompt + "\n\n";
    for (std::size_t i = 0; i < conversation.messages.size(); ++i) {
        const auto& m = conversation.messages[i];
        const std::string_view text = pythonStrip(m.content);
        out += roleName(m.role);
        if (text.empty()) {
            out += ":";
        } else {
            out += ": ";
            out += text;
            out += (i % 2 == 0) ? "\n\n" : kEosToken;
        }
    }
    return std::string(pythonStrip(out));
}

ProcessedInput Processor::process(const Conversation& conversation, const ProcessorOptions& options) const
{
    std::vector<RgbImage> images;
    for (const auto& path : conversation.imagePaths())
        images.push_back(decodeImageFile(path, options.decode));
    return process(conversation, images, options);
}

ProcessedInput Processor::process(const Conversation& conversation, std::span<const RgbImage> images,
                                  const ProcessorOptions& options) const
{
    const auto& msgs = conversation.messages;
    if (msgs.empty())
        throw Error("the conversation has no messages");
    bool hasUser = false;
    std::size_t markers = 0;
    for (std::size_t i = 0; i < msgs.size(); ++i) {
        const std::size_t n = countOccurrences(pythonStrip(msgs[i].content), config_.imageToken);
        if (msgs[i].role == Role::User) {
            hasUser = true;
            markers += n;
        } else if (n > 0) {
            throw Error(std::string("message ") + std::to_string(i) + " (" + roleName(msgs[i].role) + ") contains " +
                        config_.imageToken + "; only user messages can hold images");
        }
        if (msgs[i].role == Role::System && i != 0)
            throw Error("message " + std::to_string(i) + ": a system message must come first");
    }
    if (!hasUser)
        throw Error("the conversation has no user message to answer");
    if (markers != images.size())
        throw Error("the conversation has " + std::to_string(markers) + " " + config_.imageToken + " marker" +
                    (markers == 1 ? "" : "s") + " but " + std::to_string(images.size()) + " image" +
                    (images.size() == 1 ? "" : "s") + "; each image needs exactly one marker");

    ProcessedInput out;
    out.prompt = formatPrompt(conversation);
    const bool dynamicTiling = images.size() <= 2;  // the whole conversation, as upstream decides
    std::size_t nextImage = 0;

    auto appendText = [&](std::string_view text) {
        const std::size_t before = out.inputIds.size();
        tokenizer_.encodeAppend(text, out.inputIds);
        out.imageSeqMask.resize(out.imageSeqMask.size() + (out.inputIds.size() - before), 0);
    };
    auto appendImage = [&](const RgbImage& image) {
        ImageTiles tiles = makeTiles(image, candidates_, dynamicTiling, tileSize_);
        const int count = imageTokenCount(tiles.widthTiles, tiles.heightTiles);
        out.inputIds.insert(out.inputIds.end(), count, imageTokenId_);
        out.imageSeqMask.insert(out.imageSeqMask.end(), count, 1);
        out.imagesSpatialCrop.push_back({tiles.widthTiles, tiles.heightTiles});
        out.numImageTokens.push_back(count);
        out.images.push_back(std::move(tiles));
    };
    // Text chunks between markers are encoded separately: no BPE merge spans an image.
    auto appendWithImages = [&](std::string_view text) {
        std::size_t pos = 0;
        for (;;) {
            std::size_t hit = text.find(config_.imageToken, pos);
            appendText(text.substr(pos, hit == std::string_view::npos ? std::string_view::npos : hit - pos));
            if (hit == std::string_view::npos)
                break;
            appendImage(images[nextImage++]);
            pos = hit + config_.imageToken.size();
        }
    };

    out.inputIds.push_back(bosId_);
    out.imageSeqMask.push_back(0);
    for (const auto& m : msgs) {
        const std::string_view text = pythonStrip(m.content);
        switch (m.role) {
        case Role::User: {
            // A user turn is templated together with the assistant prefix that follows it.
            std::string turn = roleName(Role::User);
            turn += text.empty() ? ":" : ": " + std::string(text) + "\n\n";
            turn += roleName(Role::Assistant);
            turn += ":";
            appendWithImages(turn);
            break;
        }
        case Role::Assistant:
            appendText(text);
            out.inputIds.push_back(eosId_);
            out.imageSeqMask.push_back(0);
            break;
        case Role::System:
            appendText(text);
            break;
        }
    }
    // Inference answers the last (empty) assistant turn: drop its end-of-sentence. When the
    // conversation ends on a user turn there is none to drop.
    if (options.inferenceMode && msgs.back().role == Role::Assistant) {
        out.inputIds.pop_back();
        out.imageSeqMask.pop_back();
    }
    if (options.maxTokens && out.inputIds.size() > options.maxTokens)
        throw Error("the prompt takes " + std::to_string(out.inputIds.size()) + " tokens, more than the " +
                    std::to_string(options.maxTokens) +
                    "-token context; use fewer or smaller images or drop earlier turns");
    return out;
}

}  // namespace tessera
