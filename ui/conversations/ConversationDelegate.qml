import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Tessera.Controls

// One conversation in the sidebar: title, when, the start of its last message; rename in place.
ItemDelegate {
    id: root
    required property int index
    required property var conversationId
    required property string title
    required property string when
    required property string snippet
    property bool current: false
    property bool renaming: false
    signal renameRequested(var conversationId, string title)
    signal deleteRequested(var conversationId, string title)

    width: ListView.view ? ListView.view.width : implicitWidth
    highlighted: current
    padding: 10
    objectName: "conversation_" + index

    background: Rectangle {
        radius: 8
        color: root.current ? Theme.selection : root.hovered ? Qt.rgba(0.5, 0.5, 0.5, 0.08) : "transparent"
    }

    contentItem: ColumnLayout {
        spacing: 2
        RowLayout {
            Layout.fillWidth: true
            Label {
                visible: !root.renaming
                Layout.fillWidth: true
                text: root.title
                elide: Text.ElideRight
                font.weight: root.current ? Font.DemiBold : Font.Normal
            }
            TextField {
                id: renameField
                objectName: "renameField"
                visible: root.renaming
                Layout.fillWidth: true
                text: root.title
                onAccepted: {
                    root.renameRequested(root.conversationId, text)
                    root.renaming = false
                }
                Keys.onShortcutOverride: event => event.accepted = event.key === Qt.Key_Escape && root.renaming
                Keys.onEscapePressed: root.renaming = false
                onActiveFocusChanged: if (!activeFocus) root.renaming = false
            }
            Label {
                visible: !root.renaming
                text: root.when
                font.pixelSize: 11
                color: Theme.mutedText
            }
            IconButton {
                visible: root.hovered || root.current
                iconName: "more"
                tip: qsTr("Rename or delete")
                implicitWidth: 28
                implicitHeight: 28
                onClicked: menu.popup()
            }
        }
        Label {
            Layout.fillWidth: true
            visible: root.snippet.length > 0 && !root.renaming
            text: root.snippet
            elide: Text.ElideRight
            maximumLineCount: 1
            font.pixelSize: 12
            color: Theme.mutedText
        }
    }

    function startRename() {
        renaming = true
        renameField.text = title
        renameField.selectAll()
        renameField.forceActiveFocus()
    }

    Menu {
        id: menu
        background: Rectangle {
            implicitWidth: 180
            color: Theme.surface
            radius: 8
            border.color: Theme.border
        }
        MenuItem { text: qsTr("Rename"); onTriggered: root.startRename() }
        MenuItem { text: qsTr("Delete…"); onTriggered: root.deleteRequested(root.conversationId, root.title) }
    }
    TapHandler {
        acceptedButtons: Qt.RightButton
        onTapped: menu.popup()
    }
}
