#include "core/error.h"
#include "core/json_util.h"
#include "core/text.h"
#include "model/safetensors.h"
#include "processor/processor.h"

#include "golden.h"

#include <QTemporaryDir>
#include <QtTest>

#include <nlohmann/json.hpp>

#include <fstream>

using namespace tessera;

namespace {

const char* const kCases[] = {"a_text",         "b_grounding",         "c_two_images", "d_three_images",
                              "e_multiturn_system", "e2_system_role_text", "f1_odd_sizes", "f2_rgba"};

template <typename A, typename B>
bool sameValues(const A& a, const B& b)
{
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (static_cast<std::int64_t>(a[i]) != static_cast<std::int64_t>(b[i]))
            return false;
    return true;
}

std::string errorOf(const std::function<void()>& f)
{
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return {};
}

}  // namespace

class TestProcessor : public QObject {
    Q_OBJECT
private slots:
    void pythonStripMatchesStrSemantics()
    {
        QCOMPARE(std::string(pythonStrip("  a b \n")), std::string("a b"));
        QCOMPARE(std::string(pythonStrip("\u3000\u00a0x\u2029")), std::string("x"));
        QCOMPARE(std::string(pythonStrip("\x1fx\x1c")), std::string("x"));
        QCOMPARE(std::string(pythonStrip("\u200bx")), std::string("\u200bx"));  // zero-width space is not whitespace
        QCOMPARE(std::string(pythonStrip(" \t ")), std::string());
        QCOMPARE(std::string(pythonStrip("é ")), std::string("é"));
    }

    void goldenCases_data()
    {
        QTest::addColumn<QString>("model");
        QTest::addColumn<QString>("name");
        for (const char* model : {"mini-mha", "mini-mla"})  // the two tokenizer.json layouts
            for (const char* c : kCases)
                QTest::newRow((std::string(model) + "/" + c).c_str()) << model << c;
    }
    void goldenCases()
    {
        TESSERA_REQUIRE_GOLDEN();
        QFETCH(QString, model);
        QFETCH(QString, name);
        const auto dir = test::goldenDir();
        const auto processor = Processor::fromModelFolder(test::goldenModel(model.toStdString()));
        const auto conv = test::goldenConversation(model.toStdString(), name.toStdString());
        const auto input = processor.process(conv);

        SafetensorsFile ref(dir / "cases" / model.toStdString() / (name.toStdString() + ".safetensors"));
        const auto ids = ref.find("input_ids")->toInt64();
        const auto mask = ref.find("images_seq_mask")->toInt64();
        const auto crop = ref.find("images_spatial_crop")->toInt64();
        const auto ntok = ref.find("num_image_tokens")->toInt64();
        QCOMPARE(input.inputIds.size(), ids.size());
        QVERIFY(sameValues(input.inputIds, ids));
        QVERIFY(sameValues(input.imageSeqMask, mask));
        QVERIFY(sameValues(input.numImageTokens, ntok));
        std::vector<std::int64_t> gotCrop;
        for (const auto& c : input.imagesSpatialCrop)
            gotCrop.insert(gotCrop.end(), {c[0], c[1]});
        if (gotCrop.empty())
            gotCrop = {0, 0};
        QVERIFY(sameValues(gotCrop, crop));

        auto caseJson = parseJsonFile(dir / "cases" / model.toStdString() / (name.toStdString() + ".json"));
        QCOMPARE(input.prompt, caseJson["sft_format"].get<std::string>());
        QCOMPARE(processor.tokenizer().decode(input.inputIds), caseJson["prompt_decoded"].get<std::string>());

        // Tiles: within ±1 of the reference and at least 99.5% identical.
        const int n = caseJson["n_tiles"].get<int>();
        QCOMPARE(input.tileCount(), n);
        if (n == 0)
            return;
        SafetensorsFile tiles(dir / "cases" / "tiles" / (name.toStdString() + ".safetensors"));
        const auto* t = tiles.find("tiles");
        QVERIFY(t && t->dtype == DType::U8);
        std::vector<std::uint8_t> got;
        for (const auto& img : input.images)
            got.insert(got.end(), img.pixels.begin(), img.pixels.end());
        QCOMPARE(got.size(), t->byteSize);
        std::size_t same = 0;
        int maxDiff = 0;
        for (std::size_t i = 0; i < got.size(); ++i) {
            const int d = std::abs(int(got[i]) - int(t->data[i]));
            same += d == 0;
            maxDiff = std::max(maxDiff, d);
        }
        const double identical = double(same) / double(got.size());
        qInfo("%s: tiles max |diff| %d, %.4f%% identical", qPrintable(name), maxDiff, identical * 100);
        QVERIFY(maxDiff <= 1);
        QVERIFY(identical >= 0.995);
    }

