#pragma once
#include "processor/processor.h"
#include "runtime/backend.h"

#include <memory>
#include <vector>

namespace tessera {

// Prompt positions [from, end) of a processed conversation as backend segments: runs of text
// tokens, and images (or the tail of one, when `from` falls inside it). images[i] is the encoded
// form of the conversation's i-th image. The segments point into `input` and `images`.
std::vector<PromptSegment> promptSegments(const ProcessedInput& input,
                                          const std::vector<std::shared_ptr<EncodedImage>>& images, int from = 0);

}  // namespace tessera
