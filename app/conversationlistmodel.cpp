#include "conversationlistmodel.h"

#include "conversationstore.h"
#include "groundedanswer.h"

#include <QLocale>

namespace tessera::app {

ConversationListModel::ConversationListModel(ConversationStore* store, QObject* parent)
    : QAbstractListModel(parent), store_(store)
{
    refresh();
}

int ConversationListModel::rowCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : static_cast<int>(rows_.size()); }

QString ConversationListModel::whenText(const QDateTime& t, const QDateTime& now)
{
    const qint64 days = t.date().daysTo(now.date());
    if (days == 0)
        return QLocale().toString(t.time(), QStringLiteral("HH:mm"));
    if (days == 1)
        return QStringLiteral("Yesterday");
    if (days < 7)
        return QLocale().dayName(t.date().dayOfWeek(), QLocale::ShortFormat);
    if (t.date().year() == now.date().year())
        return QLocale().toString(t.date(), QStringLiteral("d MMM"));
    return QLocale().toString(t.date(), QStringLiteral("d MMM yyyy"));
}

QVariant ConversationListModel::data(const QModelIndex& index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
        return {};
    const ConversationSummary& c = rows_.at(index.row());
    switch (role) {
    case ConversationIdRole: return c.id;
    case Qt::DisplayRole:
    case TitleRole: return c.title;
    case UpdatedRole: return c.updated;
    case WhenRole: return whenText(c.updated);
    case SnippetRole: return groundAnswer(c.snippet, true).text.simplified().left(120);
    case MessageCountRole: return c.messageCount;
    default: return {};
    }
}

QHash<int, QByteArray> ConversationListModel::roleNames() const
{
    return {{ConversationIdRole, "conversationId"}, {TitleRole, "title"},     {UpdatedRole, "updated"},
            {WhenRole, "when"},                     {SnippetRole, "snippet"}, {MessageCountRole, "messageCount"}};
}

void ConversationListModel::setSearch(const QString& search)
{
    if (search == search_)
        return;
    search_ = search;
    emit searchChanged();
    refresh();
}

void ConversationListModel::refresh()
{
    QList<ConversationSummary> rows;
    if (store_) {
        try {
            rows = store_->conversations(search_);
        } catch (const StoreError&) {
            // The store reports its problems where it is written to; an unreadable list is empty.
        }
    }
    const bool countChanges = rows.size() != rows_.size();
    beginResetModel();
    rows_ = std::move(rows);
    endResetModel();
    if (countChanges)
        emit countChanged();
}

int ConversationListModel::rowOf(qint64 conversationId) const
{
    for (int i = 0; i < rows_.size(); ++i) {
        if (rows_.at(i).id == conversationId)
            return i;
    }
    return -1;
}

qint64 ConversationListModel::idAt(int row) const { return row >= 0 && row < rows_.size() ? rows_.at(row).id : 0; }

}  // namespace tessera::app
