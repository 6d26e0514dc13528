pragma ComponentBehavior: Bound
import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Tessera.App
import Tessera.Composer
import Tessera.Controls
import Tessera.Grounding

// The open conversation: its messages (streaming answers follow the bottom), the composer, drop
// target for images, and the large image view.
Item {
    id: root
    property alias composer: composer
    property alias messageList: list
    property alias viewer: viewer

    function focusComposer() { composer.focusInput() }

    ListView {
        id: list
        objectName: "messageList"
        anchors.top: parent.top
        anchors.left: parent.left
        anchors.right: parent.right
        anchors.bottom: composerArea.top
        clip: true
        model: Chat.messages
        spacing: 6
        topMargin: 16
        bottomMargin: 16
        // Follow the answer while it streams, unless the user scrolled up to read.
        property bool followBottom: true
        onMovementEnded: followBottom = atYEnd
        onContentHeightChanged: if (followBottom) scroller.restart()
        onCountChanged: {
            followBottom = true
            scroller.restart()
        }
        Timer {
            id: scroller
            interval: 0
            onTriggered: list.positionViewAtEnd()
        }
        ScrollBar.vertical: ScrollBar {}

        delegate: MessageDelegate {
            x: (list.width - width) / 2
            width: Math.min(list.width - 48, Theme.contentWidth)
            isLast: index === list.count - 1
            busy: Chat.generating
            onImageRequested: args => {
                viewer.messageId = args.messageId
                viewer.suggestedExportName = Chat.suggestedExportName(args.messageId)
                args.exportName = viewer.suggestedExportName
                viewer.openImage(args)
            }
            onCopyRequested: text => Chat.copyText(text)
            onRegenerateRequested: Chat.regenerate()
            onResendRequested: (messageId, text) => Chat.editAndResend(messageId, text)
        }
    }

    EmptyState {
        anchors.centerIn: list
        visible: Chat.messages.count === 0
        modelName: Models.modelName
    }

    Item {
        id: composerArea
        anchors.left: parent.left
        anchors.right: parent.right
        anchors.bottom: parent.bottom
        height: composer.implicitHeight + 24
        Composer {
            id: composer
            objectName: "composer"
            anchors.horizontalCenter: parent.horizontalCenter
            anchors.bottom: parent.bottom
            anchors.bottomMargin: 14
            width: Math.min(parent.width - 32, Theme.contentWidth)
            attachments: Chat.attachments
            cost: Chat.cost
            canSend: Chat.canSend
            generating: Chat.generating
            modelReady: Models.ready
            progressText: Chat.progressText
            pasteImage: function() { return Chat.pasteImage() }
            onTextChanged: Chat.draft = text
            onSendRequested: text => {
                if (Chat.send(text))
                    composer.text = ""
            }
            onStopRequested: Chat.stop()
            onQuickAction: (action, argument) => {
                composer.text = Chat.quickActionPrompt(action, argument)
                composer.inputItem.cursorPosition = composer.text.length
                composer.focusInput()
            }
        }
    }

    DropArea {
        id: drop
        anchors.fill: parent
        keys: ["text/uri-list"]
        onDropped: event => {
            if (event.hasUrls) {
                composer.addFiles(event.urls)
                event.acceptProposedAction()
            }
        }
        Rectangle {
            anchors.fill: parent
            anchors.margins: 12
            visible: drop.containsDrag
            radius: 16
            color: Qt.rgba(Theme.accent.r, Theme.accent.g, Theme.accent.b, 0.10)
            border.color: Theme.accent
            border.width: 2
            Label {
                anchors.centerIn: parent
                text: qsTr("Drop images to attach them")
                font.pixelSize: 20
                color: Theme.accent
            }
        }
    }

    ImageViewer {
        id: viewer
        objectName: "imageViewer"
        property var messageId: 0
        showBoxes: AppSettings.showBoxes
        onExportRequested: file => Chat.exportGrounding(viewer.messageId, file)
    }
}
