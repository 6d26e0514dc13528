import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Tessera.Controls

// One attached image before sending: thumbnail, name, the tiles and tokens it will take, remove.
Rectangle {
    id: root
    required property int index
    required property string source
    required property string name
    required property int imageWidth
    required property int imageHeight
    required property string tiles
    required property int tokens
    signal removeRequested(int index)

    width: 168
    height: 64
    radius: 8
    color: Theme.surface
    border.color: Theme.border

    RowLayout {
        anchors.fill: parent
        anchors.margins: 6
        spacing: 8
        Image {
            objectName: "attachmentThumbnail"
            Layout.preferredWidth: 52
            Layout.preferredHeight: 52
            source: root.source
            sourceSize: Qt.size(104, 104)
            fillMode: Image.PreserveAspectCrop
            asynchronous: true
            clip: true
        }
        ColumnLayout {
            Layout.fillWidth: true
            spacing: 0
            Label {
                Layout.fillWidth: true
                text: root.name
                elide: Text.ElideMiddle
                font.pixelSize: 12
            }
            Label {
                Layout.fillWidth: true
                text: root.imageWidth + "×" + root.imageHeight
                font.pixelSize: 11
                color: Theme.mutedText
            }
            Label {
                objectName: "attachmentCost"
                Layout.fillWidth: true
                visible: root.tokens >= 0
                text: root.tiles + " · " + root.tokens + qsTr(" tok")
                font.pixelSize: 11
                color: Theme.mutedText
            }
        }
    }
    RoundButton {
        objectName: "removeAttachment"
        anchors.right: parent.right
        anchors.top: parent.top
        anchors.margins: -6
        width: 26
        height: 26
        padding: 4
        icon.source: Qt.resolvedUrl("qrc:/Tessera/Controls/icons/close.svg")
        icon.width: 14
        icon.height: 14
        ToolTip.visible: hovered
        ToolTip.text: qsTr("Remove")
        onClicked: root.removeRequested(root.index)
    }
}
