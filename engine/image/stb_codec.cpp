// PNG, BMP and GIF through stb_image (compiled here, static, so no other copy in the program can
// clash), with the conversions to RGB that PIL's convert("RGB") makes.
#include "core/error.h"
#include "image/codecs.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

// stb_image grows its inflate buffer by doubling up to 4 GiB, so a tiny PNG whose zlib stream
// expands far beyond what its size needs could exhaust memory: every stb allocation goes through
// a cap set for the current decode.
namespace {
thread_local std::size_t stbAllocationLimit = SIZE_MAX;
}
static void* tesseraStbMalloc(std::size_t n) { return n > stbAllocationLimit ? nullptr : std::malloc(n); }
static void* tesseraStbRealloc(void* p, std::size_t n) { return n > stbAllocationLimit ? nullptr : std::realloc(p, n); }
#define STBI_MALLOC(n) tesseraStbMalloc(n)
#define STBI_REALLOC(p, n) tesseraStbRealloc(p, n)
#define STBI_FREE(p) std::free(p)

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_NO_STDIO
#define STBI_FAILURE_USERMSG
// A second guard behind ImageDecodeOptions::maxPixels: no side beyond 131072 pixels.
#define STBI_MAX_DIMENSIONS (1 << 17)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#include <stb_image.h>
#pragma GCC diagnostic pop

