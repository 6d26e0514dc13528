#pragma once
// Image files → RGB8 pixels, the way the upstream processor sees them: PIL `Image.open(path)
// .convert("RGB")` (alpha dropped, not composited), formats recognised by content, never by name.
// Every failure is a tessera::Error that names the file and what is wrong with it.
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace tessera {

struct RgbImage {
    int width = 0;
    int height = 0;
    std::vector<std::uint8_t> pixels;  // RGB8, row-major HWC, width*height*3 bytes

    bool empty() const { return width <= 0 || height <= 0; }
};

struct ImageDecodeOptions {
    std::uint64_t maxPixels = 128'000'000;     // decompression-bomb guard, checked from the header BEFORE decoding
    std::uint64_t maxFileBytes = 256ull << 20;
    // Upstream never rotates; we do by default so the model sees the image upright, exactly the
    // pixels the app shows and draws boxes on. false reproduces upstream.
    bool applyExifOrientation = true;
};

enum class ImageFormat { Unknown, Jpeg, Png, Gif, Bmp, WebP };

const char* imageFormatName(ImageFormat format);

// The format the leading bytes announce (magic numbers only; the file name is never consulted).
ImageFormat detectImageFormat(std::span<const std::uint8_t> bytes);

// What the header says, without decoding pixels.
struct ImageInfo {
    ImageFormat format = ImageFormat::Unknown;
    int width = 0;   // as stored, before any EXIF rotation
    int height = 0;
    int exifOrientation = 1;  // 1..8; 1 when absent or unreadable
};
ImageInfo probeImageBytes(std::span<const std::uint8_t> bytes, const std::string& nameForErrors);

RgbImage decodeImageFile(const std::filesystem::path& path, const ImageDecodeOptions& options = {});
RgbImage decodeImageBytes(std::span<const std::uint8_t> bytes, const std::string& nameForErrors,
                          const ImageDecodeOptions& options = {});

// EXIF orientation 1..8 → the upright image (PIL ImageOps.exif_transpose); other values: a copy.
RgbImage applyExifOrientation(const RgbImage& image, int orientation);

}  // namespace tessera
