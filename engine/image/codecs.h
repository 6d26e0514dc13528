#pragma once
// Internal to engine/image: one probe (header only) and one decoder per backend, and the container
// parsers that find EXIF data. Decoders trust that image_decode.cpp checked the probe's size limits.
#include "image/image.h"

#include <cstdint>
#include <span>
#include <string>

namespace tessera::image_detail {

using Bytes = std::span<const std::uint8_t>;

// libjpeg-turbo (TurboJPEG API), decoding exactly like Pillow: islow IDCT, fancy upsampling.
ImageInfo probeJpeg(Bytes bytes, const std::string& name);
RgbImage decodeJpeg(Bytes bytes, const std::string& name, const ImageInfo& info);

// libwebp, still images only.
ImageInfo probeWebp(Bytes bytes, const std::string& name);
RgbImage decodeWebp(Bytes bytes, const std::string& name, const ImageInfo& info);

// stb_image: PNG, BMP, GIF (first frame).
ImageInfo probeStb(Bytes bytes, const std::string& name, ImageFormat format);
RgbImage decodeStb(Bytes bytes, const std::string& name, const ImageInfo& info);

// The segments of a JPEG up to the first scan (and, if asked, through the scans to EOI).
struct JpegLayout {
    Bytes exifTiff;          // the first APP1 "Exif\0\0" payload without its 6-byte prefix
    bool progressive = false;
    bool reachedScan = false;
    bool hasEoi = false;     // only meaningful when the scans were walked
    bool cutShort = false;   // the data ends inside a segment or before the first scan
};
JpegLayout scanJpeg(Bytes bytes, bool walkScans);

// EXIF orientation (1..8) from a TIFF block; 1 when absent, malformed or out of range.
int tiffOrientation(Bytes tiff);
int jpegOrientation(Bytes bytes);
int pngOrientation(Bytes bytes);   // eXIf chunk
int webpOrientation(Bytes bytes);  // RIFF EXIF chunk

inline std::uint32_t readBe32(const std::uint8_t* p)
{
    return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | p[3];
}
inline std::uint32_t readLe32(const std::uint8_t* p)
{
    return (std::uint32_t(p[3]) << 24) | (std::uint32_t(p[2]) << 16) | (std::uint32_t(p[1]) << 8) | p[0];
}

}  // namespace tessera::image_detail
