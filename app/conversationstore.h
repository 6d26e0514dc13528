#pragma once
// Conversations, messages and image references in SQLite (Qt SQL), images copied into an
// app-managed, content-addressed folder so a moved or deleted original never breaks history.
//
// Crash safety: WAL with synchronous=FULL, one transaction per operation, image files written to a
// temporary name, fsynced and renamed BEFORE the row that names them commits. A kill at any point
// leaves either the old or the new state; files a crash orphans are collected at the next open.
#include "chattypes.h"

#include <QString>

#include <optional>
#include <stdexcept>

namespace tessera::app {

class StoreError : public std::runtime_error {
public:
    explicit StoreError(const QString& message) : std::runtime_error(message.toStdString()) {}
    QString message() const { return QString::fromStdString(what()); }
};

class ConversationStore {
public:
    static constexpr int kSchemaVersion = 1;

    // Opens (creating when needed) `dataDir`/conversations.sqlite and `dataDir`/images. Migrates
    // an older schema; refuses a newer one. Throws StoreError.
    explicit ConversationStore(const QString& dataDir);
    ~ConversationStore();
    ConversationStore(const ConversationStore&) = delete;
    ConversationStore& operator=(const ConversationStore&) = delete;

    int schemaVersion() const;
    QString databaseFile() const;
    QString imagesDir() const;
    // Messages that were streaming when the app last ended (now marked interrupted).
    int recoveredAtOpen() const { return recovered_; }

    qint64 createConversation(const QString& title);
    void renameConversation(qint64 id, const QString& title);
    // Deletes the conversation, its messages and the stored images nothing else refers to.
    void deleteConversation(qint64 id);
    std::optional<ConversationSummary> conversation(qint64 id) const;
    // Newest first; `search` matches titles and message text (case-insensitive, literal).
    QList<ConversationSummary> conversations(const QString& search = {}) const;

    QList<Message> messages(qint64 conversationId) const;

    // Copies an image file into the store (no row yet; addMessage references it). Reads only the
    // header to validate it and learn its upright size. Throws StoreError with a clear message.
    StoredImage importImage(const QString& sourcePath) const;

    Message addMessage(qint64 conversationId, MessageRole role, const QString& text, const QList<StoredImage>& images,
                       MessageState state = MessageState::Complete);
    void updateMessage(qint64 messageId, const QString& text, MessageState state, const QString& error = {},
                       const AnswerStats& stats = {});
    // Removes the messages at `position` and after (regenerate, edit and resend).
    void deleteMessagesFrom(qint64 conversationId, int position);

    // Removes stored image files no row refers to, and temporary files of killed writers, when
    // older than `minAgeSeconds` (another instance may be between its import and its insert).
    // Returns how many.
    int collectGarbage(int minAgeSeconds = 600);
    // Deletes those of `files` (absolute paths in the store) that no row refers to any more.
    void removeUnreferenced(const QStringList& files);

private:
    void migrate();
    void touch(qint64 conversationId, qint64 now);
    QString absoluteImagePath(const QString& relative) const;

    QString connection_;
    QString dataDir_;
    int recovered_ = 0;
};

}  // namespace tessera::app
