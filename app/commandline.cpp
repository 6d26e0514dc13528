#include "commandline.h"

#include "appcontext.h"
#include "chatcontroller.h"
#include "modelmanager.h"

#include <QCommandLineParser>
#include <QGuiApplication>
#include <QQmlApplicationEngine>
#include <QQuickWindow>
#include <QTimer>

#include <cstdio>

namespace tessera::app {

CommandLine parseCommandLine(const QGuiApplication& app)
{
    QCommandLineParser p;
    p.setApplicationDescription(QStringLiteral("Tessera: chat with images and see where things are, with DeepSeek-VL2 models run locally."));
    p.addHelpOption();
    p.addVersionOption();
    const QCommandLineOption dataDir(QStringLiteral("data-dir"), QStringLiteral("Keep conversations, images and settings in DIR."), QStringLiteral("DIR"));
    const QCommandLineOption model(QStringLiteral("model"), QStringLiteral("Load the model folder DIR at start."), QStringLiteral("DIR"));
    const QCommandLineOption noAutoLoad(QStringLiteral("no-autoload"), QStringLiteral("Do not load the last model at start."));
    const QCommandLineOption backend(QStringLiteral("backend"), QStringLiteral("Backend for this run: auto, cuda or cpu."), QStringLiteral("NAME"));
    const QCommandLineOption conversation(QStringLiteral("conversation"), QStringLiteral("Open conversation ID."), QStringLiteral("ID"));
    const QCommandLineOption page(QStringLiteral("page"), QStringLiteral("Open a page at start: settings or models."), QStringLiteral("PAGE"));
    const QCommandLineOption screenshot(QStringLiteral("screenshot"), QStringLiteral("Save the window to PATH (PNG) once ready, then quit."), QStringLiteral("PATH"));
    const QCommandLineOption delay(QStringLiteral("screenshot-delay"), QStringLiteral("Milliseconds to wait before the screenshot (default 1000)."), QStringLiteral("MS"));
    const QCommandLineOption size(QStringLiteral("size"), QStringLiteral("Window size, e.g. 1280x800."), QStringLiteral("WxH"));
    p.addOptions({dataDir, model, noAutoLoad, backend, conversation, page, screenshot, delay, size});
    p.process(app);

    CommandLine c;
    c.dataDir = p.value(dataDir);
    c.model = p.value(model);
    c.autoLoad = !p.isSet(noAutoLoad);
    c.backend = p.value(backend);
    c.conversation = p.value(conversation).toLongLong();
    c.page = p.value(page);
    c.screenshot = p.value(screenshot);
    if (p.isSet(delay))
        c.screenshotDelayMs = p.value(delay).toInt();
    const QStringList wh = p.value(size).split(QLatin1Char('x'));
    if (wh.size() == 2)
        c.windowSize = QSize(wh[0].toInt(), wh[1].toInt());
    return c;
}

void applyCommandLine(const CommandLine& cli, AppContext& context, QQmlApplicationEngine& engine)
{
    if (!cli.backend.isEmpty())
        context.models()->setBackendOverride(cli.backend);
    if (!cli.model.isEmpty())
        context.models()->load(cli.model);
    else if (cli.autoLoad)
        context.models()->loadLastModel();
    if (cli.conversation)
        context.chat()->openConversation(cli.conversation);
    if (!engine.rootObjects().isEmpty()) {
        if (auto* window = qobject_cast<QQuickWindow*>(engine.rootObjects().constFirst()); window && cli.windowSize.isValid())
            window->resize(cli.windowSize);
    }
    if (!cli.screenshot.isEmpty())
        scheduleScreenshot(engine, context, cli.screenshot, cli.screenshotDelayMs);
}

void scheduleScreenshot(QQmlApplicationEngine& engine, AppContext& context, const QString& path, int delayMs)
{
    auto* poll = new QTimer(&engine);
    poll->setInterval(100);
    QObject::connect(poll, &QTimer::timeout, &engine, [poll, &engine, &context, path, delayMs] {
        if (context.models()->state() == ModelManager::State::Loading || context.chat()->generating())
            return;
        poll->stop();
        poll->deleteLater();
        QTimer::singleShot(delayMs, &engine, [&engine, path] {
            auto* window = engine.rootObjects().isEmpty() ? nullptr : qobject_cast<QQuickWindow*>(engine.rootObjects().constFirst());
            const bool ok = window && window->grabWindow().save(path, "PNG");
            std::fprintf(ok ? stdout : stderr, ok ? "screenshot saved to %s\n" : "cannot save the screenshot to %s\n",
                         qPrintable(path));
            std::fflush(nullptr);
            QCoreApplication::exit(ok ? 0 : 1);
        });
    });
    poll->start();
}

}  // namespace tessera::app
