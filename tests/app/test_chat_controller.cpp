// The chat controller with a real store and the golden mini model (CPU): send with images (copied
// into the store, markers placed), the streamed answer in the model and the database, stop,
// regenerate, edit and resend, conversations (rename, delete, search), errors, cost preview.
#include "appcontext.h"
#include "attachmentmodel.h"
#include "chatcontroller.h"
#include "conversationlistmodel.h"
#include "conversationstore.h"
#include "messagecontentmodel.h"
#include "messagemodel.h"
#include "modelmanager.h"
#include "settings.h"

#include "golden.h"

#include <QAbstractItemModelTester>
#include <QClipboard>
#include <QMimeData>
#include <QGuiApplication>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QtTest>

using namespace tessera::app;

namespace {

QString goldenImage(const char* name) { return QString::fromStdString((tessera::test::goldenDir() / "images" / name).string()); }
QString miniModel() { return QString::fromStdString(tessera::test::goldenModel("mini-mha").string()); }

}  // namespace

class TestChatController : public QObject {
    Q_OBJECT

    std::unique_ptr<QTemporaryDir> dir_;
    std::unique_ptr<AppContext> app_;
    ChatController* chat() { return app_->chat(); }

    void waitForAnswer()
    {
        QTRY_VERIFY_WITH_TIMEOUT(!chat()->generating(), 120000);
    }

private slots:
    void init()
    {
        dir_ = std::make_unique<QTemporaryDir>();
        app_ = std::make_unique<AppContext>(AppPaths::under(dir_->path()));
        app_->settings()->setMaxNewTokens(12);
        app_->models()->setBackendOverride("cpu");
    }

    void cleanup()
    {
        app_.reset();
        dir_.reset();
    }

    void refusesToSendWithoutAModel()
    {
        QSignalSpy error(chat(), &ChatController::errorOccurred);
        QVERIFY(!chat()->canSend());
        QVERIFY(!chat()->send("hello"));
        QCOMPARE(error.count(), 1);
        QVERIFY(error.first().first().toString().contains("model"));
        QCOMPARE(chat()->conversations()->rowCount(), 0);
        QCOMPARE(chat()->cost().value("known").toBool(), false);
    }

    void badModelFolderIsAClearError()
    {
        QSignalSpy failed(app_->models(), &ModelManager::loadFailed);
        app_->models()->load(dir_->path());
        QCOMPARE(app_->models()->state(), ModelManager::State::Failed);
        QVERIFY(app_->models()->errorMessage().contains("config.json"));
        QCOMPARE(failed.count(), 1);
    }

