import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Tessera.Controls

// Prompts DeepSeek-VL2 was trained on, one click away. Locate asks what to find first.
Flow {
    id: root
    spacing: 6
    signal actionChosen(string action, string argument)

    component Chip: Button {
        font.capitalization: Font.MixedCase
        property string iconName
        flat: true
        font.pixelSize: 12
        topPadding: 4
        bottomPadding: 4
        leftPadding: 10
        rightPadding: 12
        icon.source: Qt.resolvedUrl("qrc:/Tessera/Controls/icons/" + iconName + ".svg")
        icon.width: 16
        icon.height: 16
        background: Rectangle {
            radius: height / 2
            color: parent.hovered ? Theme.selection : "transparent"
            border.color: Theme.border
        }
    }

    Chip {
        objectName: "actionLocate"
        iconName: "locate"
        text: qsTr("Locate…")
        onClicked: locatePopup.open()
        Popup {
            id: locatePopup
            // Fixed size: a position that follows the popup's own height loops its polish.
            width: 340
            height: 64
            y: -height - 6
            focus: true
            background: Rectangle {
                color: Theme.surface
                radius: 10
                border.color: Theme.border
            }
            contentItem: RowLayout {
                TextField {
                    id: phrase
                    objectName: "locatePhrase"
                    Layout.fillWidth: true
                    placeholderText: qsTr("What to find, e.g. the giraffe at the back")
                    focus: true
                    onAccepted: locateButton.clicked()
                }
                Button {
                    font.capitalization: Font.MixedCase
                    id: locateButton
                    text: qsTr("Locate")
                    enabled: phrase.text.trim().length > 0
                    onClicked: {
                        root.actionChosen("locate", phrase.text)
                        phrase.text = ""
                        locatePopup.close()
                    }
                }
            }
        }
    }
    Chip { objectName: "actionDescribe"; iconName: "boxes"; text: qsTr("Describe with boxes"); onClicked: root.actionChosen("describe", "") }
    Chip { objectName: "actionOcr"; iconName: "text"; text: qsTr("Extract text"); onClicked: root.actionChosen("ocr", "") }
    Chip { objectName: "actionTable"; iconName: "table"; text: qsTr("Table to Markdown"); onClicked: root.actionChosen("table", "") }
    Chip { objectName: "actionChart"; iconName: "chart"; text: qsTr("Explain this chart"); onClicked: root.actionChosen("chart", "") }
}
