#include "imageprovider.h"

#include "groundingexport.h"

#include <QUrl>

namespace tessera::app {

EngineImageProvider::EngineImageProvider()
    : QQuickImageProvider(QQuickImageProvider::Image, QQmlImageProviderBase::ForceAsynchronousImageLoading)
{
}

QImage EngineImageProvider::requestImage(const QString& id, QSize* size, const QSize& requestedSize)
{
    const QString path = QUrl::fromPercentEncoding(id.toUtf8());
    QImage image = decodeForDisplay(path);
    if (image.isNull())
        return image;
    if (size)
        *size = image.size();
    if (requestedSize.width() > 0 || requestedSize.height() > 0) {
        QSize target = image.size();
        target.scale(requestedSize.width() > 0 ? requestedSize.width() : INT_MAX,
                     requestedSize.height() > 0 ? requestedSize.height() : INT_MAX, Qt::KeepAspectRatio);
        if (target.width() < image.width())
            image = image.scaled(target, Qt::KeepAspectRatio, Qt::SmoothTransformation);
    }
    return image;
}

}  // namespace tessera::app
