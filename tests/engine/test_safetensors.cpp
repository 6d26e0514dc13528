#include "core/error.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "model/weight_map.h"

#include "golden.h"

#include <QTemporaryDir>
#include <QtTest>

#include <fstream>

using namespace tessera;

namespace {

// Writes 8-byte length + header text + raw data bytes, exactly as given (no validation).
void writeRaw(const std::filesystem::path& p, const std::string& header, const std::string& data,
              std::uint64_t lengthOverride = 0)
{
    std::ofstream out(p, std::ios::binary);
    std::uint64_t len = lengthOverride ? lengthOverride : header.size();
    out.write(reinterpret_cast<const char*>(&len), 8);
    out << header << data;
}

void expectError(const std::filesystem::path& p, const char* needle)
{
    try {
        SafetensorsFile f(p);
        QFAIL(qPrintable(QString("opened %1 without error; expected '%2'").arg(p.c_str(), needle)));
    } catch (const Error& e) {
        const std::string msg = e.what();
        if (msg.find(needle) == std::string::npos || msg.find(p.filename().string()) == std::string::npos)
            QFAIL(qPrintable(QString("error '%1' should name the file and mention '%2'").arg(msg.c_str(), needle)));
    }
}

void expectStoreError(const std::filesystem::path& dir, const char* needle)
{
    try {
        TensorStore::openFolder(dir);
        QFAIL(qPrintable(QString("opened %1 without error; expected '%2'").arg(dir.c_str(), needle)));
    } catch (const Error& e) {
        if (std::string(e.what()).find(needle) == std::string::npos)
            QFAIL(qPrintable(QString("error '%1' does not mention '%2'").arg(e.what(), needle)));
    }
}

std::vector<std::uint8_t> floats(std::initializer_list<float> v)
{
    std::vector<std::uint8_t> b(v.size() * 4);
    std::memcpy(b.data(), std::data(v), b.size());
    return b;
}

}  // namespace

