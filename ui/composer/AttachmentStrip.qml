import QtQuick
import QtQuick.Controls

// The composer's attachments in a row, scrolling sideways when there are many.
ListView {
    id: root
    property var attachments   // AttachmentModel
    orientation: ListView.Horizontal
    spacing: 10
    clip: true
    // The model's count, not the view's: a hidden view updates its own count lazily.
    readonly property bool hasAttachments: attachments !== null && attachments !== undefined && attachments.count > 0
    implicitHeight: hasAttachments ? 74 : 0
    visible: hasAttachments
    topMargin: 8
    leftMargin: 2
    model: attachments
    delegate: AttachmentDelegate {
        onRemoveRequested: index => root.attachments.remove(index)
    }
    ScrollBar.horizontal: ScrollBar { policy: ScrollBar.AsNeeded }
}
