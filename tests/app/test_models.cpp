// Every C++ model the QML sees, under QAbstractItemModelTester (NeoChat's modeltest), with the
// data its roles carry: messages and their parts (text, images, boxes, notices), conversations,
// attachments, model folders.
#include "attachmentmodel.h"
#include "conversationlistmodel.h"
#include "conversationstore.h"
#include "messagecontentmodel.h"
#include "messagemodel.h"
#include "modellibrary.h"

#include "golden.h"

#include <QAbstractItemModelTester>
#include <QImageReader>
#include "processor/processor.h"
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QtTest>

using namespace tessera::app;

namespace {

QString testImage(const char* name) { return QStringLiteral(TESSERA_TEST_DATA_DIR "/images/") + QString::fromLatin1(name); }

Message userMessage(qint64 id, int position, const QString& text, QList<StoredImage> images = {})
{
    Message m;
    m.id = id;
    m.position = position;
    m.role = MessageRole::User;
    m.text = text;
    m.images = std::move(images);
    return m;
}

Message answer(qint64 id, int position, const QString& text, MessageState state = MessageState::Complete)
{
    Message m;
    m.id = id;
    m.position = position;
    m.role = MessageRole::Assistant;
    m.text = text;
    m.state = state;
    return m;
}

StoredImage image(const QString& file, int w, int h) { return StoredImage{1, file, QFileInfo(file).fileName(), w, h}; }

QVariant roleData(const QAbstractItemModel& model, int row, const char* role)
{
    const auto roles = model.roleNames();
    return model.data(model.index(row, 0), roles.key(role));
}

}  // namespace

class TestModels : public QObject {
    Q_OBJECT
private slots:
    void messageModelRowsAndRoles()
    {
        MessageModel model;
        QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
        const StoredImage photo = image("/store/ab/cat.jpg", 640, 480);
        model.setMessages({userMessage(1, 0, "Where is <|ref|>the cat<|/ref|>?", {photo}),
                           answer(2, 1, "<|ref|>the cat<|/ref|><|det|>[[10,20,500,600]]<|/det|> is on the sofa")});
        QCOMPARE(model.rowCount(), 2);
        QCOMPARE(roleData(model, 0, "role").toString(), QStringLiteral("user"));
        QCOMPARE(roleData(model, 0, "imageCount").toInt(), 1);
        QCOMPARE(roleData(model, 1, "plainText").toString(), QStringLiteral("the cat is on the sofa"));
        QCOMPARE(roleData(model, 1, "boxCount").toInt(), 1);
        QCOMPARE(roleData(model, 1, "messageState").toString(), QStringLiteral("complete"));
        auto* parts = qobject_cast<MessageContentModel*>(roleData(model, 1, "content").value<QObject*>());
        QVERIFY(parts);
        QAbstractItemModelTester partsTester(parts, QAbstractItemModelTester::FailureReportingMode::QtTest);
        QCOMPARE(parts->rowCount(), 2);
        QCOMPARE(roleData(*parts, 0, "partType").toString(), QStringLiteral("text"));
        QCOMPARE(roleData(*parts, 1, "partType").toString(), QStringLiteral("annotated"));
        // The boxes go on the last image before the answer.
        QCOMPARE(roleData(*parts, 1, "imageWidth").toInt(), 640);
        QVERIFY(roleData(*parts, 1, "source").toString().startsWith("image://tessera/"));
        const QVariantList boxes = roleData(*parts, 1, "boxes").toList();
        QCOMPARE(boxes.size(), 1);
        QCOMPARE(boxes[0].toMap().value("x2").toInt(), 500);
        QCOMPARE(boxes[0].toMap().value("label").toString(), QStringLiteral("the cat"));

        // The user's own prompt shows without tags.
        auto* userParts = qobject_cast<MessageContentModel*>(roleData(model, 0, "content").value<QObject*>());
        QCOMPARE(userParts->rowCount(), 2);
        QCOMPARE(roleData(*userParts, 0, "partType").toString(), QStringLiteral("images"));
        QCOMPARE(roleData(*userParts, 1, "text").toString(), QStringLiteral("Where is the cat?"));

        model.append(userMessage(3, 2, "and now?"));
        model.append(answer(4, 3, {}, MessageState::Streaming));
        QCOMPARE(model.rowCount(), 4);
        QVERIFY(roleData(model, 3, "streaming").toBool());
        model.removeFrom(2);
        QCOMPARE(model.rowCount(), 2);
        model.clear();
        QCOMPARE(model.rowCount(), 0);
    }

