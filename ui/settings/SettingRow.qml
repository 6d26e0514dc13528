import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Tessera.Controls

// A labelled numeric setting: slider and exact value, with what it does.
ColumnLayout {
    id: root
    property string label
    property string help
    property real from: 0
    property real to: 1
    property real stepSize: 0.01
    property int decimals: 2
    property real value
    signal moved(real value)
    spacing: 0

    RowLayout {
        Layout.fillWidth: true
        Label {
            text: root.label
            Layout.fillWidth: true
        }
        Label {
            objectName: "settingValue"
            text: Number(root.value).toFixed(root.decimals)
            font.family: "monospace"
            color: Theme.mutedText
        }
    }
    Slider {
        Layout.fillWidth: true
        from: root.from
        to: root.to
        stepSize: root.stepSize
        value: root.value
        onMoved: root.moved(value)
    }
    Label {
        Layout.fillWidth: true
        visible: root.help.length > 0
        text: root.help
        wrapMode: Text.Wrap
        font.pixelSize: 12
        color: Theme.mutedText
    }
}
