import QtQuick
import QtQuick.Controls

// A flat button showing one of the module's icons, with a tooltip.
ToolButton {
    font.capitalization: Font.MixedCase
    id: control
    property string iconName
    property string tip
    // 32 px instead of Material's 48: rows of actions under messages.
    property bool compact: false

    icon.source: iconName ? Qt.resolvedUrl("icons/" + iconName + ".svg") : ""
    icon.width: compact ? 18 : 20
    icon.height: compact ? 18 : 20
    implicitWidth: compact && !text ? 32 : implicitContentWidth + leftPadding + rightPadding + leftInset + rightInset
    implicitHeight: compact ? 32 : Math.max(implicitBackgroundHeight + topInset + bottomInset, implicitContentHeight + topPadding + bottomPadding)
    topInset: compact ? 0 : 6
    bottomInset: compact ? 0 : 6
    padding: compact ? 6 : 12
    display: text ? AbstractButton.TextBesideIcon : AbstractButton.IconOnly
    ToolTip.visible: hovered && tip.length > 0
    ToolTip.delay: 500
    ToolTip.text: tip
    Accessible.name: tip || text
}
