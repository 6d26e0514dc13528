import QtQuick
import QtQuick.Controls
import QtQuick.Controls.Material
import QtQuick.Layouts
import Tessera.Controls

// One model folder: what it is, whether it fits, and a Load button.
Rectangle {
    id: root
    property string name
    property string folder
    property string variant
    property string size
    property bool valid: true
    property string problem
    property string fitMessage
    property bool loadEnabled: true
    property bool current: false
    signal loadRequested(string folder)

    implicitHeight: row.implicitHeight + 24
    radius: Theme.radius
    color: Theme.surface
    border.color: current ? Theme.accent : Theme.border

    RowLayout {
        id: row
        anchors.fill: parent
        anchors.margins: 12
        spacing: 12
        Image {
            Layout.alignment: Qt.AlignTop
            source: "qrc:/Tessera/Controls/icons/chip.svg"
            sourceSize: Qt.size(28, 28)
            opacity: 0.7
        }
        ColumnLayout {
            Layout.fillWidth: true
            spacing: 2
            Label {
                Layout.fillWidth: true
                text: root.name + (root.variant ? "  ·  " + root.variant : "") + (root.size ? "  ·  " + root.size : "")
                font.weight: Font.DemiBold
                elide: Text.ElideRight
            }
            Label {
                Layout.fillWidth: true
                text: root.folder
                font.pixelSize: 12
                color: Theme.mutedText
                elide: Text.ElideMiddle
            }
            Label {
                objectName: "modelCardMessage"
                Layout.fillWidth: true
                text: root.valid ? root.fitMessage : root.problem
                wrapMode: Text.Wrap
                font.pixelSize: 13
                color: root.valid ? palette.windowText : Theme.severityColor("error")
            }
        }
        Button {
            font.capitalization: Font.MixedCase
            objectName: "loadModelButton"
            visible: root.valid
            enabled: root.loadEnabled
            highlighted: !root.current
            // Flat: the elevation shadow needs a GPU layer effect the software renderer cannot draw.
            Material.elevation: 0
            text: root.current ? qsTr("Loaded") : qsTr("Load")
            onClicked: root.loadRequested(root.folder)
        }
    }
}
