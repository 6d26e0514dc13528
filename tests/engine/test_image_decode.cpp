// Image decoding: every format and pixel layout against what PIL's convert("RGB") gives (the
// fixtures' .expected.png files, made by tests/data/images/make_fixtures.py), EXIF orientation,
// and every way a file can be bad.
#include "core/error.h"
#include "core/json_util.h"
#include "image/codecs.h"
#include "image/image.h"

#include "golden.h"

#include <QCryptographicHash>
#include <QTemporaryDir>
#include <QtTest>

#include <fstream>
#include <random>

using tessera::Error;
using tessera::ImageDecodeOptions;
using tessera::ImageFormat;
using tessera::RgbImage;

namespace {

std::filesystem::path fixture(const std::string& name)
{
    return tessera::test::sourceDir() / "tests" / "data" / "images" / name;
}

std::vector<std::uint8_t> readBytes(const std::filesystem::path& p)
{
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void writeBytes(const std::filesystem::path& p, std::span<const std::uint8_t> bytes)
{
    std::ofstream out(p, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::string errorOf(const std::function<void()>& fn)
{
    try {
        fn();
    } catch (const Error& e) {
        return e.what();
    }
    return {};
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// Expects a tessera::Error whose message contains every one of `parts`.
#define EXPECT_ERROR(expr, ...)                                                                    \
    do {                                                                                           \
        const std::string msg_ = errorOf([&] { (void)(expr); });                                   \
        QVERIFY2(!msg_.empty(), "expected a tessera::Error from " #expr);                          \
        for (const char* part_ : {__VA_ARGS__})                                                    \
            QVERIFY2(contains(msg_, part_), (std::string("message lacks \"") + part_ + "\": " + msg_).c_str()); \
    } while (0)

void comparePixels(const RgbImage& got, const RgbImage& want)
{
    QCOMPARE(got.width, want.width);
    QCOMPARE(got.height, want.height);
    QCOMPARE(got.pixels.size(), static_cast<std::size_t>(got.width) * got.height * 3);
    std::size_t differ = 0;
    for (std::size_t i = 0; i < got.pixels.size(); ++i)
        differ += got.pixels[i] != want.pixels[i];
    QVERIFY2(differ == 0, (std::to_string(differ) + " of " + std::to_string(got.pixels.size())
                           + " channel values differ from Pillow").c_str());
}

// A PNG of the given size with no image data: enough for the header checks.
std::vector<std::uint8_t> pngHeaderOnly(std::uint32_t w, std::uint32_t h)
{
    std::vector<std::uint8_t> b = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
    for (std::uint32_t v : {w, h})
        for (int s = 24; s >= 0; s -= 8)
            b.push_back(static_cast<std::uint8_t>(v >> s));
    for (std::uint8_t v : {8, 2, 0, 0, 0, 0, 0, 0, 0})  // 8-bit RGB, crc left zero
        b.push_back(v);
    const std::uint8_t iend[] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82};
    b.insert(b.end(), std::begin(iend), std::end(iend));
    return b;
}

}  // namespace

class TestImageDecode : public QObject {
    Q_OBJECT
private slots:
    void matchesPillow_data()
    {
        QTest::addColumn<QString>("file");
        for (const char* f :
             {"png_gray1.png", "png_gray4.png", "png_gray8.png", "png_gray16.png", "png_rgb16.png", "png_rgba8.png",
              "png_rgba16.png", "png_gray_alpha8.png", "png_gray_alpha16.png", "png_palette4_trns.png",
              "png_rgb8_trns.png", "png_interlaced.png", "jpeg_420.jpg", "jpeg_progressive.jpg", "jpeg_gray.jpg",
              "jpeg_cmyk.jpg", "webp_lossy.webp", "webp_lossy_alpha.webp", "webp_lossless_alpha.webp",
              "bmp_rgb24.bmp", "gif_palette.gif", "orient6.jpg", "webp_orient8.webp"})
            QTest::newRow(f) << QString(f);
    }
    void matchesPillow()
    {
        QFETCH(QString, file);
        const std::string name = file.toStdString();
        const std::string expected = name.substr(0, name.rfind('.')) + ".expected.png";
        comparePixels(tessera::decodeImageFile(fixture(name)), tessera::decodeImageFile(fixture(expected)));
    }

    void gifTransparentPixelsAreBlack()
    {
        // Known difference: stb_image leaves the transparent index of the first GIF frame black where
        // PIL's convert("RGB") shows that index's palette colour. Every other pixel is identical.
        const RgbImage got = tessera::decodeImageFile(fixture("gif_transparent.gif"));
        const RgbImage want = tessera::decodeImageFile(fixture("gif_transparent.expected.png"));
        QCOMPARE(got.width, want.width);
        QCOMPARE(got.height, want.height);
        int transparent = 0;
        for (std::size_t i = 0; i < got.pixels.size(); i += 3) {
            const bool isIndex0 = want.pixels[i] == 250 && want.pixels[i + 1] == 10 && want.pixels[i + 2] == 10;
            if (isIndex0) {
                ++transparent;
                QCOMPARE(int(got.pixels[i]) + got.pixels[i + 1] + got.pixels[i + 2], 0);
            } else {
                QCOMPARE(got.pixels[i], want.pixels[i]);
                QCOMPARE(got.pixels[i + 1], want.pixels[i + 1]);
                QCOMPARE(got.pixels[i + 2], want.pixels[i + 2]);
            }
        }
        QVERIFY(transparent > 0);
    }

    void formatIsReadFromContentNotName()
    {
        QCOMPARE(tessera::detectImageFormat(readBytes(fixture("jpeg_named.png"))), ImageFormat::Jpeg);
        comparePixels(tessera::decodeImageFile(fixture("jpeg_named.png")),
                      tessera::decodeImageFile(fixture("jpeg_420.expected.png")));
        QCOMPARE(tessera::detectImageFormat(readBytes(fixture("webp_lossy.webp"))), ImageFormat::WebP);
        QCOMPARE(tessera::detectImageFormat(readBytes(fixture("gif_palette.gif"))), ImageFormat::Gif);
        QCOMPARE(tessera::detectImageFormat(readBytes(fixture("bmp_rgb24.bmp"))), ImageFormat::Bmp);
        QCOMPARE(tessera::detectImageFormat(readBytes(fixture("png_gray8.png"))), ImageFormat::Png);
    }

    void probeReadsHeaderOnly()
    {
        const auto bytes = readBytes(fixture("orient6.jpg"));
        const tessera::ImageInfo info = tessera::probeImageBytes(bytes, "orient6.jpg");
        QCOMPARE(info.format, ImageFormat::Jpeg);
        QCOMPARE(info.width, 16);
        QCOMPARE(info.height, 8);
        QCOMPARE(info.exifOrientation, 6);
    }

    void exifOrientationAllEight_data()
    {
        QTest::addColumn<int>("orientation");
        for (int n = 1; n <= 8; ++n)
            QTest::newRow(std::to_string(n).c_str()) << n;
    }
    void exifOrientationAllEight()
    {
        // orient_N.png stores the upright image transformed so that orientation N restores it.
        QFETCH(int, orientation);
        const auto file = fixture("orient_" + std::to_string(orientation) + ".png");
        QCOMPARE(tessera::probeImageBytes(readBytes(file), file.string()).exifOrientation, orientation);
        comparePixels(tessera::decodeImageFile(file), tessera::decodeImageFile(fixture("orient_upright.png")));

        ImageDecodeOptions upstream;
        upstream.applyExifOrientation = false;
        const RgbImage raw = tessera::decodeImageFile(file, upstream);
        QCOMPARE(raw.width, orientation >= 5 ? 4 : 7);
        comparePixels(tessera::applyExifOrientation(raw, orientation),
                      tessera::decodeImageFile(fixture("orient_upright.png")));
    }

    void jpegOrientation6TurnsUpright()
    {
        const RgbImage upright = tessera::decodeImageFile(fixture("orient6.jpg"));
        QCOMPARE(upright.width, 8);
        QCOMPARE(upright.height, 16);
        // Stored top-left is green; once turned 90° clockwise it is at the top right.
        const std::uint8_t* topRight = &upright.pixels[(0 * 8 + 7) * 3];
        QVERIFY(topRight[1] > 150 && topRight[0] < 80);

        ImageDecodeOptions upstream;
        upstream.applyExifOrientation = false;
        const RgbImage stored = tessera::decodeImageFile(fixture("orient6.jpg"), upstream);
        QCOMPARE(stored.width, 16);
        QCOMPARE(stored.height, 8);
        QVERIFY(stored.pixels[1] > 150 && stored.pixels[0] < 80);
    }

    void hostileExifIsIgnored()
    {
        using tessera::image_detail::tiffOrientation;
        auto tiff = [](std::initializer_list<int> v) {
            std::vector<std::uint8_t> b;
            for (int x : v)
                b.push_back(static_cast<std::uint8_t>(x));
            return b;
        };
        // A good little-endian IFD with orientation 6, then variations that must not be trusted.
        auto good = tiff({'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0});
        QCOMPARE(tiffOrientation(good), 6);
        auto bigEndian = tiff({'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 8, 0, 0});
        QCOMPARE(tiffOrientation(bigEndian), 8);
        auto farOffset = good;
        farOffset[4] = 0xF0;
        farOffset[7] = 0xFF;  // IFD0 at ~4 GiB
        QCOMPARE(tiffOrientation(farOffset), 1);
        auto manyEntries = good;
        manyEntries[8] = 0xFF;
        manyEntries[9] = 0xFF;  // 65535 entries in a 26-byte block
        manyEntries[10] = 0;    // first entry is no longer the orientation
        QCOMPARE(tiffOrientation(manyEntries), 1);
        auto cut = std::vector<std::uint8_t>(good.begin(), good.begin() + 15);
        QCOMPARE(tiffOrientation(cut), 1);
        auto badValue = good;
        badValue[18] = 9;
        QCOMPARE(tiffOrientation(badValue), 1);
        QCOMPARE(tiffOrientation({}), 1);

        // A JPEG whose APP1 length runs past the end of the file still decodes, unrotated.
        auto jpeg = readBytes(fixture("orient6.jpg"));
        const auto layout = tessera::image_detail::scanJpeg(jpeg, false);
        QVERIFY(!layout.exifTiff.empty());
        const std::size_t app1 = static_cast<std::size_t>(layout.exifTiff.data() - jpeg.data()) - 6 - 2;
        jpeg[app1] = 0xFF;
        jpeg[app1 + 1] = 0xFF;
        QCOMPARE(tessera::probeImageBytes(jpeg, "hostile.jpg").exifOrientation, 1);
    }

    void rejectsNonImages()
    {
        const std::string text = "Hello, this is a text file, not an image.\n";
        EXPECT_ERROR(tessera::decodeImageBytes({reinterpret_cast<const std::uint8_t*>(text.data()), text.size()},
                                               "notes.png"),
                     "notes.png", "not an image");
        std::vector<std::uint8_t> noise(4096);
        std::mt19937 rng(7);
        for (auto& b : noise)
            b = static_cast<std::uint8_t>(rng());
        noise[0] = 0x12;  // not a signature by accident
        EXPECT_ERROR(tessera::decodeImageBytes(noise, "noise.jpg"), "noise.jpg", "not an image");
        const std::uint8_t tiff[] = {'I', 'I', 42, 0, 8, 0, 0, 0, 0, 0};
        EXPECT_ERROR(tessera::decodeImageBytes(tiff, "scan.tif"), "scan.tif", "TIFF", "not supported");
        // Signatures followed by garbage.
        std::vector<std::uint8_t> fakeJpeg = {0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 1, 2, 3, 4, 5};
        EXPECT_ERROR(tessera::decodeImageBytes(fakeJpeg, "fake.jpg"), "fake.jpg", "JPEG");
        std::vector<std::uint8_t> fakeWebp = {'R', 'I', 'F', 'F', 4, 0, 0, 0, 'W', 'E', 'B', 'P', 'V', 'P', '8', ' '};
        EXPECT_ERROR(tessera::decodeImageBytes(fakeWebp, "fake.webp"), "fake.webp", "WebP");
    }

    void rejectsTruncatedFiles_data()
    {
        QTest::addColumn<QString>("file");
        for (const char* f : {"jpeg_420.jpg", "jpeg_progressive.jpg", "png_rgb16.png", "png_interlaced.png",
                              "webp_lossy_alpha.webp", "webp_lossless_alpha.webp", "gif_palette.gif", "bmp_rgb24.bmp"})
            QTest::newRow(f) << QString(f);
    }
    void rejectsTruncatedFiles()
    {
        QFETCH(QString, file);
        auto bytes = readBytes(fixture(file.toStdString()));
        QVERIFY(bytes.size() > 100);
        bytes.resize(bytes.size() / 2);
        EXPECT_ERROR(tessera::decodeImageBytes(bytes, "half." + file.toStdString()), "half.");
    }

    void jpegTruncationFollowsPillow()
    {
        const RgbImage full = tessera::decodeImageFile(fixture("jpeg_420.jpg"));
        auto baseline = readBytes(fixture("jpeg_420.jpg"));
        // Only the end marker missing: every pixel is there, so we decode it (Pillow does too for
        // larger files such as multi_image_2.jpeg; for tiny ones its buffering makes it raise).
        auto noEoi = std::vector<std::uint8_t>(baseline.begin(), baseline.end() - 2);
        comparePixels(tessera::decodeImageBytes(noEoi, "no_eoi.jpg"), full);
        // One byte of scan data missing: Pillow raises "image file is truncated".
        auto shortScan = std::vector<std::uint8_t>(baseline.begin(), baseline.end() - 3);
        EXPECT_ERROR(tessera::decodeImageBytes(shortScan, "short.jpg"), "short.jpg", "truncated");
        auto half = std::vector<std::uint8_t>(baseline.begin(), baseline.begin() + baseline.size() / 2);
        EXPECT_ERROR(tessera::decodeImageBytes(half, "half.jpg"), "half.jpg", "truncated");
        // Progressive without EOI: later scans may be missing; Pillow raises, so do we.
        auto progressive = readBytes(fixture("jpeg_progressive.jpg"));
        progressive.resize(progressive.size() - 2);
        EXPECT_ERROR(tessera::decodeImageBytes(progressive, "prog.jpg"), "prog.jpg", "truncated");
        // Trailing bytes after EOI are ignored.
        baseline.insert(baseline.end(), {'t', 'a', 'i', 'l'});
        comparePixels(tessera::decodeImageBytes(baseline, "tail.jpg"), full);
    }

    void enforcesPixelLimitBeforeDecoding()
    {
        // 100000 x 100000 claimed by a 45-byte file: refused from the header, nothing allocated.
        const auto bomb = pngHeaderOnly(100000, 100000);
        EXPECT_ERROR(tessera::decodeImageBytes(bomb, "bomb.png"), "bomb.png", "100000x100000", "over the limit");
        const tessera::ImageInfo info = tessera::probeImageBytes(bomb, "bomb.png");
        QCOMPARE(info.width, 100000);

        ImageDecodeOptions small;
        small.maxPixels = 100;
        EXPECT_ERROR(tessera::decodeImageFile(fixture("jpeg_420.jpg"), small), "jpeg_420.jpg", "32x24",
                     "over the limit of 100 pixels");
        EXPECT_ERROR(tessera::decodeImageFile(fixture("webp_lossy.webp"), small), "over the limit");
        EXPECT_ERROR(tessera::decodeImageFile(fixture("gif_palette.gif"), small), "over the limit");
        small.maxPixels = 32 * 24;
        QCOMPARE(tessera::decodeImageFile(fixture("jpeg_420.jpg"), small).width, 32);
    }

    void refusesZlibBomb()
    {
        // 1x1 pixels, 4 MiB of inflated data in a 4 KiB file: refused before the memory is taken.
        EXPECT_ERROR(tessera::decodeImageFile(fixture("png_zlib_bomb.png")), "png_zlib_bomb.png", "decompression bomb");
    }

    void rejectsZeroSize()
    {
        EXPECT_ERROR(tessera::decodeImageBytes(pngHeaderOnly(0, 10), "zero.png"), "zero.png", "zero size");
        EXPECT_ERROR(tessera::decodeImageBytes(pngHeaderOnly(10, 0), "zero.png"), "zero.png", "zero size");
        // A JPEG frame header with height 0.
        auto jpeg = readBytes(fixture("jpeg_420.jpg"));
        for (std::size_t i = 2; i + 9 < jpeg.size(); ++i) {
            if (jpeg[i] == 0xFF && jpeg[i + 1] == 0xC0) {
                jpeg[i + 5] = 0;
                jpeg[i + 6] = 0;
                break;
            }
        }
        EXPECT_ERROR(tessera::decodeImageBytes(jpeg, "zero.jpg"), "zero.jpg");
    }

    void rejectsBadFiles()
    {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const std::filesystem::path root = dir.path().toStdString();

        const auto empty = root / "empty.png";
        writeBytes(empty, {});
        EXPECT_ERROR(tessera::decodeImageFile(empty), "empty.png", "empty");
        EXPECT_ERROR(tessera::decodeImageBytes({}, "empty bytes"), "empty bytes", "empty");

        const std::string rootName = root.string();
        EXPECT_ERROR(tessera::decodeImageFile(root), rootName.c_str(), "directory");
        EXPECT_ERROR(tessera::decodeImageFile(root / "missing.jpg"), "missing.jpg", "no such file");

        ImageDecodeOptions tiny;
        tiny.maxFileBytes = 100;
        EXPECT_ERROR(tessera::decodeImageFile(fixture("jpeg_420.jpg"), tiny), "jpeg_420.jpg", "over the limit of 100 bytes");
        const auto bytes = readBytes(fixture("jpeg_420.jpg"));
        EXPECT_ERROR(tessera::decodeImageBytes(bytes, "mem.jpg", tiny), "mem.jpg", "over the limit of 100 bytes");
    }

    void goldenImagesDecodeLikePillow_data()
    {
        QTest::addColumn<QString>("file");
        for (const char* f : {"visual_grounding_1.jpeg", "multi_image_1.jpeg", "multi_image_2.jpeg",
                              "multi_image_3.jpeg", "vqa_1.jpg", "synthetic_2000x100.png", "synthetic_10x10.png",
                              "synthetic_rgba_600x360.png"})
            QTest::newRow(f) << QString(f);
    }
    void goldenImagesDecodeLikePillow()
    {
        TESSERA_REQUIRE_GOLDEN();
        QFETCH(QString, file);
        const auto dir = tessera::test::goldenDir();
        // The case JSONs record size, mean and sha256 of Pillow's decode of each image.
        nlohmann::json record;
        for (const auto& entry : std::filesystem::directory_iterator(dir / "cases" / "mini-mha")) {
            if (entry.path().extension() != ".json")
                continue;
            const auto j = tessera::parseJsonFile(entry.path());
            for (const auto& img : j.value("images", nlohmann::json::array()))
                if (img.value("file", "") == file.toStdString())
                    record = img;
        }
        QVERIFY2(!record.is_null(), "no case JSON describes this image");

        const RgbImage img = tessera::decodeImageFile(dir / "images" / file.toStdString());
        QCOMPARE(img.width, record["size_wh"][0].get<int>());
        QCOMPARE(img.height, record["size_wh"][1].get<int>());
        const QByteArray sha = QCryptographicHash::hash(
            QByteArrayView(reinterpret_cast<const char*>(img.pixels.data()), static_cast<qsizetype>(img.pixels.size())),
            QCryptographicHash::Sha256).toHex();
        QCOMPARE(sha.toStdString(), record["decoded_rgb_sha256"].get<std::string>());
        double sum[3] = {0, 0, 0};
        for (std::size_t i = 0; i < img.pixels.size(); i += 3)
            for (int c = 0; c < 3; ++c)
                sum[c] += img.pixels[i + c];
        const double n = static_cast<double>(img.pixels.size() / 3);
        for (int c = 0; c < 3; ++c)
            QVERIFY(std::abs(sum[c] / n - record["decoded_rgb_mean"][c].get<double>()) < 1e-6);
    }
};

QTEST_GUILESS_MAIN(TestImageDecode)
#include "test_image_decode.moc"
