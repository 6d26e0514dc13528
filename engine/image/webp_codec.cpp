// WebP stills through libwebp. Decoding straight to RGB gives the same colour values Pillow gets
// from its RGBA decode (alpha is not premultiplied, then dropped by convert("RGB")).
#include "core/error.h"
#include "image/codecs.h"

#include <webp/decode.h>

namespace tessera::image_detail {

namespace {

const char* statusText(VP8StatusCode status)
{
    switch (status) {
    case VP8_STATUS_OK: return "ok";
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "corrupt bitstream";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_SUSPENDED: return "suspended";
    case VP8_STATUS_USER_ABORT: return "aborted";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "the file is truncated";
    }
    return "unknown error";
}

}  // namespace

ImageInfo probeWebp(Bytes bytes, const std::string& name)
{
    WebPBitstreamFeatures features;
    const VP8StatusCode status = WebPGetFeatures(bytes.data(), bytes.size(), &features);
    if (status != VP8_STATUS_OK)
        throw Error(name + ": not a readable WebP file (" + statusText(status) + ")");
    if (features.has_animation)
        throw Error(name + ": animated WebP images are not supported; save one frame as PNG or JPEG");
    ImageInfo info;
    info.format = ImageFormat::WebP;
    info.width = features.width;
    info.height = features.height;
    info.exifOrientation = webpOrientation(bytes);
    return info;
}

RgbImage decodeWebp(Bytes bytes, const std::string& name, const ImageInfo& info)
{
    RgbImage out;
    out.width = info.width;
    out.height = info.height;
    out.pixels.resize(static_cast<std::size_t>(info.width) * info.height * 3);
    WebPDecoderConfig config;
    if (!WebPInitDecoderConfig(&config))
        throw Error(name + ": the WebP library does not match the headers it was built with");
    config.output.colorspace = MODE_RGB;
    config.output.is_external_memory = 1;
    config.output.u.RGBA.rgba = out.pixels.data();
    config.output.u.RGBA.stride = info.width * 3;
    config.output.u.RGBA.size = out.pixels.size();
    const VP8StatusCode status = WebPDecode(bytes.data(), bytes.size(), &config);
    WebPFreeDecBuffer(&config.output);  // releases nothing we own: the buffer is external
    if (status != VP8_STATUS_OK)
        throw Error(name + ": cannot decode WebP (" + statusText(status) + ")");
    return out;
}

}  // namespace tessera::image_detail
