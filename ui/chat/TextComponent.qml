import QtQuick
import QtQuick.Controls
import Tessera.App
import Tessera.Controls

// Message text as rendered Markdown. Grounding labels are links in their box colour: hovering one
// highlights its boxes, and a hovered box highlights its label. A cursor blinks while streaming.
Item {
    id: root
    required property string text
    required property var refs
    required property bool streaming
    property Item messageItem
    property bool cursorOn: true
    readonly property int hoveredRef: messageItem ? messageItem.hoveredRef : -1
    // The rich text last rendered (TextEdit.text re-serialises it differently).
    property string html
    readonly property alias edit: edit

    width: parent ? parent.width : implicitWidth
    implicitWidth: edit.implicitWidth
    implicitHeight: edit.implicitHeight

    function render() {
        // A delegate being torn down sees its roles go undefined.
        const html = Formatter.toHtml(root.text, root.refs || [], root.hoveredRef, root.streaming && root.cursorOn, Theme.dark)
        if (html !== root.html) {
            root.html = html
            edit.text = html
        }
    }
    Component.onCompleted: render()
    onTextChanged: render()
    onRefsChanged: render()
    onHoveredRefChanged: render()
    onCursorOnChanged: render()
    onStreamingChanged: render()
    Connections {
        target: Theme
        function onDarkChanged() { root.render() }
    }

    Timer {
        running: root.streaming
        repeat: true
        interval: 530
        onTriggered: root.cursorOn = !root.cursorOn
        onRunningChanged: root.cursorOn = true
    }

    TextEdit {
        id: edit
        objectName: "messageText"
        width: root.width
        textFormat: TextEdit.RichText
        wrapMode: TextEdit.Wrap
        readOnly: true
        selectByMouse: true
        color: palette.windowText
        selectionColor: Theme.selection
        selectedTextColor: palette.windowText
        font.pixelSize: 15
        onLinkHovered: link => {
            if (root.messageItem)
                root.messageItem.hoveredRef = Formatter.refFromLink(link)
        }
        onLinkActivated: link => {
            if (Formatter.refFromLink(link) < 0)
                Qt.openUrlExternally(link)
        }
        HoverHandler {
            cursorShape: edit.hoveredLink ? Qt.PointingHandCursor : Qt.IBeamCursor
        }
    }
}
