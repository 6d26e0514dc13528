import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Tessera.Controls

// A line under an answer: stopped, interrupted, cut at the token limit, or the error it hit.
RowLayout {
    id: root
    required property string text
    required property string severity
    width: parent ? parent.width : implicitWidth
    spacing: 6
    Rectangle {
        Layout.alignment: Qt.AlignTop
        Layout.topMargin: 6
        width: 6
        height: 6
        radius: 3
        color: Theme.severityColor(root.severity)
    }
    Label {
        objectName: "noticeText"
        Layout.fillWidth: true
        text: root.text
        wrapMode: Text.Wrap
        color: Theme.severityColor(root.severity)
        font.pixelSize: 13
    }
}
