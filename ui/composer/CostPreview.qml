import QtQuick
import QtQuick.Controls
import QtQuick.Controls.Material
import Tessera.Controls

// What the message will take from the context before it is sent: a bar and one line.
Item {
    id: root
    property var cost: ({})
    implicitHeight: summary.implicitHeight
    implicitWidth: 200

    ProgressBar {
        id: bar
        objectName: "contextBar"
        visible: root.cost.known === true
        width: 84
        anchors.verticalCenter: parent.verticalCenter
        from: 0
        to: 1
        value: root.cost.fraction || 0
        Material.accent: root.cost.overflow ? Theme.severityColor("error") : Theme.accent
    }
    Label {
        id: summary
        objectName: "costSummary"
        x: bar.visible ? bar.width + 10 : 0
        width: root.width - x
        anchors.verticalCenter: parent.verticalCenter
        text: root.cost.summary || ""
        elide: Text.ElideRight
        font.pixelSize: 12
        color: root.cost.overflow ? Theme.severityColor("warning") : Theme.mutedText
        ToolTip.visible: hover.hovered && truncated
        ToolTip.text: text
        HoverHandler { id: hover }
    }
}
