// Image → tiles: select_best_resolution, PIL-exact bicubic resize and ImageOps.pad (fixtures made
// by tests/data/images/make_fixtures.py), and parity with the official processor's tiles for
// every golden case with images.
#include "core/error.h"
#include "core/json_util.h"
#include "image/tiling.h"
#include "model/safetensors.h"

#include "golden.h"

#include <QtTest>

#include <cstdlib>

using tessera::Error;
using tessera::ImageTiles;
using tessera::Resolution;
using tessera::RgbImage;

namespace {

std::filesystem::path fixture(const std::string& name)
{
    return tessera::test::sourceDir() / "tests" / "data" / "images" / name;
}

std::vector<Resolution> candidatesFromConfig(const std::filesystem::path& processorConfig)
{
    const auto j = tessera::parseJsonFile(processorConfig);
    std::vector<Resolution> out;
    for (const auto& pair : j.at("candidate_resolutions"))
        out.push_back({pair.at(0).get<int>(), pair.at(1).get<int>()});
    return out;
}

// The 23 candidates of every DeepSeek-VL2 processor_config.json.
std::vector<Resolution> standardCandidates()
{
    std::vector<Resolution> c;
    const int pairs[][2] = {{384, 384},  {384, 768},  {768, 384},  {384, 1152}, {1152, 384}, {384, 1536},
                            {1536, 384}, {768, 768},  {384, 1920}, {1920, 384}, {384, 2304}, {2304, 384},
                            {768, 1152}, {1152, 768}, {384, 2688}, {2688, 384}, {384, 3072}, {3072, 384},
                            {768, 1536}, {1536, 768}, {384, 3456}, {3456, 384}, {1152, 1152}};
    for (const auto& p : pairs)
        c.push_back({p[0], p[1]});
    return c;
}

void comparePixels(const RgbImage& got, const RgbImage& want)
{
    QCOMPARE(got.width, want.width);
    QCOMPARE(got.height, want.height);
    std::size_t differ = 0;
    for (std::size_t i = 0; i < got.pixels.size(); ++i)
        differ += got.pixels[i] != want.pixels[i];
    QVERIFY2(differ == 0, (std::to_string(differ) + " channel values differ from Pillow").c_str());
}

RgbImage solid(int w, int h, std::uint8_t v)
{
    RgbImage img;
    img.width = w;
    img.height = h;
    img.pixels.assign(static_cast<std::size_t>(w) * h * 3, v);
    return img;
}

}  // namespace

class TestTiling : public QObject {
    Q_OBJECT
private slots:
    void selectsBestResolution_data()
    {
        QTest::addColumn<int>("w");
        QTest::addColumn<int>("h");
        QTest::addColumn<int>("bestW");
        QTest::addColumn<int>("bestH");
        // The golden images' choices, then small and extreme shapes.
        QTest::newRow("724x1086") << 724 << 1086 << 768 << 1152;
        QTest::newRow("1024x701") << 1024 << 701 << 1152 << 768;
        QTest::newRow("450x308") << 450 << 308 << 768 << 384;
        QTest::newRow("5014x2004") << 5014 << 2004 << 1536 << 768;
        QTest::newRow("2000x100") << 2000 << 100 << 2304 << 384;
        QTest::newRow("600x360") << 600 << 360 << 768 << 384;
        QTest::newRow("10x10") << 10 << 10 << 384 << 384;            // every candidate keeps 100 px: least waste
        QTest::newRow("4000x4000") << 4000 << 4000 << 1152 << 1152;
        QTest::newRow("100x3000") << 100 << 3000 << 384 << 3072;  // 384x3456 keeps as much, wastes more
    }
    void selectsBestResolution()
    {
        QFETCH(int, w);
        QFETCH(int, h);
        QFETCH(int, bestW);
        QFETCH(int, bestH);
        const auto c = standardCandidates();
        const Resolution best = tessera::selectBestResolution(w, h, c);
        QCOMPARE(best.width, bestW);
        QCOMPARE(best.height, bestH);
    }

