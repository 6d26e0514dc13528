// The real app, offscreen, on the golden mini model with the CPU backend: start, load the model
// through the model page, send a message with an image, receive a streamed answer, stop a second
// answer midway (Esc), restart and find the conversation again. Then the real executable with
// --screenshot.
#include "appcontext.h"
#include "chatcontroller.h"
#include "messagemodel.h"
#include "conversationstore.h"
#include "modelmanager.h"
#include "settings.h"

#include "golden.h"

#include <QProcess>
#include <QColor>
#include <QQmlApplicationEngine>
#include <QQuickItem>
#include <QQuickStyle>
#include <QQuickWindow>
#include <QSettings>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QtQml/qqmlextensionplugin.h>
#include <QtTest>

Q_IMPORT_QML_PLUGIN(Tessera_AppPlugin)

using namespace tessera::app;

namespace {

QString miniModel() { return QString::fromStdString(tessera::test::goldenModel("mini-mha").string()); }
QString goldenImage(const char* name) { return QString::fromStdString((tessera::test::goldenDir() / "images" / name).string()); }

// Views parent their delegates visually only: search the item tree, not QObject children.
QQuickItem* findItem(QQuickItem* root, const QString& name)
{
    if (!root)
        return nullptr;
    if (root->objectName() == name && root->isVisible())
        return root;
    for (QQuickItem* child : root->childItems()) {
        if (QQuickItem* found = findItem(child, name))
            return found;
    }
    return nullptr;
}

}  // namespace

class TestEndToEnd : public QObject {
    Q_OBJECT

    std::unique_ptr<AppContext> context_;
    std::unique_ptr<QQmlApplicationEngine> engine_;
    QQuickWindow* window_ = nullptr;

    void startApp(const QString& dataDir)
    {
        context_ = std::make_unique<AppContext>(AppPaths::under(dataDir));
        context_->models()->setBackendOverride("cpu");
        engine_ = std::make_unique<QQmlApplicationEngine>();
        AppContext::configureEngine(*engine_);
        engine_->setInitialProperties({{"initialPage", QString()}});
        engine_->load(QUrl("qrc:/Tessera/Main/Main.qml"));
        QVERIFY(!engine_->rootObjects().isEmpty());
        window_ = qobject_cast<QQuickWindow*>(engine_->rootObjects().constFirst());
        QVERIFY(window_);
        window_->resize(1200, 800);
        QVERIFY(QTest::qWaitForWindowExposed(window_));
    }

    void quitApp()
    {
        engine_.reset();
        context_.reset();
        window_ = nullptr;
    }

    QQuickItem* item(const char* name)
    {
        return findItem(window_->contentItem(), QString::fromLatin1(name));  // visible ones only
    }

    void click(QQuickItem* target)
    {
        QVERIFY(target);
        QTRY_VERIFY(target->isVisible() && target->isEnabled() && target->opacity() > 0);
        const QPointF centre = target->mapToScene(QPointF(target->width() / 2, target->height() / 2));
        // What a user can click is inside the window and not under another item.
        QQuickItem* top = window_->contentItem()->childAt(centre.x(), centre.y());
        QVERIFY2(top, "nothing there to click");
        QTest::mouseClick(window_, Qt::LeftButton, {}, centre.toPoint());
    }

    void type(const QString& text)
    {
        QQuickItem* input = item("composerInput");
        QVERIFY(input);
        input->forceActiveFocus();
        for (const QChar c : text)
            QTest::keyClick(window_, c.toLatin1());
        QTRY_COMPARE(input->property("text").toString(), text);
    }

    void saveScreenshot(const QString& name)
    {
        QDir().mkpath(TESSERA_TEST_OUTPUT_DIR);
        window_->grabWindow().save(QStringLiteral(TESSERA_TEST_OUTPUT_DIR "/") + name);
    }

private slots:
    void initTestCase()
    {
        QQuickStyle::setStyle("Material");
        QQuickWindow::setGraphicsApi(QSGRendererInterface::Software);
    }

