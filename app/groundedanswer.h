#pragma once
// An answer as the views show it: the text without grounding tags, each label's span in that
// text (UTF-16, as QML indexes), and the boxes with one colour per label. Built on the engine's
// grounding parser; works on text that is still streaming in.
#include <QColor>
#include <QString>
#include <QVariantList>

namespace tessera::app {

struct GroundedAnswer {
    QString text;
    // {ref, label, begin, end, color, boxCount} per label occurrence
    QVariantList refs;
    // {x1, y1, x2, y2 (0..999), label, ref, color} per box
    QVariantList boxes;
};

// `streaming`: the text may end inside a tag; hide the unfinished tag instead of showing it.
GroundedAnswer groundAnswer(const QString& raw, bool streaming = false);

// Distinct, readable on photos; the i-th distinct label of an answer gets colour i.
QColor labelColor(int index);

}  // namespace tessera::app