    void tiesKeepListOrder()
    {
        // Equal effective resolution and waste: the first listed wins.
        const std::vector<Resolution> c = {{768, 384}, {384, 768}};
        QCOMPARE(tessera::selectBestResolution(100, 100, c).width, 768);
        QVERIFY_THROWS_EXCEPTION(Error, tessera::selectBestResolution(100, 100, std::vector<Resolution>{}));
        QVERIFY_THROWS_EXCEPTION(Error, tessera::selectBestResolution(0, 100, c));
    }

    void resizeMatchesPillow_data()
    {
        QTest::addColumn<int>("w");
        QTest::addColumn<int>("h");
        // Up both ways, down both ways, one dimension only (each direction), mixed, to one pixel.
        for (auto [w, h] : {std::pair{64, 40}, {5, 3}, {29, 8}, {11, 17}, {29, 40}, {96, 5}, {1, 1}})
            QTest::newRow((std::to_string(w) + "x" + std::to_string(h)).c_str()) << w << h;
    }
    void resizeMatchesPillow()
    {
        QFETCH(int, w);
        QFETCH(int, h);
        const RgbImage src = tessera::decodeImageFile(fixture("resize_src.png"));
        const auto ref = fixture("resize_" + std::to_string(w) + "x" + std::to_string(h) + ".png");
        comparePixels(tessera::resizeBicubic(src, w, h), tessera::decodeImageFile(ref));
    }

    void padMatchesPillow_data()
    {
        QTest::addColumn<int>("w");
        QTest::addColumn<int>("h");
        for (auto [w, h] : {std::pair{48, 48}, {40, 16}, {12, 30}})
            QTest::newRow((std::to_string(w) + "x" + std::to_string(h)).c_str()) << w << h;
    }
    void padMatchesPillow()
    {
        QFETCH(int, w);
        QFETCH(int, h);
        const RgbImage src = tessera::decodeImageFile(fixture("resize_src.png"));
        const auto ref = fixture("pad_" + std::to_string(w) + "x" + std::to_string(h) + ".png");
        comparePixels(tessera::padToSize(src, w, h, tessera::kTilePadColor), tessera::decodeImageFile(ref));
    }

    void padPlacesWithBankersRounding()
    {
        // README trap 4: 2000x100 → global 384x19 at y = 182, local 2304x115 at y = 134.
        const RgbImage img = solid(2000, 100, 200);
        const RgbImage global = tessera::padToSize(img, 384, 384, {127, 127, 127});
        auto rowValue = [](const RgbImage& im, int y) { return im.pixels[static_cast<std::size_t>(y) * im.width * 3]; };
        QCOMPARE(rowValue(global, 181), std::uint8_t(127));
        QCOMPARE(rowValue(global, 182), std::uint8_t(200));
        QCOMPARE(rowValue(global, 200), std::uint8_t(200));
        QCOMPARE(rowValue(global, 201), std::uint8_t(127));
        const RgbImage local = tessera::padToSize(img, 2304, 384, {127, 127, 127});
        QCOMPARE(rowValue(local, 133), std::uint8_t(127));
        QCOMPARE(rowValue(local, 134), std::uint8_t(200));
        QCOMPARE(rowValue(local, 248), std::uint8_t(200));
        QCOMPARE(rowValue(local, 249), std::uint8_t(127));
        // Beyond Pillow: a 1-pixel sliver stays 1 pixel instead of failing.
        const RgbImage sliver = tessera::padToSize(solid(5000, 1, 9), 384, 384, {127, 127, 127});
        QCOMPARE(rowValue(sliver, 192), std::uint8_t(9));
        QCOMPARE(rowValue(sliver, 191), std::uint8_t(127));
    }

