#include "modelmanager.h"

#include "modellibrary.h"
#include "settings.h"

#include "core/error.h"

#include <QDir>
#include <QFileInfo>
#include <QFutureWatcher>
#include <QtConcurrent/QtConcurrentRun>

namespace tessera::app {

ModelManager::ModelManager(Settings* settings, const AppPaths& paths, QObject* parent)
    : QObject(parent),
      settings_(settings),
      paths_(paths),
      library_(new ModelLibrary(paths.modelsDir(), this)),
      worker_(new InferenceWorker(flags_))
{
    thread_.setObjectName(QStringLiteral("tessera-inference"));
    worker_->moveToThread(&thread_);
    connect(&thread_, &QThread::finished, worker_, &QObject::deleteLater);
    connect(worker_, &InferenceWorker::loadProgress, this, [this](const QString& stage, double fraction) {
        if (state_ != State::Loading)
            return;
        loadStage_ = flags_.cancelLoad ? QStringLiteral("cancelling") : stage;
        loadProgress_ = fraction;
        emit loadProgressChanged();
    });
    connect(worker_, &InferenceWorker::modelLoaded, this, &ModelManager::onLoaded);
    connect(worker_, &InferenceWorker::loadFailed, this, &ModelManager::onLoadFailed);
    connect(worker_, &InferenceWorker::modelUnloaded, this, [this] {
        if (state_ == State::Ready) {
            processor_.reset();
            setState(State::NoModel);
        }
    });
    connect(worker_, &InferenceWorker::generationProgress, this, &ModelManager::generationProgress);
    connect(worker_, &InferenceWorker::textReceived, this, &ModelManager::textReceived);
    connect(worker_, &InferenceWorker::generationFinished, this, [this](quint64 id, const QVariantMap& stats) {
        onRequestEnded(id);
        emit generationFinished(id, stats);
    });
    connect(worker_, &InferenceWorker::generationFailed, this, [this](quint64 id, const QString& message) {
        onRequestEnded(id);
        emit generationFailed(id, message);
    });
    thread_.start();

    deviceTimer_.setInterval(10'000);
    connect(&deviceTimer_, &QTimer::timeout, this, &ModelManager::refreshDevices);
    deviceTimer_.start();
    refreshDevices();
    refreshLibrary();
}

ModelManager::~ModelManager()
{
    flags_.cancelLoad = true;
    flags_.stopGeneration = true;
    thread_.quit();
    thread_.wait();
}

QString ModelManager::toLocalPath(const QString& folderOrUrl)
{
    const QUrl url(folderOrUrl);
    QString path = url.isLocalFile() ? url.toLocalFile() : folderOrUrl;
    if (path.startsWith(QLatin1String("~/")))
        path = QDir::homePath() + path.mid(1);
    return path.isEmpty() ? path : QDir::cleanPath(QFileInfo(path).absoluteFilePath());
}

QString ModelManager::modelName() const { return folder_.isEmpty() ? QString() : QFileInfo(folder_).fileName(); }

QString ModelManager::weightSize() const
{
    const quint64 bytes = info_.value("weightBytes").toULongLong();
    return bytes ? formatBytes(bytes) : QString();
}

int ModelManager::contextLength() const { return info_.value("contextLength", 4096).toInt(); }

QString ModelManager::acceptedFolders() const { return acceptedFolderDescription(); }

QString ModelManager::gpuName() const { return gpus_.gpus.isEmpty() ? QString() : gpus_.gpus.first().name; }

QString ModelManager::gpuMemory() const
{
    if (gpus_.gpus.isEmpty())
        return {};
    const auto& g = gpus_.gpus.first();
    return QStringLiteral("%1 / %2").arg(formatBytes(g.totalBytes - std::min(g.freeBytes, g.totalBytes)), formatBytes(g.totalBytes));
}

void ModelManager::setState(State s)
{
    state_ = s;
    emit stateChanged();
}

QVariantMap ModelManager::inspect(const QString& folderOrUrl) const
{
    return inspectModelFolder(toLocalPath(folderOrUrl), gpus_, systemMemoryBytes()).toVariantMap();
}

void ModelManager::load(const QString& folderOrUrl)
{
    if (state_ == State::Loading)
        return;  // cancel first; the page offers that
    const QString path = toLocalPath(folderOrUrl);
    const ModelFolderReport report = inspectModelFolder(path, gpus_, systemMemoryBytes());
    if (!report.valid) {
        folder_ = path;
        error_ = report.problem;
        setState(State::Failed);
        emit loadFailed(error_);
        return;
    }
    tessera::BackendKind backend = tessera::BackendKind::Auto;
    try {
        backend = tessera::parseBackendKind((backendOverride_.isEmpty() ? settings_->backend() : backendOverride_).toStdString());
    } catch (const tessera::Error& e) {
        error_ = QString::fromStdString(e.what());
        setState(State::Failed);
        emit loadFailed(error_);
        return;
    }
    if (activeRequest_)
        stopGeneration();
    flags_.cancelLoad = false;
    folder_ = path;
    info_.clear();
    processor_.reset();
    error_.clear();
    loadProgress_ = 0;
    loadStage_ = QStringLiteral("starting");
    setState(State::Loading);
    emit loadProgressChanged();
    QMetaObject::invokeMethod(worker_, [w = worker_, path, backend] { w->loadModel(path, backend); }, Qt::QueuedConnection);
}

void ModelManager::cancelLoad()
{
    if (state_ != State::Loading)
        return;
    flags_.cancelLoad = true;
    loadStage_ = QStringLiteral("cancelling");
    emit loadProgressChanged();
}

void ModelManager::unload()
{
    if (state_ == State::Loading)
        cancelLoad();
    stopGeneration();
    QMetaObject::invokeMethod(worker_, [w = worker_] { w->unloadModel(); }, Qt::QueuedConnection);
}

bool ModelManager::loadLastModel()
{
    const QString last = settings_->lastModel();
    if (last.isEmpty() || !QFileInfo(last).isDir())
        return false;
    load(last);
    return true;
}

void ModelManager::onLoaded(const QVariantMap& info, ProcessorHandle processor)
{
    info_ = info;
    processor_ = std::move(processor);
    folder_ = info.value("folder").toString();
    loadProgress_ = 1;
    error_.clear();
    settings_->setLastModel(folder_);
    setState(State::Ready);
    emit loadProgressChanged();
    refreshLibrary();
    refreshDevices();
    emit modelReady();
}

void ModelManager::onLoadFailed(const QString& message, bool cancelled)
{
    processor_.reset();
    info_.clear();
    if (cancelled) {
        error_.clear();
        setState(State::NoModel);
        return;
    }
    error_ = message;
    setState(State::Failed);
    emit loadFailed(message);
}

void ModelManager::refreshLibrary() { library_->rescan({settings_->lastModel()}, gpus_); }

void ModelManager::refreshDevices()
{
    auto* watcher = new QFutureWatcher<GpuSnapshot>(this);
    connect(watcher, &QFutureWatcher<GpuSnapshot>::finished, this, [this, watcher] {
        const bool first = !gpusKnown_;
        gpus_ = watcher->result();
        gpusKnown_ = true;
        watcher->deleteLater();
        emit devicesChanged();
        if (first)
            refreshLibrary();  // the fit messages depend on the GPU
    });
    watcher->setFuture(QtConcurrent::run(queryGpuSnapshot));
}

quint64 ModelManager::generate(const tessera::Conversation& conversation, const tessera::GenerationOptions& options)
{
    if (activeRequest_ || state_ != State::Ready)
        return 0;
    flags_.stopGeneration = false;
    const quint64 id = nextRequest_++;
    activeRequest_ = id;
    emit generatingChanged();
    QMetaObject::invokeMethod(
        worker_, [w = worker_, id, conversation, options] { w->generate(id, conversation, options); }, Qt::QueuedConnection);
    return id;
}

void ModelManager::stopGeneration()
{
    if (activeRequest_)
        flags_.stopGeneration = true;
}

void ModelManager::onRequestEnded(quint64 requestId)
{
    if (requestId != activeRequest_)
        return;
    activeRequest_ = 0;
    emit generatingChanged();
}

}  // namespace tessera::app
