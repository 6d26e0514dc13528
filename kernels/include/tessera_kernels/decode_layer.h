#pragma once
// A whole MoE layer of one decode token in one cooperative launch: the attention half (as
// mhaDecode or mlaDecode) and the MoE half (as moeDecode) with a grid barrier between them, in
// place of their two launches.
#include "tessera_kernels/attention.h"
#include "tessera_kernels/moe.h"

namespace tessera::kernels {

// Exactly one of mha / mla. Their `type` is the MoE half's xType, and all three share `sync`.
Status decodeLayer(const MhaDecodeArgs* mha, const MlaDecodeArgs* mla, const MoeDecodeArgs& moe, Stream stream);

}  // namespace tessera::kernels
