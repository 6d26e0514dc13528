import QtQuick
import QtQuick.Controls
import QtQuick.Controls.Material
import QtQuick.Layouts
import Tessera.App
import Tessera.Chat
import Tessera.Controls
import Tessera.Conversations
import Tessera.Models
import Tessera.Settings

// The window: conversations on the left; the chat, the model page or settings in the middle;
// the status bar below. Keyboard: Ctrl+Enter send, Esc stop, Ctrl+N new chat, Ctrl+K search.
ApplicationWindow {
    id: window
    property string initialPage
    // "chat" | "models" | "settings"
    property string page: initialPage === "settings" || initialPage === "models" ? initialPage : "chat"
    property bool sidebarVisible: width >= 760
    readonly property bool showModelPage: page === "models"
                                          || (page === "chat" && !Models.ready && Chat.messages.count === 0)

    width: 1280
    height: 820
    minimumWidth: 640
    minimumHeight: 480
    visible: true
    title: Chat.currentTitle ? Chat.currentTitle + " — Tessera" : "Tessera"
    objectName: "mainWindow"

    Material.theme: AppSettings.theme === "dark" ? Material.Dark : AppSettings.theme === "light" ? Material.Light : Material.System
    Material.accent: Theme.accent
    Material.primary: Theme.accent
    color: Theme.windowBackground
    Binding {
        target: Theme
        property: "dark"
        value: window.Material.background.hslLightness < 0.5
    }

    function showError(message) { banner.text = message }

    Connections {
        target: Chat
        function onErrorOccurred(message) { window.showError(message) }
    }
    Connections {
        target: Models
        function onModelReady() {
            if (window.page === "models")
                window.page = "chat"
            chat.focusComposer()
        }
    }

    Shortcut {
        sequence: "Ctrl+N"
        onActivated: {
            Chat.newConversation()
            window.page = "chat"
            chat.focusComposer()
        }
    }
    Shortcut {
        sequence: "Ctrl+K"
        onActivated: {
            window.sidebarVisible = true
            sidebar.focusSearch()
        }
    }
    Shortcut {
        sequence: "Esc"
        onActivated: {
            if (chat.viewer.opened)
                chat.viewer.close()
            else if (Chat.generating)
                Chat.stop()
            else if (window.page !== "chat")
                window.page = "chat"
            else
                banner.text = ""
        }
    }
    Shortcut {
        sequences: ["Ctrl+,"]
        onActivated: window.page = window.page === "settings" ? "chat" : "settings"
    }

    RowLayout {
        anchors.fill: parent
        spacing: 0

        ConversationSidebar {
            id: sidebar
            objectName: "sidebar"
            visible: window.sidebarVisible
            Layout.preferredWidth: Theme.sidebarWidth
            Layout.fillHeight: true
        }
        Rectangle {
            visible: sidebar.visible
            Layout.fillHeight: true
            Layout.preferredWidth: 1
            color: Theme.border
        }

        ColumnLayout {
            id: mainColumn
            Layout.fillWidth: true
            Layout.fillHeight: true
            spacing: 0

            RowLayout {
                Layout.fillWidth: true
                Layout.preferredHeight: 52
                Layout.leftMargin: 8
                Layout.rightMargin: 8
                spacing: 4
                IconButton {
                    iconName: "sidebar"
                    tip: window.sidebarVisible ? qsTr("Hide conversations") : qsTr("Show conversations")
                    onClicked: window.sidebarVisible = !window.sidebarVisible
                }
                Label {
                    objectName: "conversationTitle"
                    Layout.fillWidth: true
                    text: window.page === "settings" ? qsTr("Settings")
                          : window.showModelPage ? qsTr("Model")
                          : Chat.currentTitle || qsTr("New conversation")
                    font.pixelSize: 16
                    font.weight: Font.DemiBold
                    elide: Text.ElideRight
                }
                Button {
                    font.capitalization: Font.MixedCase
                    objectName: "modelButton"
                    flat: true
                    icon.source: "qrc:/Tessera/Controls/icons/chip.svg"
                    text: Models.ready ? Models.modelName : Models.state === Models.Loading ? qsTr("Loading…") : qsTr("Choose a model")
                    onClicked: window.page = window.page === "models" ? "chat" : "models"
                }
                IconButton {
                    objectName: "settingsButton"
                    iconName: "settings"
                    tip: qsTr("Settings (Ctrl+,)")
                    checkable: true
                    checked: window.page === "settings"
                    onClicked: window.page = window.page === "settings" ? "chat" : "settings"
                }
            }

            StackLayout {
                id: pages
                Layout.fillWidth: true
                Layout.fillHeight: true
                currentIndex: window.page === "settings" ? 2 : window.showModelPage ? 1 : 0
                ChatView { id: chat; objectName: "chatView" }
                ModelPage { id: modelPage }
                SettingsPage { onCloseRequested: window.page = "chat" }
            }

            StatusBar {
                Layout.fillWidth: true
                onModelClicked: window.page = "models"
            }
        }
    }

    // Errors float over the top of the page until dismissed (or Esc).
    InlineMessage {
        id: banner
        objectName: "errorBanner"
        z: 10
        x: mainColumn.x + (mainColumn.width - width) / 2
        y: pages.y + 4
        width: Math.min(mainColumn.width - 32, Theme.contentWidth)
        color: Qt.tint(Theme.surface, Qt.rgba(tint.r, tint.g, tint.b, 0.14))
        onClosed: text = ""
    }
}
