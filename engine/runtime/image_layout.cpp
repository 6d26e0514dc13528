#include "runtime/image_layout.h"

namespace tessera {

std::vector<std::int32_t> imageTokenSources(int widthTiles, int heightTiles, int side)
{
    const int perTile = side * side;
    std::vector<std::int32_t> out;
    out.reserve(static_cast<std::size_t>(side * (side + 1) + 1 + heightTiles * side * (widthTiles * side + 1)));
    for (int r = 0; r < side; ++r) {
        for (int c = 0; c < side; ++c)
            out.push_back(r * side + c);
        out.push_back(kImageNewline);
    }
    out.push_back(kViewSeparator);
    // Local tiles are stitched into one (th·side) × (tw·side) grid, each grid row ended by a newline.
    for (int ty = 0; ty < heightTiles; ++ty)
        for (int r = 0; r < side; ++r) {
            for (int tx = 0; tx < widthTiles; ++tx) {
                const int tile = 1 + ty * widthTiles + tx;
                for (int c = 0; c < side; ++c)
                    out.push_back(tile * perTile + r * side + c);
            }
            out.push_back(kImageNewline);
        }
    return out;
}

}  // namespace tessera
