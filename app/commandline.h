#pragma once
// The app's command line: where its data lives, which model to load, and a screenshot mode that
// renders the window to a PNG and quits (documentation, tests, bug reports).
#include <QSize>
#include <QString>

class QGuiApplication;
class QQmlApplicationEngine;

namespace tessera::app {

class AppContext;

struct CommandLine {
    QString dataDir;          // --data-dir
    QString model;            // --model: load this folder instead of the last one
    bool autoLoad = true;     // --no-autoload
    QString backend;          // --backend auto|cuda|cpu (this run only)
    qint64 conversation = 0;  // --conversation ID
    QString page;             // --page settings|models
    QString screenshot;       // --screenshot PATH
    int screenshotDelayMs = 1000;
    QSize windowSize;         // --size WxH
};

CommandLine parseCommandLine(const QGuiApplication& app);

// After the QML is loaded: load the model, open the conversation, schedule the screenshot.
void applyCommandLine(const CommandLine& cli, AppContext& context, QQmlApplicationEngine& engine);

// Saves the engine's window to `path` once no model is loading and `delayMs` have passed, then
// quits the application (exit code 0, or 1 when the file cannot be written).
void scheduleScreenshot(QQmlApplicationEngine& engine, AppContext& context, const QString& path, int delayMs);

}  // namespace tessera::app
