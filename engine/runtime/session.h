#pragma once
// One conversation with a model: the KV cache, prefix reuse across turns, the decode loop with
// streaming, grounding boxes and cancel. Results equal a cold run: a new turn reuses the longest
// common prefix of token ids and image identities, then computes the rest.
#include "processor/processor.h"
#include "runtime/grounding.h"
#include "runtime/model.h"
#include "runtime/sampler.h"

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace tessera {

struct GenerationOptions {
    SamplingParams sampling;
    int maxNewTokens = 2048;
    // When the prompt does not fit the context: drop the oldest user/assistant turns (keeping a
    // system message) as the upstream demo does, instead of failing.
    bool dropOldestTurns = false;
    // Tokens kept free for the answer when deciding whether a prompt fits.
    int reserveForAnswer = 1;
};

enum class StopReason { EndOfSentence, MaxTokens, ContextFull, Cancelled };
const char* stopReasonName(StopReason reason);

struct GenerationTimings {
    double encodeSeconds = 0;   // vision + projector
    double prefillSeconds = 0;  // language model over the new prompt positions
    double ttftSeconds = 0;     // request → first token chosen
    double decodeSeconds = 0;   // after the first token
    int decodeTokens = 0;       // tokens produced after the first
    double decodeTokensPerSecond() const { return decodeSeconds > 0 ? decodeTokens / decodeSeconds : 0; }
};

struct GenerationResult {
    std::vector<std::int32_t> promptIds;
    std::vector<std::int32_t> outputIds;  // without the final end-of-sentence
    std::string text;
    std::vector<GroundingBox> boxes;
    StopReason stop = StopReason::EndOfSentence;
    GenerationTimings timings;
    int reusedPositions = 0;  // prompt positions taken from the cache
    int droppedTurns = 0;
    int imagesEncoded = 0;
};

struct GenerationCallbacks {
    std::function<void(std::string_view)> onText;        // complete UTF-8 pieces as they decode
    std::function<void(const GroundingBox&)> onBox;      // each box once its list is complete
    std::function<void(const std::string&, double)> onProgress;  // "encoding image 1/2", fraction
};

class Session {
public:
    explicit Session(Model& model, int capacity = 0);  // 0: the model's context length
    ~Session();

    GenerationResult generate(const Conversation& conversation, std::span<const RgbImage> images,
                              const GenerationOptions& options, const GenerationCallbacks& callbacks = {},
                              const std::atomic<bool>* cancel = nullptr);
    // Decodes the images the conversation names first.
    GenerationResult generate(const Conversation& conversation, const GenerationOptions& options,
                              const GenerationCallbacks& callbacks = {}, const std::atomic<bool>* cancel = nullptr);

    void reset();
    int cachedPositions() const;
    int capacity() const { return capacity_; }

private:
    ProcessedInput fitToContext(Conversation conversation, std::span<const RgbImage> images,
                                const GenerationOptions& options, int& droppedTurns) const;

    void run(const ProcessedInput& input, GenerationResult& result, const GenerationOptions& options,
             const GenerationCallbacks& callbacks, const std::atomic<bool>* cancel,
             std::chrono::steady_clock::time_point started);

    Model& model_;
    int capacity_;
    std::unique_ptr<Sequence> sequence_;
    std::vector<std::uint64_t> cachedKeys_;  // identity of each cached position
    std::unordered_map<std::uint64_t, std::shared_ptr<EncodedImage>> images_;
};

}  // namespace tessera
