// JPEG through TurboJPEG, configured so the pixels equal Pillow's (libjpeg defaults: islow IDCT,
// fancy upsampling), and judged complete or truncated the way Pillow judges it.
#include "core/error.h"
#include "image/codecs.h"

#include <turbojpeg.h>

#include <cstring>
#include <memory>
#include <vector>

namespace tessera::image_detail {

namespace {

struct TjHandleDeleter {
    void operator()(void* h) const { tjDestroy(h); }
};
using TjHandle = std::unique_ptr<void, TjHandleDeleter>;

TjHandle openDecompressor(const std::string& name)
{
    TjHandle h(tjInitDecompress());
    if (!h)
        throw Error(name + ": cannot start the JPEG decoder: " + tjGetErrorStr2(nullptr));
    return h;
}

bool isStandalone(std::uint8_t marker)
{
    return (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01;  // RSTn, TEM
}

// Pillow's CMYK→RGB after it read the data as inverted ("CMYK;I"): channel = nk − c·nk/255 with
// Pillow's rounded division by 255.
void cmykToRgb(const std::uint8_t* cmyk, std::size_t pixels, std::uint8_t* rgb)
{
    for (std::size_t i = 0; i < pixels; ++i, cmyk += 4, rgb += 3) {
        const int nk = cmyk[3];  // 255 - (255 - k)
        for (int c = 0; c < 3; ++c) {
            const int ink = 255 - cmyk[c];
            const int t = ink * nk + 128;
            const int v = nk - (((t >> 8) + t) >> 8);
            rgb[c] = static_cast<std::uint8_t>(v < 0 ? 0 : v);
        }
    }
}

}  // namespace

JpegLayout scanJpeg(Bytes bytes, bool walkScans)
{
    JpegLayout layout;
    const std::uint8_t* d = bytes.data();
    const std::size_t n = bytes.size();
    std::size_t at = 2;  // after SOI
    while (at < n) {
        if (d[at] != 0xFF) {
            ++at;  // garbage between segments; libjpeg skips it with a warning
            continue;
        }
        while (at < n && d[at] == 0xFF)
            ++at;  // fill bytes
        if (at >= n)
            break;
        const std::uint8_t marker = d[at++];
        if (marker == 0xD9) {
            layout.hasEoi = true;
            break;
        }
        if (isStandalone(marker) || marker == 0x00)
            continue;
        if (at + 2 > n) {
            layout.cutShort = true;
            break;
        }
        const std::size_t length = (std::size_t(d[at]) << 8) | d[at + 1];
        if (length < 2 || length > n - at) {
            layout.cutShort = length >= 2;
            break;
        }
        const Bytes payload = bytes.subspan(at + 2, length - 2);
        at += length;
        if (marker == 0xE1 && layout.exifTiff.empty() && payload.size() >= 6
            && std::memcmp(payload.data(), "Exif\0\0", 6) == 0)
            layout.exifTiff = payload.subspan(6);
        if (marker == 0xC2 || marker == 0xC6 || marker == 0xCA || marker == 0xCE)
            layout.progressive = true;
        if (marker == 0xDA) {
            layout.reachedScan = true;
            if (!walkScans)
                break;
            // Entropy-coded data runs to the next marker that is not a stuffed 0xFF00 or a RSTn.
            while (at < n) {
                const void* ff = std::memchr(d + at, 0xFF, n - at);
                if (!ff) {
                    at = n;
                    break;
                }
                at = static_cast<std::size_t>(static_cast<const std::uint8_t*>(ff) - d);
                std::size_t next = at + 1;
                while (next < n && d[next] == 0xFF)
                    ++next;
                if (next >= n) {
                    at = n;
                    break;
                }
                if (d[next] == 0x00 || isStandalone(d[next])) {
                    at = next + 1;
                    continue;
                }
                break;  // `at` points at the marker's 0xFF
            }
        }
    }
    if (!layout.reachedScan && !layout.hasEoi)
        layout.cutShort = true;
    return layout;
}

namespace {

[[noreturn]] void throwHeaderError(Bytes bytes, const std::string& name, const char* message)
{
    if (scanJpeg(bytes, false).cutShort)
        throw Error(name + ": the JPEG file is truncated (it ends inside its header: " + message + ")");
    throw Error(name + ": not a readable JPEG: " + message);
}

}  // namespace

ImageInfo probeJpeg(Bytes bytes, const std::string& name)
{
    TjHandle h = openDecompressor(name);
    int width = 0, height = 0, subsamp = 0, colorspace = 0;
    if (tjDecompressHeader3(h.get(), bytes.data(), bytes.size(), &width, &height, &subsamp, &colorspace) != 0)
        throwHeaderError(bytes, name, tjGetErrorStr2(h.get()));
    ImageInfo info;
    info.format = ImageFormat::Jpeg;
    info.width = width;
    info.height = height;
    info.exifOrientation = jpegOrientation(bytes);
    return info;
}

RgbImage decodeJpeg(Bytes bytes, const std::string& name, const ImageInfo& info)
{
    TjHandle h = openDecompressor(name);
    int width = 0, height = 0, subsamp = 0, colorspace = 0;
    if (tjDecompressHeader3(h.get(), bytes.data(), bytes.size(), &width, &height, &subsamp, &colorspace) != 0)
        throwHeaderError(bytes, name, tjGetErrorStr2(h.get()));
    if (width != info.width || height != info.height)
        throw Error(name + ": JPEG header changed between probe and decode");

    // Pillow refuses a progressive JPEG whose data stops before EOI: later scans may be missing.
    const JpegLayout layout = scanJpeg(bytes, true);
    if (layout.progressive && !layout.hasEoi)
        throw Error(name + ": the JPEG file is truncated (progressive image without its end marker)");

    // With a real EOI after the data, libjpeg's "premature end of data segment" warning means the
    // scan data itself ran out (Pillow: "image file is truncated"); a file that only lacks the final
    // EOI decodes cleanly (so does Pillow, except for tiny files its buffering trips over).
    // TurboJPEG reports only the first warning, so truncation after other damage goes unnoticed.
    Bytes input = bytes;
    std::vector<std::uint8_t> withEoi;
    if (bytes.size() < 2 || bytes[bytes.size() - 2] != 0xFF || bytes[bytes.size() - 1] != 0xD9) {
        withEoi.reserve(bytes.size() + 2);
        withEoi.assign(bytes.begin(), bytes.end());
        withEoi.push_back(0xFF);
        withEoi.push_back(0xD9);
        input = withEoi;
    }

    const bool cmyk = colorspace == TJCS_CMYK || colorspace == TJCS_YCCK;
    const std::size_t pixels = static_cast<std::size_t>(width) * height;
    RgbImage out;
    out.width = width;
    out.height = height;
    out.pixels.resize(pixels * 3);
    std::vector<std::uint8_t> cmykPixels;
    if (cmyk)
        cmykPixels.resize(pixels * 4);
    // ACCURATEDCT = libjpeg's default islow IDCT, which Pillow uses; LIMITSCANS refuses progressive
    // files with absurd scan counts (a known CPU-exhaustion attack).
    const int flags = TJFLAG_ACCURATEDCT | TJFLAG_LIMITSCANS;
    const int rc = tjDecompress2(h.get(), input.data(), input.size(), cmyk ? cmykPixels.data() : out.pixels.data(),
                                 width, 0, height, cmyk ? TJPF_CMYK : TJPF_RGB, flags);
    if (rc != 0) {
        const std::string message = tjGetErrorStr2(h.get());
        if (tjGetErrorCode(h.get()) != TJERR_WARNING)
            throw Error(name + ": cannot decode JPEG: " + message);
        if (message.find("premature end") != std::string::npos)
            throw Error(name + ": the JPEG file is truncated or corrupt (" + message + ")");
        // Other warnings (extraneous bytes, unknown markers) are tolerated, as by Pillow.
    }
    if (cmyk)
        cmykToRgb(cmykPixels.data(), pixels, out.pixels.data());
    return out;
}

}  // namespace tessera::image_detail
