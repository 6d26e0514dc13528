#pragma once
// The engine's side of the app: a QObject that lives on its own QThread and owns the loaded model
// and its Session. Requests arrive as queued calls, results leave as signals; it holds no chat or
// persistence logic. Stop and cancel are atomics the GUI thread sets and the engine polls.
#include "processor/conversation.h"
#include "runtime/session.h"

#include <QObject>
#include <QString>
#include <QVariantMap>

#include <atomic>
#include <memory>

namespace tessera::app {

struct WorkerFlags {
    std::atomic<bool> cancelLoad{false};
    std::atomic<bool> stopGeneration{false};
};

using ProcessorHandle = std::shared_ptr<const tessera::Processor>;

class InferenceWorker : public QObject {
    Q_OBJECT
public:
    explicit InferenceWorker(const WorkerFlags& flags);
    ~InferenceWorker() override;

    // Call these on the worker's thread (QMetaObject::invokeMethod with a queued connection).
    void loadModel(const QString& folder, tessera::BackendKind backend);
    void unloadModel();
    void generate(quint64 requestId, const tessera::Conversation& conversation, const tessera::GenerationOptions& options);

signals:
    void loadProgress(const QString& stage, double fraction);
    // `info`: folder, variant, backend, backendDescription, weightBytes, contextLength. `processor`
    // is a copy the GUI thread may use (cost estimates) without touching the model.
    void modelLoaded(const QVariantMap& info, tessera::app::ProcessorHandle processor);
    void loadFailed(const QString& message, bool cancelled);
    void modelUnloaded();

    void generationProgress(quint64 requestId, const QString& stage, double fraction);
    void textReceived(quint64 requestId, const QString& piece);
    // stats: text, stopReason, ttft, tokensPerSecond, outputTokens, promptTokens, reusedPositions, droppedTurns
    void generationFinished(quint64 requestId, const QVariantMap& stats);
    void generationFailed(quint64 requestId, const QString& message);

private:
    const WorkerFlags& flags_;
    std::unique_ptr<tessera::Model> model_;
    std::unique_ptr<tessera::Session> session_;
};

}  // namespace tessera::app

Q_DECLARE_METATYPE(tessera::app::ProcessorHandle)
