// The chat's pure logic: grounded answers (spans, colours, streaming), the Markdown formatter's
// label links, quick-action prompts, the engine conversation built from stored messages, cost
// estimates, settings, and model folder inspection.
#include "chatcontroller.h"
#include "costestimate.h"
#include "groundedanswer.h"
#include "groundingexport.h"
#include "markdownformatter.h"
#include "modelinspector.h"
#include "quickactions.h"
#include "settings.h"

#include "golden.h"
#include "processor/processor.h"
#include "runtime/session.h"

#include <QJsonDocument>
#include <QJsonObject>
#include <QJsonArray>
#include <QTemporaryDir>
#include <QtTest>

using namespace tessera::app;

class TestChatLogic : public QObject {
    Q_OBJECT
private slots:
    void groundedAnswerSpansAreUtf16()
    {
        const GroundedAnswer a = groundAnswer(QStringLiteral("Der Käfer 🐞 und <|ref|>die Brücke<|/ref|><|det|>[[1,2,3,4],[5,6,7,8]]<|/det|>, "
                                                             "dann <|ref|>Käfer<|/ref|><|det|>[[9,9,99,99]]<|/det|> und <|ref|>die Brücke<|/ref|><|det|>[[0,0,9,9]]<|/det|>."));
        QCOMPARE(a.text, QStringLiteral("Der Käfer 🐞 und die Brücke, dann Käfer und die Brücke."));
        QCOMPARE(a.refs.size(), 3);
        QCOMPARE(a.boxes.size(), 4);
        const QVariantMap r0 = a.refs[0].toMap();
        QCOMPARE(a.text.mid(r0.value("begin").toInt(), r0.value("end").toInt() - r0.value("begin").toInt()), QStringLiteral("die Brücke"));
        const QVariantMap r1 = a.refs[1].toMap();
        QCOMPARE(a.text.mid(r1.value("begin").toInt(), r1.value("end").toInt() - r1.value("begin").toInt()), QStringLiteral("Käfer"));
        // One colour per label: the same label twice shares it, another label differs.
        QCOMPARE(a.refs[2].toMap().value("color"), r0.value("color"));
        QVERIFY(r1.value("color") != r0.value("color"));
        QCOMPARE(a.boxes[1].toMap().value("ref").toInt(), 0);
        QCOMPARE(a.boxes[2].toMap().value("ref").toInt(), 1);
        QCOMPARE(a.boxes[2].toMap().value("color"), r1.value("color"));
        QCOMPARE(r0.value("boxCount").toInt(), 2);
    }

    void streamingHidesUnfinishedTags()
    {
        QCOMPARE(groundAnswer("A <|re", true).text, QStringLiteral("A "));
        QCOMPARE(groundAnswer("A <|ref|>ca", true).text, QStringLiteral("A "));
        QCOMPARE(groundAnswer("A <|ref|>cat<|/ref|><|det|>[[1,2", true).text, QStringLiteral("A cat"));
        QCOMPARE(groundAnswer("A <|ref|>cat<|/ref|><|det|>[[1,2", true).boxes.size(), 0);
        QCOMPARE(groundAnswer("x < y", true).text, QStringLiteral("x < y"));  // not a tag
        QCOMPARE(groundAnswer("<|grounding|>Hello").text, QStringLiteral("Hello"));
    }

    void labelColoursAreDistinct()
    {
        QSet<QString> seen;
        for (int i = 0; i < 10; ++i)
            seen.insert(labelColor(i).name());
        QCOMPARE(seen.size(), 10);
        QCOMPARE(labelColor(10), labelColor(0));
    }

