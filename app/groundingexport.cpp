#include "groundingexport.h"

#include "core/error.h"
#include "image/image.h"
#include "runtime/grounding.h"

#include <QFile>
#include <QFileInfo>
#include <QFontMetricsF>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QPainter>
#include <QSaveFile>

#include <algorithm>

namespace tessera::app {

QImage decodeForDisplay(const QString& file, QString* error)
{
    try {
        const RgbImage rgb = decodeImageFile(file.toStdString());
        QImage view(rgb.pixels.data(), rgb.width, rgb.height, rgb.width * 3, QImage::Format_RGB888);
        return view.copy();  // owns its pixels
    } catch (const std::exception& e) {
        if (error)
            *error = QString::fromStdString(e.what());
        return {};
    }
}

namespace {

std::array<double, 4> pixelsOf(const QVariantMap& b, int width, int height)
{
    return boxToPixels({b.value("x1").toInt(), b.value("y1").toInt(), b.value("x2").toInt(), b.value("y2").toInt()}, width, height);
}

}  // namespace

QImage renderBoxes(const QImage& source, const QVariantList& boxes)
{
    QImage out = source.convertToFormat(QImage::Format_ARGB32_Premultiplied);
    QPainter p(&out);
    p.setRenderHint(QPainter::Antialiasing);
    const double scale = std::max(1.0, std::max(out.width(), out.height()) / 800.0);
    QFont font = p.font();
    font.setPixelSize(static_cast<int>(13 * scale));
    font.setBold(true);
    p.setFont(font);
    const QFontMetricsF metrics(font);
    for (const QVariant& v : boxes) {
        const QVariantMap b = v.toMap();
        const auto px = pixelsOf(b, out.width(), out.height());
        const QRectF rect(QPointF(px[0], px[1]), QPointF(px[2], px[3]));
        const QColor colour = b.value("color").value<QColor>();
        p.setPen(QPen(colour, 2.5 * scale));
        p.setBrush(Qt::NoBrush);
        p.drawRect(rect);
        const QString label = b.value("label").toString();
        if (label.isEmpty())
            continue;
        const QSizeF size(metrics.horizontalAdvance(label) + 8 * scale, metrics.height() + 4 * scale);
        QRectF tag(rect.topLeft() - QPointF(1.25 * scale, size.height()), size);
        if (tag.top() < 0)
            tag.moveTop(rect.top());
        p.fillRect(tag, colour);
        p.setPen(Qt::white);
        p.drawText(tag, Qt::AlignCenter, label);
    }
    return out;
}

QByteArray boxesJson(const StoredImage& image, const QVariantList& boxes)
{
    QJsonArray list;
    for (const QVariant& v : boxes) {
        const QVariantMap b = v.toMap();
        const auto px = pixelsOf(b, image.width, image.height);
        list.append(QJsonObject{{"label", b.value("label").toString()},
                                {"color", b.value("color").value<QColor>().name()},
                                {"box", QJsonArray{b.value("x1").toInt(), b.value("y1").toInt(), b.value("x2").toInt(), b.value("y2").toInt()}},
                                {"pixels", QJsonArray{std::round(px[0]), std::round(px[1]), std::round(px[2]), std::round(px[3])}}});
    }
    const QJsonObject o{{"image", image.originalName},
                        {"width", image.width},
                        {"height", image.height},
                        {"coordinates", QStringLiteral("box: 0..999 of the image's width and height; pixels: x = v / 999 * width")},
                        {"boxes", list}};
    return QJsonDocument(o).toJson(QJsonDocument::Indented);
}

GroundingExportResult exportGroundingFiles(const StoredImage& image, const QVariantList& boxes, const QString& pngPath)
{
    GroundingExportResult r;
    if (pngPath.isEmpty()) {
        r.error = QStringLiteral("No file name to export to.");
        return r;
    }
    r.pngPath = pngPath.endsWith(QLatin1String(".png"), Qt::CaseInsensitive) ? pngPath : pngPath + QStringLiteral(".png");
    r.jsonPath = r.pngPath.left(r.pngPath.size() - 4) + QStringLiteral(".json");
    QString why;
    const QImage decoded = decodeForDisplay(image.file, &why);
    if (decoded.isNull()) {
        r.error = QStringLiteral("Cannot read the stored image: %1").arg(why);
        return r;
    }
    StoredImage actual = image;
    actual.width = decoded.width();
    actual.height = decoded.height();
    if (!renderBoxes(decoded, boxes).save(r.pngPath, "PNG")) {
        r.error = QStringLiteral("Cannot write %1; check the folder's permissions and free space.").arg(r.pngPath);
        return r;
    }
    QSaveFile json(r.jsonPath);
    if (!json.open(QIODevice::WriteOnly) || json.write(boxesJson(actual, boxes)) < 0 || !json.commit()) {
        r.error = QStringLiteral("Cannot write %1: %2").arg(r.jsonPath, json.errorString());
        return r;
    }
    r.ok = true;
    return r;
}

}  // namespace tessera::app
