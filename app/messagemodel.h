#pragma once
// The messages of the open conversation, one row per message, oldest first. Each row carries its
// parts as a MessageContentModel (text, images, boxes, notices) plus how the answer ended and how
// fast it came.
#include "chattypes.h"

#include <QAbstractListModel>
#include <QtQml/qqmlregistration.h>

#include <vector>

namespace tessera::app {

class MessageContentModel;

class MessageModel : public QAbstractListModel {
    Q_OBJECT
    QML_ELEMENT
    QML_UNCREATABLE("messages come from Chat")
    Q_PROPERTY(int count READ rowCount NOTIFY countChanged)

public:
    enum Role {
        MessageIdRole = Qt::UserRole + 1,
        RoleNameRole,      // "user" | "assistant"
        StateRole,         // messageState: "complete" | "streaming" | "stopped" | "failed" | "interrupted"
        StreamingRole,
        ContentRole,       // MessageContentModel*: the parts
        PlainTextRole,     // what Copy puts on the clipboard (no grounding tags)
        EditTextRole,      // user: the text as typed, for editing
        ImageCountRole,
        StatsTextRole,     // "0.41 s to first token · 23.5 tokens/s · 87 tokens"
        TtftRole,          // seconds; 0 when unknown
        TokensPerSecondRole,
        ErrorRole,
        BoxCountRole,
    };
    Q_ENUM(Role)

    explicit MessageModel(QObject* parent = nullptr);
    ~MessageModel() override;

    int rowCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role) const override;
    QHash<int, QByteArray> roleNames() const override;

    void setMessages(const QList<Message>& messages);
    void append(const Message& message);
    // Replaces the row with the same id.
    void update(const Message& message);
    // Removes the rows at `position` and after.
    void removeFrom(int position);
    void clear() { setMessages({}); }

    int rowOfId(qint64 id) const;
    const Message& at(int row) const { return rows_.at(static_cast<std::size_t>(row)).message; }
    QList<Message> messages() const;
    // The image an answer at `row` refers to: the last image of the messages before it.
    const StoredImage* groundingImageFor(int row) const;

    static QString statsText(const AnswerStats& stats);

signals:
    void countChanged();

private:
    struct Row {
        Message message;
        MessageContentModel* content;
    };
    void refreshContent(int row);
    std::vector<Row> rows_;
};

}  // namespace tessera::app
