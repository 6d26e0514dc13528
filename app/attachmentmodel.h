#pragma once
// The composer's attachments before sending: image files picked, dropped or pasted, checked from
// their header (format, size) and priced (tile grid, tokens) with the loaded model's processor.
#include "inferenceworker.h"

#include <QAbstractListModel>
#include <QUrl>
#include <QtQml/qqmlregistration.h>

namespace tessera::app {

class AttachmentModel : public QAbstractListModel {
    Q_OBJECT
    QML_ELEMENT
    Q_PROPERTY(int count READ rowCount NOTIFY countChanged)
    // Images the conversation already holds: they decide, with these, whether tiling stays on.
    Q_PROPERTY(int imagesBefore READ imagesBefore WRITE setImagesBefore NOTIFY costChanged)
    Q_PROPERTY(bool costKnown READ costKnown NOTIFY costChanged)
    Q_PROPERTY(int imageTokens READ imageTokens NOTIFY costChanged)
    Q_PROPERTY(bool tilingOff READ tilingOff NOTIFY costChanged)
    Q_PROPERTY(int maxAttachments READ maxAttachments CONSTANT)

public:
    enum Role {
        PathRole = Qt::UserRole + 1,  // absolute file path
        SourceRole,                   // image://tessera/... for thumbnails
        NameRole,
        WidthRole,                    // upright size
        HeightRole,
        TilesRole,                    // "3×2 tiles", "1 tile"; empty when no model is loaded
        TokensRole,                   // -1 when no model is loaded
    };
    Q_ENUM(Role)

    explicit AttachmentModel(QObject* parent = nullptr);

    int rowCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role) const override;
    QHash<int, QByteArray> roleNames() const override;

    // Accepts a list of URLs or paths (drop.urls, FileDialog.selectedFiles) or a single one.
    // Returns how many were added; each refusal is reported through rejected().
    Q_INVOKABLE int addUrls(const QVariant& urls);
    Q_INVOKABLE bool addPath(const QString& path);
    Q_INVOKABLE void remove(int row);
    Q_INVOKABLE void clear();

    QStringList paths() const;
    int imagesBefore() const { return imagesBefore_; }
    void setImagesBefore(int n);
    void setProcessor(ProcessorHandle processor);
    bool costKnown() const { return processor_ != nullptr; }
    int imageTokens() const;
    bool tilingOff() const;
    int maxAttachments() const { return 8; }

signals:
    void countChanged();
    void costChanged();
    void rejected(const QString& message);

private:
    struct Item {
        QString path;
        int width = 0;
        int height = 0;
        int widthTiles = 1;
        int heightTiles = 1;
        int tokens = -1;
    };
    void reprice();
    QList<Item> items_;
    int imagesBefore_ = 0;
    ProcessorHandle processor_;
};

}  // namespace tessera::app
