#include "apppaths.h"

#include <QDir>
#include <QFileInfo>
#include <QStandardPaths>

namespace tessera::app {

AppPaths AppPaths::standard()
{
    const QString overridden = qEnvironmentVariable("TESSERA_DATA_DIR");
    if (!overridden.isEmpty())
        return under(overridden);
    AppPaths p;
    p.dataDir = QStandardPaths::writableLocation(QStandardPaths::AppDataLocation);
    p.settingsFile = QStandardPaths::writableLocation(QStandardPaths::AppConfigLocation) + QStringLiteral("/tessera.conf");
    return p;
}

AppPaths AppPaths::under(const QString& dir)
{
    AppPaths p;
    p.dataDir = QDir(dir).absolutePath();
    p.settingsFile = p.dataDir + QStringLiteral("/tessera.conf");
    return p;
}

bool AppPaths::ensureExists(QString* problem) const
{
    for (const QString& d : {dataDir, imagesDir(), modelsDir(), cacheDir(), QFileInfo(settingsFile).absolutePath()}) {
        if (!QDir().mkpath(d)) {
            if (problem)
                *problem = QStringLiteral("cannot create the folder %1; check its permissions or start Tessera with --data-dir").arg(d);
            return false;
        }
    }
    return true;
}

}  // namespace tessera::app
