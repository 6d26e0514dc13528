#pragma once
// Conversation + images → the model input, exactly as the upstream DeepSeek-VL2 processor makes
// it: the "deepseek" chat template, every text chunk between images encoded on its own, image
// tokens per tile grid, tiles letterboxed and cut like PIL does it.
#include "image/image.h"
#include "image/tiling.h"
#include "model/config.h"
#include "processor/conversation.h"
#include "tokenizer/tokenizer.h"

#include <array>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace tessera {

struct ProcessedInput {
    std::vector<std::int32_t> inputIds;
    std::vector<std::uint8_t> imageSeqMask;           // 1 where the position holds an image embedding
    std::vector<std::array<int, 2>> imagesSpatialCrop;  // (width tiles, height tiles) per image
    std::vector<int> numImageTokens;                  // per image
    std::vector<ImageTiles> images;                   // per image: global view, then local tiles
    std::string prompt;                               // the formatted text (upstream sft_format)

    int tileCount() const;
};

struct ProcessorOptions {
    // Drop the end-of-sentence token the final (empty) assistant turn ends with, so the model
    // answers it; upstream's inference_mode.
    bool inferenceMode = true;
    // When non-zero, a prompt longer than this many tokens is an error (the model's context).
    std::size_t maxTokens = 0;
    ImageDecodeOptions decode;
};

class Processor {
public:
    Processor(Tokenizer tokenizer, ProcessorConfig config);
    // Reads tokenizer.json and processor_config.json of a checkpoint folder.
    static Processor fromModelFolder(const std::filesystem::path& dir);

    // `images` are the conversation's images in marker order (already decoded).
    ProcessedInput process(const Conversation& conversation, std::span<const RgbImage> images,
                           const ProcessorOptions& options = {}) const;
    // Decodes the image files the conversation names, then processes.
    ProcessedInput process(const Conversation& conversation, const ProcessorOptions& options = {}) const;

    // The upstream sft_format text of a conversation (for display and logs; not what is tokenized).
    std::string formatPrompt(const Conversation& conversation) const;

    // Image tokens one image takes with this tile grid (global view + separator + local rows).
    int imageTokenCount(int widthTiles, int heightTiles) const;
    // The tile grid an image of this size gets; dynamicTiling is false when the conversation has
    // three or more images.
    std::array<int, 2> tileGrid(int width, int height, bool dynamicTiling) const;

    const Tokenizer& tokenizer() const { return tokenizer_; }
    const ProcessorConfig& config() const { return config_; }
    std::int32_t imageTokenId() const { return imageTokenId_; }
    std::int32_t bosId() const { return bosId_; }
    std::int32_t eosId() const { return eosId_; }
    int tileSize() const { return tileSize_; }

private:
    Tokenizer tokenizer_;
    ProcessorConfig config_;
    std::vector<Resolution> candidates_;
    int tileSize_ = 384;
    int tokensPerSide_ = 14;
    std::int32_t imageTokenId_ = -1;
    std::int32_t bosId_ = 0;
    std::int32_t eosId_ = 1;
};

}  // namespace tessera
