#include "chatcontroller.h"

#include "conversationstore.h"
#include "groundedanswer.h"
#include "groundingexport.h"
#include "modelmanager.h"
#include "quickactions.h"
#include "settings.h"
#include "costestimate.h"

#include <QClipboard>
#include <QDateTime>
#include <QDir>
#include <QFileInfo>
#include <QGuiApplication>
#include <QImage>
#include <QMimeData>
#include <QUrl>

namespace tessera::app {

namespace {

constexpr int kFlushMs = 40;         // model updates while streaming: ~25 per second at most
constexpr int kSaveEveryMs = 1000;   // partial answers reach the database this often

QString titleFor(const QString& text, const QList<StoredImage>& images)
{
    QString t = groundAnswer(text).text.simplified();
    if (t.isEmpty() && !images.isEmpty())
        t = images.first().originalName;
    if (t.isEmpty())
        t = QStringLiteral("New conversation");
    return t.size() > 60 ? t.left(57).trimmed() + QStringLiteral("…") : t;
}

AnswerStats statsFrom(const QVariantMap& m)
{
    AnswerStats s;
    s.ttftSeconds = m.value("ttft").toDouble();
    s.tokensPerSecond = m.value("tokensPerSecond").toDouble();
    s.outputTokens = m.value("outputTokens").toInt();
    s.promptTokens = m.value("promptTokens").toInt();
    s.reusedPositions = m.value("reusedPositions").toInt();
    s.droppedTurns = m.value("droppedTurns").toInt();
    s.stopReason = m.value("stopReason").toString();
    return s;
}

}  // namespace

QList<Message> messagesForContext(const QList<Message>& messages)
{
    QList<Message> out;
    for (qsizetype i = 0; i < messages.size(); ++i) {
        const Message& m = messages.at(i);
        // A turn whose answer failed outright taught the model nothing: leave it out.
        if (m.role == MessageRole::User && i + 1 < messages.size()) {
            const Message& next = messages.at(i + 1);
            if (next.role == MessageRole::Assistant && next.state == MessageState::Failed && next.text.trimmed().isEmpty()) {
                ++i;
                continue;
            }
        }
        if (m.role == MessageRole::Assistant && m.state == MessageState::Streaming)
            continue;
        out << m;
    }
    return out;
}

tessera::Conversation buildEngineConversation(const QList<Message>& all, const QString& systemPrompt)
{
    tessera::Conversation c;
    if (!systemPrompt.trimmed().isEmpty())
        c.messages.push_back({tessera::Role::System, systemPrompt.trimmed().toStdString(), {}});
    const QList<Message> messages = messagesForContext(all);
    for (const Message& m : messages) {
        if (m.role == MessageRole::User) {
            tessera::ChatMessage u;
            u.role = tessera::Role::User;
            std::string content;
            for (const StoredImage& img : m.images) {
                content += "<image>\n";
                u.images.push_back(img.file.toStdString());
            }
            content += m.text.trimmed().toStdString();
            u.content = std::move(content);
            c.messages.push_back(std::move(u));
        } else {
            c.messages.push_back({tessera::Role::Assistant, m.text.trimmed().toStdString(), {}});
        }
    }
    return c;
}

ChatController::ChatController(ConversationStore* store, ModelManager* models, Settings* settings, const AppPaths& paths,
                               const QString& storeProblem, QObject* parent)
    : QObject(parent),
      store_(store),
      models_(models),
      settings_(settings),
      paths_(paths),
      storeProblem_(storeProblem),
      conversations_(new ConversationListModel(store, this)),
      messages_(new MessageModel(this)),
      attachments_(new AttachmentModel(this))
{
    flushTimer_.setSingleShot(true);
    flushTimer_.setInterval(kFlushMs);
    connect(&flushTimer_, &QTimer::timeout, this, &ChatController::flushStreamingText);

    connect(models_, &ModelManager::textReceived, this, &ChatController::onText);
    connect(models_, &ModelManager::generationFinished, this, &ChatController::onFinished);
    connect(models_, &ModelManager::generationFailed, this, &ChatController::onFailed);
    connect(models_, &ModelManager::generationProgress, this, [this](quint64 id, const QString& stage, double) {
        if (id != streaming_.requestId)
            return;
        progressText_ = stage.isEmpty() ? QString() : stage.left(1).toUpper() + stage.mid(1) + QStringLiteral("…");
        emit progressChanged();
    });
    connect(models_, &ModelManager::stateChanged, this, [this] {
        attachments_->setProcessor(models_->ready() ? models_->processor() : nullptr);
        historyImagesAssumed_ = -1;
        recomputeCost();
        emit canSendChanged();
    });
    connect(attachments_, &AttachmentModel::countChanged, this, [this] {
        recomputeCost();
        emit canSendChanged();
    });
    connect(attachments_, &AttachmentModel::rejected, this, &ChatController::errorOccurred);
    connect(settings_, &Settings::changed, this, [this] {
        historyImagesAssumed_ = -1;
        recomputeCost();
    });
    recomputeCost();
}

ChatController::~ChatController() = default;

bool ChatController::canSend() const
{
    return store_ && models_->ready() && !generating() && (!draft_.trimmed().isEmpty() || attachments_->rowCount() > 0);
}

void ChatController::setDraft(const QString& draft)
{
    if (draft == draft_)
        return;
    const bool wasEmpty = draft_.trimmed().isEmpty();
    draft_ = draft;
    emit draftChanged();
    if (wasEmpty != draft_.trimmed().isEmpty())
        emit canSendChanged();
    recomputeCost();
}

void ChatController::report(const QString& message) { emit errorOccurred(message); }

bool ChatController::requireStore()
{
    if (store_)
        return true;
    report(storeProblem_.isEmpty() ? QStringLiteral("The conversations database is not available.") : storeProblem_);
    return false;
}

void ChatController::setCurrent(qint64 id)
{
    current_ = id;
    currentTitle_.clear();
    QList<Message> list;
    if (id && store_) {
        try {
            if (const auto c = store_->conversation(id))
                currentTitle_ = c->title;
            list = store_->messages(id);
        } catch (const StoreError& e) {
            report(e.message());
        }
    }
    messages_->setMessages(list);
    attachments_->setImagesBefore(imagesInConversation());
    historyImagesAssumed_ = -1;
    recomputeCost();
    emit currentConversationChanged();
}

void ChatController::newConversation()
{
    if (generating())
        stop();
    setCurrent(0);
}

void ChatController::openConversation(qint64 id)
{
    if (id == current_)
        return;
    if (generating())
        stop();
    setCurrent(id);
}

void ChatController::renameConversation(qint64 id, const QString& title)
{
    const QString t = title.simplified();
    if (!requireStore() || t.isEmpty())
        return;
    try {
        store_->renameConversation(id, t);
    } catch (const StoreError& e) {
        report(e.message());
        return;
    }
    conversations_->refresh();
    if (id == current_) {
        currentTitle_ = t;
        emit currentConversationChanged();
    }
}

void ChatController::deleteConversation(qint64 id)
{
    if (!requireStore())
        return;
    if (id == current_ && generating())
        stop();
    try {
        store_->deleteConversation(id);
    } catch (const StoreError& e) {
        report(e.message());
        return;
    }
    conversations_->refresh();
    if (id == current_)
        setCurrent(0);
}

int ChatController::imagesInConversation() const
{
    int n = 0;
    for (const Message& m : messagesForContext(messages_->messages()))
        n += static_cast<int>(m.images.size());
    return n;
}

bool ChatController::send(const QString& text)
{
    if (!requireStore())
        return false;
    if (!models_->ready()) {
        report(QStringLiteral("No model is loaded yet: choose a model folder first."));
        return false;
    }
    if (generating()) {
        report(QStringLiteral("An answer is still being written; stop it first (Esc)."));
        return false;
    }
    if (text.trimmed().isEmpty() && attachments_->rowCount() == 0)
        return false;
    QList<StoredImage> images;
    try {
        for (const QString& path : attachments_->paths())
            images << store_->importImage(path);
        if (!current_) {
            const qint64 id = store_->createConversation(titleFor(text, images));
            current_ = id;
            currentTitle_ = titleFor(text, images);
            messages_->clear();
            emit currentConversationChanged();
        }
        const Message user = store_->addMessage(current_, MessageRole::User, text.trimmed(), images);
        messages_->append(user);
    } catch (const StoreError& e) {
        report(e.message());
        return false;
    }
    attachments_->clear();
    attachments_->setImagesBefore(imagesInConversation());
    conversations_->refresh();
    setDraft({});
    return startAnswer();
}

bool ChatController::startAnswer()
{
    Message answer;
    try {
        answer = store_->addMessage(current_, MessageRole::Assistant, {}, {}, MessageState::Streaming);
    } catch (const StoreError& e) {
        report(e.message());
        return false;
    }
    const tessera::Conversation conversation = buildEngineConversation(messages_->messages(), settings_->systemPrompt());
    messages_->append(answer);
    streaming_ = {};
    streaming_.messageId = answer.id;
    streaming_.conversationId = current_;
    streaming_.sinceSave.start();
    streaming_.requestId = models_->generate(conversation, settings_->generationOptions());
    if (!streaming_.requestId) {
        streaming_.requestId = 1;  // so finishStreaming finds it
        finishStreaming(MessageState::Failed, {}, QStringLiteral("The model is not ready; load it again."), {});
        return false;
    }
    progressText_ = QStringLiteral("Thinking…");
    emit progressChanged();
    emit generatingChanged();
    emit canSendChanged();
    return true;
}

void ChatController::stop() { models_->stopGeneration(); }

void ChatController::onText(quint64 requestId, const QString& piece)
{
    if (requestId != streaming_.requestId || requestId == 0)
        return;
    if (streaming_.text.isEmpty() && !progressText_.isEmpty()) {
        progressText_.clear();
        emit progressChanged();
    }
    streaming_.text += piece;
    if (!flushTimer_.isActive())
        flushTimer_.start();
}

void ChatController::flushStreamingText()
{
    if (!streaming_.requestId)
        return;
    const int row = messages_->rowOfId(streaming_.messageId);
    if (row >= 0) {
        Message m = messages_->at(row);
        m.text = streaming_.text;
        messages_->update(m);
    }
    if (streaming_.sinceSave.elapsed() >= kSaveEveryMs && store_) {
        try {
            store_->updateMessage(streaming_.messageId, streaming_.text, MessageState::Streaming);
        } catch (const StoreError& e) {
            report(e.message());
        }
        streaming_.sinceSave.restart();
    }
}

void ChatController::onFinished(quint64 requestId, const QVariantMap& stats)
{
    if (requestId != streaming_.requestId || requestId == 0)
        return;
    const AnswerStats s = statsFrom(stats);
    finishStreaming(s.stopReason == QLatin1String("cancelled") ? MessageState::Stopped : MessageState::Complete,
                    stats.value("text").toString(), {}, s);
}

void ChatController::onFailed(quint64 requestId, const QString& message)
{
    if (requestId != streaming_.requestId || requestId == 0)
        return;
    // The engine names the stored copy; the user knows the file by its own name.
    QString shown = message;
    for (int i = 0; i < messages_->rowCount(); ++i) {
        for (const StoredImage& img : messages_->at(i).images)
            shown.replace(img.file, QStringLiteral("“%1”").arg(img.originalName));
    }
    finishStreaming(MessageState::Failed, streaming_.text, shown, {});
}

void ChatController::finishStreaming(MessageState state, const QString& text, const QString& error, const AnswerStats& stats)
{
    flushTimer_.stop();
    const Streaming done = streaming_;
    streaming_ = {};
    if (store_) {
        try {
            store_->updateMessage(done.messageId, text, state, error, stats);
        } catch (const StoreError& e) {
            report(e.message());
        }
    }
    const int row = messages_->rowOfId(done.messageId);
    if (row >= 0) {
        Message m = messages_->at(row);
        m.text = text;
        m.state = state;
        m.error = error;
        m.stats = stats;
        messages_->update(m);
    }
    progressText_.clear();
    emit progressChanged();
    emit generatingChanged();
    emit canSendChanged();
    conversations_->refresh();
    attachments_->setImagesBefore(imagesInConversation());  // a failed turn no longer counts
    historyImagesAssumed_ = -1;
    recomputeCost();
    emit answerFinished(done.messageId);
}

bool ChatController::regenerate()
{
    if (!requireStore() || generating() || !models_->ready() || messages_->rowCount() == 0)
        return false;
    const Message& last = messages_->at(messages_->rowCount() - 1);
    try {
        if (last.role == MessageRole::Assistant) {
            const int position = last.position;
            store_->deleteMessagesFrom(current_, position);
            messages_->removeFrom(position);
        }
    } catch (const StoreError& e) {
        report(e.message());
        return false;
    }
    return startAnswer();
}

bool ChatController::editAndResend(qint64 messageId, const QString& text)
{
    if (!requireStore() || generating() || !models_->ready())
        return false;
    const int row = messages_->rowOfId(messageId);
    if (row < 0 || messages_->at(row).role != MessageRole::User)
        return false;
    const Message original = messages_->at(row);
    if (text.trimmed().isEmpty() && original.images.isEmpty())
        return false;
    QStringList dropped;
    for (int i = row; i < messages_->rowCount(); ++i) {
        for (const StoredImage& img : messages_->at(i).images)
            dropped << img.file;
    }
    try {
        store_->deleteMessagesFrom(current_, original.position);
        messages_->removeFrom(original.position);
        const Message user = store_->addMessage(current_, MessageRole::User, text.trimmed(), original.images);
        messages_->append(user);
        store_->removeUnreferenced(dropped);
    } catch (const StoreError& e) {
        report(e.message());
        return false;
    }
    attachments_->setImagesBefore(imagesInConversation());
    conversations_->refresh();
    return startAnswer();
}

QString ChatController::quickActionPrompt(const QString& action, const QString& argument) const
{
    return tessera::app::quickActionPrompt(action, argument);
}

bool ChatController::pasteImage()
{
    const QMimeData* mime = QGuiApplication::clipboard()->mimeData();
    if (!mime)
        return false;
    if (mime->hasUrls()) {
        QVariantList urls;
        for (const QUrl& u : mime->urls()) {
            if (u.isLocalFile())
                urls << u;
        }
        if (!urls.isEmpty())
            return attachments_->addUrls(urls) > 0;
    }
    if (!mime->hasImage())
        return false;
    const QImage image = qvariant_cast<QImage>(mime->imageData());
    if (image.isNull())
        return false;
    QDir().mkpath(paths_.cacheDir());
    const QString file = paths_.cacheDir() + QStringLiteral("/pasted-") +
                         QDateTime::currentDateTime().toString(QStringLiteral("yyyyMMdd-hhmmss-zzz")) + QStringLiteral(".png");
    if (!image.save(file, "PNG")) {
        report(QStringLiteral("Cannot save the pasted image to %1 (is the disk full?).").arg(file));
        return false;
    }
    return attachments_->addPath(file);
}

void ChatController::copyText(const QString& text) { QGuiApplication::clipboard()->setText(text); }

QString ChatController::suggestedExportName(qint64 messageId) const
{
    const int row = messages_->rowOfId(messageId);
    const StoredImage* image = row >= 0 ? messages_->groundingImageFor(row) : nullptr;
    const QString base = image ? QFileInfo(image->originalName).completeBaseName() : QStringLiteral("image");
    return base + QStringLiteral("-boxes.png");
}

QVariantMap ChatController::exportGrounding(qint64 messageId, const QString& pngPathOrUrl)
{
    const int row = messages_->rowOfId(messageId);
    const StoredImage* image = row >= 0 ? messages_->groundingImageFor(row) : nullptr;
    if (!image)
        return {{"ok", false}, {"error", QStringLiteral("This answer has no image with boxes to export.")}};
    const GroundedAnswer answer = groundAnswer(messages_->at(row).text);
    const QUrl url(pngPathOrUrl);
    const QString path = url.isLocalFile() ? url.toLocalFile() : pngPathOrUrl;
    const GroundingExportResult r = exportGroundingFiles(*image, answer.boxes, path);
    if (!r.ok)
        report(r.error);
    return {{"ok", r.ok}, {"png", r.pngPath}, {"json", r.jsonPath}, {"error", r.error}};
}

void ChatController::recomputeHistoryCost()
{
    const ProcessorHandle processor = models_->ready() ? models_->processor() : nullptr;
    const int totalImages = imagesInConversation() + attachments_->rowCount();
    if (!processor) {
        historyTokens_ = 0;
        return;
    }
    // The history's cost depends on the tiling, which the new images may switch off.
    const bool tiling = dynamicTilingFor(totalImages);
    if (historyImagesAssumed_ >= 0 && dynamicTilingFor(historyImagesAssumed_) == tiling)
        return;
    historyImagesAssumed_ = totalImages;
    historyTokens_ = historyTokens(*processor, messagesForContext(messages_->messages()), settings_->systemPrompt(), totalImages);
}

void ChatController::recomputeCost()
{
    const ProcessorHandle processor = models_->ready() ? models_->processor() : nullptr;
    const int context = models_->contextLength();
    const int before = imagesInConversation();
    const int total = before + attachments_->rowCount();
    QVariantMap c{{"known", processor != nullptr},
                  {"contextLength", context},
                  {"images", total},
                  {"tilingOff", !dynamicTilingFor(total)}};
    if (processor && !generating()) {
        recomputeHistoryCost();
        draftTokens_ = (draft_.trimmed().isEmpty() && attachments_->rowCount() == 0) ? 0 : userTurnTextTokens(*processor, draft_);
        const int imageTokens = std::max(0, attachments_->imageTokens());
        const int fresh = draftTokens_ + imageTokens;
        const int used = historyTokens_ + fresh;
        c.insert("historyTokens", historyTokens_);
        c.insert("newTokens", fresh);
        c.insert("imageTokens", imageTokens);
        c.insert("totalTokens", used);
        c.insert("overflow", used >= context);
        c.insert("fraction", context > 0 ? std::min(1.0, static_cast<double>(used) / context) : 0.0);
        QString summary = fresh == 0 && historyTokens_ <= 1 ? QStringLiteral("%1-token context").arg(context)
                                                             : QStringLiteral("≈ %1 of %2 tokens").arg(used).arg(context);
        if (attachments_->rowCount() > 0)
            summary += QStringLiteral(" · new images %1").arg(imageTokens);
        if (!dynamicTilingFor(total))
            summary += QStringLiteral(" · %1 images: tiling off (one 384×384 view each)").arg(total);
        if (used >= context)
            summary += QStringLiteral(" · too long: the oldest turns will be left out");
        c.insert("summary", summary);
    } else if (!processor) {
        c.insert("summary", QStringLiteral("Load a model to see what a message costs."));
    } else {
        c.insert("summary", cost_.value("summary"));
    }
    cost_ = c;
    emit costChanged();
}

}  // namespace tessera::app
