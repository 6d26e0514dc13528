// EXIF orientation: finding the TIFF block in JPEG / PNG / WebP containers, reading tag 0x0112
// from IFD0, and turning the stored pixels upright. Every offset comes from the file, so every
// read is bounds-checked; anything malformed means "no orientation" (1), never an error.
#include "image/codecs.h"

#include <cstring>

namespace tessera {

namespace image_detail {

int tiffOrientation(Bytes tiff)
{
    constexpr std::uint8_t kExifPrefix[6] = {'E', 'x', 'i', 'f', 0, 0};
    // Some writers keep the APP1 prefix inside PNG eXIf / WebP EXIF chunks.
    if (tiff.size() >= 6 && std::memcmp(tiff.data(), kExifPrefix, 6) == 0)
        tiff = tiff.subspan(6);
    const std::size_t size = tiff.size();
    if (size < 8)
        return 1;
    const std::uint8_t* t = tiff.data();
    bool little;
    if (t[0] == 'I' && t[1] == 'I')
        little = true;
    else if (t[0] == 'M' && t[1] == 'M')
        little = false;
    else
        return 1;
    auto u16 = [&](std::size_t at) -> std::uint32_t {
        return little ? (t[at] | (t[at + 1] << 8)) : ((t[at] << 8) | t[at + 1]);
    };
    auto u32 = [&](std::size_t at) -> std::uint32_t { return little ? readLe32(t + at) : readBe32(t + at); };
    if (u16(2) != 42)
        return 1;
    const std::uint64_t ifd = u32(4);
    if (ifd + 2 > size)
        return 1;
    const std::uint32_t entries = u16(static_cast<std::size_t>(ifd));
    for (std::uint32_t i = 0; i < entries; ++i) {
        const std::uint64_t at = ifd + 2 + 12ull * i;
        if (at + 12 > size)
            break;
        const auto e = static_cast<std::size_t>(at);
        if (u16(e) != 0x0112)
            continue;
        const std::uint32_t type = u16(e + 2);
        const std::uint32_t count = u32(e + 4);
        if (count != 1)
            return 1;
        std::uint32_t value = 0;
        if (type == 3)  // SHORT, the type the standard prescribes
            value = u16(e + 8);
        else if (type == 4)  // LONG, written by a few tools
            value = u32(e + 8);
        else if (type == 1)  // BYTE
            value = t[e + 8];
        else
            return 1;
        return value >= 1 && value <= 8 ? static_cast<int>(value) : 1;
    }
    return 1;
}

int jpegOrientation(Bytes bytes)
{
    return tiffOrientation(scanJpeg(bytes, false).exifTiff);
}

int pngOrientation(Bytes bytes)
{
    std::size_t at = 8;  // after the signature
    while (at + 12 <= bytes.size()) {
        const std::uint64_t length = readBe32(bytes.data() + at);
        const std::uint8_t* type = bytes.data() + at + 4;
        if (length > bytes.size() - at - 12)
            break;
        if (std::memcmp(type, "eXIf", 4) == 0)
            return tiffOrientation(bytes.subspan(at + 8, static_cast<std::size_t>(length)));
        if (std::memcmp(type, "IEND", 4) == 0)
            break;
        at += 12 + static_cast<std::size_t>(length);
    }
    return 1;
}

int webpOrientation(Bytes bytes)
{
    std::size_t at = 12;  // after "RIFF" size "WEBP"
    while (at + 8 <= bytes.size()) {
        const std::uint64_t length = readLe32(bytes.data() + at + 4);
        if (length > bytes.size() - at - 8)
            break;
        if (std::memcmp(bytes.data() + at, "EXIF", 4) == 0)
            return tiffOrientation(bytes.subspan(at + 8, static_cast<std::size_t>(length)));
        at += 8 + static_cast<std::size_t>(length) + (length & 1);  // chunks are padded to even sizes
    }
    return 1;
}

}  // namespace image_detail

RgbImage applyExifOrientation(const RgbImage& image, int orientation)
{
    if (orientation < 2 || orientation > 8 || image.empty())
        return image;
    const int w = image.width, h = image.height;
    const bool swaps = orientation >= 5;  // 5..8 exchange width and height
    RgbImage out;
    out.width = swaps ? h : w;
    out.height = swaps ? w : h;
    out.pixels.resize(image.pixels.size());
    for (int y = 0; y < out.height; ++y) {
        for (int x = 0; x < out.width; ++x) {
            // (sx, sy): the stored pixel shown at (x, y) once upright.
            int sx = x, sy = y;
            switch (orientation) {
            case 2: sx = w - 1 - x; break;                   // mirrored
            case 3: sx = w - 1 - x; sy = h - 1 - y; break;   // upside down
            case 4: sy = h - 1 - y; break;                   // mirrored vertically
            case 5: sx = y; sy = x; break;                   // transposed
            case 6: sx = y; sy = h - 1 - x; break;           // needs 90° clockwise
            case 7: sx = w - 1 - y; sy = h - 1 - x; break;   // transversed
            case 8: sx = w - 1 - y; sy = x; break;           // needs 90° counter-clockwise
            default: break;
            }
            const std::uint8_t* s = &image.pixels[(static_cast<std::size_t>(sy) * w + sx) * 3];
            std::uint8_t* d = &out.pixels[(static_cast<std::size_t>(y) * out.width + x) * 3];
            d[0] = s[0];
            d[1] = s[1];
            d[2] = s[2];
        }
    }
    return out;
}

}  // namespace tessera
