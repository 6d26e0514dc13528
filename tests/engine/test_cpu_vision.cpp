#include "backend/cpu/cpu_vision.h"
#include "core/error.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "model/weight_map.h"

#include "golden.h"

#include <QtTest>

#include <cmath>
#include <cstring>

using namespace tessera;
using namespace tessera::cpu;

namespace {

// The golden README's acceptance for vision_out and projector_out.
constexpr double kAtol = 1e-4;
constexpr double kRtol = 1e-4;

struct Comparison {
    double maxAbsErr = 0;
    double maxAbsRef = 0;
    std::size_t worst = 0;  // index of the largest error relative to the tolerance
    double worstRatio = 0;  // |err| / (atol + rtol·|ref|); ≤ 1 passes
};

Comparison compare(const float* port, const std::vector<float>& ref)
{
    Comparison c;
    for (std::size_t i = 0; i < ref.size(); ++i) {
        const double err = std::abs(double(port[i]) - ref[i]);
        const double ratio = std::isfinite(err) ? err / (kAtol + kRtol * std::abs(ref[i])) : INFINITY;
        c.maxAbsErr = std::max(c.maxAbsErr, err);
        c.maxAbsRef = std::max(c.maxAbsRef, double(std::abs(ref[i])));
        if (!(ratio <= c.worstRatio)) {
            c.worstRatio = ratio;
            c.worst = i;
        }
    }
    return c;
}

QString describe(const char* tensor, const Comparison& c, const float* port, const std::vector<float>& ref)
{
    return QString("%1: max |err| %2 (max |ref| %3); worst at %4: port %5 ref %6")
        .arg(tensor)
        .arg(c.maxAbsErr, 0, 'g', 3)
        .arg(c.maxAbsRef, 0, 'g', 3)
        .arg(qulonglong(c.worst))
        .arg(double(port[c.worst]), 0, 'g', 9)
        .arg(double(ref[c.worst]), 0, 'g', 9);
}

// One golden model, opened once per test function.
struct GoldenModel {
    ModelConfig config;
    ProcessorConfig processor;
    TensorStore store;
    std::unique_ptr<WeightMap> weights;

    explicit GoldenModel(const std::string& name)
    {
        const auto dir = test::goldenModel(name);
        config = loadModelConfig(dir / "config.json");
        processor = loadProcessorConfig(dir / "processor_config.json");
        store = TensorStore::openFolder(dir);
        weights = std::make_unique<WeightMap>(config, store);
    }
};

const TensorView& tensor(const SafetensorsFile& f, const char* name)
{
    const TensorView* t = f.find(name);
    if (!t)
        throw Error(f.path().string() + ": no tensor " + name);
    return *t;
}

}  // namespace

class TestCpuVision : public QObject {
    Q_OBJECT
private slots:
    void goldenCases_data()
    {
        QTest::addColumn<QString>("model");
        QTest::addColumn<QString>("caseName");
        for (const char* model : {"mini-mha", "mini-mla"})
            for (const char* c : {"b_grounding", "c_two_images", "d_three_images", "e_multiturn_system", "f1_odd_sizes",
                                  "f2_rgba"})
                QTest::addRow("%s %s", model, c) << QString(model) << QString(c);
    }

