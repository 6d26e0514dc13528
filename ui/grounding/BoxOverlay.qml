import QtQuick

// Grounding boxes over an image that fills this item exactly (size the overlay to the painted
// image). Boxes are 0..999 of the image's width and height: x = v / 999 * width.
Item {
    id: overlay
    property var boxes: []
    property int hoveredRef: -1
    property bool showLabels: true
    signal refHovered(int ref)

    function boxRect(b) {
        return Qt.rect(b.x1 / 999 * width, b.y1 / 999 * height, (b.x2 - b.x1) / 999 * width, (b.y2 - b.y1) / 999 * height)
    }

    Repeater {
        id: repeater
        objectName: "boxRepeater"
        model: overlay.boxes
        delegate: BoxItem {
            required property var modelData
            readonly property rect area: overlay.boxRect(modelData)
            x: area.x
            y: area.y
            width: area.width
            height: area.height
            color: modelData.color
            label: modelData.label
            ref: modelData.ref
            showLabel: overlay.showLabels
            highlighted: overlay.hoveredRef === ref
            dimmed: overlay.hoveredRef >= 0 && overlay.hoveredRef !== ref
            onHoverChanged: hovering => overlay.refHovered(hovering ? ref : -1)
        }
    }

    function boxItem(i) { return repeater.itemAt(i) }
    readonly property int boxCount: repeater.count
}
