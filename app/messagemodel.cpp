#include "messagemodel.h"

#include "groundedanswer.h"
#include "messagecontentmodel.h"

namespace tessera::app {

MessageModel::MessageModel(QObject* parent) : QAbstractListModel(parent) {}

MessageModel::~MessageModel() = default;

int MessageModel::rowCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : static_cast<int>(rows_.size()); }

QString MessageModel::statsText(const AnswerStats& s)
{
    QStringList parts;
    if (s.ttftSeconds > 0)
        parts << QStringLiteral("%1 s to first token").arg(s.ttftSeconds, 0, 'f', s.ttftSeconds < 10 ? 2 : 1);
    if (s.tokensPerSecond > 0)
        parts << QStringLiteral("%1 tokens/s").arg(s.tokensPerSecond, 0, 'f', 1);
    if (s.outputTokens > 0)
        parts << QStringLiteral("%1 token%2").arg(s.outputTokens).arg(s.outputTokens == 1 ? "" : "s");
    return parts.join(QStringLiteral(" · "));
}

QVariant MessageModel::data(const QModelIndex& index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
        return {};
    const Row& r = rows_.at(static_cast<std::size_t>(index.row()));
    const Message& m = r.message;
    switch (role) {
    case MessageIdRole: return m.id;
    case RoleNameRole: return roleName(m.role);
    case StateRole: return stateName(m.state);
    case StreamingRole: return m.state == MessageState::Streaming;
    case ContentRole: return QVariant::fromValue(static_cast<QObject*>(r.content));
    case Qt::DisplayRole:
    case PlainTextRole: return groundAnswer(m.text).text.trimmed();
    case EditTextRole: return m.text;
    case ImageCountRole: return static_cast<int>(m.images.size());
    case StatsTextRole: return statsText(m.stats);
    case TtftRole: return m.stats.ttftSeconds;
    case TokensPerSecondRole: return m.stats.tokensPerSecond;
    case ErrorRole: return m.error;
    case BoxCountRole: return r.content->boxCount();
    default: return {};
    }
}

QHash<int, QByteArray> MessageModel::roleNames() const
{
    return {{MessageIdRole, "messageId"},   {RoleNameRole, "role"},         {StateRole, "messageState"},
            {StreamingRole, "streaming"},   {ContentRole, "content"},       {PlainTextRole, "plainText"},
            {EditTextRole, "editText"},     {ImageCountRole, "imageCount"}, {StatsTextRole, "statsText"},
            {TtftRole, "ttft"},             {TokensPerSecondRole, "tokensPerSecond"}, {ErrorRole, "error"},
            {BoxCountRole, "boxCount"}};
}

const StoredImage* MessageModel::groundingImageFor(int row) const
{
    for (int i = row - 1; i >= 0; --i) {
        const Message& m = rows_.at(static_cast<std::size_t>(i)).message;
        if (!m.images.isEmpty())
            return &m.images.last();
    }
    return nullptr;
}

void MessageModel::refreshContent(int row)
{
    Row& r = rows_.at(static_cast<std::size_t>(row));
    r.content->setMessage(r.message, r.message.role == MessageRole::Assistant ? groundingImageFor(row) : nullptr);
}

void MessageModel::setMessages(const QList<Message>& messages)
{
    const bool countChanges = static_cast<qsizetype>(rows_.size()) != messages.size();
    beginResetModel();
    for (Row& r : rows_)
        r.content->deleteLater();
    rows_.clear();
    for (const Message& m : messages)
        rows_.push_back({m, new MessageContentModel(this)});
    for (int i = 0; i < static_cast<int>(rows_.size()); ++i)
        refreshContent(i);
    endResetModel();
    if (countChanges)
        emit countChanged();
}

void MessageModel::append(const Message& message)
{
    const int row = static_cast<int>(rows_.size());
    beginInsertRows({}, row, row);
    rows_.push_back({message, new MessageContentModel(this)});
    refreshContent(row);
    endInsertRows();
    emit countChanged();
}

void MessageModel::update(const Message& message)
{
    const int row = rowOfId(message.id);
    if (row < 0)
        return;
    rows_[static_cast<std::size_t>(row)].message = message;
    refreshContent(row);
    emit dataChanged(index(row), index(row));
}

void MessageModel::removeFrom(int position)
{
    int first = static_cast<int>(rows_.size());
    for (int i = 0; i < static_cast<int>(rows_.size()); ++i) {
        if (rows_[static_cast<std::size_t>(i)].message.position >= position) {
            first = i;
            break;
        }
    }
    if (first >= static_cast<int>(rows_.size()))
        return;
    beginRemoveRows({}, first, static_cast<int>(rows_.size()) - 1);
    for (std::size_t i = static_cast<std::size_t>(first); i < rows_.size(); ++i)
        rows_[i].content->deleteLater();
    rows_.erase(rows_.begin() + first, rows_.end());
    endRemoveRows();
    emit countChanged();
}

int MessageModel::rowOfId(qint64 id) const
{
    for (int i = 0; i < static_cast<int>(rows_.size()); ++i) {
        if (rows_[static_cast<std::size_t>(i)].message.id == id)
            return i;
    }
    return -1;
}

QList<Message> MessageModel::messages() const
{
    QList<Message> out;
    for (const Row& r : rows_)
        out << r.message;
    return out;
}

}  // namespace tessera::app
