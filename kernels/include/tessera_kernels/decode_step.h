#pragma once
// The whole decode step of one token in one cooperative launch: the embedding row and the first
// layer's input norm, every layer (attention half, grid barrier, MoE or dense-MLP half, grid
// barrier), lm_head, and the position's increment. No kernel boundary in the step at all.
#include "tessera_kernels/attention.h"
#include "tessera_kernels/moe.h"

#include <cstddef>
#include <cstdint>

namespace tessera::kernels {

// Per layer: mha[l] or mla[l] (the same kind in every layer) and moe[l] (a dense layer as a MoE
// half with experts = 0, k = 0, sharedExperts = 1, see moeDecode). All share `sync` and x's type.
struct DecodeStepArgs {
    int layers = 0;
    const MhaDecodeArgs* mha = nullptr;
    const MlaDecodeArgs* mla = nullptr;
    const MoeDecodeArgs* moe = nullptr;
    const std::uint16_t* embed = nullptr;     // bf16 [vocab, hidden]
    const std::int32_t* token = nullptr;      // the token of this step (device)
    const float* inputNorm = nullptr;         // the first layer's input_layernorm
    float eps = 1e-6f;
    void* x = nullptr;                        // the layers' normalised input (the attention halves' x)
    float* residual = nullptr;
    int hidden = 0;
    DType type = DType::F32;
    const std::uint16_t* lmHead = nullptr;    // bf16 [vocab, hidden]; x holds the final norm before it
    int vocab = 0;
    float* logits = nullptr;                  // F32 [vocab]
    int* lengthOnDevice = nullptr;            // incremented once the step is done with it
    unsigned* sync = nullptr;
    void* layerTable = nullptr;               // device memory of decodeStepTableBytes(layers, mla != nullptr)
};
bool decodeStepSupports(const DecodeStepArgs& args);
std::size_t decodeStepTableBytes(int layers, bool mla);
// Writes the per-layer parameters to args.layerTable on `stream` and waits for it (call it before
// capturing).
Status uploadDecodeStep(const DecodeStepArgs& args, Stream stream);
// The launch (capturable); the table must hold what uploadDecodeStep wrote for the same args.
Status decodeStep(const DecodeStepArgs& args, Stream stream);

}  // namespace tessera::kernels