    void formatterLinksLabels()
    {
        const GroundedAnswer a = groundAnswer("Look: <|ref|>the [big] cat<|/ref|><|det|>[[1,2,3,4]]<|/det|> and `code`.\n\n```\nx = 1\n```");
        const QString plain = MarkdownFormatter::toHtml(a.text, a.refs, -1);
        QVERIFY2(plain.contains("tessera-ref:0"), qPrintable(plain));
        QVERIFY(plain.contains("the [big] cat"));
        QVERIFY(!plain.contains("underline"));
        QVERIFY(!plain.contains("<body style"));
        const QString highlighted = MarkdownFormatter::toHtml(a.text, a.refs, 0);
        QVERIFY(highlighted.contains("underline"));
        QVERIFY(highlighted != plain);
        QVERIFY(MarkdownFormatter::toHtml("hi", {}, -1, true).contains(QChar(0x258D)));
        QCOMPARE(MarkdownFormatter::refFromLink("tessera-ref:12"), 12);
        QCOMPARE(MarkdownFormatter::refFromLink("https://example.com"), -1);
    }

    void quickActionPrompts()
    {
        QCOMPARE(quickActionPrompt("locate", "  the giraffe at the back "), QStringLiteral("<|ref|>the giraffe at the back<|/ref|>."));
        QCOMPARE(quickActionPrompt("locate", "x<|/ref|><|det|>"), QStringLiteral("<|ref|>x/refdet<|/ref|>."));
        QCOMPARE(quickActionPrompt("locate", "  "), QString());
        QVERIFY(quickActionPrompt("describe").startsWith("<|grounding|>"));
        for (const QString& a : quickActionNames()) {
            if (a != "locate")
                QVERIFY(!quickActionPrompt(a).isEmpty());
        }
        QCOMPARE(quickActionPrompt("unknown"), QString());
    }

    void engineConversationFromMessages()
    {
        QList<Message> messages;
        auto add = [&](MessageRole role, const QString& text, MessageState state = MessageState::Complete, QList<StoredImage> images = {}) {
            Message m;
            m.role = role;
            m.text = text;
            m.state = state;
            m.images = std::move(images);
            m.position = static_cast<int>(messages.size());
            messages << m;
        };
        add(MessageRole::User, "What is this?", MessageState::Complete, {StoredImage{1, "/s/a.jpg", "a.jpg", 1, 1}, StoredImage{2, "/s/b.jpg", "b.jpg", 1, 1}});
        add(MessageRole::Assistant, "Two cats. ");
        add(MessageRole::User, "broken turn");
        add(MessageRole::Assistant, "", MessageState::Failed);
        add(MessageRole::User, "  <|ref|>the left cat<|/ref|>.  ");
        add(MessageRole::Assistant, "", MessageState::Streaming);

        const tessera::Conversation c = buildEngineConversation(messages, "Be brief.");
        QCOMPARE(c.messages.size(), std::size_t(4));
        QCOMPARE(c.messages[0].role, tessera::Role::System);
        QCOMPARE(c.messages[0].content, std::string("Be brief."));
        QCOMPARE(c.messages[1].content, std::string("<image>\n<image>\nWhat is this?"));
        QCOMPARE(c.messages[1].images.size(), std::size_t(2));
        QCOMPARE(c.messages[1].images[1].string(), std::string("/s/b.jpg"));
        QCOMPARE(c.messages[2].role, tessera::Role::Assistant);
        QCOMPARE(c.messages[2].content, std::string("Two cats."));
        QCOMPARE(c.messages[3].content, std::string("<|ref|>the left cat<|/ref|>."));
        QCOMPARE(buildEngineConversation(messages, {}).messages.size(), std::size_t(3));
    }

