#include "runtime/grounding.h"

#include <QtTest>

using namespace tessera;

class TestGrounding : public QObject {
    Q_OBJECT
private slots:
    void singleRef()
    {
        auto g = parseGrounding("<|ref|>The giraffe at the back<|/ref|><|det|>[[580, 0, 999, 823]]<|/det|>", 1);
        QCOMPARE(g.text, std::string("The giraffe at the back"));
        QCOMPARE(g.refs.size(), 1u);
        QCOMPARE(g.boxes.size(), 1u);
        QCOMPARE(g.boxes[0].label, std::string("The giraffe at the back"));
        QCOMPARE(g.boxes[0].image, 1);
        QCOMPARE(g.boxes[0].box, (std::array<int, 4>{580, 0, 999, 823}));
        QCOMPARE(g.refs[0].textBegin, 0u);
        QCOMPARE(g.refs[0].textEnd, g.text.size());
    }
    void groundedConversationWithSeveralBoxes()
    {
        auto g = parseGrounding("<|grounding|>There are <|ref|>two cats<|/ref|><|det|>[[10,20,30,40],[50,60,70,80]]<|/det|> on "
                                "<|ref|>a sofa<|/ref|><|det|>[[0,500,999,999]]<|/det|>.");
        QCOMPARE(g.text, std::string("There are two cats on a sofa."));
        QCOMPARE(g.refs.size(), 2u);
        QCOMPARE(g.refs[0].boxes.size(), 2u);
        QCOMPARE(g.refs[1].boxes.size(), 1u);
        QCOMPARE(g.boxes[1].box, (std::array<int, 4>{50, 60, 70, 80}));
        QCOMPARE(g.boxes[2].label, std::string("a sofa"));
        QCOMPARE(g.text.substr(g.refs[1].textBegin, g.refs[1].textEnd - g.refs[1].textBegin), std::string("a sofa"));
    }
    void malformedIsRejectedAndClamped()
    {
        QCOMPARE(parseGrounding("<|ref|>x<|/ref|><|det|>[[1,2,3]]<|/det|>").boxes.size(), 0u);
        QCOMPARE(parseGrounding("<|ref|>x<|/ref|><|det|>[[1,2,3,4.5]]<|/det|>").boxes.size(), 0u);
        QCOMPARE(parseGrounding("<|ref|>x<|/ref|><|det|>[[1,2,3,__import__]]<|/det|>").boxes.size(), 0u);
        QCOMPARE(parseGrounding("<|ref|>x<|/ref|><|det|>[[1,2,3,4]<|/det|>").boxes.size(), 0u);
        QCOMPARE(parseGrounding("<|ref|>x<|/ref|><|det|>[[1,2,3,4]] junk<|/det|>").boxes.size(), 0u);
        QCOMPARE(parseGrounding("<|ref|>x<|/ref|><|det|>[]<|/det|>").boxes.size(), 0u);
        QCOMPARE(parseGrounding("<|ref|>x<|/ref|><|det|>[[1,2,3,12345678901]]<|/det|>").boxes.size(), 0u);
        auto g = parseGrounding("<|ref|>x<|/ref|><|det|>[[ -5, 2000 ,900, 100 ]]<|/det|>");
        QCOMPARE(g.boxes.size(), 1u);
        QCOMPARE(g.boxes[0].box, (std::array<int, 4>{0, 100, 900, 999}));  // clamped, then ordered
    }
    void detWithoutRefGetsEmptyLabel()
    {
        auto g = parseGrounding("Here: <|det|>[[1,2,3,4]]<|/det|>");
        QCOMPARE(g.boxes.size(), 1u);
        QCOMPARE(g.boxes[0].label, std::string());
        QCOMPARE(g.text, std::string("Here: "));
    }
    void streamingEmitsEachBoxOnce()
    {
        const std::string answer = "<|ref|>dog<|/ref|><|det|>[[1,2,3,4],[5,6,7,8]]<|/det|> and <|ref|>cat<|/ref|><|det|>[[9,9,10,10]]<|/det|>";
        GroundingStream s(2);
        std::vector<GroundingBox> all;
        std::vector<std::size_t> emittedAt;
        for (std::size_t i = 0; i < answer.size(); i += 3) {
            auto fresh = s.push(std::string_view(answer).substr(i, 3));
            for (auto& b : fresh) {
                all.push_back(b);
                emittedAt.push_back(i);
            }
        }
        QCOMPARE(all.size(), 3u);
        QCOMPARE(all[0].label, std::string("dog"));
        QCOMPARE(all[2].label, std::string("cat"));
        QCOMPARE(all[2].image, 2);
        // A box appears only once its list is closed.
        QVERIFY(emittedAt[0] + 3 > answer.find("<|/det|>"));
    }
    void pixels()
    {
        auto p = boxToPixels({0, 0, 999, 999}, 640, 480);
        QCOMPARE(p[2], 640.0);
        QCOMPARE(p[3], 480.0);
        QCOMPARE(boxToPixels({999, 0, 0, 0}, 1000, 10)[0], 1000.0);
    }
};

QTEST_GUILESS_MAIN(TestGrounding)
#include "test_grounding.moc"
