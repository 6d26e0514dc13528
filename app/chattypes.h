#pragma once
// The app's own record of a chat, as stored and shown: messages with their images and, for
// answers, how they ended and how fast they came.
#include <QDateTime>
#include <QList>
#include <QString>

namespace tessera::app {

enum class MessageRole { User, Assistant };

enum class MessageState {
    Complete,     // answered to the end (or a user message)
    Streaming,    // being generated now
    Stopped,      // the user stopped it, or it hit the token limit / context
    Failed,       // the engine reported an error; `error` says which
    Interrupted,  // the app ended while it was streaming (found so at the next start)
};

QString roleName(MessageRole role);        // "user", "assistant"
QString stateName(MessageState state);     // "complete", "streaming", ...
MessageRole roleFromName(const QString& name);
MessageState stateFromName(const QString& name);

// An image copied into the app's store; `file` is its absolute path there.
struct StoredImage {
    qint64 id = 0;
    QString file;
    QString originalName;
    int width = 0;   // upright (EXIF orientation applied), as decoded and displayed
    int height = 0;
};

struct AnswerStats {
    double ttftSeconds = 0;
    double tokensPerSecond = 0;
    int outputTokens = 0;
    int promptTokens = 0;
    int reusedPositions = 0;
    int droppedTurns = 0;
    QString stopReason;  // "eos", "max_tokens", "context_full", "cancelled"; empty while streaming

    QString toJson() const;
    static AnswerStats fromJson(const QString& json);
};

struct Message {
    qint64 id = 0;
    qint64 conversationId = 0;
    int position = 0;
    MessageRole role = MessageRole::User;
    QString text;  // user: as typed (no <image> markers); assistant: raw answer incl. grounding tags
    MessageState state = MessageState::Complete;
    QString error;
    AnswerStats stats;
    QList<StoredImage> images;
    QDateTime created;
};

struct ConversationSummary {
    qint64 id = 0;
    QString title;
    QDateTime created;
    QDateTime updated;
    QString snippet;  // start of the last message, as stored (grounding tags included)
    int messageCount = 0;
};

}  // namespace tessera::app
