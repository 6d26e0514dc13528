// Renders the app's main scenes offscreen and saves them as PNGs (README, reviews): first run,
// empty chat, a multi-image chat, a grounding answer with boxes (a label hovered), the large view,
// settings (dark), errors, and the composer's cost preview. Each scene is checked to be drawn.
// TESSERA_SCREENSHOT_DIR chooses where the PNGs go.
#include "appcontext.h"
#include "chatcontroller.h"
#include "conversationstore.h"
#include "messagemodel.h"
#include "modelmanager.h"
#include "settings.h"

#include "golden.h"

#include <QPointer>
#include <QSemaphore>
#include <QQmlApplicationEngine>
#include <QQuickItem>
#include <QQuickStyle>
#include <QQuickWindow>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QtQml/qqmlextensionplugin.h>
#include <QtTest>

Q_IMPORT_QML_PLUGIN(Tessera_AppPlugin)

using namespace tessera::app;

namespace {

QString miniModel() { return QString::fromStdString(tessera::test::goldenModel("mini-mha").string()); }
QString goldenImage(const char* name) { return QString::fromStdString((tessera::test::goldenDir() / "images" / name).string()); }

QString outputDir()
{
    const QString dir = qEnvironmentVariable("TESSERA_SCREENSHOT_DIR", QStringLiteral(TESSERA_TEST_OUTPUT_DIR "/scenes"));
    QDir().mkpath(dir);
    return dir;
}

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

AnswerStats stats(double ttft, double tps, int tokens)
{
    AnswerStats s;
    s.ttftSeconds = ttft;
    s.tokensPerSecond = tps;
    s.outputTokens = tokens;
    s.stopReason = "eos";
    return s;
}

}  // namespace

class TestScenes : public QObject {
    Q_OBJECT

    std::unique_ptr<QTemporaryDir> dir_;
    std::unique_ptr<AppContext> context_;
    std::unique_ptr<QQmlApplicationEngine> engine_;
    QQuickWindow* window_ = nullptr;

    void start(const QString& page = {}, const QString& theme = "light")
    {
        context_ = std::make_unique<AppContext>(AppPaths::under(dir_->path()));
        context_->settings()->setTheme(theme);
        context_->models()->setBackendOverride("cpu");
        engine_ = std::make_unique<QQmlApplicationEngine>();
        AppContext::configureEngine(*engine_);
        engine_->setInitialProperties({{"initialPage", page}});
        engine_->load(QUrl("qrc:/Tessera/Main/Main.qml"));
        QVERIFY(!engine_->rootObjects().isEmpty());
        window_ = qobject_cast<QQuickWindow*>(engine_->rootObjects().constFirst());
        window_->resize(1280, 820);
        QVERIFY(QTest::qWaitForWindowExposed(window_));
    }

    void loadModel()
    {
        QSignalSpy ready(context_->models(), &ModelManager::modelReady);
        context_->models()->load(miniModel());
        QVERIFY(ready.wait(60000));
    }

    QQuickItem* item(const char* name) { return findItem(window_->contentItem(), QString::fromLatin1(name)); }

    static bool imagesLoading(QQuickItem* root)
    {
        if (root->isVisible() && root->inherits("QQuickImageBase") && root->property("status").toInt() == 2)
            return true;
        for (QQuickItem* child : root->childItems()) {
            if (imagesLoading(child))
                return true;
        }
        return false;
    }

    // Saves the window once images have decoded and the view has settled; checks it is not blank.
    void shoot(const char* name)
    {
        QTest::qWait(300);
        QTRY_VERIFY_WITH_TIMEOUT(!imagesLoading(window_->contentItem()), 20000);
        QTest::qWait(300);
        const QImage image = window_->grabWindow();
        QVERIFY(!image.isNull());
        QSet<QRgb> colours;
        for (int y = 0; y < image.height(); y += 7)
            for (int x = 0; x < image.width(); x += 7)
                colours.insert(image.pixel(x, y));
        QVERIFY2(colours.size() > 20, "the window looks blank");
        QVERIFY(image.save(outputDir() + QLatin1Char('/') + QString::fromLatin1(name) + QStringLiteral(".png")));
    }

    void quit()
    {
        engine_.reset();
        context_.reset();
        window_ = nullptr;
    }