class TestSafetensors : public QObject {
    Q_OBJECT
    QTemporaryDir tmp_;
    std::filesystem::path dir() const { return tmp_.path().toStdString(); }

private slots:
    void roundTrip()
    {
        auto a = floats({1.f, -2.f, 3.5f, 0.25f, 7.f, 8.f});
        std::vector<std::uint8_t> u8 = {1, 2, 3};
        std::vector<std::uint8_t> bf16 = {0x80, 0x3f, 0x00, 0xc0};  // 1.0, -2.0
        std::vector<std::uint8_t> f16 = {0x00, 0x3c, 0x01, 0x00};   // 1.0, smallest subnormal
        std::int64_t ids[2] = {-1, 129279};
        auto p = dir() / "rt.safetensors";
        writeSafetensors(p,
                         {{"a", DType::F32, {2, 3}, a},
                          {"u", DType::U8, {3}, u8},
                          {"b", DType::BF16, {2}, bf16},
                          {"h", DType::F16, {2}, f16},
                          {"i", DType::I64, {2}, {reinterpret_cast<std::uint8_t*>(ids), 16}}},
                         {{"format", "pt"}});
        SafetensorsFile f(p);
        QCOMPARE(f.tensors().size(), 5u);
        QCOMPARE(f.metadata().at("format"), std::string("pt"));
        const auto* t = f.find("a");
        QVERIFY(t);
        QCOMPARE(t->shapeString(), std::string("[2, 3]"));
        QCOMPARE(t->toFloat()[2], 3.5f);
        QCOMPARE(f.find("u")->toInt64()[2], 3);
        QCOMPARE(f.find("b")->toFloat()[0], 1.0f);
        QCOMPARE(f.find("b")->toFloat()[1], -2.0f);
        QCOMPARE(f.find("h")->toFloat()[0], 1.0f);
        QCOMPARE(f.find("h")->toFloat()[1], 5.9604644775390625e-08f);
        QCOMPARE(f.find("i")->toInt64()[1], 129279);
        QVERIFY(f.find("nope") == nullptr);
        QVERIFY_THROWS_EXCEPTION(Error, f.find("a")->toInt64());
    }
    void hostileFiles()
    {
        const std::string ok = R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
        const std::string data8(8, '\0');
        auto p = [&](const char* n) { return dir() / n; };

        { std::ofstream(p("short.safetensors")) << "abc"; }
        expectError(p("short.safetensors"), "shorter");
        { std::ofstream(p("empty.safetensors")); }
        expectError(p("empty.safetensors"), "shorter");
        writeRaw(p("huge.safetensors"), ok, data8, 1ull << 40);
        expectError(p("huge.safetensors"), "limit");
        writeRaw(p("past.safetensors"), ok, "", ok.size() + 50);
        expectError(p("past.safetensors"), "past the end");
        writeRaw(p("json.safetensors"), "{\"t\": [", data8);
        expectError(p("json.safetensors"), "not valid JSON");
        writeRaw(p("array.safetensors"), "[1,2]", data8);
        expectError(p("array.safetensors"), "JSON object");
        writeRaw(p("dtype.safetensors"), R"({"t":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", data8);
        expectError(p("dtype.safetensors"), "unsupported dtype");
        writeRaw(p("size.safetensors"), R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", data8);
        expectError(p("size.safetensors"), "needs 12 bytes");
        writeRaw(p("span.safetensors"), R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", data8);
        expectError(p("span.safetensors"), "past the end of the data");
        writeRaw(p("order.safetensors"), R"({"t":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", data8);
        expectError(p("order.safetensors"), "begin");
        writeRaw(p("overlap.safetensors"),
                 R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                 data8);
        expectError(p("overlap.safetensors"), "overlap");
        writeRaw(p("neg.safetensors"), R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", data8);
        expectError(p("neg.safetensors"), "non-negative");
        writeRaw(p("big.safetensors"),
                 R"({"t":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})", data8);
        expectError(p("big.safetensors"), "impossibly large");
        writeRaw(p("meta.safetensors"), R"({"__metadata__":{"a":1},"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                 data8);
        expectError(p("meta.safetensors"), "__metadata__");
        writeRaw(p("offs.safetensors"), R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", data8);
        expectError(p("offs.safetensors"), "data_offsets");
        writeRaw(p("noshape.safetensors"), R"({"t":{"dtype":"F32","data_offsets":[0,8]}})", data8);
        expectError(p("noshape.safetensors"), "shape");
        // Empty tensors are legal and may share an offset with a neighbour.
        writeRaw(p("zero.safetensors"),
                 R"({"e":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                 data8);
        SafetensorsFile zero(p("zero.safetensors"));
        QCOMPARE(zero.find("e")->numel(), 0);
        QVERIFY_THROWS_EXCEPTION(Error, SafetensorsFile(dir() / "missing.safetensors"));
        QVERIFY_THROWS_EXCEPTION(Error, SafetensorsFile{dir()});
    }
    void shardedFolders()
    {
        auto mk = [&](const char* name) {
            auto d = dir() / name;
            std::filesystem::create_directories(d);
            auto a = floats({1, 2});
            writeSafetensors(d / "s1.safetensors", {{"x", DType::F32, {2}, a}});
            writeSafetensors(d / "s2.safetensors", {{"y", DType::F32, {2}, a}});
            return d;
        };
        auto writeIndex = [](const std::filesystem::path& d, const std::string& body) {
            std::ofstream(d / "model.safetensors.index.json") << body;
        };
        auto good = mk("good");
        writeIndex(good, R"({"metadata":{"total_size":16},"weight_map":{"x":"s1.safetensors","y":"s2.safetensors"}})");
        auto store = TensorStore::openFolder(good);
        QCOMPARE(store.all().size(), 2u);
        QCOMPARE(store.totalBytes(), 16u);
        QVERIFY(store.find("y"));

        auto escape = mk("escape");
        writeIndex(escape, R"({"weight_map":{"x":"../good/s1.safetensors"}})");
        expectStoreError(escape, "inside the model folder");
        auto absolute = mk("absolute");
        writeIndex(absolute, R"({"weight_map":{"x":"/etc/passwd"}})");
        expectStoreError(absolute, "inside the model folder");
        auto missing = mk("missing");
        writeIndex(missing, R"({"weight_map":{"x":"s1.safetensors","z":"s3.safetensors"}})");
        expectStoreError(missing, "missing");
        auto lies = mk("lies");
        writeIndex(lies, R"({"weight_map":{"x":"s2.safetensors"}})");
        expectStoreError(lies, "does not");
        auto dup = mk("dup");
        writeIndex(dup, R"({"weight_map":{"x":"s1.safetensors","y":"s2.safetensors"}})");
        writeSafetensors(dup / "s2.safetensors", {{"x", DType::F32, {2}, floats({1, 2})}, {"y", DType::F32, {2}, floats({1, 2})}});
        expectStoreError(dup, "also appears");
        auto badjson = mk("badjson");
        writeIndex(badjson, R"({"weight_map": 3})");
        expectStoreError(badjson, "weight_map");
        auto empty = dir() / "empty";
        std::filesystem::create_directories(empty);
        expectStoreError(empty, "no model.safetensors");
        auto single = dir() / "single";
        std::filesystem::create_directories(single);
        writeSafetensors(single / "model.safetensors", {{"x", DType::F32, {2}, floats({1, 2})}});
        QCOMPARE(TensorStore::openFolder(single).all().size(), 1u);
    }
    void goldenCheckpoints_data()
    {
        QTest::addColumn<QString>("model");
        QTest::addColumn<qint64>("parameters");
        QTest::newRow("mini-mha") << "mini-mha" << qint64(16994445);
        QTest::newRow("mini-mla") << "mini-mla" << qint64(17043884);
    }
    void goldenCheckpoints()
    {
        TESSERA_REQUIRE_GOLDEN();
        QFETCH(QString, model);
        QFETCH(qint64, parameters);
        auto dir = test::goldenModel(model.toStdString());
        auto store = TensorStore::openFolder(dir);
        QCOMPARE(store.files().size(), 2u);
        std::int64_t n = 0;
        for (const auto& [name, t] : store.all())
            n += t->numel();
        QCOMPARE(n, parameters);
        auto config = loadModelConfig(dir / "config.json");
        WeightMap weights(config, store);
        QVERIFY(weights.check().unexpected.empty());
        QVERIFY(weights.check().ignored > 0);  // the unused attention-pool head
        QCOMPARE(weights.get("language.lm_head.weight").shape, (std::vector<std::int64_t>{129280, 64}));
        QVERIFY(weights.usedBytes() < store.totalBytes());
    }
    void weightMapReportsProblems()
    {
        TESSERA_REQUIRE_GOLDEN();
        // The MHA checkpoint read with the MLA config: every attention tensor is missing or foreign.
        auto store = TensorStore::openFolder(test::goldenModel("mini-mha"));
        auto mla = loadModelConfig(test::goldenModel("mini-mla") / "config.json");
        auto check = checkWeights(mla, store);
        QVERIFY(!check.ok());
        QVERIFY(!check.missing.empty());
        QVERIFY(!check.unexpected.empty());
        const std::string text = check.describe(1000);
        QVERIFY(text.find("kv_a_proj_with_mqa") != std::string::npos);
        QVERIFY(check.describe(3).find("more") != std::string::npos);
        QVERIFY(text.find("unexpected tensors") != std::string::npos);
        QVERIFY_THROWS_EXCEPTION(Error, WeightMap(mla, store));

        // Right names, wrong shape.
        auto mha = loadModelConfig(test::goldenModel("mini-mha") / "config.json");
        mha.language.vocabSize = 1000;
        auto shapes = checkWeights(mha, store);
        QCOMPARE(shapes.mismatched.size(), 2u);  // embed_tokens and lm_head
        QVERIFY(shapes.describe().find("expected [1000, 64]") != std::string::npos);
    }
};

QTEST_GUILESS_MAIN(TestSafetensors)
#include "test_safetensors.moc"
