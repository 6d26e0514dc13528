import QtQuick
import QtTest
import Tessera.Grounding

// Boxes line up with the image as displayed, at any size: the image is fitted (aspect kept,
// centred) and a box [x1, y1, x2, y2] in 0..999 lands at x = v / 999 * painted width.
Item {
    id: top
    width: 1000
    height: 800

    Component {
        id: annotated
        AnnotatedImage {}
    }

    readonly property var boxes: [
        {x1: 0, y1: 0, x2: 999, y2: 999, label: "everything", ref: 0, color: "#e6194b"},
        {x1: 100, y1: 250, x2: 500, y2: 750, label: "middle", ref: 1, color: "#4363d8"},
        {x1: 900, y1: 10, x2: 999, y2: 60, label: "corner", ref: 1, color: "#4363d8"}
    ]

    TestCase {
        name: "BoxOverlayGeometry"
        when: windowShown

        function expectedRect(item, b) {
            const s = Math.min(item.width / item.imageWidth, item.height / item.imageHeight)
            const pw = item.imageWidth * s, ph = item.imageHeight * s
            const ox = (item.width - pw) / 2, oy = (item.height - ph) / 2
            return Qt.rect(ox + b.x1 / 999 * pw, oy + b.y1 / 999 * ph, (b.x2 - b.x1) / 999 * pw, (b.y2 - b.y1) / 999 * ph)
        }

        function checkBoxes(item) {
            const overlay = item.overlay
            tryCompare(overlay, "boxCount", top.boxes.length)
            for (let i = 0; i < top.boxes.length; ++i) {
                const box = overlay.boxItem(i)
                const at = box.mapToItem(item, 0, 0)
                const want = expectedRect(item, top.boxes[i])
                fuzzyCompare(at.x, want.x, 0.01, "x of box " + i)
                fuzzyCompare(at.y, want.y, 0.01, "y of box " + i)
                fuzzyCompare(box.width, want.width, 0.01, "width of box " + i)
                fuzzyCompare(box.height, want.height, 0.01, "height of box " + i)
            }
        }

        function test_geometry_data() {
            return [
                {tag: "wide image in a square", w: 400, h: 400, iw: 2000, ih: 1000},
                {tag: "tall image in a wide area", w: 600, h: 300, iw: 300, ih: 900},
                {tag: "same size", w: 640, h: 480, iw: 640, ih: 480},
                {tag: "tiny image scaled up", w: 500, h: 500, iw: 10, ih: 10},
                {tag: "thumbnail", w: 120, h: 80, iw: 4000, ih: 3000}
            ]
        }

        function test_geometry(data) {
            const item = createTemporaryObject(annotated, top, {width: data.w, height: data.h, imageWidth: data.iw,
                                                                imageHeight: data.ih, boxes: top.boxes})
            verify(item)
            checkBoxes(item)
            // The overlay covers exactly the painted image.
            fuzzyCompare(item.overlay.width, item.paintedRect.width, 0.01)
            verify(Math.abs(item.paintedRect.width - data.w) < 0.01 || Math.abs(item.paintedRect.height - data.h) < 0.01)
        }

        function test_followsResizes() {
            const item = createTemporaryObject(annotated, top, {width: 300, height: 300, imageWidth: 800, imageHeight: 600,
                                                                boxes: top.boxes})
            checkBoxes(item)
            item.width = 900
            item.height = 500
            checkBoxes(item)
            item.width = 150
            checkBoxes(item)
        }

        function test_labelsAndColours() {
            const item = createTemporaryObject(annotated, top, {width: 400, height: 300, imageWidth: 400, imageHeight: 300,
                                                                boxes: top.boxes})
            tryCompare(item.overlay, "boxCount", 3)
            const middle = item.overlay.boxItem(1)
            compare(middle.label, "middle")
            verify(Qt.colorEqual(middle.color, "#4363d8"))
            const label = findChild(middle, "boxLabel")
            verify(label.visible)
            // A box at the top edge carries its label inside, not above the image.
            const corner = item.overlay.boxItem(0)
            compare(findChild(corner, "boxLabel").y, 0)
            verify(findChild(middle, "boxLabel").y < 0)
        }

        function test_toggle() {
            const item = createTemporaryObject(annotated, top, {width: 400, height: 300, imageWidth: 400, imageHeight: 300,
                                                                boxes: top.boxes, showBoxes: false})
            verify(!item.overlay.visible)
            item.showBoxes = true
            verify(item.overlay.visible)
        }
    }
}