    void chatAcrossARestart()
    {
        TESSERA_REQUIRE_GOLDEN();
        QTemporaryDir dir;
        startApp(dir.path());

        // First run: the model page, which says what it accepts.
        QQuickItem* modelPage = item("modelPage");
        QVERIFY(modelPage);
        QTRY_VERIFY(modelPage->isVisible());

        // Pick the folder (what the folder dialog hands over), check it, load it with its button.
        QVERIFY(QMetaObject::invokeMethod(modelPage, "choose", Q_ARG(QVariant, QUrl::fromLocalFile(miniModel()))));
        QQuickItem* picked = item("pickedModel");
        QTRY_VERIFY(picked && picked->isVisible());
        QVERIFY(picked->property("valid").toBool());
        QSignalSpy ready(context_->models(), &ModelManager::modelReady);
        click(findItem(picked, "loadModelButton"));
        QVERIFY(ready.wait(60000));
        QTRY_VERIFY(!modelPage->isVisible());
        QTRY_VERIFY(item("composerInput")->isVisible());

        // Attach an image (what a drop does) and send with Ctrl+Enter.
        context_->settings()->setMaxNewTokens(16);
        QQuickItem* composer = item("composer");
        QVariant added;
        QVERIFY(QMetaObject::invokeMethod(composer, "addFiles", Q_RETURN_ARG(QVariant, added),
                                          Q_ARG(QVariant, QVariantList{QUrl::fromLocalFile(goldenImage("synthetic_rgba_600x360.png"))})));
        QCOMPARE(added.toInt(), 1);
        type("Describe the image.");
        MessageModel* messages = context_->chat()->messages();
        int textUpdates = 0;
        connect(messages, &QAbstractItemModel::dataChanged, this, [&] { ++textUpdates; });
        QTest::keyClick(window_, Qt::Key_Return, Qt::ControlModifier);
        QTRY_COMPARE(messages->rowCount(), 2);
        QVERIFY(context_->chat()->generating());
        QTRY_VERIFY_WITH_TIMEOUT(!context_->chat()->generating(), 120000);
        QCOMPARE(messages->at(1).state, MessageState::Complete);
        QVERIFY(!messages->at(1).text.isEmpty());
        QCOMPARE(messages->at(0).images.size(), 1);
        QCOMPARE(item("composerInput")->property("text").toString(), QString());  // cleared after sending
        // The answer is on screen, with its speed.
        QQuickItem* list = item("messageList");
        QTRY_VERIFY(findItem(list, "message_1") != nullptr);
        QQuickItem* stats = findItem(list, "message_1")->findChild<QQuickItem*>("statsText");
        QVERIFY(stats);
        QTRY_VERIFY(stats->property("text").toString().contains("tokens/s") || stats->property("text").toString().contains("first token"));
        saveScreenshot("e2e-answer.png");

        // A second, long answer, stopped midway with Esc.
        context_->settings()->setMaxNewTokens(2000);
        context_->settings()->setTemperature(0);
        type("Tell me everything.");
        QTest::keyClick(window_, Qt::Key_Return, Qt::ControlModifier);
        QTRY_COMPARE(messages->rowCount(), 4);
        textUpdates = 0;
        // The answer arrives in pieces, on screen while it is written.
        QTRY_VERIFY_WITH_TIMEOUT(textUpdates >= 3 && !messages->at(3).text.isEmpty(), 60000);
        QVERIFY(context_->chat()->generating());
        QVERIFY(messages->at(3).state == MessageState::Streaming);
        saveScreenshot("e2e-streaming.png");
        QVERIFY(item("stopButton"));
        QTest::keyClick(window_, Qt::Key_Escape);
        QTRY_VERIFY_WITH_TIMEOUT(!context_->chat()->generating(), 60000);
        QCOMPARE(messages->at(3).state, MessageState::Stopped);
        QVERIFY(messages->at(3).stats.outputTokens < 2000);
        const qint64 conversation = context_->chat()->currentConversation();
        const QString title = context_->chat()->currentTitle();
        saveScreenshot("e2e-stopped.png");

        // Restart: the model comes back by itself, the conversation is in the list.
        quitApp();
        startApp(dir.path());
        QSignalSpy readyAgain(context_->models(), &ModelManager::modelReady);
        QVERIFY(context_->models()->loadLastModel());
        QVERIFY(readyAgain.wait(60000));
        QQuickItem* conversations = item("conversationList");
        QVERIFY(conversations);
        QTRY_COMPARE(conversations->property("count").toInt(), 1);
        QQuickItem* first = nullptr;
        QTRY_VERIFY((first = findItem(conversations, "conversation_0")) != nullptr);
        QCOMPARE(first->property("title").toString(), title);
        click(first);
        QTRY_COMPARE(context_->chat()->currentConversation(), conversation);
        QTRY_COMPARE(context_->chat()->messages()->rowCount(), 4);
        QCOMPARE(context_->chat()->messages()->at(3).state, MessageState::Stopped);
        QTRY_COMPARE(item("conversationTitle")->property("text").toString(), title);
        saveScreenshot("e2e-restarted.png");
        quitApp();
    }

