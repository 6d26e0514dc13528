#pragma once
// image://tessera/<percent-encoded path>: images decoded by the engine (EXIF orientation applied),
// so the view shows exactly the pixels the model saw and boxes line up. Off the GUI thread.
#include <QQuickImageProvider>

namespace tessera::app {

class EngineImageProvider : public QQuickImageProvider {
public:
    EngineImageProvider();
    QImage requestImage(const QString& id, QSize* size, const QSize& requestedSize) override;

    static constexpr const char* kName = "tessera";
};

}  // namespace tessera::app
