import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Tessera.App
import Tessera.Controls

// Preferences, saved as they change: sampling (upstream defaults), system prompt, backend, theme,
// and what is running where.
ScrollView {
    id: root
    objectName: "settingsPage"
    contentWidth: availableWidth
    signal closeRequested()

    ColumnLayout {
        width: Math.min(root.availableWidth - 48, 640)
        x: (root.availableWidth - width) / 2
        spacing: 12

        Item { Layout.preferredHeight: 8 }
        RowLayout {
            Layout.fillWidth: true
            Label {
                Layout.fillWidth: true
                text: qsTr("Settings")
                font.pixelSize: 26
                font.weight: Font.DemiBold
            }
            IconButton { iconName: "close"; tip: qsTr("Close (Esc)"); onClicked: root.closeRequested() }
        }

        SectionLabel { text: qsTr("Answers") }
        SettingRow {
            objectName: "temperatureSetting"
            Layout.fillWidth: true
            label: qsTr("Temperature")
            help: qsTr("0 always picks the likeliest token; higher is more varied. DeepSeek-VL2's default: 0.1.")
            from: 0; to: 1.5; stepSize: 0.05
            value: AppSettings.temperature
            onMoved: v => AppSettings.temperature = v
        }
        SettingRow {
            Layout.fillWidth: true
            label: qsTr("Top-p")
            help: qsTr("Sample only from the smallest set of tokens holding this much probability. Default 0.9.")
            from: 0.05; to: 1; stepSize: 0.05
            value: AppSettings.topP
            onMoved: v => AppSettings.topP = v
        }
        SettingRow {
            Layout.fillWidth: true
            label: qsTr("Top-k")
            help: qsTr("Sample only from the k likeliest tokens; 0 turns it off (the default).")
            from: 0; to: 100; stepSize: 1; decimals: 0
            value: AppSettings.topK
            onMoved: v => AppSettings.topK = Math.round(v)
        }
        SettingRow {
            Layout.fillWidth: true
            label: qsTr("Repetition penalty")
            help: qsTr("Discourages repeating tokens already seen; 1 turns it off. Default 1.1.")
            from: 1; to: 2; stepSize: 0.05
            value: AppSettings.repetitionPenalty
            onMoved: v => AppSettings.repetitionPenalty = v
        }
        SettingRow {
            Layout.fillWidth: true
            label: qsTr("Max new tokens")
            help: qsTr("The longest answer, in tokens. Default 2048.")
            from: 16; to: 4096; stepSize: 16; decimals: 0
            value: AppSettings.maxNewTokens
            onMoved: v => AppSettings.maxNewTokens = Math.round(v)
        }
        Button {
            font.capitalization: Font.MixedCase
            objectName: "resetSampling"
            text: qsTr("Restore the defaults")
            enabled: !AppSettings.samplingIsDefault
            onClicked: AppSettings.resetSampling()
        }

        SectionLabel { text: qsTr("System prompt"); Layout.topMargin: 8 }
        TextArea {
            objectName: "systemPrompt"
            Layout.fillWidth: true
            Layout.preferredHeight: Math.max(80, implicitHeight)
            wrapMode: TextEdit.Wrap
            placeholderText: qsTr("Optional: instructions the model sees before every conversation")
            text: AppSettings.systemPrompt
            onEditingFinished: AppSettings.systemPrompt = text
        }

        SectionLabel { text: qsTr("Backend"); Layout.topMargin: 8 }
        RowLayout {
            Layout.fillWidth: true
            ComboBox {
                id: backend
                objectName: "backendBox"
                Layout.preferredWidth: 220
                textRole: "text"
                valueRole: "value"
                model: [{value: "auto", text: qsTr("Automatic")}, {value: "cuda", text: qsTr("CUDA (NVIDIA GPU)")},
                        {value: "cpu", text: qsTr("CPU")}]
                Component.onCompleted: currentIndex = indexOfValue(AppSettings.backend)
                onActivated: AppSettings.backend = currentValue
            }
            Button {
                font.capitalization: Font.MixedCase
                text: qsTr("Reload the model")
                visible: Models.ready && Models.backendName.length > 0 && AppSettings.backend !== "auto"
                         && AppSettings.backend !== Models.backendName
                onClicked: Models.load(Models.folder)
            }
        }
        Label {
            Layout.fillWidth: true
            wrapMode: Text.Wrap
            font.pixelSize: 12
            color: Theme.mutedText
            text: qsTr("Automatic uses an NVIDIA GPU when the model fits it, the CPU otherwise. A change applies when the model is next loaded.")
        }

        SectionLabel { text: qsTr("Appearance"); Layout.topMargin: 8 }
        RowLayout {
            objectName: "themeChoice"
            RadioButton { text: qsTr("Follow the system"); checked: AppSettings.theme === "system"; onClicked: AppSettings.theme = "system" }
            RadioButton { text: qsTr("Light"); checked: AppSettings.theme === "light"; onClicked: AppSettings.theme = "light" }
            RadioButton { text: qsTr("Dark"); checked: AppSettings.theme === "dark"; onClicked: AppSettings.theme = "dark" }
        }

        SectionLabel { text: qsTr("Running"); Layout.topMargin: 8 }
        GridLayout {
            objectName: "statusGrid"
            columns: 2
            columnSpacing: 16
            rowSpacing: 4
            Label { text: qsTr("Model"); color: Theme.mutedText }
            Label { text: Models.ready ? Models.modelName + " (" + Models.variant + ", " + Models.weightSize + ")" : qsTr("none loaded") }
            Label { text: qsTr("Backend"); color: Theme.mutedText }
            Label { Layout.fillWidth: true; wrapMode: Text.Wrap; text: Models.ready ? Models.backendDescription || Models.backendName : "—" }
            Label { text: qsTr("GPU"); color: Theme.mutedText }
            Label {
                Layout.fillWidth: true
                wrapMode: Text.Wrap
                text: Models.gpuName ? Models.gpuName + " · " + Models.gpuMemory + qsTr(" in use") : (Models.deviceProblem || qsTr("none"))
            }
            Label { text: qsTr("Context"); color: Theme.mutedText }
            Label { text: Models.contextLength + qsTr(" tokens") }
        }
        Item { Layout.preferredHeight: 24 }
    }
}
