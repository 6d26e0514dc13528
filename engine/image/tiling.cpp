#include "image/tiling.h"

#include "core/error.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

namespace tessera {

namespace {

// Python's round() on a float: to nearest, ties to even (2000×100 → 384×19.2 → 19; 182.5 → 182).
long roundHalfEven(double v)
{
    const double f = std::floor(v);
    const double d = v - f;
    if (d > 0.5)
        return static_cast<long>(f) + 1;
    if (d < 0.5)
        return static_cast<long>(f);
    return std::fmod(f, 2.0) == 0.0 ? static_cast<long>(f) : static_cast<long>(f) + 1;
}

std::string sizeText(int w, int h) { return std::to_string(w) + "x" + std::to_string(h); }

}  // namespace

Resolution selectBestResolution(int width, int height, std::span<const Resolution> candidates)
{
    if (width <= 0 || height <= 0)
        throw Error("selectBestResolution: image size " + sizeText(width, height) + " must be positive");
    if (candidates.empty())
        throw Error("selectBestResolution: no candidate resolutions (processor_config.json candidate_resolutions is empty)");
    const std::int64_t original = static_cast<std::int64_t>(width) * height;
    Resolution best = candidates.front();  // upstream would return None when nothing fits; keep the first
    std::int64_t bestEffective = 0;
    std::int64_t leastWaste = std::numeric_limits<std::int64_t>::max();
    for (const Resolution& c : candidates) {
        if (c.width <= 0 || c.height <= 0)
            throw Error("selectBestResolution: candidate resolution " + sizeText(c.width, c.height) + " must be positive");
        const double scale = std::min(static_cast<double>(c.width) / width, static_cast<double>(c.height) / height);
        // int() truncation of the scaled size, as upstream.
        const auto scaledW = static_cast<std::int64_t>(width * scale);
        const auto scaledH = static_cast<std::int64_t>(height * scale);
        const std::int64_t effective = std::min(scaledW * scaledH, original);
        const std::int64_t waste = static_cast<std::int64_t>(c.width) * c.height - effective;
        if (effective > bestEffective || (effective == bestEffective && waste < leastWaste)) {
            bestEffective = effective;
            leastWaste = waste;
            best = c;
        }
    }
    return best;
}

RgbImage padToSize(const RgbImage& src, int width, int height, std::array<std::uint8_t, 3> fill)
{
    if (src.empty())
        throw Error("padToSize: the source image is empty");
    if (width <= 0 || height <= 0)
        throw Error("padToSize: target size " + sizeText(width, height) + " must be positive");

    // ImageOps.contain: the side that does not fit is recomputed with round(h / w * W) (or w / h * H).
    int fitW = width, fitH = height;
    const double imageRatio = static_cast<double>(src.width) / src.height;
    const double targetRatio = static_cast<double>(width) / height;
    if (imageRatio != targetRatio) {
        if (imageRatio > targetRatio) {
            const long h = roundHalfEven(static_cast<double>(src.height) / src.width * width);
            if (h != height)
                fitH = static_cast<int>(std::max(1L, h));
        } else {
            const long w = roundHalfEven(static_cast<double>(src.width) / src.height * height);
            if (w != width)
                fitW = static_cast<int>(std::max(1L, w));
        }
    }
    // Centred with round((S - s) * 0.5), banker's rounding again (2304×115 in 2304×384 → y = 134).
    const int x0 = fitW != width ? static_cast<int>(roundHalfEven((width - fitW) * 0.5)) : 0;
    const int y0 = fitW != width ? 0 : static_cast<int>(roundHalfEven((height - fitH) * 0.5));

    RgbImage out;
    out.width = width;
    out.height = height;
    out.pixels.resize(static_cast<std::size_t>(width) * height * 3);
    const std::size_t stride = static_cast<std::size_t>(width) * 3;
    // The letterbox bands only; the resize writes the picture straight into its place.
    auto fillSpan = [&](int y, int xBegin, int xEnd) {
        std::uint8_t* p = &out.pixels[y * stride + static_cast<std::size_t>(xBegin) * 3];
        for (int x = xBegin; x < xEnd; ++x, p += 3) {
            p[0] = fill[0];
            p[1] = fill[1];
            p[2] = fill[2];
        }
    };
    for (int y = 0; y < height; ++y) {
        if (y < y0 || y >= y0 + fitH) {
            fillSpan(y, 0, width);
        } else {
            fillSpan(y, 0, x0);
            fillSpan(y, x0 + fitW, width);
        }
    }
    resizeBicubicInto(src, fitW, fitH, &out.pixels[y0 * stride + static_cast<std::size_t>(x0) * 3], stride);
    return out;
}

ImageTiles makeTiles(const RgbImage& image, std::span<const Resolution> candidates, bool dynamicTiling,
                     int tileSize, std::array<std::uint8_t, 3> fill)
{
    if (tileSize <= 0)
        throw Error("makeTiles: tile size " + std::to_string(tileSize) + " must be positive");
    if (image.empty())
        throw Error("makeTiles: the image is empty");
    const Resolution best = dynamicTiling ? selectBestResolution(image.width, image.height, candidates)
                                          : Resolution{tileSize, tileSize};
    if (best.width % tileSize != 0 || best.height % tileSize != 0)
        throw Error("makeTiles: candidate resolution " + sizeText(best.width, best.height)
                    + " is not a multiple of the tile size " + std::to_string(tileSize)
                    + " (check candidate_resolutions in processor_config.json)");

    ImageTiles tiles;
    tiles.tileSize = tileSize;
    tiles.widthTiles = best.width / tileSize;
    tiles.heightTiles = best.height / tileSize;
    const std::size_t tileBytes = tiles.tileBytes();
    tiles.pixels.resize(tileBytes * tiles.count());

    const RgbImage global = padToSize(image, tileSize, tileSize, fill);
    std::memcpy(tiles.pixels.data(), global.pixels.data(), tileBytes);

    const RgbImage local = padToSize(image, best.width, best.height, fill);
    const std::size_t tileRow = static_cast<std::size_t>(tileSize) * 3;
    std::uint8_t* dst = tiles.pixels.data() + tileBytes;
    for (int ty = 0; ty < tiles.heightTiles; ++ty)
        for (int tx = 0; tx < tiles.widthTiles; ++tx)
            for (int y = 0; y < tileSize; ++y, dst += tileRow)
                std::memcpy(dst, &local.pixels[(static_cast<std::size_t>(ty * tileSize + y) * local.width + tx * tileSize) * 3],
                            tileRow);
    return tiles;
}

}  // namespace tessera
