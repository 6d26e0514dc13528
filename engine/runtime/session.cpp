#include "runtime/session.h"

#include "core/error.h"
#include "runtime/prompt_segments.h"

#include <algorithm>
#include <chrono>
#include <cstring>

namespace tessera {

namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::uint64_t mix(std::uint64_t h, std::uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdULL;
}

// The identity of an image as the model sees it: its tiles (which depend on the tile grid, so the
// same picture tiled differently is a different image) and the grid.
std::uint64_t imageKey(const ImageTiles& tiles)
{
    std::uint64_t h = mix(0x5151, static_cast<std::uint64_t>(tiles.widthTiles) << 32 | tiles.heightTiles);
    const auto* p = tiles.pixels.data();
    const std::size_t n = tiles.pixels.size();
    std::uint64_t acc = 0xcbf29ce484222325ULL;
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        std::uint64_t w;
        std::memcpy(&w, p + i, 8);
        acc = (acc ^ w) * 0x100000001b3ULL;
        acc ^= acc >> 29;
    }
    for (; i < n; ++i)
        acc = (acc ^ p[i]) * 0x100000001b3ULL;
    return mix(h, acc);
}

// Text positions are keyed by their token id, image positions by (image, row); the top bit keeps
// the two apart.
constexpr std::uint64_t kImageBit = 1ULL << 63;

}  // namespace

const char* stopReasonName(StopReason reason)
{
    switch (reason) {
    case StopReason::EndOfSentence: return "eos";
    case StopReason::MaxTokens: return "max_tokens";
    case StopReason::ContextFull: return "context_full";
    case StopReason::Cancelled: return "cancelled";
    }
    return "?";
}

Session::Session(Model& model, int capacity)
    : model_(model), capacity_(capacity > 0 ? capacity : model.contextLength())
{
    if (capacity_ > model.contextLength())
        throw Error("a session of " + std::to_string(capacity_) + " tokens exceeds the model's context of " +
                    std::to_string(model.contextLength()));
}

Session::~Session() = default;

void Session::reset()
{
    sequence_.reset();
    cachedKeys_.clear();
    images_.clear();
}

int Session::cachedPositions() const { return sequence_ ? sequence_->length() : 0; }

ProcessedInput Session::fitToContext(Conversation conversation, std::span<const RgbImage> images,
                                     const GenerationOptions& options, int& droppedTurns) const
{
    const std::size_t limit = static_cast<std::size_t>(std::max(1, capacity_ - std::max(1, options.reserveForAnswer)));
    std::vector<RgbImage> kept(images.begin(), images.end());
    for (;;) {
        ProcessedInput in = model_.processor().process(conversation, kept);
        if (in.inputIds.size() <= limit)
            return in;
        // Find the oldest user turn that has a later user turn (the last question always stays).
        std::size_t first = conversation.messages.size();
        std::size_t userTurns = 0;
        for (std::size_t i = 0; i < conversation.messages.size(); ++i)
            if (conversation.messages[i].role == Role::User) {
                if (first == conversation.messages.size())
                    first = i;
                ++userTurns;
            }
        if (!options.dropOldestTurns || userTurns < 2)
            throw Error("the conversation takes " + std::to_string(in.inputIds.size()) + " tokens but the model's context holds " +
                        std::to_string(capacity_) + " (keeping " + std::to_string(options.reserveForAnswer) +
                        " for the answer); remove images or earlier messages, or start a new conversation");
        // Drop that user message and the assistant answer after it. Only user turns hold images and
        // this is the first one, so its images are the first ones.
        std::size_t markers = 0;
        {
            const std::string& text = conversation.messages[first].content;
            const std::string& tag = model_.processor().config().imageToken;
            for (auto pos = text.find(tag); pos != std::string::npos; pos = text.find(tag, pos + tag.size()))
                ++markers;
        }
        std::size_t end = first + 1;
        if (end < conversation.messages.size() && conversation.messages[end].role == Role::Assistant)
            ++end;
        conversation.messages.erase(conversation.messages.begin() + static_cast<std::ptrdiff_t>(first),
                                    conversation.messages.begin() + static_cast<std::ptrdiff_t>(end));
        kept.erase(kept.begin(), kept.begin() + static_cast<std::ptrdiff_t>(std::min(kept.size(), markers)));
        ++droppedTurns;
    }
}

