#pragma once
// Answer text (Markdown) → rich text for a TextEdit: code blocks set apart, each grounding label
// turned into a link "tessera-ref:N" in its label's colour (hovering it highlights its boxes), the
// hovered label highlighted, and a cursor while the answer streams.
#include <QObject>
#include <QString>
#include <QVariantList>
#include <QtQml/qqmlregistration.h>

namespace tessera::app {

class MarkdownFormatter : public QObject {
    Q_OBJECT
    QML_NAMED_ELEMENT(Formatter)
    QML_SINGLETON

public:
    explicit MarkdownFormatter(QObject* parent = nullptr) : QObject(parent) {}

    // `refs` as GroundedAnswer::refs. `highlightedRef` -1 for none.
    Q_INVOKABLE static QString toHtml(const QString& markdown, const QVariantList& refs = {}, int highlightedRef = -1,
                                      bool cursor = false, bool dark = false);
    // "tessera-ref:3" → 3; anything else → -1.
    Q_INVOKABLE static int refFromLink(const QString& link);
};

}  // namespace tessera::app
