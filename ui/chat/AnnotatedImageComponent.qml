import QtQuick
import QtQuick.Controls
import Tessera.App
import Tessera.Grounding

// The image an answer's boxes belong to, with the boxes drawn over it; click for the large view.
Item {
    id: root
    required property string source
    required property int imageWidth
    required property int imageHeight
    required property string imageName
    required property var boxes
    property Item messageItem

    readonly property real aspect: imageHeight > 0 ? imageWidth / imageHeight : 1
    readonly property real availableWidth: parent ? parent.width : 640
    width: Math.min(availableWidth, 640, 420 * aspect, Math.max(imageWidth, 240))
    height: width / aspect

    AnnotatedImage {
        id: image
        objectName: "answerImage"
        anchors.fill: parent
        source: root.source
        imageWidth: root.imageWidth
        imageHeight: root.imageHeight
        boxes: root.boxes
        showBoxes: AppSettings.showBoxes
        hoveredRef: root.messageItem ? root.messageItem.hoveredRef : -1
        onRefHovered: ref => {
            if (root.messageItem)
                root.messageItem.hoveredRef = ref
        }
        onActivated: {
            if (root.messageItem)
                root.messageItem.openImage({source: root.source, title: root.imageName, imageWidth: root.imageWidth,
                                            imageHeight: root.imageHeight, boxes: root.boxes})
        }
        HoverHandler { cursorShape: Qt.PointingHandCursor }
    }
}
