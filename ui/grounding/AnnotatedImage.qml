import QtQuick
import QtQuick.Controls

// An image fitted into this item (aspect kept, centred) with its grounding boxes drawn over the
// painted area, so they line up at any size. `imageWidth`/`imageHeight` are the upright pixel
// size the engine decodes (the boxes' reference frame).
Item {
    id: root
    property url source
    property int imageWidth: 0
    property int imageHeight: 0
    property var boxes: []
    property int hoveredRef: -1
    property bool showBoxes: true
    property bool showLabels: true
    // Decode at most this many pixels on the long side (chat view); 0 = full size (large view).
    property int maxDecodeSize: 1600
    signal refHovered(int ref)
    signal activated()

    readonly property real fitScale: imageWidth > 0 && imageHeight > 0 && width > 0 && height > 0
                                     ? Math.min(width / imageWidth, height / imageHeight) : 0
    readonly property rect paintedRect: Qt.rect((width - imageWidth * fitScale) / 2, (height - imageHeight * fitScale) / 2,
                                                imageWidth * fitScale, imageHeight * fitScale)
    readonly property alias overlay: overlay
    readonly property alias status: image.status

    Image {
        id: image
        x: root.paintedRect.x
        y: root.paintedRect.y
        width: root.paintedRect.width
        height: root.paintedRect.height
        source: root.source
        asynchronous: true
        smooth: true
        mipmap: true
        fillMode: Image.Stretch
        sourceSize: root.maxDecodeSize > 0 ? Qt.size(Math.min(root.imageWidth, root.maxDecodeSize), 0) : undefined
    }
    Rectangle {
        anchors.fill: image
        visible: image.status !== Image.Ready
        color: Qt.rgba(0.5, 0.5, 0.5, 0.15)
        Label {
            anchors.centerIn: parent
            text: image.status === Image.Error ? qsTr("Cannot show this image") : ""
        }
    }
    BoxOverlay {
        id: overlay
        x: root.paintedRect.x
        y: root.paintedRect.y
        width: root.paintedRect.width
        height: root.paintedRect.height
        visible: root.showBoxes
        boxes: root.boxes
        hoveredRef: root.hoveredRef
        showLabels: root.showLabels
        onRefHovered: ref => root.refHovered(ref)
    }
    TapHandler {
        onTapped: root.activated()
    }
}
