#pragma once
// Export of a grounding answer: the image (the pixels the model saw, EXIF orientation applied)
// with its boxes and labels drawn at full resolution, and the boxes as JSON.
#include "chattypes.h"

#include <QImage>
#include <QVariantList>

namespace tessera::app {

// Decodes an image file with the engine's decoder (what the model sees and the app shows).
// A null image when it cannot be read; `error` says why.
QImage decodeForDisplay(const QString& file, QString* error = nullptr);

// Draws `boxes` (GroundedAnswer::boxes) over `image`.
QImage renderBoxes(const QImage& image, const QVariantList& boxes);

// {image, width, height, boxes: [{label, color, box (0..999), pixels [x1, y1, x2, y2]}]}
QByteArray boxesJson(const StoredImage& image, const QVariantList& boxes);

struct GroundingExportResult {
    bool ok = false;
    QString pngPath;
    QString jsonPath;
    QString error;
};

// Writes `pngPath` (".png" added when missing) and the JSON beside it (same name, ".json").
GroundingExportResult exportGroundingFiles(const StoredImage& image, const QVariantList& boxes, const QString& pngPath);

}  // namespace tessera::app
