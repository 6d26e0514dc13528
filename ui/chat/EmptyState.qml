import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Tessera.Controls

// What a new conversation shows before the first message.
ColumnLayout {
    id: root
    property string modelName
    spacing: 12

    Image {
        Layout.alignment: Qt.AlignHCenter
        source: "qrc:/Tessera/Controls/tessera.svg"
        sourceSize: Qt.size(72, 72)
    }
    Label {
        Layout.alignment: Qt.AlignHCenter
        text: qsTr("What should we look at?")
        font.pixelSize: 24
        font.weight: Font.DemiBold
    }
    Label {
        Layout.alignment: Qt.AlignHCenter
        Layout.maximumWidth: 520
        horizontalAlignment: Text.AlignHCenter
        wrapMode: Text.Wrap
        color: Theme.mutedText
        text: qsTr("Drop, paste or attach one or more images and ask about them. Use Locate… or Describe with boxes "
                   + "to see where things are; open an image to zoom and export its boxes.")
    }
    Label {
        Layout.alignment: Qt.AlignHCenter
        visible: root.modelName.length > 0
        text: qsTr("Model: %1").arg(root.modelName)
        color: Theme.mutedText
        font.pixelSize: 12
    }
}