namespace tessera::image_detail {

namespace {

// Caps each stb allocation at twice what the largest legitimate buffer can need (16-bit RGBA
// pixels plus filter bytes, or the compressed data itself), plus slack.
class StbAllocationCap {
public:
    StbAllocationCap(const ImageInfo& info, std::size_t fileBytes)
    {
        const std::size_t pixels = static_cast<std::size_t>(info.width) * static_cast<std::size_t>(info.height);
        const std::size_t biggest = std::max(pixels * 8 + static_cast<std::size_t>(info.height), fileBytes);
        stbAllocationLimit = biggest * 2 + (1u << 20);
    }
    ~StbAllocationCap() { stbAllocationLimit = SIZE_MAX; }
    StbAllocationCap(const StbAllocationCap&) = delete;
    StbAllocationCap& operator=(const StbAllocationCap&) = delete;
};

struct StbFree {
    void operator()(void* p) const { stbi_image_free(p); }
};

int checkedLength(Bytes bytes, const std::string& name)
{
    if (bytes.size() > static_cast<std::size_t>(INT_MAX))
        throw Error(name + ": file too large for the image decoder (over 2 GiB)");
    return static_cast<int>(bytes.size());
}

struct PngHeader {
    std::uint32_t width = 0, height = 0;
    int bitDepth = 0;
    int colorType = 0;
};

// IHDR must be the first chunk; reading it ourselves gives the true size even when it is absurd,
// so the size limit (not stb's own) produces the error message.
PngHeader readPngHeader(Bytes bytes, const std::string& name)
{
    if (bytes.size() < 8 + 8 + 13 || std::memcmp(bytes.data() + 12, "IHDR", 4) != 0
        || readBe32(bytes.data() + 8) != 13)
        throw Error(name + ": not a valid PNG file (missing or malformed IHDR header)");
    PngHeader h;
    h.width = readBe32(bytes.data() + 16);
    h.height = readBe32(bytes.data() + 20);
    h.bitDepth = bytes[24];
    h.colorType = bytes[25];
    return h;
}

const char* formatName(ImageFormat f) { return imageFormatName(f); }

std::string stbReason()
{
    const std::string reason = stbi_failure_reason() ? stbi_failure_reason() : "unknown error";
    if (reason == "Out of memory")  // what stb says when StbAllocationCap refuses
        return "its data expands far beyond what the image size needs: damaged file or decompression bomb";
    return reason;
}

std::uint32_t readLe16(const std::uint8_t* p) { return p[0] | (std::uint32_t(p[1]) << 8); }

// stb_image reads zeros past the end of a BMP or GIF instead of failing; Pillow raises for a
// truncated file, so check that the pixel data the header promises is all there.
void requireCompleteBmp(Bytes b, const std::string& name)
{
    const std::uint32_t dib = readLe32(b.data() + 14);
    std::uint64_t width = 0, height = 0, bpp = 0, compression = 0;
    if (dib == 12 && b.size() >= 26) {
        width = readLe16(b.data() + 18);
        height = readLe16(b.data() + 20);
        bpp = readLe16(b.data() + 24);
    } else if (dib >= 40 && b.size() >= 34) {
        width = readLe32(b.data() + 18);
        const auto h = static_cast<std::int32_t>(readLe32(b.data() + 22));  // negative: top-down rows
        height = h < 0 ? -static_cast<std::int64_t>(h) : h;
        bpp = readLe16(b.data() + 28);
        compression = readLe32(b.data() + 30);
    } else {
        throw Error(name + ": the BMP file is truncated (incomplete header)");
    }
    if (compression != 0 && compression != 3)
        return;  // RLE and others: stb refuses them with its own message
    const std::uint64_t rowBytes = (width * bpp + 31) / 32 * 4;
    const std::uint64_t needed = readLe32(b.data() + 10) + rowBytes * height;
    if (b.size() < needed)
        throw Error(name + ": the BMP file is truncated (" + std::to_string(b.size()) + " of "
                    + std::to_string(needed) + " bytes)");
}

// Pillow stops reading a PNG once the image data is decoded, so a file cut after its last IDAT
// (missing or partial IEND) still opens; stb_image insists on IEND. Such a file gets a fresh IEND
// after its last complete chunk; data cut inside IDAT then fails in the inflater, as in Pillow.
Bytes withPngEnd(Bytes b, std::vector<std::uint8_t>& storage, bool& repaired)
{
    std::size_t at = 8;
    while (at + 12 <= b.size()) {
        const std::uint64_t length = readBe32(b.data() + at);
        if (length > b.size() - at - 12)
            break;
        if (std::memcmp(b.data() + at + 4, "IEND", 4) == 0)
            return b;
        at += 12 + static_cast<std::size_t>(length);
    }
    static constexpr std::uint8_t kIend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82};
    storage.assign(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(std::min(at, b.size())));
    storage.insert(storage.end(), std::begin(kIend), std::end(kIend));
    repaired = true;
    return storage;
}

// Walks the GIF blocks up to the end of the first frame's image data.
void requireCompleteGifFrame(Bytes b, const std::string& name)
{
    const std::string truncated = name + ": the GIF file is truncated";
    std::size_t at = 13;  // signature + logical screen descriptor
    if (b.size() < at)
        throw Error(truncated);
    if (b[10] & 0x80)
        at += 3u << ((b[10] & 7) + 1);  // global colour table
    auto skipSubBlocks = [&] {
        for (;;) {
            if (at >= b.size())
                throw Error(truncated);
            const std::size_t len = b[at++];
            if (len == 0)
                return;
            at += len;
        }
    };
    for (;;) {
        if (at >= b.size())
            throw Error(truncated);
        const std::uint8_t block = b[at++];
        if (block == 0x21) {  // extension: label, then data sub-blocks
            ++at;
            skipSubBlocks();
        } else if (block == 0x2C) {  // image descriptor, local colour table, LZW code size, data
            if (at + 9 > b.size())
                throw Error(truncated);
            const std::uint8_t flags = b[at + 8];
            at += 9;
            if (flags & 0x80)
                at += 3u << ((flags & 7) + 1);
            ++at;
            skipSubBlocks();
            return;
        } else {
            throw Error(name + ": the GIF file has no image (or an unknown block before the first frame)");
        }
    }
}

}  // namespace

