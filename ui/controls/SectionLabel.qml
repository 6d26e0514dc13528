import QtQuick
import QtQuick.Controls

// A small heading above a group of controls.
Label {
    font.pixelSize: 12
    font.weight: Font.DemiBold
    font.capitalization: Font.AllUppercase
    font.letterSpacing: 0.6
    color: Theme.mutedText
}