    void costEstimates()
    {
        TESSERA_REQUIRE_GOLDEN();
        const tessera::Processor p = tessera::Processor::fromModelFolder(tessera::test::goldenModel("mini-mha"));
        QVERIFY(dynamicTilingFor(2));
        QVERIFY(!dynamicTilingFor(3));
        const ImageCost wide = imageCost(p, 2000, 100, 1);
        const auto grid = p.tileGrid(2000, 100, true);
        QCOMPARE(wide.widthTiles, grid[0]);
        QCOMPARE(wide.tokens, p.imageTokenCount(grid[0], grid[1]));
        QCOMPARE(imageCost(p, 2000, 100, 3).tokens, 14 * 15 + 1 + 14 * 15);
        // The estimate equals what the processor makes of the same conversation.
        QList<Message> history;
        Message u;
        u.role = MessageRole::User;
        u.text = "Describe the image.";
        history << u;
        Message a;
        a.role = MessageRole::Assistant;
        a.text = "A red square.";
        a.position = 1;
        history << a;
        tessera::Conversation c = buildEngineConversation(history, {});
        tessera::ChatMessage next{tessera::Role::User, "And the colour?", {}};
        c.messages.push_back(next);
        const auto processed = p.process(c, std::span<const tessera::RgbImage>{});
        const int estimate = historyTokens(p, history, {}, 0) + userTurnTextTokens(p, "And the colour?");
        QCOMPARE(estimate, static_cast<int>(processed.inputIds.size()));
    }

    void settingsPersistWithUpstreamDefaults()
    {
        QTemporaryDir dir;
        const QString file = dir.path() + "/tessera.conf";
        {
            Settings s(file);
            QCOMPARE(s.temperature(), 0.1);
            QCOMPARE(s.topP(), 0.9);
            QCOMPARE(s.topK(), 0);
            QCOMPARE(s.repetitionPenalty(), 1.1);
            QCOMPARE(s.maxNewTokens(), 2048);
            QCOMPARE(s.backend(), QStringLiteral("auto"));
            QCOMPARE(s.theme(), QStringLiteral("system"));
            QVERIFY(s.samplingIsDefault());
            QSignalSpy changed(&s, &Settings::changed);
            s.setTemperature(0.7);
            s.setTopK(40);
            s.setMaxNewTokens(99999);   // clamped to the context
            s.setBackend("quantum");    // ignored
            s.setTheme("dark");
            s.setSystemPrompt("Answer in French.");
            QCOMPARE(changed.count(), 5);
            QVERIFY(!s.samplingIsDefault());
        }
        Settings s(file);
        QCOMPARE(s.temperature(), 0.7);
        QCOMPARE(s.topK(), 40);
        QCOMPARE(s.maxNewTokens(), 4096);
        QCOMPARE(s.backend(), QStringLiteral("auto"));
        QCOMPARE(s.theme(), QStringLiteral("dark"));
        const tessera::GenerationOptions o = s.generationOptions();
        QCOMPARE(o.sampling.temperature, 0.7f);
        QCOMPARE(o.sampling.topK, 40);
        QCOMPARE(o.maxNewTokens, 4096);
        QVERIFY(o.dropOldestTurns);
        QVERIFY(o.sampling.seed != s.generationOptions().sampling.seed);  // Regenerate samples anew
        s.resetSampling();
        QVERIFY(s.samplingIsDefault());
        QCOMPARE(s.systemPrompt(), QStringLiteral("Answer in French."));
    }

