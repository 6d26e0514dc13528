#pragma once
// DeepSeek-VL2's image → 384×384 tiles step, reproducing the upstream processor bit for bit:
// select_best_resolution, PIL ImageOps.pad (contain + BICUBIC resize + centred paste) and the
// row-major crop of the local view.
#include "image/image.h"

#include <array>
#include <cstdint>
#include <span>
#include <vector>

namespace tessera {

struct Resolution {
    int width = 0;
    int height = 0;
};

// The candidate that keeps the most of the image's pixels when scaled to fit (upstream truncates
// the scaled size with int()), ties → least padding, then list order.
Resolution selectBestResolution(int width, int height, std::span<const Resolution> candidates);

// == PIL Image.resize((width, height), Image.BICUBIC) on an RGB image, bit-exact (Pillow 9–12).
RgbImage resizeBicubic(const RgbImage& src, int width, int height);
// The same, written into `height` rows of `width` RGB pixels that start outStride bytes apart.
void resizeBicubicInto(const RgbImage& src, int width, int height, std::uint8_t* out, std::size_t outStride);

// == PIL ImageOps.pad(img, (width, height), BICUBIC, color=fill), centering (0.5, 0.5). One
// difference: where Pillow would resize a side to 0 pixels (aspect ratio beyond ~1:width) and
// raise, we keep 1 pixel.
RgbImage padToSize(const RgbImage& src, int width, int height, std::array<std::uint8_t, 3> fill);

// (127,127,127) = int(image_mean 0.5 · 255), the letterbox colour of every DeepSeek-VL2 processor.
inline constexpr std::array<std::uint8_t, 3> kTilePadColor = {127, 127, 127};

struct ImageTiles {
    int widthTiles = 1, heightTiles = 1;  // images_spatial_crop (w, h)
    int tileSize = 384;
    // count() tiles of tileSize*tileSize*3 (RGB8 HWC): global view first, then local tiles row by row.
    std::vector<std::uint8_t> pixels;

    int count() const { return 1 + widthTiles * heightTiles; }
    std::size_t tileBytes() const { return static_cast<std::size_t>(tileSize) * tileSize * 3; }
    const std::uint8_t* tile(int index) const { return pixels.data() + tileBytes() * index; }
};

// dynamicTiling = whole conversation has <= 2 images. Otherwise a single tileSize view: 1 global +
// 1 identical local tile, grid 1x1. Candidates must be multiples of tileSize.
ImageTiles makeTiles(const RgbImage& image, std::span<const Resolution> candidates, bool dynamicTiling,
                     int tileSize = 384, std::array<std::uint8_t, 3> fill = kTilePadColor);

}  // namespace tessera
