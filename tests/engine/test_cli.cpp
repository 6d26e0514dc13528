// tessera-cli as a user runs it: JSON on stdout, errors on stderr, exit status.
#include "golden.h"
#include "model/safetensors.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>

namespace {

struct Run {
    int exitCode = -1;
    QByteArray out;
    QByteArray err;
};

Run cli(const QStringList& args)
{
    QProcess p;
    p.start(TESSERA_CLI, args);
    p.waitForFinished(120000);
    return {p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1, p.readAllStandardOutput(), p.readAllStandardError()};
}

QString golden(const std::string& rel) { return QString::fromStdString((tessera::test::goldenDir() / rel).string()); }

}  // namespace

class TestCli : public QObject {
    Q_OBJECT
    QTemporaryDir tmp_;

    QString conversation(const QString& json)
    {
        const QString path = tmp_.filePath(QString("conv%1.json").arg(counter_++));
        QFile f(path);
        f.open(QIODevice::WriteOnly);
        f.write(json.toUtf8());
        return path;
    }
    int counter_ = 0;

private slots:
    void tokenizeJson()
    {
        TESSERA_REQUIRE_GOLDEN();
        auto r = cli({"tokenize", "--model", golden("models/mini-mha"), "--text", "Hello <image> world", "--json"});
        QCOMPARE(r.exitCode, 0);
        const auto ids = QJsonDocument::fromJson(r.out).object()["ids"].toArray();
        QCOMPARE(ids.size(), 4);
        QCOMPARE(ids[2].toInt(), 128815);  // <image> is an added token
    }
    void preprocessMatchesGolden()
    {
        TESSERA_REQUIRE_GOLDEN();
        const QString conv = conversation(QString(R"([{"role": "user", "content": "<image>\n<|ref|>The giraffe at the back.<|/ref|>.", "images": ["%1"]}, {"role": "assistant", "content": ""}])")
                                              .arg(golden("images/visual_grounding_1.jpeg")));
        const QString dump = tmp_.filePath("tiles.safetensors");
        auto r = cli({"preprocess", "--model", golden("models/mini-mha"), "--conversation", conv, "--json", "--dump-tiles", dump});
        QCOMPARE(r.exitCode, 0);
        const auto o = QJsonDocument::fromJson(r.out).object();
        QCOMPARE(o["input_ids"].toArray().size(), 1446);
        QCOMPARE(o["num_image_tokens"].toArray()[0].toInt(), 1429);
        QCOMPARE(o["images_spatial_crop"].toArray()[0].toArray()[0].toInt(), 2);
        QCOMPARE(o["images_spatial_crop"].toArray()[0].toArray()[1].toInt(), 3);
        QVERIFY(o["prompt"].toString().startsWith("<|User|>: <image>"));
        // The dump holds exactly the golden tiles.
        QFile a(dump), b(golden("cases/tiles/b_grounding.safetensors"));
        QVERIFY(a.open(QIODevice::ReadOnly) && b.open(QIODevice::ReadOnly));
        const QByteArray da = a.readAll(), db = b.readAll();
        const qsizetype tileBytes = 7 * 384 * 384 * 3;
        QVERIFY(da.size() > tileBytes && db.size() > tileBytes);
        QVERIFY(da.right(tileBytes) == db.right(tileBytes));
    }
    void generateJson()
    {
        TESSERA_REQUIRE_GOLDEN();
        const QString conv = conversation(R"([{"role": "user", "content": "Describe what a chart usually shows."}])");
        auto r = cli({"generate", "--model", golden("models/mini-mla"), "--conversation", conv, "--temperature", "0",
                      "--repetition-penalty", "1", "--max-new-tokens", "16", "--backend", "cpu", "--json"});
        QCOMPARE(r.exitCode, 0);
        const auto o = QJsonDocument::fromJson(r.out).object();
        QCOMPARE(o["backend"].toString(), QString("cpu"));
        QCOMPARE(o["prompt_ids"].toArray().size(), 12);
        // This is the golden a_text prompt: greedy output equals the reference's 16 tokens.
        const auto out = o["output_ids"].toArray();
        tessera::SafetensorsFile ref(tessera::test::goldenDir() / "cases/mini-mla/a_text.safetensors");
        const auto expected = ref.find("gen_ids")->toInt64();
        QCOMPARE(out.size(), qsizetype(expected.size()));
        for (qsizetype i = 0; i < out.size(); ++i)
            QCOMPARE(out[i].toInteger(), expected[static_cast<std::size_t>(i)]);
        for (const char* key : {"load_s", "encode_s", "prefill_s", "ttft_s", "decode_tokens_per_s"})
            QVERIFY2(o["timings"].toObject().contains(key), key);
    }
    void errorsGoToStderrWithStatus()
    {
        auto r = cli({"preprocess", "--model", "/nonexistent", "--conversation", "/nonexistent.json"});
        QCOMPARE(r.exitCode, 1);
        QVERIFY(r.out.isEmpty());
        QVERIFY(r.err.contains("nonexistent"));
        r = cli({"tokenize", "--bogus"});
        QCOMPARE(r.exitCode, 2);
        QVERIFY(r.err.contains("unknown option --bogus"));
        r = cli({"generate", "--model", "/x", "--conversation", "/y", "--top-p", "abc"});
        QCOMPARE(r.exitCode, 2);
        QVERIFY(r.err.contains("--top-p"));
        if (!tessera::test::goldenDir().empty()) {
            const QString conv = conversation(R"([{"role": "user", "content": "<image> two markers <image>", "images": []}])");
            r = cli({"preprocess", "--model", golden("models/mini-mha"), "--conversation", conv});
            QCOMPARE(r.exitCode, 1);
            QVERIFY(r.err.contains("2 <image> markers but 0 images"));
        }
    }
};

QTEST_GUILESS_MAIN(TestCli)
#include "test_cli.moc"