ImageInfo probeStb(Bytes bytes, const std::string& name, ImageFormat format)
{
    ImageInfo info;
    info.format = format;
    if (format == ImageFormat::Png) {
        const PngHeader h = readPngHeader(bytes, name);
        if (h.width > INT_MAX || h.height > INT_MAX)
            throw Error(name + ": PNG header claims an impossible size " + std::to_string(h.width) + "x"
                        + std::to_string(h.height));
        info.width = static_cast<int>(h.width);
        info.height = static_cast<int>(h.height);
        info.exifOrientation = pngOrientation(bytes);
        return info;
    }
    int w = 0, h = 0, comp = 0;
    if (!stbi_info_from_memory(bytes.data(), checkedLength(bytes, name), &w, &h, &comp))
        throw Error(name + ": not a readable " + formatName(format) + " file (" + stbReason() + ")");
    info.width = w;
    info.height = h;
    return info;
}

RgbImage decodeStb(Bytes original, const std::string& name, const ImageInfo& info)
{
    std::vector<std::uint8_t> repairedPng;
    bool repaired = false;
    const Bytes bytes = info.format == ImageFormat::Png ? withPngEnd(original, repairedPng, repaired) : original;
    const char* damage = repaired ? "the file is truncated or corrupt: " : "";
    const int length = checkedLength(bytes, name);
    int w = 0, h = 0, comp = 0;
    RgbImage out;
    const StbAllocationCap cap(info, bytes.size());

    const PngHeader png = info.format == ImageFormat::Png ? readPngHeader(bytes, name) : PngHeader{};
    if (png.bitDepth == 16) {
        // Pillow keeps only the high byte of 16-bit colour, but opens 16-bit greyscale as mode "I"
        // whose conversion to RGB clips values above 255 (so most of such an image turns white).
        const bool grey = png.colorType == 0;
        std::unique_ptr<stbi_us, StbFree> data(stbi_load_16_from_memory(bytes.data(), length, &w, &h, &comp, 0));
        if (!data)
            throw Error(name + ": cannot decode PNG (" + damage + stbReason() + ")");
        out.width = w;
        out.height = h;
        out.pixels.resize(static_cast<std::size_t>(w) * h * 3);
        const std::size_t pixels = static_cast<std::size_t>(w) * h;
        const stbi_us* s = data.get();
        std::uint8_t* d = out.pixels.data();
        for (std::size_t i = 0; i < pixels; ++i, s += comp, d += 3) {
            if (comp <= 2) {
                const std::uint8_t v = grey ? static_cast<std::uint8_t>(s[0] > 255 ? 255 : s[0])
                                            : static_cast<std::uint8_t>(s[0] >> 8);
                d[0] = d[1] = d[2] = v;
            } else {
                d[0] = static_cast<std::uint8_t>(s[0] >> 8);
                d[1] = static_cast<std::uint8_t>(s[1] >> 8);
                d[2] = static_cast<std::uint8_t>(s[2] >> 8);
            }
        }
    } else {
        if (info.format == ImageFormat::Bmp)
            requireCompleteBmp(bytes, name);
        if (info.format == ImageFormat::Gif)
            requireCompleteGifFrame(bytes, name);
        // Grey is replicated, palettes expanded, alpha dropped: PIL's convert("RGB").
        std::unique_ptr<stbi_uc, StbFree> data(stbi_load_from_memory(bytes.data(), length, &w, &h, &comp, 3));
        if (!data)
            throw Error(name + ": cannot decode " + formatName(info.format) + " (" + damage + stbReason() + ")");
        out.width = w;
        out.height = h;
        out.pixels.assign(data.get(), data.get() + static_cast<std::size_t>(w) * h * 3);
    }
    if (out.width != info.width || out.height != info.height)
        throw Error(name + ": decoded size " + std::to_string(out.width) + "x" + std::to_string(out.height)
                    + " differs from the header's " + std::to_string(info.width) + "x" + std::to_string(info.height));
    return out;
}

}  // namespace tessera::image_detail