    void streamingUpdatesPartsInPlace()
    {
        MessageModel model;
        QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
        model.setMessages({userMessage(1, 0, "find the dog", {image("/store/a.png", 100, 50)}), answer(2, 1, {}, MessageState::Streaming)});
        auto* parts = qobject_cast<MessageContentModel*>(roleData(model, 1, "content").value<QObject*>());
        QAbstractItemModelTester partsTester(parts, QAbstractItemModelTester::FailureReportingMode::QtTest);
        QCOMPARE(parts->rowCount(), 1);  // the (empty) text with its cursor
        QVERIFY(roleData(*parts, 0, "streaming").toBool());
        QSignalSpy reset(parts, &QAbstractItemModel::modelReset);
        QSignalSpy inserted(parts, &QAbstractItemModel::rowsInserted);

        Message m = model.at(1);
        const QStringList pieces = {"The ", "<|re", "f|>dog<|/ref|>", "<|det|>[[0,0,", "999,999]]<|/det|>", " sleeps."};
        QStringList seenTexts;
        for (const QString& p : pieces) {
            m.text += p;
            model.update(m);
            seenTexts << roleData(*parts, 0, "text").toString();
        }
        // Half a tag never shows as text; the box arrives once its list is complete.
        QCOMPARE(seenTexts[1], QStringLiteral("The "));
        QCOMPARE(seenTexts[2], QStringLiteral("The dog"));
        QCOMPARE(seenTexts[3], QStringLiteral("The dog"));
        QCOMPARE(parts->rowCount(), 2);
        QCOMPARE(parts->boxCount(), 1);
        QCOMPARE(reset.count(), 0);  // delegates stay alive while streaming
        QCOMPARE(inserted.count(), 1);

        m.state = MessageState::Stopped;
        model.update(m);
        QCOMPARE(parts->rowCount(), 3);
        QCOMPARE(roleData(*parts, 2, "partType").toString(), QStringLiteral("notice"));
        QCOMPARE(roleData(*parts, 2, "severity").toString(), QStringLiteral("info"));
        QVERIFY(!roleData(*parts, 0, "streaming").toBool());
    }

    void failuresAndLimitsBecomeNotices()
    {
        Message failed = answer(1, 1, {}, MessageState::Failed);
        failed.error = "out of memory";
        auto parts = messageParts(failed, nullptr);
        QCOMPARE(parts.size(), 1);
        QCOMPARE(parts[0].type, MessageContentModel::PartType::Notice);
        QCOMPARE(parts[0].severity, QStringLiteral("error"));
        QCOMPARE(parts[0].text, QStringLiteral("out of memory"));

        Message cut = answer(2, 1, "long answer");
        cut.stats.stopReason = "max_tokens";
        cut.stats.droppedTurns = 2;
        parts = messageParts(cut, nullptr);
        QCOMPARE(parts.size(), 2);
        QVERIFY(parts[1].text.contains("maximum of new tokens"));
        QVERIFY(parts[1].text.contains("2 oldest turns"));

        Message interrupted = answer(3, 1, "half", MessageState::Interrupted);
        parts = messageParts(interrupted, nullptr);
        QCOMPARE(parts.last().severity, QStringLiteral("warning"));

        // Boxes but no image in the conversation: said, not drawn.
        parts = messageParts(answer(4, 1, "<|ref|>x<|/ref|><|det|>[[1,1,2,2]]<|/det|>"), nullptr);
        QCOMPARE(parts.size(), 2);
        QCOMPARE(parts[1].type, MessageContentModel::PartType::Notice);
    }

