// Entry points: read the file under a size cap, recognise the format by its signature, check the
// header's pixel count before any pixel memory is allocated, decode, then turn upright.
#include "core/error.h"
#include "image/codecs.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>

namespace tessera {

namespace {

bool startsWith(std::span<const std::uint8_t> bytes, std::size_t offset, const char* magic, std::size_t n)
{
    return bytes.size() >= offset + n && std::memcmp(bytes.data() + offset, magic, n) == 0;
}

// Formats people try to open that we recognise but do not decode: name them in the error.
const char* unsupportedFormatName(std::span<const std::uint8_t> b)
{
    if (startsWith(b, 0, "II*\0", 4) || startsWith(b, 0, "MM\0*", 4))
        return "TIFF";
    if (startsWith(b, 4, "ftypheic", 8) || startsWith(b, 4, "ftypheix", 8) || startsWith(b, 4, "ftypmif1", 8))
        return "HEIC";
    if (startsWith(b, 4, "ftypavif", 8))
        return "AVIF";
    if (startsWith(b, 0, "%PDF", 4))
        return "PDF";
    if (startsWith(b, 0, "8BPS", 4))
        return "Photoshop (PSD)";
    if (startsWith(b, 0, "\0\0\1\0", 4))
        return "Windows icon (ICO)";
    if (startsWith(b, 0, "\xFF\x0A", 2) || startsWith(b, 4, "jP  ", 4))
        return "JPEG XL / JPEG 2000";
    return nullptr;
}

std::string sizeText(std::uint64_t w, std::uint64_t h) { return std::to_string(w) + "x" + std::to_string(h); }

}  // namespace

const char* imageFormatName(ImageFormat format)
{
    switch (format) {
    case ImageFormat::Jpeg: return "JPEG";
    case ImageFormat::Png: return "PNG";
    case ImageFormat::Gif: return "GIF";
    case ImageFormat::Bmp: return "BMP";
    case ImageFormat::WebP: return "WebP";
    case ImageFormat::Unknown: break;
    }
    return "unknown";
}

ImageFormat detectImageFormat(std::span<const std::uint8_t> b)
{
    if (startsWith(b, 0, "\xFF\xD8\xFF", 3))
        return ImageFormat::Jpeg;
    if (startsWith(b, 0, "\x89PNG\r\n\x1A\n", 8))
        return ImageFormat::Png;
    if (startsWith(b, 0, "GIF87a", 6) || startsWith(b, 0, "GIF89a", 6))
        return ImageFormat::Gif;
    if (startsWith(b, 0, "RIFF", 4) && startsWith(b, 8, "WEBP", 4))
        return ImageFormat::WebP;
    // "BM" alone is too weak (any text may start so): require a known DIB header size too.
    if (startsWith(b, 0, "BM", 2) && b.size() >= 18) {
        const std::uint32_t dib = image_detail::readLe32(b.data() + 14);
        if (dib == 12 || dib == 40 || dib == 52 || dib == 56 || dib == 108 || dib == 124)
            return ImageFormat::Bmp;
    }
    return ImageFormat::Unknown;
}

ImageInfo probeImageBytes(std::span<const std::uint8_t> bytes, const std::string& name)
{
    if (bytes.empty())
        throw Error(name + ": the file is empty");
    const ImageFormat format = detectImageFormat(bytes);
    switch (format) {
    case ImageFormat::Jpeg: return image_detail::probeJpeg(bytes, name);
    case ImageFormat::WebP: return image_detail::probeWebp(bytes, name);
    case ImageFormat::Png:
    case ImageFormat::Gif:
    case ImageFormat::Bmp: return image_detail::probeStb(bytes, name, format);
    case ImageFormat::Unknown: break;
    }
    if (const char* other = unsupportedFormatName(bytes))
        throw Error(name + ": " + other + " images are not supported; use JPEG, PNG, WebP, GIF or BMP");
    throw Error(name + ": not an image (no JPEG, PNG, WebP, GIF or BMP signature at the start of the file)");
}

RgbImage decodeImageBytes(std::span<const std::uint8_t> bytes, const std::string& name,
                          const ImageDecodeOptions& options)
{
    if (bytes.size() > options.maxFileBytes)
        throw Error(name + ": the file is " + std::to_string(bytes.size()) + " bytes, over the limit of "
                    + std::to_string(options.maxFileBytes) + " bytes for an image");
    const ImageInfo info = probeImageBytes(bytes, name);
    if (info.width <= 0 || info.height <= 0)
        throw Error(name + ": the " + imageFormatName(info.format) + " header gives a zero size ("
                    + sizeText(info.width < 0 ? 0 : info.width, info.height < 0 ? 0 : info.height) + ")");
    const std::uint64_t pixels = static_cast<std::uint64_t>(info.width) * static_cast<std::uint64_t>(info.height);
    if (pixels > options.maxPixels)
        throw Error(name + ": the image is " + sizeText(info.width, info.height) + " = " + std::to_string(pixels)
                    + " pixels, over the limit of " + std::to_string(options.maxPixels)
                    + " pixels (a damaged file or a decompression bomb; scale it down first)");

    RgbImage image;
    switch (info.format) {
    case ImageFormat::Jpeg: image = image_detail::decodeJpeg(bytes, name, info); break;
    case ImageFormat::WebP: image = image_detail::decodeWebp(bytes, name, info); break;
    default: image = image_detail::decodeStb(bytes, name, info); break;
    }
    if (options.applyExifOrientation && info.exifOrientation != 1)
        image = applyExifOrientation(image, info.exifOrientation);
    return image;
}

RgbImage decodeImageFile(const std::filesystem::path& path, const ImageDecodeOptions& options)
{
    const std::string name = path.string();
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (ec || !std::filesystem::exists(status))
        throw Error(name + ": no such file");
    if (std::filesystem::is_directory(status))
        throw Error(name + ": is a directory, not an image file");
    if (!std::filesystem::is_regular_file(status))
        throw Error(name + ": not a regular file");
    const std::uintmax_t size = std::filesystem::file_size(path, ec);
    if (ec)
        throw Error(name + ": cannot read the file size: " + ec.message());
    if (size == 0)
        throw Error(name + ": the file is empty");
    if (size > options.maxFileBytes)
        throw Error(name + ": the file is " + std::to_string(size) + " bytes, over the limit of "
                    + std::to_string(options.maxFileBytes) + " bytes for an image");

    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw Error(name + ": cannot open: " + std::strerror(errno));
    std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
    in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (in.gcount() != static_cast<std::streamsize>(bytes.size()))
        throw Error(name + ": could read only " + std::to_string(in.gcount()) + " of " + std::to_string(size)
                    + " bytes (was the file changed while being read?)");
    return decodeImageBytes(bytes, name, options);
}

}  // namespace tessera
