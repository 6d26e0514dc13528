import QtQuick
import QtTest
import Tessera.Chat
import Tessera.Grounding

// A label in the answer and its boxes are one thing: hover the box and the label lights up, hover
// the label and its boxes light up (the others dim). The message item holds the hovered label.
Item {
    id: top
    width: 900
    height: 700

    Item {
        id: message
        property int hoveredRef: -1
        function openImage(args) {}
    }

    Component {
        id: textComponent
        TextComponent {}
    }
    Component {
        id: imageComponent
        AnnotatedImage {}
    }

    readonly property string answer: "The cat sits near the dog today."
    readonly property var refs: [
        {ref: 0, label: "cat", begin: 4, end: 7, color: "#e6194b", boxCount: 1},
        {ref: 1, label: "dog", begin: 22, end: 25, color: "#3cb44b", boxCount: 2}
    ]
    readonly property var boxes: [
        {x1: 50, y1: 50, x2: 300, y2: 400, label: "cat", ref: 0, color: "#e6194b"},
        {x1: 500, y1: 500, x2: 700, y2: 900, label: "dog", ref: 1, color: "#3cb44b"},
        {x1: 800, y1: 100, x2: 950, y2: 300, label: "dog", ref: 1, color: "#3cb44b"}
    ]

    TestCase {
        name: "BoxLabelLinking"
        when: windowShown

        property var text
        property var image

        function init() {
            message.hoveredRef = -1
            text = createTemporaryObject(textComponent, top, {text: top.answer, refs: top.refs, streaming: false,
                                                              messageItem: message, width: 600})
            image = createTemporaryObject(imageComponent, top, {y: 100, width: 600, height: 450, imageWidth: 800,
                                                                imageHeight: 600, boxes: top.boxes})
            image.hoveredRef = Qt.binding(() => message.hoveredRef)
            image.refHovered.connect(ref => message.hoveredRef = ref)
            tryCompare(image.overlay, "boxCount", 3)
        }

        function test_labelsAreLinks() {
            verify(text.html.indexOf("tessera-ref:0") >= 0)
            verify(text.html.indexOf("tessera-ref:1") >= 0)
            verify(text.html.indexOf("underline") < 0)
        }

        function test_hoverBoxHighlightsLabel() {
            const dogBox = image.overlay.boxItem(1)
            mouseMove(dogBox, dogBox.width / 2, dogBox.height / 2)
            tryCompare(message, "hoveredRef", 1)
            verify(dogBox.highlighted)
            verify(image.overlay.boxItem(2).highlighted)   // every box of that label
            verify(image.overlay.boxItem(0).dimmed)
            tryVerify(() => text.html.indexOf("underline") >= 0)
            mouseMove(top, 890, 690)
            tryCompare(message, "hoveredRef", -1)
            verify(!dogBox.highlighted)
            verify(!image.overlay.boxItem(0).dimmed)
        }

        function test_hoverLabelHighlightsBoxes() {
            const edit = text.edit
            const r = edit.positionToRectangle(5)   // inside "cat"
            mouseMove(edit, r.x + 2, r.y + r.height / 2)
            tryCompare(message, "hoveredRef", 0)
            verify(image.overlay.boxItem(0).highlighted)
            verify(image.overlay.boxItem(1).dimmed)
            const d = edit.positionToRectangle(23)  // inside "dog"
            mouseMove(edit, d.x + 2, d.y + d.height / 2)
            tryCompare(message, "hoveredRef", 1)
            verify(image.overlay.boxItem(2).highlighted)
        }
    }
}
