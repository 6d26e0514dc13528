#include "backend/cpu/cpu_ops.h"

#include <QtTest>

#include <bit>
#include <cmath>
#include <random>

using namespace tessera;
using namespace tessera::cpu;

namespace {

std::uint16_t toBf16(float f)
{
    std::uint32_t u = std::bit_cast<std::uint32_t>(f);
    u += 0x7fff + ((u >> 16) & 1);  // round to nearest even
    return static_cast<std::uint16_t>(u >> 16);
}

}  // namespace

class TestCpuOps : public QObject {
    Q_OBJECT
private slots:
    void linearMatchesReference_data()
    {
        QTest::addColumn<int>("M");
        QTest::addColumn<int>("N");
        QTest::addColumn<int>("K");
        QTest::addColumn<int>("dtype");
        for (int dtype : {int(DType::BF16), int(DType::F32)})
            for (auto [m, n, k] : {std::tuple{1, 37, 67}, {3, 64, 64}, {4, 129, 200}, {5, 33, 17}, {70, 300, 131}})
                QTest::addRow("%s M%d N%d K%d", dtypeName(DType(dtype)), m, n, k) << m << n << k << dtype;
    }
    void linearMatchesReference()
    {
        QFETCH(int, M);
        QFETCH(int, N);
        QFETCH(int, K);
        QFETCH(int, dtype);
        std::mt19937 rng(M * 1000 + N + K);
        std::normal_distribution<float> dist;
        std::vector<float> x(static_cast<std::size_t>(M) * K), bias(N), wf(static_cast<std::size_t>(N) * K);
        for (auto& v : x)
            v = dist(rng);
        for (auto& v : bias)
            v = dist(rng);
        std::vector<std::uint8_t> bytes;
        if (DType(dtype) == DType::BF16) {
            bytes.resize(wf.size() * 2);
            for (std::size_t i = 0; i < wf.size(); ++i) {
                auto b = toBf16(dist(rng));
                wf[i] = std::bit_cast<float>(std::uint32_t(b) << 16);
                std::memcpy(bytes.data() + 2 * i, &b, 2);
            }
        } else {
            for (auto& v : wf)
                v = dist(rng);
            bytes.resize(wf.size() * 4);
            std::memcpy(bytes.data(), wf.data(), bytes.size());
        }
        WeightMatrix W{bytes.data(), DType(dtype), N, K};
        std::vector<float> y(static_cast<std::size_t>(M) * N);
        linear(x.data(), M, W, bias.data(), y.data());
        double maxErr = 0;
        for (int m = 0; m < M; ++m)
            for (int n = 0; n < N; ++n) {
                double ref = bias[n];
                for (int k = 0; k < K; ++k)
                    ref += double(x[m * K + k]) * wf[std::size_t(n) * K + k];
                maxErr = std::max(maxErr, std::abs(ref - y[std::size_t(m) * N + n]) / (1 + std::abs(ref)));
            }
        QVERIFY2(maxErr < 1e-5, qPrintable(QString::number(maxErr)));
    }
    void norms()
    {
        std::vector<float> x = {1, 2, 3, 4, -1, 0, 1, 2};
        std::vector<float> g = {1, 1, 1, 2}, b = {0, 0, 0, 1}, out(8);
        layerNorm(x.data(), 2, 4, g.data(), b.data(), 1e-6f, out.data());
        // row 0: mean 2.5, var 1.25
        QVERIFY(std::abs(out[0] - (-1.5f / std::sqrt(1.25f + 1e-6f))) < 1e-6);
        QVERIFY(std::abs(out[3] - (2 * 1.5f / std::sqrt(1.25f + 1e-6f) + 1)) < 1e-5);
        rmsNorm(x.data(), 2, 4, g.data(), 1e-6f, out.data());
        const float inv = 1.f / std::sqrt((1 + 4 + 9 + 16) / 4.f + 1e-6f);
        QVERIFY(std::abs(out[1] - 2 * inv) < 1e-6);
        QVERIFY(std::abs(out[3] - 2 * 4 * inv) < 1e-5);
    }
    void activations()
    {
        std::vector<float> v = {-3, -0.5f, 0, 0.5f, 3};
        auto t = v, e = v;
        geluTanh(t.data(), t.size());
        geluErf(e.data(), e.size());
        for (std::size_t i = 0; i < v.size(); ++i) {
            const double x = v[i];
            QVERIFY(std::abs(e[i] - 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)))) < 1e-6);
            QVERIFY(std::abs(t[i] - 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)))) < 1e-6);
        }
        std::vector<float> s = {1, 2, 3, 1000, 1000, 1000};
        softmaxRows(s.data(), 2, 3);
        QVERIFY(std::abs(s[2] - std::exp(3.0) / (std::exp(1.0) + std::exp(2.0) + std::exp(3.0))) < 1e-6);
        QVERIFY(std::abs(s[0] + s[1] + s[2] - 1) < 1e-6);
        QVERIFY(std::abs(s[4] - 1 / 3.f) < 1e-6);
    }
};

QTEST_GUILESS_MAIN(TestCpuOps)
#include "test_cpu_ops.moc"
