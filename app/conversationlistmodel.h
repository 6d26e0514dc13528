#pragma once
// The sidebar's list: conversations newest first, filtered by the search text (titles and message
// text). Reads from the store; the chat controller calls refresh() after it writes.
#include "chattypes.h"

#include <QAbstractListModel>
#include <QtQml/qqmlregistration.h>

namespace tessera::app {

class ConversationStore;

class ConversationListModel : public QAbstractListModel {
    Q_OBJECT
    QML_ELEMENT
    QML_UNCREATABLE("the list comes from Chat")
    Q_PROPERTY(QString search READ search WRITE setSearch NOTIFY searchChanged)
    Q_PROPERTY(int count READ rowCount NOTIFY countChanged)

public:
    enum Role {
        ConversationIdRole = Qt::UserRole + 1,
        TitleRole,
        UpdatedRole,       // QDateTime
        WhenRole,          // "14:02", "Yesterday", "12 Mar"
        SnippetRole,       // start of the last message
        MessageCountRole,
    };
    Q_ENUM(Role)

    explicit ConversationListModel(ConversationStore* store, QObject* parent = nullptr);

    int rowCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role) const override;
    QHash<int, QByteArray> roleNames() const override;

    QString search() const { return search_; }
    void setSearch(const QString& search);
    Q_INVOKABLE void refresh();
    Q_INVOKABLE int rowOf(qint64 conversationId) const;
    Q_INVOKABLE qint64 idAt(int row) const;

    static QString whenText(const QDateTime& t, const QDateTime& now = QDateTime::currentDateTime());

signals:
    void searchChanged();
    void countChanged();

private:
    ConversationStore* store_;
    QString search_;
    QList<ConversationSummary> rows_;
};

}  // namespace tessera::app
