#include "messagecontentmodel.h"

#include "groundedanswer.h"

#include <QUrl>
#include <QVariantMap>

namespace tessera::app {

bool MessageContentModel::Part::operator==(const Part& o) const
{
    return type == o.type && text == o.text && refs == o.refs && streaming == o.streaming && images == o.images &&
           image.file == o.image.file && boxes == o.boxes && severity == o.severity;
}

QString MessageContentModel::imageSource(const QString& file)
{
    return QStringLiteral("image://tessera/") + QString::fromLatin1(QUrl::toPercentEncoding(file));
}

QString MessageContentModel::partTypeName(PartType type)
{
    switch (type) {
    case PartType::Text: return QStringLiteral("text");
    case PartType::Images: return QStringLiteral("images");
    case PartType::AnnotatedImage: return QStringLiteral("annotated");
    case PartType::Notice: return QStringLiteral("notice");
    }
    return {};
}

namespace {

QString stopNotice(const Message& m)
{
    const AnswerStats& s = m.stats;
    QStringList notes;
    if (s.droppedTurns > 0)
        notes << QStringLiteral("The %1 oldest turn%2 did not fit the context and %3 left out of this answer.")
                     .arg(s.droppedTurns)
                     .arg(s.droppedTurns == 1 ? "" : "s")
                     .arg(s.droppedTurns == 1 ? "was" : "were");
    if (s.stopReason == QLatin1String("max_tokens"))
        notes << QStringLiteral("The answer reached the maximum of new tokens (Settings → Max new tokens) and was cut there.");
    if (s.stopReason == QLatin1String("context_full"))
        notes << QStringLiteral("The context is full: start a new conversation to continue.");
    return notes.join(QLatin1Char(' '));
}

}  // namespace

QList<MessageContentModel::Part> messageParts(const Message& m, const StoredImage* groundingImage)
{
    using Part = MessageContentModel::Part;
    using PartType = MessageContentModel::PartType;
    QList<Part> parts;
    if (m.role == MessageRole::User) {
        if (!m.images.isEmpty()) {
            Part p;
            p.type = PartType::Images;
            for (const StoredImage& img : m.images)
                p.images << QVariantMap{{"source", MessageContentModel::imageSource(img.file)},
                                        {"file", img.file},
                                        {"name", img.originalName},
                                        {"width", img.width},
                                        {"height", img.height}};
            parts << p;
        }
        // A prompt shows its labels as text, without the grounding tags.
        const GroundedAnswer shown = groundAnswer(m.text);
        if (!shown.text.trimmed().isEmpty()) {
            Part p;
            p.text = shown.text.trimmed();
            parts << p;
        }
        return parts;
    }

    const bool streaming = m.state == MessageState::Streaming;
    const GroundedAnswer answer = groundAnswer(m.text, streaming);
    if (!answer.text.isEmpty() || streaming || m.state == MessageState::Complete) {
        Part p;
        p.text = answer.text;
        p.refs = answer.refs;
        p.streaming = streaming;
        parts << p;
    }
    if (!answer.boxes.isEmpty() && groundingImage) {
        Part p;
        p.type = PartType::AnnotatedImage;
        p.image = *groundingImage;
        p.boxes = answer.boxes;
        parts << p;
    }
    auto notice = [&](const QString& text, const char* severity) {
        Part p;
        p.type = PartType::Notice;
        p.text = text;
        p.severity = QString::fromLatin1(severity);
        parts << p;
    };
    if (!answer.boxes.isEmpty() && !groundingImage)
        notice(QStringLiteral("This answer has boxes but the conversation has no image to draw them on."), "warning");
    switch (m.state) {
    case MessageState::Failed: notice(m.error.isEmpty() ? QStringLiteral("The answer failed.") : m.error, "error"); break;
    case MessageState::Stopped: notice(QStringLiteral("Stopped."), "info"); break;
    case MessageState::Interrupted:
        notice(QStringLiteral("Tessera closed while this answer was being written; it is kept as far as it got."), "warning");
        break;
    case MessageState::Complete:
    case MessageState::Streaming: break;
    }
    if (const QString s = stopNotice(m); !s.isEmpty() && m.state != MessageState::Streaming)
        notice(s, "info");
    return parts;
}

MessageContentModel::MessageContentModel(QObject* parent) : QAbstractListModel(parent) {}

int MessageContentModel::rowCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : static_cast<int>(parts_.size()); }

QVariant MessageContentModel::data(const QModelIndex& index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
        return {};
    const Part& p = parts_.at(index.row());
    switch (role) {
    case PartTypeRole: return partTypeName(p.type);
    case Qt::DisplayRole:
    case TextRole: return p.text;
    case RefsRole: return p.refs;
    case StreamingRole: return p.streaming;
    case ImagesRole: return p.images;
    case SourceRole: return p.image.file.isEmpty() ? QString() : imageSource(p.image.file);
    case ImageWidthRole: return p.image.width;
    case ImageHeightRole: return p.image.height;
    case ImageNameRole: return p.image.originalName;
    case BoxesRole: return p.boxes;
    case SeverityRole: return p.severity;
    default: return {};
    }
}

QHash<int, QByteArray> MessageContentModel::roleNames() const
{
    return {{PartTypeRole, "partType"},       {TextRole, "text"},         {RefsRole, "refs"},
            {StreamingRole, "streaming"},     {ImagesRole, "images"},     {SourceRole, "source"},
            {ImageWidthRole, "imageWidth"},   {ImageHeightRole, "imageHeight"}, {ImageNameRole, "imageName"},
            {BoxesRole, "boxes"},             {SeverityRole, "severity"}};
}

void MessageContentModel::setMessage(const Message& message, const StoredImage* groundingImage)
{
    QList<Part> next = messageParts(message, groundingImage);
    int boxes = 0;
    for (const Part& p : next)
        boxes += static_cast<int>(p.boxes.size());
    const int common = static_cast<int>(std::min(parts_.size(), next.size()));
    int sameTypes = 0;
    while (sameTypes < common && parts_[sameTypes].type == next[sameTypes].type)
        ++sameTypes;
    const int oldCount = static_cast<int>(parts_.size());
    // Keep delegates alive while an answer streams: change rows in place, add or drop at the end.
    if (sameTypes < common) {
        beginResetModel();
        parts_ = std::move(next);
        endResetModel();
    } else {
        for (int i = 0; i < common; ++i) {
            if (!(parts_[i] == next[i])) {
                parts_[i] = next[i];
                emit dataChanged(index(i), index(i));
            }
        }
        if (next.size() > parts_.size()) {
            beginInsertRows({}, common, static_cast<int>(next.size()) - 1);
            parts_ = std::move(next);
            endInsertRows();
        } else if (next.size() < parts_.size()) {
            beginRemoveRows({}, common, oldCount - 1);
            parts_ = std::move(next);
            endRemoveRows();
        }
    }
    const bool countChanges = oldCount != parts_.size() || boxes != boxCount_;
    boxCount_ = boxes;
    if (countChanges)
        emit countChanged();
}

}  // namespace tessera::app
