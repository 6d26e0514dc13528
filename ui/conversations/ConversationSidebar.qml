pragma ComponentBehavior: Bound
import QtQuick
import QtQuick.Controls
import QtQuick.Controls.Material
import QtQuick.Layouts
import Tessera.App
import Tessera.Controls

// The conversation list: new chat, search (titles and messages), open, rename, delete.
Rectangle {
    id: root
    property alias searchField: search
    color: Theme.sidebarBackground

    function focusSearch() {
        search.forceActiveFocus()
        search.selectAll()
    }

    ColumnLayout {
        anchors.fill: parent
        anchors.margins: 10
        spacing: 8

        RowLayout {
            Layout.fillWidth: true
            Image {
                source: "qrc:/Tessera/Controls/tessera.svg"
                sourceSize: Qt.size(28, 28)
            }
            Label {
                Layout.fillWidth: true
                text: "Tessera"
                font.pixelSize: 18
                font.weight: Font.DemiBold
            }
            IconButton {
                objectName: "newChatButton"
                iconName: "plus"
                tip: qsTr("New chat (Ctrl+N)")
                onClicked: Chat.newConversation()
            }
        }

        TextField {
            id: search
            objectName: "searchField"
            Layout.fillWidth: true
            placeholderText: qsTr("Search conversations (Ctrl+K)")
            text: Chat.conversations.search
            onTextEdited: Chat.conversations.search = text
            // Esc clears the search here, before the window's Esc (stop, back) sees it.
            Keys.onShortcutOverride: event => event.accepted = event.key === Qt.Key_Escape && text.length > 0
            Keys.onEscapePressed: {
                text = ""
                Chat.conversations.search = ""
            }
        }

        ListView {
            id: list
            objectName: "conversationList"
            Layout.fillWidth: true
            Layout.fillHeight: true
            clip: true
            spacing: 2
            model: Chat.conversations
            delegate: ConversationDelegate {
                current: conversationId === Chat.currentConversation
                onClicked: Chat.openConversation(conversationId)
                onRenameRequested: (id, title) => Chat.renameConversation(id, title)
                onDeleteRequested: (id, title) => {
                    deleteDialog.conversationId = id
                    deleteDialog.conversationTitle = title
                    deleteDialog.open()
                }
            }
            ScrollBar.vertical: ScrollBar {}

            Label {
                anchors.centerIn: parent
                width: parent.width - 20
                visible: Chat.conversations.count === 0
                horizontalAlignment: Text.AlignHCenter
                wrapMode: Text.Wrap
                color: Theme.mutedText
                text: Chat.conversations.search.length > 0 ? qsTr("No conversation mentions “%1”.").arg(Chat.conversations.search)
                                                           : qsTr("Your conversations will appear here.")
            }
        }
    }

    Dialog {
        id: deleteDialog
        objectName: "deleteDialog"
        property var conversationId: 0
        property string conversationTitle
        parent: Overlay.overlay
        anchors.centerIn: parent
        modal: true
        width: 440
        title: qsTr("Delete this conversation?")
        footer: DialogButtonBox {
            Button {
                text: qsTr("Cancel")
                flat: true
                font.capitalization: Font.MixedCase
                DialogButtonBox.buttonRole: DialogButtonBox.RejectRole
            }
            Button {
                objectName: "confirmDelete"
                text: qsTr("Delete")
                flat: true
                font.capitalization: Font.MixedCase
                Material.foreground: Theme.severityColor("error")
                DialogButtonBox.buttonRole: DialogButtonBox.AcceptRole
            }
        }
        background: Rectangle {
            color: Theme.surface
            radius: 12
            border.color: Theme.border
        }
        contentItem: Label {
            wrapMode: Text.Wrap
            text: qsTr("“%1” and the images stored with it will be deleted. This cannot be undone.").arg(deleteDialog.conversationTitle)
        }
        onAccepted: Chat.deleteConversation(conversationId)
    }
}