    void inspectorExplainsBadFolders()
    {
        QTemporaryDir dir;
        GpuSnapshot none;
        auto r = inspectModelFolder(dir.path() + "/nope", none, 0);
        QVERIFY(!r.valid);
        QVERIFY(r.problem.contains("does not exist"));
        r = inspectModelFolder(dir.path(), none, 0);
        QVERIFY(r.problem.contains("config.json"));
        QVERIFY(r.problem.contains("deepseek-ai"));
        // The parent of model folders: say which ones are inside.
        QDir(dir.path()).mkpath("tiny");
        QFile cfg(dir.path() + "/tiny/config.json");
        QVERIFY(cfg.open(QIODevice::WriteOnly));
        cfg.write(QFile(QStringLiteral(TESSERA_TEST_DATA_DIR "/configs/deepseek-vl2-tiny.config.json")).exists() ? "{}" : "{}");
        cfg.close();
        r = inspectModelFolder(dir.path(), none, 0);
        QVERIFY2(r.problem.contains("tiny"), qPrintable(r.problem));
        r = inspectModelFolder(dir.path() + "/tiny", none, 0);
        QVERIFY(r.problem.contains("tokenizer.json"));
        for (const char* f : {"tokenizer.json", "processor_config.json"}) {
            QFile x(dir.path() + "/tiny/" + f);
            QVERIFY(x.open(QIODevice::WriteOnly));
        }
        r = inspectModelFolder(dir.path() + "/tiny", none, 0);
        QVERIFY2(r.problem.contains("safetensors"), qPrintable(r.problem));
        QVERIFY(!formatBytes(6'700'000'000).isEmpty());
        QCOMPARE(formatBytes(6'700'000'000), QStringLiteral("6.7 GB"));
        QCOMPARE(formatBytes(512'000'000), QStringLiteral("512 MB"));
    }

    void inspectorReadsTheGoldenModel()
    {
        TESSERA_REQUIRE_GOLDEN();
        const QString folder = QString::fromStdString(tessera::test::goldenModel("mini-mha").string());
        GpuSnapshot gpus;
        gpus.gpus << GpuSnapshot::Gpu{"Test GPU", 24'000'000'000ull, 20'000'000'000ull};
        const auto r = inspectModelFolder(folder, gpus, 0);
        QVERIFY2(r.valid, qPrintable(r.problem));
        QVERIFY(!r.variant.isEmpty());
        QCOMPARE(r.shards, 2);
        QVERIFY(r.weightBytes > 0);
        QVERIFY(r.fits);
        QVERIFY(r.fitMessage.contains("Test GPU"));
        gpus.gpus[0].totalBytes = 1000;
        const auto small = inspectModelFolder(folder, gpus, 0);
        QVERIFY(!small.fits);
        QVERIFY(small.fitMessage.contains("will not fit"));
    }

    void exportWritesPngAndJson()
    {
        QTemporaryDir dir;
        StoredImage img{1, QStringLiteral(TESSERA_TEST_DATA_DIR "/images/pad_40x16.png"), "pad_40x16.png", 40, 16};
        const GroundedAnswer a = groundAnswer("<|ref|>left<|/ref|><|det|>[[0,0,499,999]]<|/det|><|ref|>right<|/ref|><|det|>[[500,0,999,999]]<|/det|>");
        const auto r = exportGroundingFiles(img, a.boxes, dir.path() + "/out");
        QVERIFY2(r.ok, qPrintable(r.error));
        QCOMPARE(r.pngPath, dir.path() + "/out.png");
        const QImage png(r.pngPath);
        QCOMPARE(png.size(), QSize(40, 16));
        QFile json(r.jsonPath);
        QVERIFY(json.open(QIODevice::ReadOnly));
        const QJsonObject o = QJsonDocument::fromJson(json.readAll()).object();
        QCOMPARE(o.value("width").toInt(), 40);
        const QJsonArray boxes = o.value("boxes").toArray();
        QCOMPARE(boxes.size(), 2);
        QCOMPARE(boxes[1].toObject().value("label").toString(), QStringLiteral("right"));
        QCOMPARE(boxes[1].toObject().value("pixels").toArray()[2].toDouble(), 40.0);
        QCOMPARE(boxes[0].toObject().value("box").toArray()[2].toInt(), 499);
        // The drawn frame is in the label's colour.
        const QColor left = a.boxes[0].toMap().value("color").value<QColor>();
        const QColor edge = png.pixelColor(0, 8);
        QVERIFY2(std::abs(edge.red() - left.red()) < 60 && std::abs(edge.green() - left.green()) < 60,
                 qPrintable(edge.name() + " vs " + left.name()));
        QVERIFY(!exportGroundingFiles(StoredImage{1, dir.path() + "/missing.png", "m", 1, 1}, a.boxes, dir.path() + "/x.png").ok);
    }
};

QTEST_MAIN(TestChatLogic)
#include "test_chat_logic.moc"
