pragma ComponentBehavior: Bound
import QtQuick
import QtQuick.Controls
import QtQuick.Controls.Material
import QtQuick.Layouts
import Tessera.App
import Tessera.Controls

// One message: its parts (text, images, boxes, notices) in a bubble, and its actions — copy,
// edit and resend (user), regenerate (the last answer), boxes on/off — with speed for answers.
Item {
    id: root
    required property int index
    required property var messageId
    required property string role
    required property string messageState
    required property bool streaming
    required property var content
    required property string plainText
    required property string editText
    required property string statsText
    required property int boxCount
    property bool isLast: false
    property bool busy: false
    // The label (grounding ref) under the pointer, in the text or on the image; -1 for none.
    property int hoveredRef: -1
    property bool editing: false
    signal imageRequested(var args)
    signal copyRequested(string text)
    signal regenerateRequested()
    signal resendRequested(var messageId, string text)

    readonly property bool isUser: role === "user"
    function openImage(args) {
        args.messageId = root.messageId
        root.imageRequested(args)
    }

    implicitHeight: layout.implicitHeight + 18
    objectName: "message_" + index

    HoverHandler { id: hover }

    ColumnLayout {
        id: layout
        anchors.left: parent.left
        anchors.right: parent.right
        anchors.top: parent.top
        anchors.topMargin: 6
        spacing: 4

        Label {
            visible: !root.isUser
            text: qsTr("Tessera")
            font.weight: Font.DemiBold
            font.pixelSize: 13
            color: Theme.mutedText
        }

        Rectangle {
            id: bubble
            Layout.alignment: root.isUser ? Qt.AlignRight : Qt.AlignLeft
            Layout.preferredWidth: root.isUser ? Math.min(parts.implicitWidthHint + 28, layout.width * 0.8) : layout.width
            Layout.preferredHeight: (root.editing ? editor.implicitHeight : parts.implicitHeight) + (root.isUser ? 20 : 4)
            radius: 14
            color: root.isUser ? Theme.userBubble : "transparent"

            Column {
                id: parts
                visible: !root.editing
                // User bubbles shrink to their text; answers take the column's width.
                property real implicitWidthHint: {
                    let w = 0
                    for (let i = 0; i < repeater.count; ++i) {
                        const item = repeater.itemAt(i)
                        if (item)
                            w = Math.max(w, item.edit ? item.edit.implicitWidth + 2 : layout.width)
                    }
                    return Math.max(w, 40)
                }
                x: root.isUser ? 14 : 0
                y: root.isUser ? 10 : 2
                width: bubble.width - (root.isUser ? 28 : 0)
                spacing: 10
                Repeater {
                    id: repeater
                    model: root.content
                    delegate: MessageComponentChooser { messageItem: root }
                }
            }

            ColumnLayout {
                id: editor
                visible: root.editing
                anchors.fill: parent
                anchors.margins: 10
                TextArea {
                    id: editArea
                    objectName: "editArea"
                    Layout.fillWidth: true
                    wrapMode: TextEdit.Wrap
                    Keys.onShortcutOverride: event => event.accepted = event.key === Qt.Key_Escape && root.editing
                    Keys.onPressed: event => {
                        if ((event.key === Qt.Key_Return || event.key === Qt.Key_Enter) && (event.modifiers & Qt.ControlModifier)) {
                            resendButton.clicked()
                            event.accepted = true
                        } else if (event.key === Qt.Key_Escape) {
                            root.editing = false
                            event.accepted = true
                        }
                    }
                }
                RowLayout {
                    Layout.alignment: Qt.AlignRight
                    Button { font.capitalization: Font.MixedCase; text: qsTr("Cancel"); flat: true; onClicked: root.editing = false }
                    Button {
                        font.capitalization: Font.MixedCase
                        id: resendButton
                        text: qsTr("Send")
                        highlighted: true
                        // Flat: the elevation shadow needs a GPU layer effect the software renderer cannot draw.
                        Material.elevation: 0
                        enabled: !root.busy
                        onClicked: {
                            root.editing = false
                            root.resendRequested(root.messageId, editArea.text)
                        }
                    }
                }
            }
        }

        RowLayout {
            id: actions
            Layout.alignment: root.isUser ? Qt.AlignRight : Qt.AlignLeft
            spacing: 2
            opacity: hover.hovered || root.isLast ? 1 : 0
            visible: !root.streaming && !root.editing
            Behavior on opacity { NumberAnimation { duration: 120 } }

            Label {
                objectName: "statsText"
                visible: !root.isUser && root.statsText.length > 0
                text: root.statsText
                color: Theme.mutedText
                font.pixelSize: 12
                rightPadding: 6
            }
            IconButton {
                compact: true
                iconName: "copy"
                tip: qsTr("Copy")
                visible: root.plainText.length > 0
                onClicked: root.copyRequested(root.plainText)
            }
            IconButton {
                compact: true
                objectName: "editButton"
                iconName: "edit"
                tip: qsTr("Edit and resend")
                visible: root.isUser
                enabled: !root.busy
                onClicked: {
                    editArea.text = root.editText
                    root.editing = true
                    editArea.forceActiveFocus()
                }
            }
            IconButton {
                compact: true
                objectName: "regenerateButton"
                iconName: "refresh"
                tip: qsTr("Regenerate")
                visible: !root.isUser && root.isLast
                enabled: !root.busy
                onClicked: root.regenerateRequested()
            }
            IconButton {
                compact: true
                iconName: "boxes"
                visible: root.boxCount > 0
                checkable: true
                checked: AppSettings.showBoxes
                tip: AppSettings.showBoxes ? qsTr("Hide boxes") : qsTr("Show boxes")
                onToggled: AppSettings.showBoxes = checked
            }
        }
    }
}
