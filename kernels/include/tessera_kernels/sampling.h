#pragma once
// Next-token choice on the device, with the semantics of runtime/sampler.h (repetition penalty over
// distinct seen tokens, greedy = first index of the maximum, temperature → top-k (ties with the
// k-th survive) → top-p → draw with a host-supplied uniform). Logits never leave the GPU.
#include "tessera_kernels/common.h"

#include <cstddef>
#include <cstdint>

namespace tessera::kernels {

// out = logits with the penalty applied once to each distinct id of seen (count ids). stamps: an
// int per vocabulary entry, zero at first, and `stamp` a value not used by an earlier call.
Status repetitionPenalty(const float* logits, float* out, int vocab, const std::int32_t* seen, int count, float penalty,
                         int* stamps, int stamp, Stream stream);

// workspace: argmaxWorkspaceBytes() bytes of device memory. hostToken: optional, pinned host memory
// (pinnedAlloc) the kernel also stores the token into, readable on the host once the stream has
// passed the launch (an event recorded after it), without a copy.
std::size_t argmaxWorkspaceBytes();
Status argmaxToken(const float* logits, int vocab, std::int32_t* token, void* workspace, Stream stream,
                   std::int32_t* hostToken = nullptr);

// workspace: samplingWorkspaceBytes(vocab) bytes of device memory, for either call.
std::size_t samplingWorkspaceBytes(int vocab);
struct SampleArgs {
    const float* logits = nullptr;
    int vocab = 0;
    float temperature = 1.f;  // > 0
    float topP = 1.f;
    int topK = 0;
    double uniform = 0.0;     // [0, 1), drawn by the host's generator
    void* workspace = nullptr;
    std::size_t workspaceBytes = 0;
    std::int32_t* token = nullptr;
    std::int32_t* needsSort = nullptr;  // sampleToken: a device int, 1 when sampleTokenSorted must decide
};
// Without sorting the vocabulary: the candidates near the maximum decide the draw, or *needsSort
// becomes 1 (top-p or top-k reaching past them, or too many of them; *token is then not written)
// and sampleTokenSorted gives the token. Plain temperature sampling always decides here.
Status sampleToken(const SampleArgs& args, Stream stream);
// The whole vocabulary sorted once; always decides.
Status sampleTokenSorted(const SampleArgs& args, Stream stream);

}  // namespace tessera::kernels
