#include "attachmentmodel.h"

#include "costestimate.h"
#include "messagecontentmodel.h"

#include "core/error.h"
#include "image/image.h"

#include <QFile>
#include <QFileInfo>

namespace tessera::app {

AttachmentModel::AttachmentModel(QObject* parent) : QAbstractListModel(parent) {}

int AttachmentModel::rowCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : static_cast<int>(items_.size()); }

QVariant AttachmentModel::data(const QModelIndex& index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
        return {};
    const Item& it = items_.at(index.row());
    switch (role) {
    case PathRole: return it.path;
    case SourceRole: return MessageContentModel::imageSource(it.path);
    case Qt::DisplayRole:
    case NameRole: return QFileInfo(it.path).fileName();
    case WidthRole: return it.width;
    case HeightRole: return it.height;
    case TilesRole:
        if (it.tokens < 0)
            return QString();
        return it.widthTiles * it.heightTiles == 1 ? QStringLiteral("1 tile")
                                                   : QStringLiteral("%1×%2 tiles").arg(it.widthTiles).arg(it.heightTiles);
    case TokensRole: return it.tokens;
    default: return {};
    }
}

QHash<int, QByteArray> AttachmentModel::roleNames() const
{
    return {{PathRole, "path"},     {SourceRole, "source"}, {NameRole, "name"},    {WidthRole, "imageWidth"},
            {HeightRole, "imageHeight"}, {TilesRole, "tiles"},   {TokensRole, "tokens"}};
}

int AttachmentModel::addUrls(const QVariant& urls)
{
    QVariantList list = urls.toList();
    if (list.isEmpty() && urls.isValid())
        list << urls;
    int added = 0;
    for (const QVariant& v : list) {
        const QUrl url = v.toUrl();
        const QString path = url.isLocalFile() ? url.toLocalFile() : v.toString();
        if (url.isValid() && !url.isLocalFile() && !url.scheme().isEmpty() && url.scheme().size() > 1) {
            emit rejected(QStringLiteral("%1 is not a local file; save it first, then attach it.").arg(url.toDisplayString()));
            continue;
        }
        if (addPath(path))
            ++added;
    }
    return added;
}

bool AttachmentModel::addPath(const QString& path)
{
    const QFileInfo info(path);
    const QString name = info.fileName();
    if (!info.isFile()) {
        emit rejected(QStringLiteral("%1 is not a file.").arg(path));
        return false;
    }
    if (items_.size() >= maxAttachments()) {
        emit rejected(QStringLiteral("At most %1 images per message: each takes hundreds of tokens of the 4096-token context.")
                          .arg(maxAttachments()));
        return false;
    }
    for (const Item& it : items_) {
        if (it.path == info.absoluteFilePath())
            return false;  // already attached
    }
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly)) {
        emit rejected(QStringLiteral("Cannot read %1: %2").arg(name, f.errorString()));
        return false;
    }
    // The header is enough to know the format and size (JPEG's comes after EXIF, within 1 MB).
    const QByteArray head = f.read(1 << 20);
    Item item;
    item.path = info.absoluteFilePath();
    try {
        const ImageInfo probe = probeImageBytes(
            {reinterpret_cast<const std::uint8_t*>(head.constData()), static_cast<std::size_t>(head.size())}, name.toStdString());
        if (probe.format == ImageFormat::Unknown || probe.width <= 0 || probe.height <= 0)
            throw tessera::Error(name.toStdString() + " is not an image Tessera can read (JPEG, PNG, WebP, GIF or BMP)");
        const bool quarterTurn = probe.exifOrientation >= 5 && probe.exifOrientation <= 8;
        item.width = quarterTurn ? probe.height : probe.width;
        item.height = quarterTurn ? probe.width : probe.height;
    } catch (const tessera::Error& e) {
        emit rejected(QString::fromStdString(e.what()));
        return false;
    }
    const int row = static_cast<int>(items_.size());
    beginInsertRows({}, row, row);
    items_ << item;
    endInsertRows();
    reprice();
    emit countChanged();
    return true;
}

void AttachmentModel::remove(int row)
{
    if (row < 0 || row >= items_.size())
        return;
    beginRemoveRows({}, row, row);
    items_.removeAt(row);
    endRemoveRows();
    reprice();
    emit countChanged();
}

void AttachmentModel::clear()
{
    if (items_.isEmpty())
        return;
    beginResetModel();
    items_.clear();
    endResetModel();
    reprice();
    emit countChanged();
}

QStringList AttachmentModel::paths() const
{
    QStringList out;
    for (const Item& it : items_)
        out << it.path;
    return out;
}

void AttachmentModel::setImagesBefore(int n)
{
    if (n == imagesBefore_)
        return;
    imagesBefore_ = n;
    reprice();
}

void AttachmentModel::setProcessor(ProcessorHandle processor)
{
    processor_ = std::move(processor);
    reprice();
}

int AttachmentModel::imageTokens() const
{
    if (!processor_)
        return -1;
    int total = 0;
    for (const Item& it : items_)
        total += it.tokens;
    return total;
}

bool AttachmentModel::tilingOff() const { return !dynamicTilingFor(imagesBefore_ + static_cast<int>(items_.size())); }

void AttachmentModel::reprice()
{
    const int total = imagesBefore_ + static_cast<int>(items_.size());
    for (Item& it : items_) {
        if (processor_) {
            const ImageCost c = imageCost(*processor_, it.width, it.height, total);
            it.widthTiles = c.widthTiles;
            it.heightTiles = c.heightTiles;
            it.tokens = c.tokens;
        } else {
            it.tokens = -1;
        }
    }
    if (!items_.isEmpty())
        emit dataChanged(index(0), index(static_cast<int>(items_.size()) - 1), {TilesRole, TokensRole});
    emit costChanged();
}

}  // namespace tessera::app
