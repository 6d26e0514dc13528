#include "groundedanswer.h"

#include "runtime/grounding.h"

#include <QHash>
#include <QVariantMap>

#include <array>

namespace tessera::app {

namespace {

// Cuts a tag that has begun streaming but is not yet whole ("<|re", "<|ref|>gira" is handled by
// the parser), so half a tag never flashes up as text.
QByteArray withoutUnfinishedTag(const QByteArray& utf8)
{
    const qsizetype open = utf8.lastIndexOf('<');
    if (open < 0 || utf8.indexOf('>', open) >= 0)
        return utf8;
    const QByteArray tail = utf8.mid(open);
    for (const char* tag : {"<|ref|>", "<|/ref|>", "<|det|>", "<|/det|>", "<|grounding|>"}) {
        if (QByteArray(tag).startsWith(tail))
            return utf8.left(open);
    }
    return utf8;
}

}  // namespace

QColor labelColor(int index)
{
    static const std::array<const char*, 10> palette = {"#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4",
                                                        "#0fa3b1", "#f032e6", "#8a9a05", "#9a6324", "#d4a017"};
    return QColor(QString::fromLatin1(palette[static_cast<std::size_t>(index) % palette.size()]));
}

GroundedAnswer groundAnswer(const QString& raw, bool streaming)
{
    QByteArray utf8 = raw.toUtf8();
    if (streaming)
        utf8 = withoutUnfinishedTag(utf8);
    const GroundedText parsed = parseGrounding(std::string_view(utf8.constData(), static_cast<std::size_t>(utf8.size())));

    GroundedAnswer out;
    out.text = QString::fromStdString(parsed.text);
    // Byte offsets into the UTF-8 text → UTF-16 offsets.
    auto utf16At = [&](std::size_t byte) {
        return static_cast<int>(QString::fromUtf8(parsed.text.data(), static_cast<qsizetype>(byte)).size());
    };
    QHash<QString, int> colourOfLabel;
    QList<QColor> refColour;
    for (std::size_t i = 0; i < parsed.refs.size(); ++i) {
        const GroundedRef& r = parsed.refs[i];
        const QString label = QString::fromStdString(r.label);
        auto it = colourOfLabel.find(label);
        if (it == colourOfLabel.end())
            it = colourOfLabel.insert(label, static_cast<int>(colourOfLabel.size()));
        const QColor colour = labelColor(it.value());
        refColour << colour;
        out.refs << QVariantMap{{"ref", static_cast<int>(i)},
                                {"label", label},
                                {"begin", utf16At(r.textBegin)},
                                {"end", utf16At(r.textEnd)},
                                {"color", colour},
                                {"boxCount", static_cast<int>(r.boxes.size())}};
    }
    for (const GroundingBox& b : parsed.boxes) {
        out.boxes << QVariantMap{{"x1", b.box[0]},
                                 {"y1", b.box[1]},
                                 {"x2", b.box[2]},
                                 {"y2", b.box[3]},
                                 {"label", QString::fromStdString(b.label)},
                                 {"ref", static_cast<int>(b.refIndex)},
                                 {"color", refColour.value(static_cast<int>(b.refIndex))}};
    }
    return out;
}

}  // namespace tessera::app