    // Every tile of every case with images, through encode and project, against the oracle.
    void goldenCases()
    {
        TESSERA_REQUIRE_GOLDEN();
        QFETCH(QString, model);
        QFETCH(QString, caseName);
        GoldenModel m(model.toStdString());
        const CpuVisionEncoder enc(m.config, *m.weights, m.processor.imageMean, m.processor.imageStd);
        const int W = m.config.vision.width;
        const int H = m.config.projector.nEmbed;
        QCOMPARE(enc.featuresPerTile(), 729);
        QCOMPARE(enc.tokensPerTile(), 196);
        QCOMPARE(enc.visionWidth(), W);
        QCOMPARE(enc.projectorWidth(), H);

        const auto golden = test::goldenDir() / "cases";
        const SafetensorsFile tilesFile(golden / "tiles" / (caseName.toStdString() + ".safetensors"));
        const SafetensorsFile refFile(golden / model.toStdString() / (caseName.toStdString() + ".safetensors"));
        const TensorView& tiles = tensor(tilesFile, "tiles");
        QCOMPARE(tiles.dtype, DType::U8);
        QCOMPARE(tiles.shape.size(), std::size_t(4));
        const int n = int(tiles.shape[0]);
        QCOMPARE(tiles.shape[1], std::int64_t(384));
        QCOMPARE(tiles.shape[2], std::int64_t(384));
        QCOMPARE(tiles.shape[3], std::int64_t(3));
        const std::vector<float> visionRef = tensor(refFile, "vision_out").toFloat();
        const std::vector<float> projectorRef = tensor(refFile, "projector_out").toFloat();
        QCOMPARE(visionRef.size(), std::size_t(n) * 729 * W);
        QCOMPARE(projectorRef.size(), std::size_t(n) * 196 * H);

        // The mapped tile bytes carry no alignment promise; the encoder reads bytes only.
        std::vector<float> vision(visionRef.size()), projected(projectorRef.size()), fromRef(projectorRef.size());
        enc.encode(tiles.data, n, vision.data());
        enc.project(vision.data(), n, projected.data());
        enc.project(visionRef.data(), n, fromRef.data());  // the projector alone, on the oracle's input

        const Comparison v = compare(vision.data(), visionRef);
        const Comparison p = compare(projected.data(), projectorRef);
        const Comparison pr = compare(fromRef.data(), projectorRef);
        qInfo("%s %s (%d tiles): vision_out max|err| %.3g (max|ref| %.3g), projector_out max|err| %.3g (max|ref| "
              "%.3g), projector alone %.3g",
              qPrintable(model), qPrintable(caseName), n, v.maxAbsErr, v.maxAbsRef, p.maxAbsErr, p.maxAbsRef,
              pr.maxAbsErr);
        QVERIFY2(v.worstRatio <= 1, qPrintable(describe("vision_out", v, vision.data(), visionRef)));
        QVERIFY2(p.worstRatio <= 1, qPrintable(describe("projector_out", p, projected.data(), projectorRef)));
        QVERIFY2(pr.worstRatio <= 1, qPrintable(describe("projector_out from vision_out", pr, fromRef.data(), projectorRef)));

        // A tile encoded alone gives what it gives inside a batch (batching is only for speed).
        const std::size_t tileBytes = std::size_t(384) * 384 * 3;
        const std::size_t tileOut = std::size_t(729) * W;
        std::vector<float> single(tileOut);
        enc.encode(tiles.data + (n - 1) * tileBytes, 1, single.data());
        double diff = 0;
        for (std::size_t i = 0; i < tileOut; ++i)
            diff = std::max(diff, double(std::abs(single[i] - vision[(n - 1) * tileOut + i])));
        QVERIFY2(diff < 1e-5, qPrintable(QString("last tile alone differs from the batch by %1").arg(diff)));
    }

    void emptyInputIsANoOp()
    {
        TESSERA_REQUIRE_GOLDEN();
        GoldenModel m("mini-mha");
        const CpuVisionEncoder enc(m.config, *m.weights);
        float sentinel = 42.f;
        enc.encode(nullptr, 0, &sentinel);
        enc.project(nullptr, 0, &sentinel);
        QCOMPARE(sentinel, 42.f);
        QVERIFY_THROWS_EXCEPTION(Error, enc.encode(nullptr, 1, &sentinel));
    }

    void badSettingsAreRefused()
    {
        TESSERA_REQUIRE_GOLDEN();
        GoldenModel m("mini-mla");
        QVERIFY_THROWS_EXCEPTION(Error, CpuVisionEncoder(m.config, *m.weights, {0.5f, 0.5f, 0.5f}, {0.5f, 0.f, 0.5f}));
        // Weights of one model under the other's config: the weight map refuses them first.
        const auto mha = loadModelConfig(test::goldenModel("mini-mha") / "config.json");
        QVERIFY_THROWS_EXCEPTION(Error, WeightMap(mha, m.store));
    }
};

QTEST_GUILESS_MAIN(TestCpuVision)
#include "test_cpu_vision.moc"
