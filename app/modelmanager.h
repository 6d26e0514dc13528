#pragma once
// The model as the GUI sees it: load state and progress, what is loaded and where it runs, the
// GPU, and the requests that go to the inference worker's thread. Owns that thread.
#include "apppaths.h"
#include "inferenceworker.h"
#include "modelinspector.h"
#include "modellibrary.h"

#include <QObject>
#include <QThread>
#include <QTimer>
#include <QUrl>
#include <QtQml/qqmlregistration.h>

class QQmlEngine;
class QJSEngine;

namespace tessera::app {

class Settings;

class ModelManager : public QObject {
    Q_OBJECT
    QML_NAMED_ELEMENT(Models)
    QML_SINGLETON
    Q_PROPERTY(State state READ state NOTIFY stateChanged)
    Q_PROPERTY(bool ready READ ready NOTIFY stateChanged)
    Q_PROPERTY(double loadProgress READ loadProgress NOTIFY loadProgressChanged)
    Q_PROPERTY(QString loadStage READ loadStage NOTIFY loadProgressChanged)
    Q_PROPERTY(QString folder READ folder NOTIFY stateChanged)
    Q_PROPERTY(QString modelName READ modelName NOTIFY stateChanged)
    Q_PROPERTY(QString variant READ variant NOTIFY stateChanged)
    Q_PROPERTY(QString backendName READ backendName NOTIFY stateChanged)
    Q_PROPERTY(QString backendDescription READ backendDescription NOTIFY stateChanged)
    Q_PROPERTY(QString weightSize READ weightSize NOTIFY stateChanged)
    Q_PROPERTY(int contextLength READ contextLength NOTIFY stateChanged)
    Q_PROPERTY(QString errorMessage READ errorMessage NOTIFY stateChanged)
    Q_PROPERTY(QString gpuName READ gpuName NOTIFY devicesChanged)
    Q_PROPERTY(QString gpuMemory READ gpuMemory NOTIFY devicesChanged)
    Q_PROPERTY(QString deviceProblem READ deviceProblem NOTIFY devicesChanged)
    Q_PROPERTY(bool generating READ generating NOTIFY generatingChanged)
    Q_PROPERTY(ModelLibrary* library READ library CONSTANT)
    Q_PROPERTY(QString acceptedFolders READ acceptedFolders CONSTANT)

public:
    enum class State { NoModel, Loading, Ready, Failed };
    Q_ENUM(State)

    ModelManager(Settings* settings, const AppPaths& paths, QObject* parent = nullptr);
    ~ModelManager() override;
    static ModelManager* create(QQmlEngine*, QJSEngine*);

    State state() const { return state_; }
    bool ready() const { return state_ == State::Ready; }
    double loadProgress() const { return loadProgress_; }
    QString loadStage() const { return loadStage_; }
    QString folder() const { return folder_; }
    QString modelName() const;
    QString variant() const { return info_.value("variant").toString(); }
    QString backendName() const { return info_.value("backend").toString(); }
    QString backendDescription() const { return info_.value("backendDescription").toString(); }
    QString weightSize() const;
    int contextLength() const;
    QString errorMessage() const { return error_; }
    QString gpuName() const;
    QString gpuMemory() const;
    QString deviceProblem() const { return gpus_.problem; }
    bool generating() const { return activeRequest_ != 0; }
    ModelLibrary* library() const { return library_; }
    QString acceptedFolders() const;

    // Accepts a local path or a file: URL.
    Q_INVOKABLE QVariantMap inspect(const QString& folderOrUrl) const;
    Q_INVOKABLE void load(const QString& folderOrUrl);
    Q_INVOKABLE void cancelLoad();
    Q_INVOKABLE void unload();
    Q_INVOKABLE void refreshLibrary();
    Q_INVOKABLE void refreshDevices();
    // Loads the last model when it is still there; returns whether a load started.
    bool loadLastModel();
    // A backend for this run only (--backend), instead of the setting.
    void setBackendOverride(const QString& backend) { backendOverride_ = backend; }

    // The chat side (C++ only). Returns the request id; one request at a time.
    ProcessorHandle processor() const { return processor_; }
    quint64 generate(const tessera::Conversation& conversation, const tessera::GenerationOptions& options);
    Q_INVOKABLE void stopGeneration();
    quint64 activeRequest() const { return activeRequest_; }

    static QString toLocalPath(const QString& folderOrUrl);
    // The worker on its thread (tests hook its signals with direct connections).
    InferenceWorker* worker() const { return worker_; }

signals:
    void stateChanged();
    void loadProgressChanged();
    void devicesChanged();
    void generatingChanged();
    void modelReady();
    void loadFailed(const QString& message);

    void generationProgress(quint64 requestId, const QString& stage, double fraction);
    void textReceived(quint64 requestId, const QString& piece);
    void generationFinished(quint64 requestId, const QVariantMap& stats);
    void generationFailed(quint64 requestId, const QString& message);

private:
    void setState(State s);
    void onLoaded(const QVariantMap& info, ProcessorHandle processor);
    void onLoadFailed(const QString& message, bool cancelled);
    void onRequestEnded(quint64 requestId);

    Settings* settings_;
    AppPaths paths_;
    ModelLibrary* library_;
    WorkerFlags flags_;
    QThread thread_;
    InferenceWorker* worker_;  // lives on thread_
    State state_ = State::NoModel;
    double loadProgress_ = 0;
    QString loadStage_;
    QString folder_;
    QVariantMap info_;
    QString error_;
    ProcessorHandle processor_;
    GpuSnapshot gpus_;
    bool gpusKnown_ = false;
    QTimer deviceTimer_;
    QString backendOverride_;
    quint64 nextRequest_ = 1;
    quint64 activeRequest_ = 0;
};

}  // namespace tessera::app