    void manyImagesGetOneView()
    {
        const RgbImage img = tessera::decodeImageFile(fixture("resize_src.png"));
        const auto c = standardCandidates();
        const ImageTiles t = tessera::makeTiles(img, c, false);
        QCOMPARE(t.widthTiles, 1);
        QCOMPARE(t.heightTiles, 1);
        QCOMPARE(t.count(), 2);
        QCOMPARE(t.pixels.size(), 2 * t.tileBytes());
        QVERIFY(std::equal(t.tile(0), t.tile(0) + t.tileBytes(), t.tile(1)));
        const std::vector<Resolution> odd = {{500, 384}};
        QVERIFY_THROWS_EXCEPTION(Error, tessera::makeTiles(img, odd, true));
    }

    void goldenTilesParity_data()
    {
        QTest::addColumn<QString>("caseName");
        for (const char* c : {"b_grounding", "c_two_images", "d_three_images", "e_multiturn_system", "f1_odd_sizes",
                              "f2_rgba"})
            QTest::newRow(c) << QString(c);
    }
    void goldenTilesParity()
    {
        TESSERA_REQUIRE_GOLDEN();
        QFETCH(QString, caseName);
        const auto dir = tessera::test::goldenDir();
        const std::string name = caseName.toStdString();
        const auto caseJson = tessera::parseJsonFile(dir / "cases" / "mini-mha" / (name + ".json"));
        const auto candidates = candidatesFromConfig(dir / "models" / "mini-mha" / "processor_config.json");
        const auto& images = caseJson.at("images");
        const bool dynamic = images.size() <= 2;  // upstream tiles only when the conversation has <= 2 images

        tessera::SafetensorsFile golden(dir / "cases" / "tiles" / (name + ".safetensors"));
        const tessera::TensorView* ref = golden.find("tiles");
        QVERIFY(ref);
        QCOMPARE(ref->dtype, tessera::DType::U8);
        QCOMPARE(ref->shape.size(), std::size_t(4));
        QCOMPARE(ref->shape[1], std::int64_t(384));
        QCOMPARE(ref->shape[3], std::int64_t(3));

        tessera::SafetensorsFile outputs(dir / "cases" / "mini-mha" / (name + ".safetensors"));
        const auto crop = outputs.find("images_spatial_crop")->toInt64();

        std::int64_t tileIndex = 0;
        std::size_t total = 0, identical = 0;
        int maxDiff = 0;
        for (std::size_t i = 0; i < images.size(); ++i) {
            const RgbImage img = tessera::decodeImageFile(dir / "images" / images[i].at("file").get<std::string>());
            const ImageTiles tiles = tessera::makeTiles(img, candidates, dynamic);
            QCOMPARE(std::int64_t(tiles.widthTiles), crop[2 * i]);
            QCOMPARE(std::int64_t(tiles.heightTiles), crop[2 * i + 1]);
            QCOMPARE(tiles.count(), images[i].at("tiles").get<int>());
            QVERIFY(tileIndex + tiles.count() <= ref->shape[0]);
            const std::uint8_t* want = ref->data + tileIndex * tiles.tileBytes();
            for (std::size_t k = 0; k < tiles.pixels.size(); ++k) {
                const int d = std::abs(int(tiles.pixels[k]) - int(want[k]));
                maxDiff = std::max(maxDiff, d);
                identical += d == 0;
            }
            total += tiles.pixels.size();
            tileIndex += tiles.count();
        }
        QCOMPARE(tileIndex, ref->shape[0]);
        const double percent = 100.0 * static_cast<double>(identical) / static_cast<double>(total);
        qInfo("%s: %lld tiles, max |diff| %d, %.4f%% of values identical", name.c_str(),
              static_cast<long long>(tileIndex), maxDiff, percent);
        QVERIFY(maxDiff <= 1);
        QVERIFY(percent >= 99.5);
    }
};

QTEST_GUILESS_MAIN(TestTiling)
#include "test_tiling.moc"
