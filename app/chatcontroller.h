#pragma once
// The chat as the GUI drives it: which conversation is open, sending (images copied into the
// store, <image> markers placed), streaming the answer into the message model and the database,
// stop, regenerate, edit and resend, the composer's cost preview, export of boxes.
#include "apppaths.h"
#include "attachmentmodel.h"
#include "chattypes.h"
#include "conversationlistmodel.h"
#include "inferenceworker.h"
#include "messagemodel.h"

#include <QElapsedTimer>
#include <QObject>
#include <QTimer>
#include <QVariantMap>
#include <QtQml/qqmlregistration.h>

class QQmlEngine;
class QJSEngine;

namespace tessera::app {

class ConversationStore;
class ModelManager;
class Settings;

// The messages the model sees: without the answer being written and without turns whose answer
// failed outright.
QList<Message> messagesForContext(const QList<Message>& messages);
// The engine's view of a chat: system prompt, then turns, `<image>` markers before each user text.
tessera::Conversation buildEngineConversation(const QList<Message>& messages, const QString& systemPrompt);

class ChatController : public QObject {
    Q_OBJECT
    QML_NAMED_ELEMENT(Chat)
    QML_SINGLETON
    Q_PROPERTY(tessera::app::ConversationListModel* conversations READ conversations CONSTANT)
    Q_PROPERTY(tessera::app::MessageModel* messages READ messages CONSTANT)
    Q_PROPERTY(tessera::app::AttachmentModel* attachments READ attachments CONSTANT)
    Q_PROPERTY(qint64 currentConversation READ currentConversation NOTIFY currentConversationChanged)
    Q_PROPERTY(QString currentTitle READ currentTitle NOTIFY currentConversationChanged)
    Q_PROPERTY(bool generating READ generating NOTIFY generatingChanged)
    Q_PROPERTY(QString progressText READ progressText NOTIFY progressChanged)
    Q_PROPERTY(QString draft READ draft WRITE setDraft NOTIFY draftChanged)
    Q_PROPERTY(QVariantMap cost READ cost NOTIFY costChanged)
    Q_PROPERTY(bool canSend READ canSend NOTIFY canSendChanged)
    Q_PROPERTY(QString storeProblem READ storeProblem CONSTANT)

public:
    ChatController(ConversationStore* store, ModelManager* models, Settings* settings, const AppPaths& paths,
                   const QString& storeProblem = {}, QObject* parent = nullptr);
    ~ChatController() override;
    static ChatController* create(QQmlEngine*, QJSEngine*);

    ConversationListModel* conversations() const { return conversations_; }
    MessageModel* messages() const { return messages_; }
    AttachmentModel* attachments() const { return attachments_; }
    qint64 currentConversation() const { return current_; }
    QString currentTitle() const { return currentTitle_; }
    bool generating() const { return streaming_.requestId != 0; }
    QString progressText() const { return progressText_; }
    QString draft() const { return draft_; }
    void setDraft(const QString& draft);
    QVariantMap cost() const { return cost_; }
    bool canSend() const;
    QString storeProblem() const { return storeProblem_; }

    Q_INVOKABLE void newConversation();
    Q_INVOKABLE void openConversation(qint64 id);
    Q_INVOKABLE void renameConversation(qint64 id, const QString& title);
    Q_INVOKABLE void deleteConversation(qint64 id);

    // Sends `text` with the composer's attachments. False (and errorOccurred) when it cannot.
    Q_INVOKABLE bool send(const QString& text);
    Q_INVOKABLE void stop();
    Q_INVOKABLE bool regenerate();
    Q_INVOKABLE bool editAndResend(qint64 messageId, const QString& text);

    Q_INVOKABLE QString quickActionPrompt(const QString& action, const QString& argument = {}) const;
    // Ctrl+V: an image or image files on the clipboard become attachments. False when there are none.
    Q_INVOKABLE bool pasteImage();
    Q_INVOKABLE void copyText(const QString& text);
    // Writes the answer's image with its boxes as PNG and the boxes as JSON beside it.
    // Returns {ok, png, json, error}.
    Q_INVOKABLE QVariantMap exportGrounding(qint64 messageId, const QString& pngPathOrUrl);
    Q_INVOKABLE QString suggestedExportName(qint64 messageId) const;

signals:
    void currentConversationChanged();
    void generatingChanged();
    void progressChanged();
    void draftChanged();
    void costChanged();
    void canSendChanged();
    void errorOccurred(const QString& message);
    void answerFinished(qint64 messageId);

private:
    struct Streaming {
        quint64 requestId = 0;
        qint64 messageId = 0;
        qint64 conversationId = 0;
        QString text;
        QElapsedTimer sinceSave;
    };
    bool startAnswer();
    void onText(quint64 requestId, const QString& piece);
    void onFinished(quint64 requestId, const QVariantMap& stats);
    void onFailed(quint64 requestId, const QString& message);
    void finishStreaming(MessageState state, const QString& text, const QString& error, const AnswerStats& stats);
    void flushStreamingText();
    void setCurrent(qint64 id);
    void recomputeHistoryCost();
    void recomputeCost();
    int imagesInConversation() const;
    bool requireStore();
    void report(const QString& message);

    ConversationStore* store_;
    ModelManager* models_;
    Settings* settings_;
    AppPaths paths_;
    QString storeProblem_;
    ConversationListModel* conversations_;
    MessageModel* messages_;
    AttachmentModel* attachments_;
    qint64 current_ = 0;
    QString currentTitle_;
    QString progressText_;
    QString draft_;
    QVariantMap cost_;
    int historyTokens_ = 0;
    int historyImagesAssumed_ = -1;
    int draftTokens_ = 0;
    Streaming streaming_;
    QTimer flushTimer_;
};

}  // namespace tessera::app
