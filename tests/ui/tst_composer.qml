import QtQuick
import QtTest
import Tessera.App
import Tessera.Composer

// The composer's attachments: added by file list (picker and drop use the same path), shown as
// thumbnails with their size, removed by their button; non-images refused; Ctrl+Enter sends.
Item {
    id: top
    width: 900
    height: 500

    AttachmentModel { id: attachments }
    Composer {
        id: composer
        width: 800
        attachments: attachments
        canSend: text.length > 0 || attachments.count > 0
    }
    SignalSpy { id: sendSpy; target: composer; signalName: "sendRequested" }
    SignalSpy { id: rejected; target: attachments; signalName: "rejected" }

    TestCase {
        name: "ComposerAttachments"
        when: windowShown

        function image(name) { return testData + "/images/" + name }

        function init() {
            attachments.clear()
            composer.text = ""
            sendSpy.clear()
            rejected.clear()
        }

        function test_addShowsThumbnails() {
            compare(composer.addFiles([image("jpeg_420.jpg"), image("pad_40x16.png"), image("orient6.jpg")]), 3)
            const strip = findChild(composer, "attachmentStrip")
            tryCompare(strip, "count", 3)
            verify(strip.visible)
            tryVerify(() => strip.itemAtIndex(2) !== null)
            for (let i = 0; i < 3; ++i) {
                const delegate = strip.itemAtIndex(i)
                verify(delegate)
                const thumb = findChild(delegate, "attachmentThumbnail")
                tryCompare(thumb, "status", Image.Ready, 10000)
            }
            compare(strip.itemAtIndex(1).name, "pad_40x16.png")
            compare(strip.itemAtIndex(1).imageWidth, 40)
            // No model loaded: no price shown yet.
            verify(!findChild(strip.itemAtIndex(0), "attachmentCost").visible)
        }

        function test_removeButton() {
            composer.addFiles([image("jpeg_420.jpg"), image("pad_40x16.png")])
            const strip = findChild(composer, "attachmentStrip")
            tryCompare(strip, "count", 2)
            tryVerify(() => strip.itemAtIndex(1) !== null)
            const remove = findChild(strip.itemAtIndex(0), "removeAttachment")
            mouseClick(remove)
            compare(attachments.count, 1)
            tryCompare(strip, "count", 1)
            tryVerify(() => strip.itemAtIndex(0) !== null && strip.itemAtIndex(0).name === "pad_40x16.png")
            compare(strip.itemAtIndex(0).name, "pad_40x16.png")
            mouseClick(findChild(strip.itemAtIndex(0), "removeAttachment"))
            compare(attachments.count, 0)
            verify(!strip.visible)
        }

        function test_refusesNonImages() {
            compare(composer.addFiles([testData + "/configs/deepseek-vl2-tiny.config.json"]), 0)
            compare(rejected.count, 1)
            verify(rejected.signalArguments[0][0].indexOf("deepseek-vl2-tiny.config.json") >= 0)
            compare(attachments.count, 0)
        }

        function test_ctrlEnterSends() {
            const input = findChild(composer, "composerInput")
            composer.focusInput()
            keyClick(Qt.Key_H)
            keyClick(Qt.Key_I)
            keyClick(Qt.Key_Return)          // a new line, not a send
            compare(sendSpy.count, 0)
            compare(input.text, "hi\n")
            keyClick(Qt.Key_Return, Qt.ControlModifier)
            compare(sendSpy.count, 1)
            compare(sendSpy.signalArguments[0][0], "hi\n")
        }

        function test_sendButtonNeedsContent() {
            const send = findChild(composer, "sendButton")
            verify(!send.enabled)
            composer.addFiles([image("jpeg_420.jpg")])
            verify(send.enabled)
            mouseClick(send)
            compare(sendSpy.count, 1)
        }

        function test_quickActions() {
            let chosen = []
            const record = (action, argument) => chosen.push(action + ":" + argument)
            composer.quickAction.connect(record)
            mouseClick(findChild(composer, "actionDescribe"))
            mouseClick(findChild(composer, "actionOcr"))
            // Locate asks what to find first.
            mouseClick(findChild(composer, "actionLocate"))
            const phrase = findChild(composer, "locatePhrase")
            tryVerify(() => phrase.visible && phrase.activeFocus)
            keyClick(Qt.Key_C)
            keyClick(Qt.Key_A)
            keyClick(Qt.Key_T)
            keyClick(Qt.Key_Return)
            composer.quickAction.disconnect(record)
            compare(chosen, ["describe:", "ocr:", "locate:cat"])
        }

        function test_stopWhileGenerating() {
            composer.generating = true
            const stop = findChild(composer, "stopButton")
            verify(stop)
            verify(stop.enabled)
            let stopped = 0
            const count = () => ++stopped
            composer.stopRequested.connect(count)
            mouseClick(stop)
            composer.stopRequested.disconnect(count)
            composer.generating = false
            compare(stopped, 1)
        }
    }
}