    void sendStreamStopRegenerateEdit()
    {
        TESSERA_REQUIRE_GOLDEN();
        QAbstractItemModelTester messagesTester(chat()->messages(), QAbstractItemModelTester::FailureReportingMode::QtTest);
        QAbstractItemModelTester listTester(chat()->conversations(), QAbstractItemModelTester::FailureReportingMode::QtTest);
        QSignalSpy ready(app_->models(), &ModelManager::modelReady);
        app_->models()->load(miniModel());
        QCOMPARE(app_->models()->state(), ModelManager::State::Loading);
        QVERIFY(ready.wait(60000));
        QCOMPARE(app_->settings()->lastModel(), miniModel());
        QCOMPARE(app_->models()->backendName(), QStringLiteral("cpu"));

        // Attach two images; the cost preview prices them with the model's processor.
        QCOMPARE(chat()->attachments()->addUrls(QVariantList{goldenImage("synthetic_10x10.png"), goldenImage("synthetic_rgba_600x360.png")}), 2);
        chat()->setDraft("Compare these.");
        QVERIFY(chat()->canSend());
        QVariantMap cost = chat()->cost();
        QVERIFY(cost.value("known").toBool());
        QVERIFY(cost.value("imageTokens").toInt() > 2 * 400);
        QVERIFY(!cost.value("tilingOff").toBool());

        QVERIFY(chat()->send("Compare these."));
        QVERIFY(chat()->generating());
        QCOMPARE(chat()->attachments()->rowCount(), 0);
        QCOMPARE(chat()->messages()->rowCount(), 2);
        QVERIFY(chat()->currentConversation() > 0);
        QCOMPARE(chat()->currentTitle(), QStringLiteral("Compare these."));
        waitForAnswer();
        const Message answer = chat()->messages()->at(1);
        QCOMPARE(answer.state, MessageState::Complete);
        QVERIFY(!answer.text.isEmpty());
        QVERIFY(answer.stats.ttftSeconds > 0);
        QCOMPARE(answer.stats.stopReason, QStringLiteral("max_tokens"));

        // Stored: the user's images are copies in the app's store.
        ConversationStore* store = app_->store();
        const qint64 conversation = chat()->currentConversation();
        auto stored = store->messages(conversation);
        QCOMPARE(stored.size(), 2);
        QCOMPARE(stored[0].images.size(), 2);
        QVERIFY(stored[0].images[0].file.startsWith(store->imagesDir()));
        QCOMPARE(stored[1].text, answer.text);
        QCOMPARE(stored[1].state, MessageState::Complete);

        // A third image switches tiling off for the whole conversation: the preview says so.
        QVERIFY(chat()->attachments()->addPath(goldenImage("multi_image_1.jpeg")));
        QVERIFY(chat()->cost().value("tilingOff").toBool());
        QVERIFY(chat()->cost().value("summary").toString().contains("tiling off"));
        chat()->attachments()->clear();

        // Stop a long answer midway.
        app_->settings()->setMaxNewTokens(2000);
        app_->settings()->setTemperature(0);
        QVERIFY(chat()->send("Tell me more."));
        QTRY_VERIFY_WITH_TIMEOUT(!chat()->messages()->at(3).text.isEmpty(), 60000);
        chat()->stop();
        waitForAnswer();
        QCOMPARE(chat()->messages()->at(3).state, MessageState::Stopped);
        QCOMPARE(store->messages(conversation)[3].state, MessageState::Stopped);
        QVERIFY(chat()->messages()->at(3).stats.outputTokens < 2000);

        // Regenerate replaces the last answer.
        app_->settings()->setMaxNewTokens(6);
        QVERIFY(chat()->regenerate());
        waitForAnswer();
        QCOMPARE(chat()->messages()->rowCount(), 4);
        QCOMPARE(chat()->messages()->at(3).state, MessageState::Complete);

        // Edit the first message and resend: later turns go, its images stay.
        const qint64 firstId = chat()->messages()->at(0).id;
        QVERIFY(chat()->editAndResend(firstId, "Compare these two pictures."));
        waitForAnswer();
        QCOMPARE(chat()->messages()->rowCount(), 2);
        stored = store->messages(conversation);
        QCOMPARE(stored.size(), 2);
        QCOMPARE(stored[0].text, QStringLiteral("Compare these two pictures."));
        QCOMPARE(stored[0].images.size(), 2);
        QVERIFY(QFileInfo::exists(stored[0].images[0].file));

        // Rename, search, delete (images go with it).
        chat()->renameConversation(conversation, "Two pictures");
        QCOMPARE(chat()->currentTitle(), QStringLiteral("Two pictures"));
        chat()->conversations()->setSearch("pictures");
        QCOMPARE(chat()->conversations()->rowCount(), 1);
        chat()->conversations()->setSearch("zebra");
        QCOMPARE(chat()->conversations()->rowCount(), 0);
        chat()->conversations()->setSearch({});
        const QString imageFile = stored[0].images[0].file;
        chat()->deleteConversation(conversation);
        QVERIFY(!QFileInfo::exists(imageFile));
        QCOMPARE(chat()->currentConversation(), 0);
        QCOMPARE(chat()->messages()->rowCount(), 0);
        QCOMPARE(chat()->conversations()->rowCount(), 0);
    }

