#pragma once
// Data movement of the vision tower: the stride-patch convolution as im2col rows, and the
// projector's r×r merge of the zero-padded patch grid.
#include "tessera_kernels/common.h"

#include <cstdint>

namespace tessera::kernels {

// tiles: count × (imageSize² · 3) uint8 RGB, HWC. rows[tile·grid² + py·grid + px, c·p² + ky·p + kx]
// = pixelValue[c][pixel] (a [3][256] F32 table: the processor's normalisation).
Status patchRows(const std::uint8_t* tiles, int count, int imageSize, int patch, int grid, const float* pixelValue,
                 void* rows, DType rowType, Stream stream);

// vision: F32 [count, grid², width]. merged[tile·side² + ty·side + tx, c·r² + dy·r + dx] = vision
// at (ty·r + dy, tx·r + dx), or 0 outside the grid (side = ceil(grid / r)).
Status mergePatches(const float* vision, int count, int grid, int width, int ratio, int side, void* merged,
                    DType mergedType, Stream stream);

}  // namespace tessera::kernels