    void groundingImageIsTheLastBeforeTheAnswer()
    {
        MessageModel model;
        const StoredImage first = image("/s/1.png", 10, 10), second = image("/s/2.png", 20, 20), third = image("/s/3.png", 30, 30);
        model.setMessages({userMessage(1, 0, "a", {first, second}), answer(2, 1, "x"), userMessage(3, 2, "b", {third}),
                           answer(4, 3, "y"), userMessage(5, 4, "c")});
        QCOMPARE(model.groundingImageFor(1)->file, second.file);
        QCOMPARE(model.groundingImageFor(3)->file, third.file);
        QCOMPARE(model.groundingImageFor(5)->file, third.file);
        QVERIFY(model.groundingImageFor(0) == nullptr);
    }

    void statsText()
    {
        AnswerStats s;
        QCOMPARE(MessageModel::statsText(s), QString());
        s.ttftSeconds = 0.4123;
        s.tokensPerSecond = 27.24;
        s.outputTokens = 1;
        QCOMPARE(MessageModel::statsText(s), QStringLiteral("0.41 s to first token · 27.2 tokens/s · 1 token"));
    }

    void conversationList()
    {
        QTemporaryDir dir;
        ConversationStore store(dir.path());
        ConversationListModel model(&store);
        QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
        QCOMPARE(model.rowCount(), 0);
        const qint64 a = store.createConversation("Birds");
        store.addMessage(a, MessageRole::User, "Which bird is that?", {});
        const qint64 b = store.createConversation("Invoice");
        model.refresh();
        QCOMPARE(model.rowCount(), 2);
        QCOMPARE(model.idAt(0), b);
        QCOMPARE(model.rowOf(a), 1);
        QCOMPARE(roleData(model, 1, "snippet").toString(), QStringLiteral("Which bird is that?"));
        QCOMPARE(roleData(model, 1, "messageCount").toInt(), 1);
        QSignalSpy searchChanged(&model, &ConversationListModel::searchChanged);
        model.setSearch("bird");
        QCOMPARE(searchChanged.count(), 1);
        QCOMPARE(model.rowCount(), 1);
        QCOMPARE(roleData(model, 0, "title").toString(), QStringLiteral("Birds"));
        model.setSearch({});
        QCOMPARE(model.rowCount(), 2);
        QVERIFY(!roleData(model, 0, "when").toString().isEmpty());

        const QDateTime now(QDate(2024, 5, 10), QTime(15, 0));
        QCOMPARE(ConversationListModel::whenText(now.addDays(-1), now), QStringLiteral("Yesterday"));
        QVERIFY(ConversationListModel::whenText(QDateTime(QDate(2023, 1, 2), QTime(1, 0)), now).contains("2023"));
    }

    void attachments()
    {
        AttachmentModel model;
        QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
        QSignalSpy rejected(&model, &AttachmentModel::rejected);
        QCOMPARE(model.addUrls(QVariantList{QUrl::fromLocalFile(testImage("jpeg_420.jpg")), testImage("pad_40x16.png")}), 2);
        QCOMPARE(model.rowCount(), 2);
        QCOMPARE(roleData(model, 0, "name").toString(), QStringLiteral("jpeg_420.jpg"));
        QCOMPARE(roleData(model, 1, "imageWidth").toInt(), 40);
        QCOMPARE(roleData(model, 1, "imageHeight").toInt(), 16);
        QCOMPARE(roleData(model, 0, "tokens").toInt(), -1);  // no model: no price yet
        QVERIFY(!model.costKnown());
        QCOMPARE(model.addPath(testImage("jpeg_420.jpg")), false);  // already attached, silently
        QCOMPARE(rejected.count(), 0);

        QCOMPARE(model.addPath(QStringLiteral(TESSERA_TEST_DATA_DIR "/configs/deepseek-vl2-tiny.config.json")), false);
        QCOMPARE(rejected.count(), 1);
        QVERIFY(rejected.last().first().toString().contains("deepseek-vl2-tiny.config.json"));
        QCOMPARE(model.addUrls(QVariant(QUrl("https://example.com/cat.jpg"))), 0);
        QCOMPARE(rejected.count(), 2);

        // EXIF orientation 6: the upright size, as the engine will see it.
        QVERIFY(model.addPath(testImage("orient6.jpg")));
        QImageReader reader(testImage("orient6.jpg"));
        reader.setAutoTransform(false);
        QCOMPARE(roleData(model, 2, "imageWidth").toInt(), reader.size().height());

        QVERIFY(model.tilingOff());  // three images in the conversation
        model.remove(0);
        QCOMPARE(model.rowCount(), 2);
        QCOMPARE(model.paths().size(), 2);
        QVERIFY(!model.tilingOff());
        model.setImagesBefore(1);    // one more earlier in the conversation
        QVERIFY(model.tilingOff());
        model.clear();
        QCOMPARE(model.rowCount(), 0);
    }

