pragma ComponentBehavior: Bound
import QtQuick
import QtQuick.Controls
import QtQuick.Dialogs
import QtQuick.Layouts
import Tessera.App
import Tessera.Controls

// First run and model choice: which folders Tessera accepts, the ones found in the models folder,
// any folder the user picks (checked before loading: variant, size, fits), loading with progress
// and Cancel, and what went wrong when it did.
ScrollView {
    id: root
    property var picked: null   // Models.inspect() of the folder chosen with the dialog
    contentWidth: availableWidth
    objectName: "modelPage"

    function choose(folderUrl) {
        picked = Models.inspect(folderUrl)
    }

    ColumnLayout {
        width: Math.min(root.availableWidth - 48, 720)
        x: (root.availableWidth - width) / 2
        spacing: 14

        Item { Layout.preferredHeight: 24 }
        Image {
            source: "qrc:/Tessera/Controls/tessera.svg"
            sourceSize: Qt.size(64, 64)
        }
        Label {
            text: Models.state === Models.Ready ? qsTr("Model") : qsTr("Choose a model")
            font.pixelSize: 26
            font.weight: Font.DemiBold
        }
        Label {
            Layout.fillWidth: true
            wrapMode: Text.Wrap
            color: Theme.mutedText
            text: Models.acceptedFolders
        }

        // Loading
        Rectangle {
            objectName: "loadingCard"
            Layout.fillWidth: true
            visible: Models.state === Models.Loading
            implicitHeight: loading.implicitHeight + 24
            radius: Theme.radius
            color: Theme.surface
            border.color: Theme.accent
            ColumnLayout {
                id: loading
                anchors.fill: parent
                anchors.margins: 12
                Label {
                    Layout.fillWidth: true
                    text: qsTr("Loading %1").arg(Models.modelName)
                    font.weight: Font.DemiBold
                    elide: Text.ElideMiddle
                }
                ProgressBar {
                    objectName: "loadProgress"
                    Layout.fillWidth: true
                    from: 0
                    to: 1
                    value: Models.loadProgress
                }
                RowLayout {
                    Layout.fillWidth: true
                    Label {
                        Layout.fillWidth: true
                        text: Models.loadStage + " · " + Math.round(Models.loadProgress * 100) + "%"
                        color: Theme.mutedText
                    }
                    Button {
                        font.capitalization: Font.MixedCase
                        objectName: "cancelLoadButton"
                        text: qsTr("Cancel")
                        enabled: Models.loadStage !== "cancelling"
                        onClicked: Models.cancelLoad()
                    }
                }
            }
        }

        InlineMessage {
            objectName: "modelError"
            Layout.fillWidth: true
            visible: Models.state === Models.Failed && text.length > 0
            text: Models.state === Models.Failed ? Models.errorMessage : ""
            closable: false
        }

        SectionLabel {
            Layout.topMargin: 8
            text: qsTr("Found on this computer")
        }
        Repeater {
            model: Models.library
            delegate: ModelCard {
                required property string folder
                required property string name
                required property string variant
                required property string size
                required property bool valid
                required property string problem
                required property string fitMessage
                Layout.fillWidth: true
                current: Models.state === Models.Ready && Models.folder === folder
                loadEnabled: Models.state !== Models.Loading && !current
                onLoadRequested: folder => Models.load(folder)
            }
        }
        Label {
            Layout.fillWidth: true
            visible: Models.library.count === 0
            wrapMode: Text.Wrap
            color: Theme.mutedText
            text: qsTr("No model folders yet in %1. Put a downloaded model folder there, or choose one anywhere.")
                      .arg(Models.library.modelsDir)
        }

        RowLayout {
            Layout.topMargin: 8
            Button {
                font.capitalization: Font.MixedCase
                objectName: "chooseFolderButton"
                text: qsTr("Choose a model folder…")
                icon.source: "qrc:/Tessera/Controls/icons/folder.svg"
                enabled: Models.state !== Models.Loading
                onClicked: folderDialog.open()
            }
        }
        ModelCard {
            objectName: "pickedModel"
            Layout.fillWidth: true
            visible: root.picked !== null
            name: root.picked ? root.picked.name : ""
            folder: root.picked ? root.picked.folder : ""
            variant: root.picked ? root.picked.variant : ""
            size: root.picked ? root.picked.size : ""
            valid: root.picked ? root.picked.valid : false
            problem: root.picked ? root.picked.problem : ""
            fitMessage: root.picked ? root.picked.fitMessage : ""
            current: Models.state === Models.Ready && root.picked !== null && Models.folder === root.picked.folder
            loadEnabled: Models.state !== Models.Loading && !current
            onLoadRequested: folder => Models.load(folder)
        }
        Item { Layout.preferredHeight: 24 }
    }

    FolderDialog {
        id: folderDialog
        title: qsTr("Choose a DeepSeek-VL2 model folder")
        onAccepted: root.choose(selectedFolder)
    }
}
