#pragma once
// Where each image token's embedding comes from: the upstream 2D layout with the global view
// first. Entries ≥ 0 index projector outputs as tile * tokensPerTile + token; kNewline and
// kSeparator name the learned image_newline and view_seperator vectors.
#include <cstdint>
#include <vector>

namespace tessera {

inline constexpr std::int32_t kImageNewline = -1;
inline constexpr std::int32_t kViewSeparator = -2;

// side: tokens per tile side after the projector (14). Tile 0 is the global view; tiles
// 1..w*h are the local tiles row by row.
std::vector<std::int32_t> imageTokenSources(int widthTiles, int heightTiles, int side);

}  // namespace tessera
