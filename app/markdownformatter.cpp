#include "markdownformatter.h"

#include <QColor>
#include <QRegularExpression>
#include <QTextBlock>
#include <QTextCursor>
#include <QTextDocument>
#include <QTextFrame>
#include <QTextTable>
#include <QVariantMap>

#include <algorithm>

namespace tessera::app {

namespace {

constexpr QLatin1String kRefScheme("tessera-ref:");

QString escapeLinkText(QString s)
{
    for (const char* c : {"\\", "[", "]", "*", "_", "`", "<", ">"})
        s.replace(QLatin1String(c), QLatin1String("\\") + QLatin1String(c));
    return s;
}

}  // namespace

int MarkdownFormatter::refFromLink(const QString& link)
{
    if (!link.startsWith(kRefScheme))
        return -1;
    bool ok = false;
    const int n = link.mid(kRefScheme.size()).toInt(&ok);
    return ok ? n : -1;
}

QString MarkdownFormatter::toHtml(const QString& markdown, const QVariantList& refs, int highlightedRef, bool cursor, bool dark)
{
    // Labels become links so the view can tell which one the pointer is over.
    struct Span {
        int begin, end, ref;
        QString label;
        QColor colour;
    };
    QList<Span> spans;
    for (const QVariant& v : refs) {
        const QVariantMap r = v.toMap();
        const int begin = r.value("begin").toInt();
        const int end = r.value("end").toInt();
        if (end > begin && begin >= 0 && end <= markdown.size())
            spans << Span{begin, end, r.value("ref").toInt(), r.value("label").toString(), r.value("color").value<QColor>()};
    }
    std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
    QString md;
    int at = 0;
    QHash<int, QColor> colourOfRef;
    for (const Span& s : spans) {
        if (s.begin < at)
            continue;
        md += markdown.mid(at, s.begin - at);
        md += QLatin1Char('[') + escapeLinkText(markdown.mid(s.begin, s.end - s.begin)) + QStringLiteral("](") + kRefScheme +
              QString::number(s.ref) + QLatin1Char(')');
        colourOfRef.insert(s.ref, s.colour);
        at = s.end;
    }
    md += markdown.mid(at);
    if (cursor)
        md += QStringLiteral(" \u258D");  // ▍

    QTextDocument doc;
    doc.setMarkdown(md, QTextDocument::MarkdownDialectGitHub);

    const QColor codeBackground = dark ? QColor(255, 255, 255, 22) : QColor(0, 0, 0, 14);
    // Tables: hairline borders and some air, instead of the default double frame.
    for (QTextFrame* frame : doc.rootFrame()->childFrames()) {
        if (auto* table = qobject_cast<QTextTable*>(frame)) {
            QTextTableFormat f = table->format();
            f.setBorderCollapse(true);
            f.setBorder(1);
            f.setBorderBrush(dark ? QColor(255, 255, 255, 50) : QColor(0, 0, 0, 40));
            f.setBorderStyle(QTextFrameFormat::BorderStyle_Solid);
            f.setCellSpacing(0);
            f.setCellPadding(6);
            table->setFormat(f);
        }
    }
    struct Range {
        int from, to;
        QTextCharFormat format;
    };
    QList<Range> ranges;
    for (QTextBlock b = doc.begin(); b.isValid(); b = b.next()) {
        if (b.blockFormat().hasProperty(QTextFormat::BlockCodeFence)) {
            QTextCursor c(b);
            QTextBlockFormat f = b.blockFormat();
            f.setBackground(codeBackground);
            f.setLeftMargin(8);
            c.setBlockFormat(f);
        }
        for (auto it = b.begin(); !it.atEnd(); ++it) {
            const QTextFragment frag = it.fragment();
            const QTextCharFormat cf = frag.charFormat();
            QTextCharFormat f;
            bool change = false;
            if (cf.isAnchor() && cf.anchorHref().startsWith(kRefScheme)) {
                const int ref = refFromLink(cf.anchorHref());
                const QColor colour = colourOfRef.value(ref, QColor("#4363d8"));
                f.setForeground(dark ? colour.lighter(135) : colour.darker(110));
                f.setFontWeight(QFont::DemiBold);
                f.setFontUnderline(ref == highlightedRef);
                QColor bg = colour;
                bg.setAlpha(ref == highlightedRef ? 90 : 28);
                f.setBackground(bg);
                change = true;
            } else if (cf.fontFixedPitch() && !b.blockFormat().hasProperty(QTextFormat::BlockCodeFence)) {
                f.setBackground(codeBackground);
                change = true;
            }
            if (change)
                ranges << Range{frag.position(), frag.position() + frag.length(), f};
        }
    }
    for (const Range& r : ranges) {
        QTextCursor c(&doc);
        c.setPosition(r.from);
        c.setPosition(r.to, QTextCursor::KeepAnchor);
        c.mergeCharFormat(r.format);
    }
    QString html = doc.toHtml();
    // The view's font and colour apply, not the defaults QTextDocument writes into <body>.
    static const QRegularExpression bodyStyle(QStringLiteral("<body style=\"[^\"]*\">"));
    html.replace(bodyStyle, QStringLiteral("<body>"));
    return html;
}

}  // namespace tessera::app
