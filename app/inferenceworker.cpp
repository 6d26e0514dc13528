#include "inferenceworker.h"

#include "core/error.h"

#include <new>

namespace tessera::app {

namespace {

QString describe(const std::exception& e)
{
    if (dynamic_cast<const std::bad_alloc*>(&e))
        return QStringLiteral("Out of memory. Close other programs, use a smaller model, or fewer/smaller images.");
    QString message = QString::fromStdString(e.what());
    if (message.contains(QLatin1String("out of memory"), Qt::CaseInsensitive))
        message += QStringLiteral(" — the GPU has no room left; try fewer images, a smaller model, or the CPU backend.");
    return message;
}

}  // namespace

InferenceWorker::InferenceWorker(const WorkerFlags& flags) : flags_(flags)
{
    qRegisterMetaType<ProcessorHandle>();
}

InferenceWorker::~InferenceWorker() = default;

void InferenceWorker::loadModel(const QString& folder, tessera::BackendKind backend)
{
    unloadModel();
    try {
        tessera::ModelLoadOptions options;
        options.backend = backend;
        options.progress = [this](const tessera::LoadProgress& p) {
            emit loadProgress(QString::fromStdString(p.stage), p.fraction);
            return !flags_.cancelLoad.load();
        };
        model_ = tessera::Model::load(folder.toStdString(), options);
        session_ = std::make_unique<tessera::Session>(*model_);
        QVariantMap info{{"folder", folder},
                         {"variant", QString::fromStdString(model_->variant())},
                         {"backend", QString::fromStdString(model_->backend().name())},
                         {"backendDescription", QString::fromStdString(model_->backend().description())},
                         {"weightBytes", static_cast<qulonglong>(model_->weightBytes())},
                         {"contextLength", model_->contextLength()}};
        emit modelLoaded(info, std::make_shared<const tessera::Processor>(model_->processor()));
    } catch (const tessera::LoadCancelled&) {
        session_.reset();
        model_.reset();
        emit loadFailed(QStringLiteral("Loading was cancelled."), true);
    } catch (const std::exception& e) {
        session_.reset();
        model_.reset();
        emit loadFailed(describe(e), false);
    }
}

void InferenceWorker::unloadModel()
{
    if (!model_)
        return;
    session_.reset();
    model_.reset();
    emit modelUnloaded();
}

void InferenceWorker::generate(quint64 requestId, const tessera::Conversation& conversation,
                               const tessera::GenerationOptions& options)
{
    if (!session_) {
        emit generationFailed(requestId, QStringLiteral("No model is loaded; choose a model folder first."));
        return;
    }
    try {
        tessera::GenerationCallbacks callbacks;
        callbacks.onText = [this, requestId](std::string_view piece) {
            emit textReceived(requestId, QString::fromUtf8(piece.data(), static_cast<qsizetype>(piece.size())));
        };
        callbacks.onProgress = [this, requestId](const std::string& stage, double fraction) {
            emit generationProgress(requestId, QString::fromStdString(stage), fraction);
        };
        const tessera::GenerationResult r = session_->generate(conversation, options, callbacks, &flags_.stopGeneration);
        const QVariantMap stats{{"text", QString::fromStdString(r.text)},
                                {"stopReason", QString::fromLatin1(tessera::stopReasonName(r.stop))},
                                {"ttft", r.timings.ttftSeconds},
                                {"tokensPerSecond", r.timings.decodeTokensPerSecond()},
                                {"outputTokens", static_cast<int>(r.outputIds.size())},
                                {"promptTokens", static_cast<int>(r.promptIds.size())},
                                {"reusedPositions", r.reusedPositions},
                                {"droppedTurns", r.droppedTurns}};
        emit generationFinished(requestId, stats);
    } catch (const std::exception& e) {
        // The session may hold a half-appended cache; start the next answer from a clean one.
        if (session_)
            session_->reset();
        emit generationFailed(requestId, describe(e));
    }
}

}  // namespace tessera::app
