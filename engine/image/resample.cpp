// Bicubic resampling with Pillow's exact arithmetic: a separable filter (a = -0.5) whose support
// widens with the downscale factor (antialiasing), weights normalised in double then rounded to
// 22-bit fixed point, int32 accumulation with a half-unit bias, clipped to 0..255. Horizontal pass
// first (only over the rows the vertical pass will read), then vertical; a pass whose size does not
// change is skipped. Integer sums are exact, so the loop order below is free to differ from Pillow's.
#include "core/error.h"
#include "image/tiling.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <string>
#include <thread>

namespace tessera {

namespace {

// 32 bits minus 8 for the pixel value minus 2 of headroom for negative lobes and rounding.
constexpr int kPrecisionBits = 32 - 8 - 2;
constexpr double kBicubicSupport = 2.0;

double bicubicKernel(double x)
{
    // Keep Pillow's evaluation order: the fixed-point weights are rounded from these doubles.
    constexpr double a = -0.5;
    if (x < 0.0)
        x = -x;
    if (x < 1.0)
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0)
        return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

// Per output sample: the first input index, how many inputs it reads, and their weights.
struct FilterBank {
    int taps = 0;  // stride of `weights`
    std::vector<int> first;
    std::vector<int> count;
    std::vector<std::int32_t> weights;
};

FilterBank makeFilterBank(int inSize, int outSize)
{
    const double scale = static_cast<double>(inSize) / outSize;
    const double filterScale = std::max(scale, 1.0);
    const double support = kBicubicSupport * filterScale;
    FilterBank bank;
    bank.taps = static_cast<int>(std::ceil(support)) * 2 + 1;
    bank.first.resize(outSize);
    bank.count.resize(outSize);
    bank.weights.assign(static_cast<std::size_t>(outSize) * bank.taps, 0);
    std::vector<double> w(bank.taps);
    const double invFilterScale = 1.0 / filterScale;
    for (int xx = 0; xx < outSize; ++xx) {
        const double center = (xx + 0.5) * scale;
        // Truncation toward zero, then clamping, as Pillow does.
        int xmin = static_cast<int>(center - support + 0.5);
        if (xmin < 0)
            xmin = 0;
        int xmax = static_cast<int>(center + support + 0.5);
        if (xmax > inSize)
            xmax = inSize;
        const int n = std::min(xmax - xmin, bank.taps);
        double total = 0.0;
        for (int x = 0; x < n; ++x) {
            w[x] = bicubicKernel((x + xmin - center + 0.5) * invFilterScale);
            total += w[x];
        }
        std::int32_t* k = &bank.weights[static_cast<std::size_t>(xx) * bank.taps];
        for (int x = 0; x < n; ++x) {
            const double v = total != 0.0 ? w[x] / total : w[x];
            // Round half away from zero via the truncating cast, like Pillow.
            k[x] = v < 0 ? static_cast<std::int32_t>(-0.5 + v * (1 << kPrecisionBits))
                         : static_cast<std::int32_t>(0.5 + v * (1 << kPrecisionBits));
        }
        bank.first[xx] = xmin;
        bank.count[xx] = std::max(n, 0);
    }
    return bank;
}

inline std::uint8_t clip8(std::int32_t v)
{
    v >>= kPrecisionBits;  // arithmetic shift: negative sums clip to 0
    return static_cast<std::uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

constexpr std::int32_t kHalf = 1 << (kPrecisionBits - 1);

// Splits [0, n) over a few threads; each part does enough work to pay for a thread. An exception in
// any part (an allocation, say) is rethrown here once every thread has finished.
template <class Fn>
void parallelRanges(int n, std::int64_t workPerItem, Fn&& fn)
{
    constexpr std::int64_t kMinWorkPerThread = 2'000'000;
    const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
    const std::int64_t byWork = std::max<std::int64_t>(1, static_cast<std::int64_t>(n) * workPerItem / kMinWorkPerThread);
    const int parts = static_cast<int>(std::min<std::int64_t>({std::min<std::int64_t>(hw, 16), byWork, n}));
    if (parts <= 1) {
        fn(0, n);
        return;
    }
    const int chunk = (n + parts - 1) / parts;
    std::vector<std::exception_ptr> errors(parts);
    auto runPart = [&](int p) {
        try {
            fn(p * chunk, std::min(n, (p + 1) * chunk));
        } catch (...) {
            errors[p] = std::current_exception();
        }
    };
    std::vector<std::thread> threads;
    threads.reserve(parts - 1);
    try {
        for (int p = 1; p < parts && p * chunk < n; ++p)
            threads.emplace_back(runPart, p);
    } catch (...) {
        errors[0] = std::current_exception();  // could not start a thread: finish what started, then report
    }
    if (!errors[0])
        runPart(0);
    for (auto& t : threads)
        t.join();
    for (const auto& e : errors)
        if (e)
            std::rethrow_exception(e);
}

// Hot loops get an AVX2 clone picked at load time (32-bit multiplies are slow to emulate on SSE2).
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define TESSERA_SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define TESSERA_SIMD_CLONES
#endif

// The horizontal pass works on strips of 16 rows stored column by column ([x][row][channel]), so
// every filter tap is one contiguous 48-byte multiply-add, like the vertical pass.
constexpr int kStripRows = 16;
constexpr int kStripLanes = kStripRows * 3;

TESSERA_SIMD_CLONES
void filterStrip(const std::uint8_t* strip, const int* first, const int* count, const std::int32_t* weights,
                 int taps, int outWidth, int rows, std::uint8_t* out, std::size_t outStride)
{
    for (int x = 0; x < outWidth; ++x) {
        std::int32_t acc[kStripLanes];
        for (int j = 0; j < kStripLanes; ++j)
            acc[j] = kHalf;
        const std::int32_t* k = weights + static_cast<std::size_t>(x) * taps;
        const std::uint8_t* s = strip + static_cast<std::size_t>(first[x]) * kStripLanes;
        for (int i = 0; i < count[x]; ++i, s += kStripLanes) {
            const std::int32_t w = k[i];
            for (int j = 0; j < kStripLanes; ++j)
                acc[j] += s[j] * w;
        }
        for (int r = 0; r < rows; ++r)
            for (int c = 0; c < 3; ++c)
                out[r * outStride + static_cast<std::size_t>(x) * 3 + c] = clip8(acc[r * 3 + c]);
    }
}

TESSERA_SIMD_CLONES
void filterRows(const std::uint8_t* src, std::size_t stride, const std::int32_t* k, int n, std::int32_t* acc,
                std::uint8_t* out)
{
    for (std::size_t j = 0; j < stride; ++j)
        acc[j] = kHalf;
    for (int i = 0; i < n; ++i) {
        const std::uint8_t* row = src + i * stride;
        const std::int32_t w = k[i];
        for (std::size_t j = 0; j < stride; ++j)
            acc[j] += row[j] * w;
    }
    for (std::size_t j = 0; j < stride; ++j)
        out[j] = clip8(acc[j]);
}

// Rows [rowBegin, rowBegin + rows) of src, resampled horizontally to outWidth.
void horizontalPass(const RgbImage& src, int rowBegin, int rows, int outWidth, const FilterBank& bank,
                    std::uint8_t* out, std::size_t outStride)
{
    const std::size_t inStride = static_cast<std::size_t>(src.width) * 3;
    const int strips = (rows + kStripRows - 1) / kStripRows;
    parallelRanges(strips, static_cast<std::int64_t>(outWidth) * bank.taps * kStripLanes, [&](int s0, int s1) {
        std::vector<std::uint8_t> strip(static_cast<std::size_t>(src.width) * kStripLanes, 0);
        for (int s = s0; s < s1; ++s) {
            const int r0 = s * kStripRows;
            const int n = std::min(kStripRows, rows - r0);
            for (int r = 0; r < n; ++r) {
                const std::uint8_t* in = src.pixels.data() + (rowBegin + r0 + r) * inStride;
                std::uint8_t* d = strip.data() + r * 3;
                for (int x = 0; x < src.width; ++x, in += 3, d += kStripLanes) {
                    d[0] = in[0];
                    d[1] = in[1];
                    d[2] = in[2];
                }
            }
            filterStrip(strip.data(), bank.first.data(), bank.count.data(), bank.weights.data(), bank.taps, outWidth,
                        n, out + r0 * outStride, outStride);
        }
    });
}

// src rows are relative to `rowOffset` (the first row the horizontal pass produced).
void verticalPass(const std::uint8_t* src, int width, int rowOffset, int outHeight, const FilterBank& bank,
                  std::uint8_t* out, std::size_t outStride)
{
    const std::size_t stride = static_cast<std::size_t>(width) * 3;
    parallelRanges(outHeight, static_cast<std::int64_t>(stride) * bank.taps, [&](int y0, int y1) {
        std::vector<std::int32_t> acc(stride);
        for (int y = y0; y < y1; ++y)
            filterRows(src + (bank.first[y] - rowOffset) * stride, stride,
                       &bank.weights[static_cast<std::size_t>(y) * bank.taps], bank.count[y], acc.data(),
                       out + y * outStride);
    });
}

}  // namespace

void resizeBicubicInto(const RgbImage& src, int width, int height, std::uint8_t* out, std::size_t outStride)
{
    if (src.empty() || src.pixels.size() != static_cast<std::size_t>(src.width) * src.height * 3)
        throw Error("resizeBicubic: the source image is empty or its pixel buffer does not match "
                    + std::to_string(src.width) + "x" + std::to_string(src.height));
    if (width <= 0 || height <= 0)
        throw Error("resizeBicubic: target size " + std::to_string(width) + "x" + std::to_string(height)
                    + " must be positive");
    if (outStride < static_cast<std::size_t>(width) * 3)
        throw Error("resizeBicubic: output row stride " + std::to_string(outStride) + " is shorter than a row");

    const bool horizontal = width != src.width;
    const bool vertical = height != src.height;
    const std::size_t rowBytes = static_cast<std::size_t>(width) * 3;
    if (!horizontal && !vertical) {  // PIL copies when the size does not change
        for (int y = 0; y < height; ++y)
            std::memcpy(out + y * outStride, src.pixels.data() + y * rowBytes, rowBytes);
        return;
    }
    if (!vertical) {
        horizontalPass(src, 0, src.height, width, makeFilterBank(src.width, width), out, outStride);
        return;
    }
    const FilterBank vbank = makeFilterBank(src.height, height);
    if (!horizontal) {
        verticalPass(src.pixels.data(), width, 0, height, vbank, out, outStride);
        return;
    }
    // Only the rows the vertical filter reads go through the horizontal pass.
    const int rowFirst = vbank.first.front();
    const int rowEnd = vbank.first.back() + vbank.count.back();
    std::vector<std::uint8_t> mid(rowBytes * (rowEnd - rowFirst));
    horizontalPass(src, rowFirst, rowEnd - rowFirst, width, makeFilterBank(src.width, width), mid.data(), rowBytes);
    verticalPass(mid.data(), width, rowFirst, height, vbank, out, outStride);
}

RgbImage resizeBicubic(const RgbImage& src, int width, int height)
{
    if (width <= 0 || height <= 0)
        throw Error("resizeBicubic: target size " + std::to_string(width) + "x" + std::to_string(height)
                    + " must be positive");
    RgbImage out;
    out.width = width;
    out.height = height;
    out.pixels.resize(static_cast<std::size_t>(width) * height * 3);
    resizeBicubicInto(src, width, height, out.pixels.data(), static_cast<std::size_t>(width) * 3);
    return out;
}

}  // namespace tessera