    qint64 groundingConversation()
    {
        ConversationStore* store = context_->store();
        const qint64 c = store->createConversation("Giraffes");
        const StoredImage photo = store->importImage(goldenImage("visual_grounding_1.jpeg"));
        store->addMessage(c, MessageRole::User, "<|ref|>The giraffe at the back<|/ref|>.", {photo});
        const Message a1 = store->addMessage(c, MessageRole::Assistant, {}, {});
        store->updateMessage(a1.id, "<|ref|>The giraffe at the back<|/ref|><|det|>[[585,273,948,890]]<|/det|>", MessageState::Complete, {},
                             stats(0.31, 48.2, 21));
        store->addMessage(c, MessageRole::User, "<|grounding|>Describe the image in detail.", {});
        const Message a2 = store->addMessage(c, MessageRole::Assistant, {}, {});
        store->updateMessage(a2.id,
                             "<|ref|>Two giraffes<|/ref|><|det|>[[70,70,632,999],[585,273,948,890]]<|/det|> stand on "
                             "<|ref|>a sunlit lawn<|/ref|><|det|>[[0,615,999,999]]<|/det|> in front of "
                             "<|ref|>a line of trees<|/ref|><|det|>[[0,405,999,612]]<|/det|>. The nearer one looks straight at the "
                             "camera; the other, further back, faces right.",
                             MessageState::Complete, {}, stats(0.35, 46.9, 64));
        return c;
    }

private slots:
    void initTestCase()
    {
        QQuickStyle::setStyle("Material");
        QQuickWindow::setGraphicsApi(QSGRendererInterface::Software);
    }

    void init() { dir_ = std::make_unique<QTemporaryDir>(); }
    void cleanup()
    {
        quit();
        dir_.reset();
    }

    void firstRun()
    {
        start();
        QTRY_VERIFY(item("modelPage"));
        shoot("first-run");
        if (tessera::test::goldenDir().empty())
            return;
        // A folder chosen with the dialog, checked before loading.
        QVERIFY(QMetaObject::invokeMethod(item("modelPage"), "choose", Q_ARG(QVariant, QUrl::fromLocalFile(miniModel()))));
        QTRY_VERIFY(item("pickedModel"));
        shoot("first-run-checked");
    }

    void loadingProgress()
    {
        TESSERA_REQUIRE_GOLDEN();
        start();
        // Hold the load half way (on the worker's thread) so the progress card can be seen.
        QSemaphore held, release;
        bool once = false;
        connect(context_->models()->worker(), &InferenceWorker::loadProgress, context_->models()->worker(),
                [&](const QString&, double fraction) {
                    if (fraction >= 0.4 && !once) {
                        once = true;
                        held.release();
                        release.acquire();
                    }
                }, Qt::DirectConnection);
        context_->models()->load(miniModel());
        QVERIFY(held.tryAcquire(1, 60000));
        QTRY_VERIFY(context_->models()->loadProgress() >= 0.4);
        QTRY_VERIFY(item("loadingCard"));
        shoot("loading");
        release.release();
        QTRY_VERIFY_WITH_TIMEOUT(context_->models()->state() == ModelManager::State::Ready, 60000);
    }

    void emptyChat()
    {
        TESSERA_REQUIRE_GOLDEN();
        start();
        loadModel();
        QTRY_VERIFY(item("composerInput"));
        shoot("empty-chat");
        // Locate… asks what to find.
        QQuickItem* locate = item("actionLocate");
        QVERIFY(locate);
        const QPointF at = locate->mapToScene(QPointF(locate->width() / 2, locate->height() / 2));
        QTest::mouseClick(window_, Qt::LeftButton, {}, at.toPoint());
        QTRY_VERIFY(findItem(window_->contentItem()->parentItem() ? window_->contentItem()->parentItem() : window_->contentItem(),
                             "locatePhrase"));
        for (const char c : QByteArray("the giraffe at the back"))
            QTest::keyClick(window_, c);
        shoot("locate");
    }

