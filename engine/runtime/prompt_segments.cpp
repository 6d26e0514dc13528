#include "runtime/prompt_segments.h"

#include "core/error.h"

namespace tessera {

std::vector<PromptSegment> promptSegments(const ProcessedInput& input,
                                          const std::vector<std::shared_ptr<EncodedImage>>& images, int from)
{
    const int T = static_cast<int>(input.inputIds.size());
    if (images.size() != input.numImageTokens.size())
        throw Error("internal error: " + std::to_string(images.size()) + " encoded images for " +
                    std::to_string(input.numImageTokens.size()) + " images in the prompt");
    const std::span<const std::int32_t> ids(input.inputIds);
    std::vector<PromptSegment> segments;
    std::size_t image = 0;
    int imageStart = 0;  // first position of images[image]
    for (int p = 0; p < T;) {
        if (input.imageSeqMask[p]) {
            imageStart = p;
            const int end = p + input.numImageTokens[image];
            if (end > from) {
                const int begin = std::max(p, from);
                segments.push_back({ids.subspan(begin, end - begin), images[image].get(), begin - imageStart});
            }
            ++image;
            p = end;
        } else {
            int q = p;
            while (q < T && !input.imageSeqMask[q])
                ++q;
            if (q > from) {
                const int begin = std::max(p, from);
                segments.push_back({ids.subspan(begin, q - begin), nullptr, 0});
            }
            p = q;
        }
    }
    return segments;
}

}  // namespace tessera