    void engineErrorsLeaveTheConversationUsable()
    {
        TESSERA_REQUIRE_GOLDEN();
        QSignalSpy ready(app_->models(), &ModelManager::modelReady);
        app_->models()->load(miniModel());
        QVERIFY(ready.wait(60000));
        // An image whose header is fine but whose data stops short: the engine cannot decode it.
        QFile whole(goldenImage("synthetic_rgba_600x360.png"));
        QVERIFY(whole.open(QIODevice::ReadOnly));
        const QString truncated = dir_->path() + "/truncated.png";
        QFile cut(truncated);
        QVERIFY(cut.open(QIODevice::WriteOnly));
        cut.write(whole.read(3000));
        cut.close();
        QVERIFY(chat()->attachments()->addPath(truncated));
        QVERIFY(chat()->send("What is this?"));
        waitForAnswer();
        const Message failed = chat()->messages()->at(1);
        QCOMPARE(failed.state, MessageState::Failed);
        QVERIFY2(failed.error.contains("truncated or corrupt") && failed.error.contains("“truncated.png”"), qPrintable(failed.error));
        auto* parts = qobject_cast<MessageContentModel*>(
            chat()->messages()->data(chat()->messages()->index(1), MessageModel::ContentRole).value<QObject*>());
        QCOMPARE(parts->data(parts->index(parts->rowCount() - 1), MessageContentModel::SeverityRole).toString(), QStringLiteral("error"));
        QCOMPARE(app_->store()->messages(chat()->currentConversation())[1].error, failed.error);
        // The failed turn is left out of what the model sees, and of the cost.
        QCOMPARE(chat()->attachments()->imagesBefore(), 0);
        QVERIFY(chat()->cost().value("historyTokens").toInt() < 10);
        // The conversation goes on.
        QVERIFY(chat()->send("Just say hi."));
        waitForAnswer();
        QCOMPARE(chat()->messages()->at(3).state, MessageState::Complete);
    }

    void pasteAttachesClipboardImages()
    {
        QImage image(64, 48, QImage::Format_RGB32);
        image.fill(Qt::red);
        QGuiApplication::clipboard()->setImage(image);
        if (!QGuiApplication::clipboard()->mimeData() || !QGuiApplication::clipboard()->mimeData()->hasImage())
            QSKIP("this platform has no clipboard");
        QVERIFY(chat()->pasteImage());
        QCOMPARE(chat()->attachments()->rowCount(), 1);
        const QString path = chat()->attachments()->paths().first();
        QVERIFY(path.startsWith(app_->paths().cacheDir()));
        QCOMPARE(chat()->attachments()->data(chat()->attachments()->index(0), AttachmentModel::WidthRole).toInt(), 64);
        QGuiApplication::clipboard()->setText("just text");
        QVERIFY(!chat()->pasteImage());
    }

    void conversationsSurviveARestart()
    {
        TESSERA_REQUIRE_GOLDEN();
        QSignalSpy ready(app_->models(), &ModelManager::modelReady);
        app_->models()->load(miniModel());
        QVERIFY(ready.wait(60000));
        QVERIFY(chat()->attachments()->addPath(goldenImage("synthetic_10x10.png")));
        QVERIFY(chat()->send("Remember me"));
        waitForAnswer();
        const qint64 id = chat()->currentConversation();
        const QString text = chat()->messages()->at(1).text;

        app_ = std::make_unique<AppContext>(AppPaths::under(dir_->path()));
        QCOMPARE(app_->settings()->lastModel(), miniModel());
        QCOMPARE(chat()->conversations()->rowCount(), 1);
        QCOMPARE(chat()->conversations()->idAt(0), id);
        chat()->openConversation(id);
        QCOMPARE(chat()->messages()->rowCount(), 2);
        QCOMPARE(chat()->messages()->at(1).text, text);
        QCOMPARE(chat()->messages()->at(0).images.size(), 1);
        QCOMPARE(chat()->attachments()->imagesBefore(), 1);
        QVERIFY(app_->models()->loadLastModel());
        QVERIFY(QSignalSpy(app_->models(), &ModelManager::modelReady).wait(60000));
    }
};

QTEST_MAIN(TestChatController)
#include "test_chat_controller.moc"
