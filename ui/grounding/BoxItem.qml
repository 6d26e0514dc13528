import QtQuick
import QtQuick.Controls

// One grounding box: a frame in its label's colour with the label on it. Geometry comes from the
// overlay; hovering reports the box's label reference.
Item {
    id: root
    property color color: "#e6194b"
    property string label
    property int ref: -1
    property bool highlighted: false
    property bool dimmed: false
    property bool showLabel: true
    signal hoverChanged(bool hovering)

    opacity: dimmed ? 0.35 : 1.0
    Behavior on opacity { NumberAnimation { duration: 120 } }

    Rectangle {
        id: frame
        objectName: "boxFrame"
        anchors.fill: parent
        color: root.highlighted ? Qt.rgba(root.color.r, root.color.g, root.color.b, 0.18) : "transparent"
        border.color: root.color
        border.width: root.highlighted ? 3 : 2
        radius: 2
    }
    // A thin dark outline keeps the frame visible on light and busy images.
    Rectangle {
        anchors.fill: parent
        anchors.margins: -1
        color: "transparent"
        border.color: Qt.rgba(0, 0, 0, 0.35)
        border.width: 1
        radius: 3
        z: -1
    }

    Rectangle {
        id: tag
        objectName: "boxLabel"
        visible: root.showLabel && root.label.length > 0
        x: -frame.border.width / 2
        // Above the box, or inside it when there is no room above.
        y: root.y >= height ? -height : 0
        width: Math.min(tagText.implicitWidth + 10, Math.max(root.width, 60))
        height: tagText.implicitHeight + 4
        radius: 3
        color: root.color
        Label {
            id: tagText
            anchors.centerIn: parent
            width: parent.width - 10
            text: root.label
            elide: Text.ElideRight
            color: "white"
            font.pixelSize: 12
            font.weight: Font.DemiBold
        }
    }

    HoverHandler {
        id: hover
        onHoveredChanged: root.hoverChanged(hovered)
    }
}
