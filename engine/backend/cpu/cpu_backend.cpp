#include "backend/cpu/cpu_backend.h"

#include "backend/cpu/cpu_ops.h"
#include "core/error.h"
#include "runtime/image_layout.h"

#include <algorithm>
#include <cstring>

namespace tessera::cpu {

namespace {

class CpuEncodedImage final : public EncodedImage {
public:
    std::vector<float> rows;  // [tokens, hidden]
    int tokens = 0;
    int tokenCount() const override { return tokens; }
};

class CpuSequence final : public Sequence {
public:
    explicit CpuSequence(CpuKvCache c, int hidden) : cache(std::move(c)), lastHidden(static_cast<std::size_t>(hidden)) {}
    int length() const override { return cache.length(); }
    int capacity() const override { return cache.capacity(); }
    void truncate(int length) override
    {
        cache.truncate(length);
        hasLast = false;  // the last position's state is gone with it
    }
    CpuKvCache cache;
    std::vector<float> lastHidden;
    bool hasLast = false;
};

}  // namespace

CpuBackend::CpuBackend(const ModelConfig& config, const WeightMap& weights, const ProcessorConfig& processor)
    : config_(config),
      vision_(config, weights, processor.imageMean, processor.imageStd),
      language_(config, weights),
      imageNewline_(weights.get("image_newline").toFloat()),
      viewSeparator_(weights.get("view_seperator").toFloat())
{
}

std::string CpuBackend::description() const
{
    return "CPU, fp32 compute on bf16 weights, " + std::to_string(threadCount()) + " threads";
}

int CpuBackend::vocabSize() const { return language_.vocabSize(); }

int CpuBackend::maxContext() const { return config_.language.maxPositionEmbeddings; }

std::shared_ptr<EncodedImage> CpuBackend::encodeImage(const ImageTiles& tiles, const std::atomic<bool>* cancel)
{
    const int n = tiles.count();
    const int H = language_.hiddenSize();
    const int perTile = vision_.tokensPerTile();
    const std::size_t visionRows = static_cast<std::size_t>(vision_.featuresPerTile()) * config_.vision.width;
    std::vector<float> visionOut(visionRows);
    std::vector<float> projected(static_cast<std::size_t>(n) * perTile * H);
    for (int t = 0; t < n; ++t) {  // tile by tile: each is a large product already, and cancel stays prompt
        if (cancel && cancel->load())
            return nullptr;
        vision_.encode(tiles.tile(t), 1, visionOut.data());
        vision_.project(visionOut.data(), 1, projected.data() + static_cast<std::size_t>(t) * perTile * H);
    }
    int side = 1;
    while (side * side < perTile)
        ++side;
    const auto sources = imageTokenSources(tiles.widthTiles, tiles.heightTiles, side);
    auto image = std::make_shared<CpuEncodedImage>();
    image->tokens = static_cast<int>(sources.size());
    image->rows.resize(sources.size() * static_cast<std::size_t>(H));
    for (std::size_t i = 0; i < sources.size(); ++i) {
        const float* src = sources[i] == kImageNewline    ? imageNewline_.data()
                           : sources[i] == kViewSeparator ? viewSeparator_.data()
                                                          : projected.data() + static_cast<std::size_t>(sources[i]) * H;
        std::memcpy(image->rows.data() + i * H, src, sizeof(float) * H);
    }
    return image;
}

std::unique_ptr<Sequence> CpuBackend::createSequence(int capacity)
{
    return std::make_unique<CpuSequence>(language_.createCache(capacity), language_.hiddenSize());
}

std::vector<float> CpuBackend::embeddings(std::span<const PromptSegment> segments) const
{
    const int H = language_.hiddenSize();
    std::size_t total = 0;
    for (const auto& s : segments)
        total += s.tokens.size();
    std::vector<float> out(total * H);
    std::size_t row = 0;
    for (const auto& s : segments) {
        float* dst = out.data() + row * H;
        if (s.image) {
            const auto* img = dynamic_cast<const CpuEncodedImage*>(s.image);
            if (!img)
                throw Error("an image encoded by another backend was given to the CPU backend");
            if (s.imageOffset < 0 || static_cast<std::size_t>(s.imageOffset) + s.tokens.size() > static_cast<std::size_t>(img->tokens))
                throw Error("internal error: image segment [" + std::to_string(s.imageOffset) + ", +" +
                            std::to_string(s.tokens.size()) + ") outside the image's " + std::to_string(img->tokens) + " tokens");
            std::memcpy(dst, img->rows.data() + static_cast<std::size_t>(s.imageOffset) * H, s.tokens.size() * H * sizeof(float));
        } else {
            language_.embed(s.tokens, dst);
        }
        row += s.tokens.size();
    }
    return out;
}

bool CpuBackend::append(Sequence& sequence, std::span<const PromptSegment> segments, const std::atomic<bool>* cancel)
{
    auto& seq = dynamic_cast<CpuSequence&>(sequence);
    const int H = language_.hiddenSize();
    const auto rows = embeddings(segments);
    const int total = static_cast<int>(rows.size() / H);
    if (total == 0)
        return true;
    if (seq.length() + total > seq.capacity())
        throw Error("the conversation needs " + std::to_string(seq.length() + total) + " positions but the context holds " +
                    std::to_string(seq.capacity()));
    const int start = seq.length();
    std::vector<float> hidden(static_cast<std::size_t>(std::min(total, kPrefillChunk)) * H);
    for (int done = 0; done < total; done += kPrefillChunk) {
        const int n = std::min(kPrefillChunk, total - done);
        if (!language_.forward(seq.cache, rows.data() + static_cast<std::size_t>(done) * H, n, hidden.data(), nullptr, cancel)) {
            seq.truncate(start);
            return false;
        }
        std::memcpy(seq.lastHidden.data(), hidden.data() + static_cast<std::size_t>(n - 1) * H, sizeof(float) * H);
    }
    seq.hasLast = true;
    return true;
}

void CpuBackend::lastLogits(const Sequence& sequence, std::span<float> out)
{
    const auto& seq = dynamic_cast<const CpuSequence&>(sequence);
    if (!seq.hasLast)
        throw Error("internal error: no position has been computed since the sequence changed");
    if (out.size() != static_cast<std::size_t>(vocabSize()))
        throw Error("internal error: logits buffer has the wrong size");
    language_.logits(seq.lastHidden.data(), 1, out.data());
}

}  // namespace tessera::cpu
