#include "appcontext.h"

#include "chatcontroller.h"
#include "conversationstore.h"
#include "imageprovider.h"
#include "markdownformatter.h"
#include "modelmanager.h"
#include "settings.h"

#include <QDir>
#include <QDirIterator>
#include <QFileInfo>
#include <QQmlEngine>

namespace tessera::app {

namespace {

AppContext* g_current = nullptr;

template <typename T>
T* singleton(T* instance)
{
    if (instance)
        QQmlEngine::setObjectOwnership(instance, QQmlEngine::CppOwnership);
    return instance;
}

// Pasted images are copied into the store when sent; older leftovers are not needed.
void cleanCache(const QString& dir)
{
    const QDateTime cutoff = QDateTime::currentDateTime().addDays(-1);
    QDirIterator it(dir, QDir::Files);
    while (it.hasNext()) {
        it.next();
        if (it.fileInfo().lastModified() < cutoff)
            QFile::remove(it.filePath());
    }
}

}  // namespace

AppContext::AppContext(const AppPaths& paths, QObject* parent) : QObject(parent), paths_(paths)
{
    paths_.ensureExists(&problem_);
    settings_ = new Settings(paths_.settingsFile, this);
    try {
        store_ = std::make_unique<ConversationStore>(paths_.dataDir);
    } catch (const StoreError& e) {
        problem_ = QStringLiteral("Conversations cannot be saved: %1").arg(e.message());
    }
    cleanCache(paths_.cacheDir());
    models_ = new ModelManager(settings_, paths_, this);
    chat_ = new ChatController(store_.get(), models_, settings_, paths_, problem_, this);
    g_current = this;
}

AppContext::~AppContext()
{
    if (g_current == this)
        g_current = nullptr;
    // The chat goes before the model (it listens to it), the worker thread stops with the model.
    delete chat_;
    chat_ = nullptr;
    delete models_;
    models_ = nullptr;
}

AppContext* AppContext::current() { return g_current; }

void AppContext::configureEngine(QQmlEngine& engine)
{
    // Qt 6.4 keeps static QML modules under qrc:/<URI path>.
    engine.addImportPath(QStringLiteral("qrc:/"));
    engine.addImageProvider(QString::fromLatin1(EngineImageProvider::kName), new EngineImageProvider);
}

// The QML singletons hand out the context's instances.
Settings* Settings::create(QQmlEngine*, QJSEngine*) { return singleton(g_current ? g_current->settings() : nullptr); }
ModelManager* ModelManager::create(QQmlEngine*, QJSEngine*) { return singleton(g_current ? g_current->models() : nullptr); }
ChatController* ChatController::create(QQmlEngine*, QJSEngine*) { return singleton(g_current ? g_current->chat() : nullptr); }

}  // namespace tessera::app