    void multiImageChat()
    {
        TESSERA_REQUIRE_GOLDEN();
        start();
        ConversationStore* store = context_->store();
        const qint64 c = store->createConversation("What can I cook?");
        QList<StoredImage> images;
        for (const char* n : {"multi_image_1.jpeg", "multi_image_2.jpeg", "multi_image_3.jpeg"})
            images << store->importImage(goldenImage(n));
        store->addMessage(c, MessageRole::User, "What are in these images, and what dish can I make with them?", images);
        const Message a = store->addMessage(c, MessageRole::Assistant, {}, {});
        store->updateMessage(a.id,
                             "The images show:\n\n"
                             "| Image | Ingredient |\n|---|---|\n| 1 | carrots |\n| 2 | sweet corn, husks on |\n| 3 | raw pork ribs in a bowl |\n\n"
                             "Together they make a classic **pork rib soup with corn and carrots**:\n\n"
                             "1. Blanch the ribs, then simmer them for an hour.\n"
                             "2. Add the corn in chunks and the carrots, cut on the bias.\n"
                             "3. Simmer 30 more minutes and season with `salt` and white pepper.",
                             MessageState::Complete, {}, stats(1.42, 38.7, 118));
        context_->chat()->conversations()->refresh();
        loadModel();
        context_->chat()->openConversation(c);
        // The composer with attachments: a fourth image keeps tiling off.
        QCOMPARE(context_->chat()->attachments()->addUrls(QVariantList{goldenImage("vqa_1.jpg")}), 1);
        QTRY_VERIFY(context_->chat()->cost().value("tilingOff").toBool());
        shoot("multi-image-chat");
    }

    void groundingAnswer()
    {
        TESSERA_REQUIRE_GOLDEN();
        start();
        const qint64 c = groundingConversation();
        context_->chat()->conversations()->refresh();
        loadModel();
        context_->chat()->openConversation(c);
        QTRY_COMPARE(context_->chat()->messages()->rowCount(), 4);
        // Hover the first label of the last answer: its boxes light up.
        QQuickItem* list = item("messageList");
        QTest::qWait(300);
        QVERIFY(QMetaObject::invokeMethod(list, "positionViewAtEnd"));
        QTest::qWait(300);
        QPointer<QQuickItem> message;
        QTRY_VERIFY((message = findItem(list, "message_3")) != nullptr);
        QTRY_VERIFY(findItem(message, "answerImage"));
        QQuickItem* text = findItem(message, "messageText");
        QVERIFY(text);
        QRectF r;
        QVERIFY(QMetaObject::invokeMethod(text, "positionToRectangle", Q_RETURN_ARG(QRectF, r), Q_ARG(int, 2)));
        const QPointF at = text->mapToScene(r.center());
        QTest::mouseMove(window_, at.toPoint());
        QTRY_COMPARE(message->property("hoveredRef").toInt(), 0);
        shoot("grounding");

        // The large view with its boxes.
        QQuickItem* image = findItem(message, "answerImage");
        const QPointF centre = image->mapToScene(QPointF(image->width() / 2, image->height() / 2));
        QTest::mouseClick(window_, Qt::LeftButton, {}, centre.toPoint());
        QTRY_VERIFY(item("viewerImage") || engine_->rootObjects().constFirst()->findChild<QObject*>("imageViewer")->property("opened").toBool());
        shoot("grounding-large-view");
    }

    void settingsDark()
    {
        TESSERA_REQUIRE_GOLDEN();
        start("settings", "dark");
        loadModel();
        QTRY_VERIFY(item("settingsPage"));
        shoot("settings-dark");
    }

    void errors()
    {
        TESSERA_REQUIRE_GOLDEN();
        start();
        // A folder that is not a model: the model page says why.
        context_->models()->load(dir_->path());
        QTRY_VERIFY(item("modelError"));
        shoot("error-model-folder");

        // An answer that failed (an image that cannot be decoded) and a refused attachment.
        loadModel();
        QFile whole(goldenImage("synthetic_rgba_600x360.png"));
        QVERIFY(whole.open(QIODevice::ReadOnly));
        const QString broken = dir_->path() + "/screenshot.png";
        QFile cut(broken);
        QVERIFY(cut.open(QIODevice::WriteOnly));
        cut.write(whole.read(3000));
        cut.close();
        QVERIFY(context_->chat()->attachments()->addPath(broken));
        QVERIFY(context_->chat()->send("What does this show?"));
        QTRY_VERIFY_WITH_TIMEOUT(!context_->chat()->generating(), 60000);
        QCOMPARE(context_->chat()->messages()->at(1).state, MessageState::Failed);
        context_->chat()->attachments()->addPath(QStringLiteral(TESSERA_TEST_DATA_DIR "/configs/deepseek-vl2-tiny.config.json"));
        QTRY_VERIFY(item("errorBanner"));
        QQuickItem* banner = item("errorBanner");
        QVERIFY(banner->height() > 20 && banner->width() > 200);
        shoot("error-answer");
    }
};

QTEST_MAIN(TestScenes)
#include "test_scenes.moc"