    // The other controls, driven as a user would: keyboard shortcuts, rename and delete from the
    // list, edit and resend, regenerate, the large view with zoom and export, settings.
    void controls()
    {
        TESSERA_REQUIRE_GOLDEN();
        QTemporaryDir dir;
        startApp(dir.path());
        QSignalSpy ready(context_->models(), &ModelManager::modelReady);
        context_->models()->load(miniModel());
        QVERIFY(ready.wait(60000));
        context_->settings()->setMaxNewTokens(8);
        ChatController* chat = context_->chat();

        // A Locate prompt about an image; then a fake grounding answer to work with.
        QQuickItem* composer = item("composer");
        QVariant added;
        QVERIFY(QMetaObject::invokeMethod(composer, "addFiles", Q_RETURN_ARG(QVariant, added),
                                          Q_ARG(QVariant, QVariantList{QUrl::fromLocalFile(goldenImage("visual_grounding_1.jpeg"))})));
        type("Where is the giraffe?");
        QTest::keyClick(window_, Qt::Key_Return, Qt::ControlModifier);
        QTRY_VERIFY_WITH_TIMEOUT(chat->messages()->rowCount() == 2 && !chat->generating(), 60000);

        // Regenerate with its button.
        QQuickItem* list = item("messageList");
        QTest::qWait(200);
        QVERIFY(QMetaObject::invokeMethod(list, "positionViewAtEnd"));
        QQuickItem* regenerate = nullptr;
        QTRY_VERIFY((regenerate = findItem(findItem(list, "message_1"), "regenerateButton")) != nullptr);
        const QPointF at = regenerate->mapToScene(QPointF(regenerate->width() / 2, regenerate->height() / 2));
        const QRectF listArea(list->mapToScene(QPointF(0, 0)), QSizeF(list->width(), list->height()));
        QVERIFY2(listArea.contains(at), "the regenerate button is scrolled out of view");
        saveScreenshot("controls-answer.png");
        QSignalSpy finished(chat, &ChatController::answerFinished);
        click(regenerate);
        QVERIFY(chat->generating());
        QVERIFY(finished.wait(60000));
        QCOMPARE(chat->messages()->rowCount(), 2);
        QCOMPARE(context_->store()->messages(chat->currentConversation()).size(), 2);


        // Edit the question in place and resend with Ctrl+Enter.
        QQuickItem* edit = findItem(findItem(list, "message_0"), "editButton");
        QVERIFY(edit);
        click(edit);
        QQuickItem* editArea = nullptr;
        QTRY_VERIFY((editArea = findItem(list, "editArea")) != nullptr);
        QTRY_VERIFY(editArea->hasActiveFocus());
        QTest::keyClick(window_, Qt::Key_End);
        QTest::keyClick(window_, '!');
        saveScreenshot("controls-edit.png");
        QTest::keyClick(window_, Qt::Key_Return, Qt::ControlModifier);
        QTRY_VERIFY_WITH_TIMEOUT(!chat->generating() && chat->messages()->at(0).text == "Where is the giraffe?!", 60000);
        QCOMPARE(chat->messages()->rowCount(), 2);

        // The large view of the question's image: zoom with the keyboard, close with Esc.
        QQuickItem* image = findItem(findItem(list, "message_0"), "messageImage");
        QVERIFY(image);
        click(image);
        QObject* viewer = engine_->rootObjects().constFirst()->findChild<QObject*>("imageViewer");
        QVERIFY(viewer);
        QTRY_VERIFY(viewer->property("opened").toBool());
        const double fit = viewer->property("zoom").toDouble();
        QTest::keyClick(window_, '+');
        QTRY_VERIFY(viewer->property("zoom").toDouble() > fit);
        QTest::keyClick(window_, Qt::Key_Escape);
        QTRY_VERIFY(!viewer->property("opened").toBool());
        QVERIFY(!chat->generating());

        // Export of a grounding answer writes the PNG and the JSON.
        const qint64 conversation = chat->currentConversation();
        const Message answer = chat->messages()->at(1);
        context_->store()->updateMessage(answer.id, "<|ref|>The giraffe<|/ref|><|det|>[[585,273,948,890]]<|/det|>",
                                         MessageState::Complete);
        chat->newConversation();
        chat->openConversation(conversation);
        const QVariantMap exported = chat->exportGrounding(answer.id, QUrl::fromLocalFile(dir.path() + "/giraffe").toString());
        QVERIFY2(exported.value("ok").toBool(), qPrintable(exported.value("error").toString()));
        QVERIFY(QFileInfo::exists(dir.path() + "/giraffe.png"));
        QVERIFY(QFileInfo::exists(dir.path() + "/giraffe.json"));

        // Ctrl+N: a new chat; Ctrl+K: search the list.
        QTest::keyClick(window_, Qt::Key_N, Qt::ControlModifier);
        QTRY_COMPARE(chat->currentConversation(), 0);
        QTest::keyClick(window_, Qt::Key_K, Qt::ControlModifier);
        QQuickItem* search = item("searchField");
        QTRY_VERIFY(search->hasActiveFocus());
        for (const char c : QByteArray("zebra"))
            QTest::keyClick(window_, c);
        QTRY_COMPARE(chat->conversations()->rowCount(), 0);
        QTest::keyClick(window_, Qt::Key_Escape);
        QTRY_COMPARE(chat->conversations()->rowCount(), 1);

        // Rename in place (right click, Rename, type, Enter), then delete through the dialog.
        QQuickItem* row = nullptr;
        QTRY_VERIFY((row = findItem(item("conversationList"), "conversation_0")) != nullptr);
        QVERIFY(QMetaObject::invokeMethod(row, "startRename"));
        QQuickItem* renameField = nullptr;
        QTRY_VERIFY((renameField = findItem(row, "renameField")) != nullptr);
        QTRY_VERIFY(renameField->hasActiveFocus());
        QTest::keyClick(window_, Qt::Key_A, Qt::ControlModifier);
        for (const char c : QByteArray("Giraffes"))
            QTest::keyClick(window_, c);
        QTest::keyClick(window_, Qt::Key_Return);
        QTRY_COMPARE(context_->store()->conversation(conversation)->title, QStringLiteral("Giraffes"));
        QTRY_VERIFY((row = findItem(item("conversationList"), "conversation_0")) != nullptr);
        QVERIFY(QMetaObject::invokeMethod(row, "deleteRequested", Q_ARG(QVariant, conversation), Q_ARG(QString, "Giraffes")));
        QObject* dialog = nullptr;
        QTRY_VERIFY((dialog = engine_->rootObjects().constFirst()->findChild<QObject*>("deleteDialog")) != nullptr &&
                    dialog->property("opened").toBool());
        saveScreenshot("controls-delete.png");
        QVERIFY(QMetaObject::invokeMethod(dialog, "accept"));
        QTRY_COMPARE(chat->conversations()->rowCount(), 0);
        QCOMPARE(context_->store()->conversations().size(), 0);
        QTRY_VERIFY(!dialog->property("visible").toBool());  // a modal popup holds the shortcuts while it fades

        // Settings: a slider and the theme, saved at once.
        QTest::keyClick(window_, ',', Qt::ControlModifier);
        QTRY_VERIFY(item("settingsPage"));
        context_->settings()->setTheme("dark");
        QTRY_VERIFY(engine_->rootObjects().constFirst()->property("color").value<QColor>().lightness() < 80);
        saveScreenshot("controls-settings.png");
        QTest::keyClick(window_, Qt::Key_Escape);
        QTRY_VERIFY(!item("settingsPage"));
        quitApp();
    }

    void realExecutableTakesAScreenshot()
    {
        TESSERA_REQUIRE_GOLDEN();
        QTemporaryDir dir;
        const QString png = dir.path() + "/window.png";
        QProcess app;
        app.setProcessChannelMode(QProcess::MergedChannels);
        app.start(TESSERA_APP_BINARY, {"--data-dir", dir.path(), "--model", miniModel(), "--backend", "cpu", "--screenshot", png,
                                       "--screenshot-delay", "300", "--size", "1000x700"});
        QVERIFY(app.waitForFinished(120000));
        const QString output = QString::fromLocal8Bit(app.readAll());
        QVERIFY2(app.exitCode() == 0, qPrintable(output));
        const QImage shot(png);
        QCOMPARE(shot.size(), QSize(1000, 700));
        QSettings settings(dir.path() + "/tessera.conf", QSettings::IniFormat);
        QCOMPARE(settings.value("model/last").toString(), miniModel());
    }
};

QTEST_MAIN(TestEndToEnd)
#include "test_end_to_end.moc"
