import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Tessera.App
import Tessera.Controls

// What is running where: model state and variant, backend, GPU and its memory in use.
Rectangle {
    id: root
    implicitHeight: 28
    color: Theme.sidebarBackground
    signal modelClicked()

    readonly property string stateText: {
        switch (Models.state) {
        case Models.Loading: return qsTr("Loading %1 · %2%").arg(Models.modelName).arg(Math.round(Models.loadProgress * 100))
        case Models.Ready: return Chat.generating ? qsTr("Answering") : qsTr("Ready")
        case Models.Failed: return qsTr("Model failed to load")
        default: return qsTr("No model loaded")
        }
    }
    readonly property color stateColor: Models.state === Models.Ready ? "#2e9d5b"
                                        : Models.state === Models.Failed ? Theme.severityColor("error")
                                        : Models.state === Models.Loading ? "#d49a00" : Theme.mutedText

    Rectangle { anchors.top: parent.top; width: parent.width; height: 1; color: Theme.border }

    RowLayout {
        anchors.fill: parent
        anchors.leftMargin: 12
        anchors.rightMargin: 12
        spacing: 14
        Row {
            spacing: 6
            Rectangle { width: 8; height: 8; radius: 4; color: root.stateColor; anchors.verticalCenter: parent.verticalCenter }
            Label {
                objectName: "statusState"
                text: root.stateText
                font.pixelSize: 12
                TapHandler { onTapped: root.modelClicked() }
            }
        }
        Label {
            objectName: "statusVariant"
            visible: Models.ready
            text: Models.variant + (Models.weightSize ? " (" + Models.weightSize + ")" : "")
            font.pixelSize: 12
            color: Theme.mutedText
        }
        Label {
            objectName: "statusBackend"
            visible: Models.ready
            Layout.fillWidth: true
            text: qsTr("Backend: %1").arg(Models.backendDescription || Models.backendName)
            font.pixelSize: 12
            color: Theme.mutedText
            elide: Text.ElideRight
        }
        Item { Layout.fillWidth: true; visible: !Models.ready }
        Label {
            objectName: "statusGpu"
            text: Models.gpuName ? Models.gpuName + " · " + Models.gpuMemory : qsTr("No GPU")
            font.pixelSize: 12
            color: Theme.mutedText
            ToolTip.visible: gpuHover.hovered && !Models.gpuName && Models.deviceProblem.length > 0
            ToolTip.text: Models.deviceProblem
            HoverHandler { id: gpuHover }
        }
    }
}
