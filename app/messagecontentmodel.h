#pragma once
// One message as a list of parts (NeoChat's MessageContentModel): a row per component the view
// draws — text, the images a user attached, an image with the answer's boxes over it, a notice.
// MessageComponentChooser.qml picks a delegate per `partType`.
#include "chattypes.h"

#include <QAbstractListModel>
#include <QVariantList>
#include <QtQml/qqmlregistration.h>

namespace tessera::app {

class MessageContentModel : public QAbstractListModel {
    Q_OBJECT
    QML_ELEMENT
    QML_UNCREATABLE("parts come from MessageModel")
    Q_PROPERTY(int count READ rowCount NOTIFY countChanged)
    Q_PROPERTY(int boxCount READ boxCount NOTIFY countChanged)

public:
    enum class PartType { Text, Images, AnnotatedImage, Notice };
    Q_ENUM(PartType)

    enum Role {
        PartTypeRole = Qt::UserRole + 1,  // "text" | "images" | "annotated" | "notice"
        TextRole,        // text: the answer without tags (Markdown); notice: the message
        RefsRole,        // text: label spans {ref, label, begin, end, color, boxCount}
        StreamingRole,   // text: still arriving (draw a cursor)
        ImagesRole,      // images: [{source, file, name, width, height}]
        SourceRole,      // annotated: image URL (image://tessera/...)
        ImageWidthRole,  // annotated: upright pixel size of the image
        ImageHeightRole,
        ImageNameRole,
        BoxesRole,       // annotated: [{x1, y1, x2, y2 (0..999), label, ref, color}]
        SeverityRole,    // notice: "info" | "warning" | "error"
    };
    Q_ENUM(Role)

    struct Part {
        PartType type = PartType::Text;
        QString text;
        QVariantList refs;
        bool streaming = false;
        QVariantList images;
        StoredImage image;
        QVariantList boxes;
        QString severity;
        bool operator==(const Part& o) const;
    };

    explicit MessageContentModel(QObject* parent = nullptr);

    int rowCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role) const override;
    QHash<int, QByteArray> roleNames() const override;

    // Rebuilds the parts. `groundingImage` is the image an answer's boxes refer to (the last image
    // of the conversation before it); null when there is none.
    void setMessage(const Message& message, const StoredImage* groundingImage);
    int boxCount() const { return boxCount_; }
    const QList<Part>& parts() const { return parts_; }

    static QString imageSource(const QString& file);  // image://tessera/<encoded path>
    static QString partTypeName(PartType type);

signals:
    void countChanged();

private:
    QList<Part> parts_;
    int boxCount_ = 0;
};

// The parts a message shows (exposed for tests).
QList<MessageContentModel::Part> messageParts(const Message& message, const StoredImage* groundingImage);

}  // namespace tessera::app
