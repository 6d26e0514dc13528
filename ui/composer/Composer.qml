import QtQuick
import QtQuick.Controls
import QtQuick.Controls.Material
import QtQuick.Dialogs
import QtQuick.Layouts
import Tessera.Controls

// Where a message is written: multi-line text, images attached by picker, drag-and-drop or paste
// (thumbnails, remove), quick actions, the cost before sending, Send (Ctrl+Enter) and Stop (Esc).
Rectangle {
    id: root
    required property var attachments          // AttachmentModel
    property var cost: ({})
    property bool canSend: false
    property bool generating: false
    property bool modelReady: true
    property string progressText
    // Ctrl+V: returns true when the clipboard held an image (it is attached instead of pasted).
    property var pasteImage: function() { return false }
    property alias text: input.text
    property alias inputItem: input
    signal sendRequested(string text)
    signal stopRequested()
    signal quickAction(string action, string argument)

    function focusInput() { input.forceActiveFocus() }
    function addFiles(urls) { return attachments.addUrls(urls) }
    function trySend() {
        if (root.canSend)
            root.sendRequested(input.text)
    }

    implicitHeight: column.implicitHeight + 20
    radius: 14
    color: Theme.surface
    border.color: input.activeFocus ? Theme.accent : Theme.border
    border.width: input.activeFocus ? 1.5 : 1

    ColumnLayout {
        id: column
        anchors.fill: parent
        anchors.margins: 10
        spacing: 6

        AttachmentStrip {
            objectName: "attachmentStrip"
            Layout.fillWidth: true
            attachments: root.attachments
        }

        ScrollView {
            Layout.fillWidth: true
            Layout.preferredHeight: Math.min(Math.max(input.implicitHeight, 44), 220)
            TextArea {
                id: input
                objectName: "composerInput"
                placeholderText: root.modelReady ? qsTr("Ask about an image… (Ctrl+Enter to send, drop or paste images)")
                                                 : qsTr("Load a model to start chatting")
                wrapMode: TextEdit.Wrap
                background: null
                padding: 4
                selectByMouse: true
                Keys.onPressed: event => {
                    if ((event.key === Qt.Key_Return || event.key === Qt.Key_Enter) && (event.modifiers & Qt.ControlModifier)) {
                        root.trySend()
                        event.accepted = true
                    } else if (event.matches(StandardKey.Paste) && root.pasteImage()) {
                        event.accepted = true
                    }
                }
            }
        }

        QuickActions {
            Layout.fillWidth: true
            visible: root.modelReady
            onActionChosen: (action, argument) => root.quickAction(action, argument)
        }

        RowLayout {
            Layout.fillWidth: true
            spacing: 6
            IconButton {
                objectName: "attachButton"
                iconName: "attach"
                tip: qsTr("Attach images")
                onClicked: fileDialog.open()
            }
            CostPreview {
                Layout.fillWidth: true
                cost: root.cost
                visible: !root.generating
            }
            Label {
                Layout.fillWidth: true
                visible: root.generating
                text: root.progressText || qsTr("Writing… (Esc to stop)")
                color: Theme.mutedText
                font.pixelSize: 12
                elide: Text.ElideRight
            }
            Button {
                font.capitalization: Font.MixedCase
                id: sendButton
                objectName: root.generating ? "stopButton" : "sendButton"
                highlighted: true
                // Flat: the elevation shadow needs a GPU layer effect the software renderer cannot draw.
                Material.elevation: 0
                enabled: root.generating || root.canSend
                text: root.generating ? qsTr("Stop") : qsTr("Send")
                icon.source: Qt.resolvedUrl("qrc:/Tessera/Controls/icons/" + (root.generating ? "stop" : "send") + ".svg")
                icon.width: 18
                icon.height: 18
                ToolTip.visible: hovered
                ToolTip.text: root.generating ? qsTr("Stop the answer (Esc)") : qsTr("Send (Ctrl+Enter)")
                onClicked: root.generating ? root.stopRequested() : root.trySend()
            }
        }
    }

    FileDialog {
        id: fileDialog
        title: qsTr("Attach images")
        fileMode: FileDialog.OpenFiles
        nameFilters: [qsTr("Images (*.jpg *.jpeg *.png *.webp *.gif *.bmp)"), qsTr("All files (*)")]
        onAccepted: root.addFiles(selectedFiles)
    }
}
