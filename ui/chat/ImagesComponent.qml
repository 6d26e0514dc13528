import QtQuick
import QtQuick.Controls
import Tessera.Controls

// The images a user attached, as thumbnails; click one for the large view.
Flow {
    id: root
    required property var images
    property Item messageItem
    width: parent ? parent.width : implicitWidth
    spacing: 8

    Repeater {
        model: root.images
        delegate: Rectangle {
            id: thumb
            required property var modelData
            readonly property real aspect: modelData.height > 0 ? modelData.width / modelData.height : 1
            height: root.images.length > 2 ? 120 : 200
            width: Math.min(Math.max(height * aspect, 60), 360)
            radius: 10
            color: Qt.rgba(0.5, 0.5, 0.5, 0.12)
            clip: true
            Image {
                id: picture
                objectName: "messageImage"
                anchors.fill: parent
                source: thumb.modelData.source
                sourceSize: Qt.size(720, 720)
                fillMode: Image.PreserveAspectCrop
                asynchronous: true
            }
            Label {
                anchors.centerIn: parent
                width: parent.width - 16
                visible: picture.status === Image.Error
                horizontalAlignment: Text.AlignHCenter
                wrapMode: Text.Wrap
                font.pixelSize: 12
                color: Theme.mutedText
                text: qsTr("Cannot show %1").arg(thumb.modelData.name)
            }
            ToolTip.visible: hover.hovered
            ToolTip.text: thumb.modelData.name + "  ·  " + thumb.modelData.width + "×" + thumb.modelData.height
            HoverHandler { id: hover; cursorShape: Qt.PointingHandCursor }
            TapHandler {
                onTapped: {
                    if (root.messageItem)
                        root.messageItem.openImage({source: thumb.modelData.source, title: thumb.modelData.name,
                                                    imageWidth: thumb.modelData.width, imageHeight: thumb.modelData.height,
                                                    boxes: []})
                }
            }
        }
    }
}
