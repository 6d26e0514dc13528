import QtQuick
import QtQuick.Controls
import QtQuick.Layouts

// A dismissable message in the page: what went wrong, and what to do.
Rectangle {
    id: root
    property string text
    property string severity: "error"   // error | warning | info
    property bool closable: true
    signal closed()

    readonly property bool shown: text.length > 0
    visible: shown
    implicitHeight: shown ? row.implicitHeight + 16 : 0
    radius: Theme.radius
    color: Qt.rgba(tint.r, tint.g, tint.b, 0.12)
    border.color: Qt.rgba(tint.r, tint.g, tint.b, 0.45)
    readonly property color tint: Theme.severityColor(severity)

    RowLayout {
        id: row
        anchors.fill: parent
        anchors.leftMargin: 12
        anchors.rightMargin: 4
        spacing: 8
        Label {
            objectName: "inlineMessageText"
            Layout.fillWidth: true
            text: root.text
            wrapMode: Text.Wrap
            color: root.severity === "info" ? palette.windowText : root.tint
        }
        IconButton {
            visible: root.closable
            iconName: "close"
            tip: qsTr("Dismiss")
            onClicked: root.closed()
        }
    }
}
