pragma Singleton
import QtQuick
import QtQuick.Controls.Material

// Sizes and the few colours Material does not name, for light and dark.
QtObject {
    property bool dark: false

    readonly property int spacing: 8
    readonly property int radius: 10
    readonly property int sidebarWidth: 272
    readonly property int contentWidth: 860

    readonly property color windowBackground: dark ? "#16181d" : "#f6f7f9"
    readonly property color surface: dark ? "#1f2228" : "#ffffff"
    readonly property color sidebarBackground: dark ? "#1b1d22" : "#eef0f4"
    readonly property color userBubble: dark ? "#2b3550" : "#e3ebfd"
    readonly property color border: dark ? "#343842" : "#dde1e8"
    readonly property color mutedText: dark ? "#9aa1ad" : "#5f6775"
    readonly property color accent: dark ? "#8ab4ff" : "#2f6fdf"
    readonly property color selection: dark ? "#2a3142" : "#dde6f8"

    function severityColor(severity) {
        if (severity === "error")
            return dark ? "#ff8a80" : "#c62828"
        if (severity === "warning")
            return dark ? "#ffcc80" : "#a15c00"
        return mutedText
    }
}
