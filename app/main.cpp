// Tessera's desktop app. Everything lives in the tessera_app library and the Tessera.* QML
// modules; this file only wires them into a process.
#include "appcontext.h"
#include "commandline.h"

#include <QGuiApplication>
#include <QIcon>
#include <QQmlApplicationEngine>
#include <QQuickStyle>
#include <QQuickWindow>
#include <QtQml/qqmlextensionplugin.h>

#include "core/process_setup.h"

Q_IMPORT_QML_PLUGIN(Tessera_AppPlugin)

int main(int argc, char* argv[])
{
    // The CPU backend's threads must sleep, not spin, between bursts: the GUI shares the cores.
    tessera::preferPassiveThreadWaits(argv);
    QGuiApplication app(argc, argv);
    app.setApplicationName(QStringLiteral("tessera"));
    app.setApplicationDisplayName(QStringLiteral("Tessera"));
    app.setApplicationVersion(QStringLiteral(TESSERA_VERSION));
    app.setDesktopFileName(QStringLiteral("io.github.tessera.Tessera"));
    app.setWindowIcon(QIcon::fromTheme(QStringLiteral("io.github.tessera.Tessera"), QIcon(QStringLiteral(":/Tessera/Controls/tessera.svg"))));

    const tessera::app::CommandLine cli = tessera::app::parseCommandLine(app);
    if (QGuiApplication::platformName() == QLatin1String("offscreen"))
        QQuickWindow::setGraphicsApi(QSGRendererInterface::Software);  // no GPU context headless
    QQuickStyle::setStyle(QStringLiteral("Material"));

    tessera::app::AppContext context(cli.dataDir.isEmpty() ? tessera::app::AppPaths::standard()
                                                           : tessera::app::AppPaths::under(cli.dataDir));
    QQmlApplicationEngine engine;
    tessera::app::AppContext::configureEngine(engine);
    engine.setInitialProperties({{QStringLiteral("initialPage"), cli.page}});
    engine.load(QUrl(QStringLiteral("qrc:/Tessera/Main/Main.qml")));
    if (engine.rootObjects().isEmpty())
        return 1;
    tessera::app::applyCommandLine(cli, context, engine);
    return app.exec();
}