    void tileGridAndTokenCount()
    {
        TESSERA_REQUIRE_GOLDEN();
        const auto p = Processor::fromModelFolder(test::goldenModel("mini-mha"));
        QCOMPARE(p.imageTokenCount(1, 1), 421);
        QCOMPARE(p.imageTokenCount(2, 3), 1429);
        QCOMPARE((p.tileGrid(724, 1086, true)), (std::array<int, 2>{2, 3}));
        QCOMPARE((p.tileGrid(724, 1086, false)), (std::array<int, 2>{1, 1}));
        QCOMPARE((p.tileGrid(2000, 100, true)), (std::array<int, 2>{6, 1}));
        QCOMPARE(p.imageTokenId(), 128815);
        QCOMPARE(p.bosId(), 0);
        QCOMPARE(p.eosId(), 1);
    }

    void conversationEndingOnUserTurn()
    {
        TESSERA_REQUIRE_GOLDEN();
        // Without the trailing empty assistant message the input is the same: the app relies on it.
        const auto p = Processor::fromModelFolder(test::goldenModel("mini-mha"));
        auto conv = test::goldenConversation("mini-mha", "e2_system_role_text");
        auto withEmpty = p.process(conv);
        conv.messages.pop_back();
        auto without = p.process(conv);
        QVERIFY(withEmpty.inputIds == without.inputIds);
    }

    void badConversations()
    {
        TESSERA_REQUIRE_GOLDEN();
        const auto p = Processor::fromModelFolder(test::goldenModel("mini-mha"));
        const auto images = test::goldenDir() / "images";
        auto user = [](std::string text, std::vector<std::filesystem::path> imgs = {}) {
            return ChatMessage{Role::User, std::move(text), std::move(imgs)};
        };
        Conversation tooManyMarkers{{user("<image><image> what?", {images / "synthetic_10x10.png"})}, ""};
        QVERIFY(errorOf([&] { p.process(tooManyMarkers); }).find("2 <image> markers but 1 image") != std::string::npos);
        Conversation tooManyImages{{user("what?", {images / "synthetic_10x10.png"})}, ""};
        QVERIFY(errorOf([&] { p.process(tooManyImages); }).find("0 <image> markers but 1 image") != std::string::npos);
        Conversation assistantImage{{user("hi"), {Role::Assistant, "look <image>", {}}, user("and?")}, ""};
        QVERIFY(errorOf([&] { p.process(assistantImage); }).find("only user messages") != std::string::npos);
        Conversation lateSystem{{user("hi"), {Role::System, "be brief", {}}}, ""};
        QVERIFY(errorOf([&] { p.process(lateSystem); }).find("must come first") != std::string::npos);
        Conversation noUser{{{Role::System, "be brief", {}}}, ""};
        QVERIFY(errorOf([&] { p.process(noUser); }).find("no user message") != std::string::npos);
        QVERIFY(!errorOf([&] { p.process(Conversation{}); }).empty());

        Conversation missing{{user("<image> what?", {images / "no-such-file.png"})}, ""};
        QVERIFY(errorOf([&] { p.process(missing); }).find("no-such-file.png") != std::string::npos);
        Conversation notImage{{user("<image> what?", {test::goldenModel("mini-mha") / "config.json"})}, ""};
        QVERIFY(errorOf([&] { p.process(notImage); }).find("config.json") != std::string::npos);

        // Over-long prompts are refused when a context limit is given.
        Conversation big{{user("<image> describe", {images / "vqa_1.jpg"})}, ""};
        ProcessorOptions limited;
        limited.maxTokens = 1000;
        QVERIFY(errorOf([&] { p.process(big, limited); }).find("1000-token context") != std::string::npos);
    }

    void conversationFiles()
    {
        QTemporaryDir tmp;
        const std::filesystem::path dir = tmp.path().toStdString();
        auto write = [&](const char* name, const std::string& body) {
            std::ofstream(dir / name) << body;
            return dir / name;
        };
        auto conv = loadConversationFile(write("ok.json", R"([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "<image> hi", "images": ["a.png"]},
            {"role": "<|Assistant|>", "content": ""}])"));
        QCOMPARE(conv.messages.size(), 3u);
        QVERIFY(conv.messages[0].role == Role::System);
        QCOMPARE(conv.messages[1].images.at(0), dir / "a.png");  // relative to the file
        QVERIFY(conv.messages[2].role == Role::Assistant);
        auto obj = loadConversationFile(write("obj.json", R"({"system_prompt": "S", "conversation": [{"role": "user", "content": "x"}]})"));
        QCOMPARE(obj.systemPrompt, std::string("S"));
        QVERIFY_THROWS_EXCEPTION(Error, loadConversationFile(write("role.json", R"([{"role": "bot", "content": "x"}])")));
        QVERIFY_THROWS_EXCEPTION(Error, loadConversationFile(write("empty.json", "[]")));
        QVERIFY_THROWS_EXCEPTION(Error, loadConversationFile(write("broken.json", "[{")));
        QVERIFY_THROWS_EXCEPTION(Error, loadConversationFile(write("imgs.json", R"([{"role": "user", "content": "x", "images": "a.png"}])")));
        QVERIFY_THROWS_EXCEPTION(Error, loadConversationFile(dir / "missing.json"));
    }
};

QTEST_GUILESS_MAIN(TestProcessor)
#include "test_processor.moc"