GenerationResult Session::generate(const Conversation& conversation, const GenerationOptions& options,
                                   const GenerationCallbacks& callbacks, const std::atomic<bool>* cancel)
{
    std::vector<RgbImage> images;
    for (const auto& path : conversation.imagePaths())
        images.push_back(decodeImageFile(path));
    return generate(conversation, images, options, callbacks, cancel);
}

GenerationResult Session::generate(const Conversation& conversation, std::span<const RgbImage> images,
                                   const GenerationOptions& options, const GenerationCallbacks& callbacks,
                                   const std::atomic<bool>* cancel)
{
    const auto started = Clock::now();
    if (options.maxNewTokens < 1)
        throw Error("max new tokens must be at least 1");
    GenerationResult result;
    ProcessedInput input = fitToContext(conversation, images, options, result.droppedTurns);
    result.promptIds = input.inputIds;
    try {
        run(input, result, options, callbacks, cancel, started);
    } catch (...) {
        reset();  // a failure half-way leaves the cache in an unknown state
        throw;
    }
    return result;
}

void Session::run(const ProcessedInput& input, GenerationResult& result, const GenerationOptions& options,
                  const GenerationCallbacks& callbacks, const std::atomic<bool>* cancel,
                  std::chrono::steady_clock::time_point started)
{
    const int T = static_cast<int>(input.inputIds.size());
    Backend& backend = model_.backend();
    if (!sequence_)
        sequence_ = backend.createSequence(capacity_);

    // Identity of every prompt position.
    std::vector<std::uint64_t> keys(static_cast<std::size_t>(T));
    std::vector<std::uint64_t> imageKeys;
    std::vector<int> imageStart;  // first position of each image
    for (const auto& tiles : input.images)
        imageKeys.push_back(imageKey(tiles));
    {
        std::size_t img = 0;
        int row = 0;
        for (int p = 0; p < T; ++p) {
            if (input.imageSeqMask[p]) {
                if (row == 0)
                    imageStart.push_back(p);
                keys[p] = kImageBit | mix(imageKeys[img], static_cast<std::uint64_t>(row));
                if (++row == input.numImageTokens[img]) {
                    row = 0;
                    ++img;
                }
            } else {
                keys[p] = static_cast<std::uint32_t>(input.inputIds[p]);
            }
        }
    }
    int reuse = 0;
    const int cached = std::min<int>(static_cast<int>(cachedKeys_.size()), sequence_->length());
    while (reuse < cached && reuse < T && cachedKeys_[reuse] == keys[reuse])
        ++reuse;
    reuse = std::min(reuse, T - 1);  // the last prompt position is always recomputed for its logits
    sequence_->truncate(reuse);
    cachedKeys_.resize(static_cast<std::size_t>(reuse));
    result.reusedPositions = reuse;

    // Encode the images the new positions need that are not encoded already.
    const auto encodeStart = Clock::now();
    std::unordered_map<std::uint64_t, std::shared_ptr<EncodedImage>> live;
    for (std::size_t i = 0; i < input.images.size(); ++i) {
        const bool needed = imageStart[i] + input.numImageTokens[i] > reuse;
        auto it = images_.find(imageKeys[i]);
        if (it != images_.end()) {
            live[imageKeys[i]] = it->second;
            continue;
        }
        if (!needed)
            continue;
        if (callbacks.onProgress)
            callbacks.onProgress("encoding image " + std::to_string(i + 1) + "/" + std::to_string(input.images.size()),
                                 static_cast<double>(i) / input.images.size());
        auto encoded = backend.encodeImage(input.images[i], cancel);
        if (!encoded) {
            result.stop = StopReason::Cancelled;
            return;
        }
        if (encoded->tokenCount() != input.numImageTokens[i])
            throw Error("internal error: the backend laid out " + std::to_string(encoded->tokenCount()) +
                        " image tokens, the processor " + std::to_string(input.numImageTokens[i]));
        live[imageKeys[i]] = std::move(encoded);
        ++result.imagesEncoded;
    }
    images_ = std::move(live);  // images no longer in the conversation are released
    result.timings.encodeSeconds = secondsSince(encodeStart);

    // Prompt segments for positions [reuse, T); images wholly inside the reused prefix need no encoding.
    std::vector<std::shared_ptr<EncodedImage>> encoded;
    for (auto key : imageKeys) {
        auto it = images_.find(key);
        encoded.push_back(it == images_.end() ? nullptr : it->second);
    }
    const auto segments = promptSegments(input, encoded, reuse);
    if (callbacks.onProgress)
        callbacks.onProgress("reading the prompt", 1.0);
    const auto prefillStart = Clock::now();
    if (!backend.append(*sequence_, segments, cancel)) {
        result.stop = StopReason::Cancelled;
        return;
    }
    cachedKeys_ = keys;
    result.timings.prefillSeconds = secondsSince(prefillStart);

    // Decode.
    const auto& tokenizer = model_.processor().tokenizer();
    const std::int32_t eos = model_.processor().eosId();
    DecodeOptions detokOptions;
    detokOptions.skipUnknownIds = true;  // the embedding is padded past the tokenizer; such ids print nothing
    StreamingDetokenizer detok(tokenizer, detokOptions);
    GroundingStream grounding(input.images.empty() ? 0 : static_cast<int>(input.images.size()) - 1);
    std::vector<std::int32_t> seen = input.inputIds;
    Rng rng(options.sampling.seed);
    auto emit = [&](std::string_view piece) {
        if (piece.empty())
            return;
        result.text += piece;
        if (callbacks.onText)
            callbacks.onText(piece);
        for (auto& box : grounding.push(piece)) {
            if (callbacks.onBox)
                callbacks.onBox(box);
            result.boxes.push_back(std::move(box));
        }
    };
    Clock::time_point firstToken;
    result.stop = StopReason::MaxTokens;
    // A backend that appends ahead (the GPU) has the token's position on its way while the token is
    // handled here; where the loop stops after the token, that position is dropped again, so the
    // sequence ends as it does when the loop appends only to go on.
    const bool ahead = backend.appendsAhead();
    for (int step = 0; step < options.maxNewTokens; ++step) {
        if (cancel && cancel->load()) {
            result.stop = StopReason::Cancelled;
            break;
        }
        Backend::Step next;
        if (ahead)
            next = backend.sampleAndAppend(*sequence_, seen, options.sampling, rng);
        else
            next.token = backend.sampleNext(*sequence_, seen, options.sampling, rng);
        const std::int32_t token = next.token;
        auto dropAhead = [&] {
            if (next.appended)
                sequence_->truncate(sequence_->length() - 1);
        };
        if (step == 0) {
            firstToken = Clock::now();
            result.timings.ttftSeconds = std::chrono::duration<double>(firstToken - started).count();
        }
        if (token == eos) {
            dropAhead();
            result.stop = StopReason::EndOfSentence;
            break;
        }
        result.outputIds.push_back(token);
        seen.push_back(token);
        emit(detok.push(token));
        if (step + 1 == options.maxNewTokens) {
            dropAhead();
            break;
        }
        if (!next.appended) {
            if (sequence_->length() >= sequence_->capacity()) {
                result.stop = StopReason::ContextFull;
                break;
            }
            if (!backend.appendToken(*sequence_, token, cancel)) {
                result.stop = StopReason::Cancelled;
                break;
            }
        }
        cachedKeys_.push_back(static_cast<std::uint32_t>(token));
    }
    emit(detok.flush());
    if (!result.outputIds.empty()) {
        result.timings.decodeTokens = static_cast<int>(result.outputIds.size()) - 1;
        result.timings.decodeSeconds = secondsSince(firstToken);
    }
}

}  // namespace tessera
