#pragma once
// What every compute backend (CPU reference, CUDA) provides to the runtime. The runtime owns the
// conversation logic (prompt, prefix reuse, sampling policy, streaming); a backend owns weights,
// image encoding and KV caches in its own memory.
#include "image/tiling.h"
#include "runtime/sampler.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace tessera {

// One image's token embeddings, laid out as the language model reads them (global rows each
// ended by image_newline, view_seperator, local rows each ended by image_newline).
class EncodedImage {
public:
    virtual ~EncodedImage() = default;
    virtual int tokenCount() const = 0;
};

// The KV cache of one conversation.
class Sequence {
public:
    virtual ~Sequence() = default;
    virtual int length() const = 0;
    virtual int capacity() const = 0;
    virtual void truncate(int length) = 0;  // keep the first `length` positions
};

// A run of prompt positions: text token ids, or rows [imageOffset, imageOffset + tokens.size())
// of one image (then `tokens` are its image-token ids).
struct PromptSegment {
    std::span<const std::int32_t> tokens;
    const EncodedImage* image = nullptr;
    int imageOffset = 0;
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string name() const = 0;          // "cpu", "cuda"
    virtual std::string description() const = 0;   // device, precision, threads
    virtual int vocabSize() const = 0;
    virtual int maxContext() const = 0;

    // Vision tower + projector + token layout for one image. Returns null when cancelled.
    virtual std::shared_ptr<EncodedImage> encodeImage(const ImageTiles& tiles, const std::atomic<bool>* cancel) = 0;
    virtual std::unique_ptr<Sequence> createSequence(int capacity) = 0;
    // Appends positions to the sequence (prefill, chunked as the backend likes). Returns false when
    // cancelled, leaving the sequence as it was.
    virtual bool append(Sequence& sequence, std::span<const PromptSegment> segments, const std::atomic<bool>* cancel) = 0;
    // append() of one text token.
    bool appendToken(Sequence& sequence, std::int32_t token, const std::atomic<bool>* cancel = nullptr);
    // Logits at the last appended position.
    virtual void lastLogits(const Sequence& sequence, std::span<float> out) = 0;
    // Chooses the next token from the last position. The default reads lastLogits and samples on
    // the host; a GPU backend samples on the device.
    virtual std::int32_t sampleNext(const Sequence& sequence, std::span<const std::int32_t> seen,
                                    const SamplingParams& params, Rng& rng);

    // The next token as sampleNext() chooses it, appended to the sequence in the same call where
    // there is room (`appended`). A backend that appendsAhead() starts that position's step before
    // the token reaches the host, so the device works while the caller handles the token; a caller
    // that stops after the token truncates the appended position. The default samples, then
    // appends.
    struct Step {
        std::int32_t token = 0;
        bool appended = false;
    };
    virtual Step sampleAndAppend(Sequence& sequence, std::span<const std::int32_t> seen, const SamplingParams& params, Rng& rng);
    // Whether sampleAndAppend() overlaps the next step with the caller's handling of the token; if
    // not, a caller samples and appends in two calls and appends only when it goes on.
    virtual bool appendsAhead() const { return false; }
};

}  // namespace tessera
