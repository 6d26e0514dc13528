#pragma once
// Everything one running Tessera holds — paths, settings, the conversations store, the model and
// its worker thread, the chat — created before the QML engine, so the QML singletons hand out
// these instances (tests build their own with a temporary data directory).
#include "apppaths.h"

#include <QObject>

#include <memory>

class QQmlEngine;

namespace tessera::app {

class ChatController;
class ConversationStore;
class ModelManager;
class Settings;

class AppContext : public QObject {
    Q_OBJECT
public:
    explicit AppContext(const AppPaths& paths, QObject* parent = nullptr);
    ~AppContext() override;

    // The live context, for the QML singletons' create(); null when none.
    static AppContext* current();

    const AppPaths& paths() const { return paths_; }
    Settings* settings() const { return settings_; }
    ConversationStore* store() const { return store_.get(); }
    ModelManager* models() const { return models_; }
    ChatController* chat() const { return chat_; }
    // Why the store could not open (the app still starts and says so).
    QString startupProblem() const { return problem_; }

    // Adds the qrc:/ import path and the image provider; call before loading QML.
    static void configureEngine(QQmlEngine& engine);

private:
    AppPaths paths_;
    QString problem_;
    Settings* settings_ = nullptr;
    std::unique_ptr<ConversationStore> store_;
    ModelManager* models_ = nullptr;
    ChatController* chat_ = nullptr;
};

}  // namespace tessera::app
