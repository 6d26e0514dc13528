// Qt Quick Test runner for tests/ui/tst_*.qml, against the app's real QML modules (qrc:/Tessera/...)
// with the engine's image provider. `testData` is the URL of tests/data.
#include "appcontext.h"

#include <QQmlContext>
#include <QQmlEngine>
#include <QQuickStyle>
#include <QUrl>
#include <QtQml/qqmlextensionplugin.h>
#include <QtQuickTest>

Q_IMPORT_QML_PLUGIN(Tessera_AppPlugin)

class Setup : public QObject {
    Q_OBJECT
public slots:
    void applicationAvailable() { QQuickStyle::setStyle(QStringLiteral("Material")); }
    void qmlEngineAvailable(QQmlEngine* engine)
    {
        tessera::app::AppContext::configureEngine(*engine);
        engine->rootContext()->setContextProperty(QStringLiteral("testData"),
                                                  QUrl::fromLocalFile(QStringLiteral(TESSERA_TEST_DATA_DIR)).toString());
    }
};

QUICK_TEST_MAIN_WITH_SETUP(tessera_ui, Setup)
#include "quick_test_main.moc"
