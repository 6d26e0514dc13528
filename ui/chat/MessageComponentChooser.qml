import QtQuick
import Qt.labs.qmlmodels

// Picks the delegate for each part of a message (NeoChat's MessageComponentChooser).
// `messageItem` is the MessageDelegate: parts read and set its hoveredRef and open images through it.
DelegateChooser {
    id: chooser
    property Item messageItem
    role: "partType"

    DelegateChoice {
        roleValue: "text"
        delegate: TextComponent { messageItem: chooser.messageItem }
    }
    DelegateChoice {
        roleValue: "images"
        delegate: ImagesComponent { messageItem: chooser.messageItem }
    }
    DelegateChoice {
        roleValue: "annotated"
        delegate: AnnotatedImageComponent { messageItem: chooser.messageItem }
    }
    DelegateChoice {
        roleValue: "notice"
        delegate: NoticeComponent {}
    }
}
