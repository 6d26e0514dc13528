#pragma once
// Where Tessera keeps its files. Everything lives under one data directory (the conversations
// database, the stored images, a models folder that is scanned for checkpoints) plus a settings
// file; --data-dir or TESSERA_DATA_DIR moves all of it, which tests and portable installs need.
#include <QString>

namespace tessera::app {

struct AppPaths {
    QString dataDir;      // conversations.sqlite, images/, models/
    QString settingsFile; // an INI file

    QString databaseFile() const { return dataDir + QStringLiteral("/conversations.sqlite"); }
    QString imagesDir() const { return dataDir + QStringLiteral("/images"); }
    QString modelsDir() const { return dataDir + QStringLiteral("/models"); }
    QString cacheDir() const { return dataDir + QStringLiteral("/cache"); }  // pasted images before sending

    // The user's data and config locations (XDG), or TESSERA_DATA_DIR when set.
    static AppPaths standard();
    // Data and settings both under one folder.
    static AppPaths under(const QString& dir);

    // Creates the folders; false when one cannot be created.
    bool ensureExists(QString* problem = nullptr) const;
};

}  // namespace tessera::app
