import QtQuick
import QtQuick.Controls
import QtQuick.Dialogs
import QtQuick.Layouts
import Tessera.Controls

// The large view: one image with its boxes, zoom (wheel, buttons, keys) and pan (drag), boxes
// on/off, and export of the annotated image as PNG plus the boxes as JSON.
Popup {
    id: root
    property url source
    property string title
    property int imageWidth: 0
    property int imageHeight: 0
    property var boxes: []
    property bool showBoxes: true
    property int hoveredRef: -1
    property string suggestedExportName: "image-boxes.png"
    property real zoom: 1
    signal exportRequested(url file)

    readonly property real fitZoom: imageWidth > 0 && imageHeight > 0
                                    ? Math.min(flick.width / imageWidth, flick.height / imageHeight, 1) : 1

    function openImage(args) {
        source = args.source
        title = args.title || ""
        imageWidth = args.imageWidth || 0
        imageHeight = args.imageHeight || 0
        boxes = args.boxes || []
        suggestedExportName = args.exportName || "image-boxes.png"
        open()
        zoom = Qt.binding(() => root.fitZoom)
    }
    function zoomBy(factor) {
        zoom = Math.max(0.05, Math.min(8, zoom * factor))
    }

    parent: Overlay.overlay
    anchors.centerIn: parent
    width: parent ? parent.width - 48 : 800
    height: parent ? parent.height - 48 : 600
    modal: true
    focus: true
    padding: 0
    closePolicy: Popup.CloseOnEscape | Popup.CloseOnPressOutside

    background: Rectangle {
        color: Theme.surface
        radius: 12
        border.color: Theme.border
    }
    contentItem: ColumnLayout {
        spacing: 0
        ToolBar {
            Layout.fillWidth: true
            background: Rectangle {
                color: Theme.sidebarBackground
                radius: 12
                Rectangle { anchors.bottom: parent.bottom; width: parent.width; height: 12; color: parent.color }
            }
            RowLayout {
                anchors.fill: parent
                anchors.leftMargin: 12
                Label {
                    Layout.fillWidth: true
                    text: root.title + (root.imageWidth ? "  ·  " + root.imageWidth + "×" + root.imageHeight : "")
                    elide: Text.ElideMiddle
                    font.weight: Font.DemiBold
                }
                IconButton { iconName: "zoom-out"; tip: qsTr("Zoom out (−)"); onClicked: root.zoomBy(1 / 1.25) }
                Label {
                    objectName: "zoomLabel"
                    text: Math.round(root.zoom * 100) + "%"
                    Layout.preferredWidth: 48
                    horizontalAlignment: Text.AlignHCenter
                }
                IconButton { iconName: "zoom-in"; tip: qsTr("Zoom in (+)"); onClicked: root.zoomBy(1.25) }
                IconButton { iconName: "fit"; tip: qsTr("Fit (0)"); onClicked: root.zoom = Qt.binding(() => root.fitZoom) }
                IconButton {
                    visible: root.boxes.length > 0
                    iconName: "boxes"
                    checkable: true
                    checked: root.showBoxes
                    tip: root.showBoxes ? qsTr("Hide boxes (B)") : qsTr("Show boxes (B)")
                    onToggled: root.showBoxes = checked
                }
                IconButton {
                    visible: root.boxes.length > 0
                    iconName: "export"
                    text: qsTr("Export")
                    tip: qsTr("Save the image with its boxes (PNG) and the boxes (JSON)")
                    onClicked: exportDialog.open()
                }
                IconButton { iconName: "close"; tip: qsTr("Close (Esc)"); onClicked: root.close() }
            }
        }
        Flickable {
            id: flick
            Layout.fillWidth: true
            Layout.fillHeight: true
            clip: true
            contentWidth: Math.max(width, canvas.width)
            contentHeight: Math.max(height, canvas.height)
            boundsBehavior: Flickable.StopAtBounds
            ScrollBar.vertical: ScrollBar {}
            ScrollBar.horizontal: ScrollBar {}

            AnnotatedImage {
                id: canvas
                objectName: "viewerImage"
                x: Math.max(0, (flick.width - width) / 2)
                y: Math.max(0, (flick.height - height) / 2)
                width: root.imageWidth * root.zoom
                height: root.imageHeight * root.zoom
                source: root.source
                imageWidth: root.imageWidth
                imageHeight: root.imageHeight
                boxes: root.boxes
                showBoxes: root.showBoxes
                hoveredRef: root.hoveredRef
                maxDecodeSize: 0
                onRefHovered: ref => root.hoveredRef = ref
            }
            WheelHandler {
                acceptedModifiers: Qt.NoModifier | Qt.ControlModifier
                onWheel: event => root.zoomBy(event.angleDelta.y > 0 ? 1.15 : 1 / 1.15)
            }
        }
    }

    Shortcut { enabled: root.opened; sequences: ["+", "="]; onActivated: root.zoomBy(1.25) }
    Shortcut { enabled: root.opened; sequence: "-"; onActivated: root.zoomBy(1 / 1.25) }
    Shortcut { enabled: root.opened; sequence: "0"; onActivated: root.zoom = Qt.binding(() => root.fitZoom) }
    Shortcut { enabled: root.opened && root.boxes.length > 0; sequence: "B"; onActivated: root.showBoxes = !root.showBoxes }

    FileDialog {
        id: exportDialog
        title: qsTr("Export the image with its boxes")
        fileMode: FileDialog.SaveFile
        nameFilters: [qsTr("PNG image (*.png)")]
        defaultSuffix: "png"
        selectedFile: root.suggestedExportName
        onAccepted: root.exportRequested(selectedFile)
    }
}