    void attachmentsArePricedWithTheProcessor()
    {
        TESSERA_REQUIRE_GOLDEN();
        const auto processor = std::make_shared<const tessera::Processor>(
            tessera::Processor::fromModelFolder(tessera::test::goldenModel("mini-mha")));
        AttachmentModel model;
        QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
        model.setProcessor(processor);
        const QString golden = QString::fromStdString((tessera::test::goldenDir() / "images").string());
        QVERIFY(model.addPath(golden + "/synthetic_2000x100.png"));
        const auto grid = processor->tileGrid(2000, 100, true);
        QCOMPARE(roleData(model, 0, "tokens").toInt(), processor->imageTokenCount(grid[0], grid[1]));
        QCOMPARE(roleData(model, 0, "tiles").toString(), QStringLiteral("%1×%2 tiles").arg(grid[0]).arg(grid[1]));
        QVERIFY(model.addPath(golden + "/multi_image_1.jpeg"));
        QVERIFY(model.addPath(golden + "/multi_image_2.jpeg"));
        // Three images: one 384x384 view each.
        QVERIFY(model.tilingOff());
        for (int i = 0; i < 3; ++i) {
            QCOMPARE(roleData(model, i, "tokens").toInt(), processor->imageTokenCount(1, 1));
            QCOMPARE(roleData(model, i, "tiles").toString(), QStringLiteral("1 tile"));
        }
        QCOMPARE(model.imageTokens(), 3 * processor->imageTokenCount(1, 1));
    }

    void modelLibraryScansTheModelsFolder()
    {
        QTemporaryDir dir;
        QDir(dir.path()).mkpath("models/broken");
        QFile cfg(dir.path() + "/models/broken/config.json");
        QVERIFY(cfg.open(QIODevice::WriteOnly));
        cfg.write("{ not json");
        cfg.close();
        QDir(dir.path()).mkpath("models/not-a-model");
        ModelLibrary library(dir.path() + "/models");
        QAbstractItemModelTester tester(&library, QAbstractItemModelTester::FailureReportingMode::QtTest);
        QStringList extra;
        if (!tessera::test::goldenDir().empty())
            extra << QString::fromStdString(tessera::test::goldenModel("mini-mha").string());
        library.rescan(extra, {});
        QCOMPARE(library.rowCount(), 1 + extra.size());
        QCOMPARE(roleData(library, 0, "name").toString(), QStringLiteral("broken"));
        QVERIFY(!roleData(library, 0, "valid").toBool());
        QVERIFY(!roleData(library, 0, "problem").toString().isEmpty());
        if (!extra.isEmpty()) {
            QVERIFY(roleData(library, 1, "valid").toBool());
            QVERIFY(!roleData(library, 1, "size").toString().isEmpty());
            QVERIFY(!roleData(library, 1, "fitMessage").toString().isEmpty());
        }
    }
};

QTEST_GUILESS_MAIN(TestModels)
#include "test_models.moc"
