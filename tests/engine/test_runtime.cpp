// The whole CPU engine against the golden reference: images → vision → projector → input
// embeddings → language model → greedy tokens, plus the runtime's prefix reuse, cancel and
// context handling (which must always give what a cold run gives).
#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "core/json_util.h"
#include "model/safetensors.h"
#include "runtime/model.h"
#include "runtime/prompt_segments.h"
#include "runtime/session.h"

#include "golden.h"

#include <QtTest>

#include <nlohmann/json.hpp>

#include <thread>

using namespace tessera;

namespace {

GenerationOptions greedy(int maxNewTokens)
{
    GenerationOptions o;
    o.sampling.temperature = 0;
    o.sampling.repetitionPenalty = 1;
    o.maxNewTokens = maxNewTokens;
    return o;
}

std::unique_ptr<Model> loadGolden(const std::string& name)
{
    ModelLoadOptions o;
    o.backend = BackendKind::Cpu;
    return Model::load(test::goldenModel(name), o);
}

}  // namespace

class TestRuntime : public QObject {
    Q_OBJECT
private slots:
    void inputEmbeddingsAndGreedyTokens_data()
    {
        QTest::addColumn<QString>("model");
        QTest::addColumn<QString>("name");
        for (const char* model : {"mini-mha", "mini-mla"})
            for (const char* c : {"a_text", "b_grounding", "c_two_images", "d_three_images", "e_multiturn_system",
                                  "e2_system_role_text", "f1_odd_sizes", "f2_rgba"})
                QTest::newRow((std::string(model) + "/" + c).c_str()) << model << c;
    }
    void inputEmbeddingsAndGreedyTokens()
    {
        TESSERA_REQUIRE_GOLDEN();
        QFETCH(QString, model);
        QFETCH(QString, name);
        auto m = loadGolden(model.toStdString());
        auto conv = test::goldenConversation(model.toStdString(), name.toStdString());
        SafetensorsFile ref(test::goldenDir() / "cases" / model.toStdString() / (name.toStdString() + ".safetensors"));

        // Input embeddings through the backend (vision, projector, layout, text embeddings).
        auto input = m->processor().process(conv);
        auto& cpu = dynamic_cast<cpu::CpuBackend&>(m->backend());
        std::vector<std::shared_ptr<EncodedImage>> encoded;
        for (const auto& tiles : input.images)
            encoded.push_back(cpu.encodeImage(tiles, nullptr));
        const auto segments = promptSegments(input, encoded);
        const auto got = cpu.embeddings(segments);
        const auto want = ref.find("inputs_embeds")->toFloat();
        QCOMPARE(got.size(), want.size());
        double maxErr = 0;
        bool ok = true;
        for (std::size_t i = 0; i < got.size(); ++i) {
            const double e = std::abs(double(got[i]) - want[i]);
            maxErr = std::max(maxErr, e);
            ok &= e <= 1e-4 + 1e-4 * std::abs(want[i]);
        }
        qInfo("%s/%s: inputs_embeds max |err| %.3g", qPrintable(model), qPrintable(name), maxErr);
        QVERIFY(ok);

        // Greedy decoding through the session matches the reference's 16 tokens (up to an end of sentence).
        Session session(*m);
        auto result = session.generate(conv, greedy(16));
        const auto gen = ref.find("gen_ids")->toInt64();
        std::vector<std::int64_t> expected;
        for (auto id : gen) {
            if (id == m->processor().eosId())
                break;
            expected.push_back(id);
        }
        std::vector<std::int64_t> produced(result.outputIds.begin(), result.outputIds.end());
        QCOMPARE(produced, expected);
        QCOMPARE(result.promptIds.size(), input.inputIds.size());
    }

    void prefixReuseEqualsColdRun()
    {
        TESSERA_REQUIRE_GOLDEN();
        auto m = loadGolden("mini-mla");
        const auto images = test::goldenDir() / "images";
        Conversation conv;
        conv.messages.push_back({Role::User, "<image>\nWhat is in the picture?", {images / "multi_image_1.jpeg"}});
        Session warm(*m);
        auto first = warm.generate(conv, greedy(8));
        QCOMPARE(first.reusedPositions, 0);
        QCOMPARE(first.imagesEncoded, 1);
        conv.messages.push_back({Role::Assistant, first.text, {}});
        conv.messages.push_back({Role::User, "And the colours?", {}});
        auto second = warm.generate(conv, greedy(8));
        QVERIFY(second.reusedPositions > 600);  // the image and the first question are reused
        QCOMPARE(second.imagesEncoded, 0);
        Session cold(*m);
        auto reference = cold.generate(conv, greedy(8));
        QVERIFY(second.outputIds == reference.outputIds);

        // A second image keeps tiling on (≤ 2 images): the first image is still reused.
        conv.messages.push_back({Role::Assistant, second.text, {}});
        conv.messages.push_back({Role::User, "<image>\nCompare.", {images / "multi_image_2.jpeg"}});
        auto third = warm.generate(conv, greedy(6));
        QCOMPARE(third.imagesEncoded, 1);
        QVERIFY(third.outputIds == Session(*m).generate(conv, greedy(6)).outputIds);

        // A third image turns tiling off for every image: nothing past the text before the first image is reusable.
        conv.messages.push_back({Role::Assistant, third.text, {}});
        conv.messages.push_back({Role::User, "<image>\nAnd this one?", {images / "multi_image_3.jpeg"}});
        auto fourth = warm.generate(conv, greedy(6));
        QCOMPARE(fourth.imagesEncoded, 3);
        QVERIFY(fourth.reusedPositions < 20);
        QVERIFY(fourth.outputIds == Session(*m).generate(conv, greedy(6)).outputIds);
    }

    void cancelLeavesSessionUsable()
    {
        TESSERA_REQUIRE_GOLDEN();
        auto m = loadGolden("mini-mha");
        auto conv = test::goldenConversation("mini-mha", "b_grounding");
        Session session(*m);
        std::atomic<bool> cancel{true};
        auto stopped = session.generate(conv, greedy(16), {}, &cancel);
        QVERIFY(stopped.stop == StopReason::Cancelled);
        QVERIFY(stopped.outputIds.empty());

        // Cancel from another thread while tokens stream.
        cancel = false;
        GenerationCallbacks cb;
        int pieces = 0;
        cb.onText = [&](std::string_view) {
            if (++pieces == 3)
                std::thread([&] { cancel = true; }).join();
        };
        auto partial = session.generate(conv, greedy(200), cb, &cancel);
        QVERIFY(partial.stop == StopReason::Cancelled);
        QVERIFY(partial.outputIds.size() >= 3 && partial.outputIds.size() < 200);

        cancel = false;
        auto again = session.generate(conv, greedy(16), {}, &cancel);
        auto cold = Session(*m).generate(conv, greedy(16));
        QVERIFY(again.outputIds == cold.outputIds);
        QVERIFY(again.reusedPositions > 0);
    }

    void contextLimits()
    {
        TESSERA_REQUIRE_GOLDEN();
        auto m = loadGolden("mini-mha");
        const auto images = test::goldenDir() / "images";
        Session small(*m, 700);
        Conversation conv;
        conv.messages.push_back({Role::User, "<image>\nDescribe.", {images / "vqa_1.jpg"}});
        try {
            small.generate(conv, greedy(4));
            QFAIL("a 1800-token prompt fitted a 700-token context");
        } catch (const Error& e) {
            QVERIFY(std::string(e.what()).find("context holds 700") != std::string::npos);
        }
        // With the oldest turns dropped, the last question is answered.
        conv.messages.push_back({Role::Assistant, "A diagram.", {}});
        conv.messages.push_back({Role::User, "What colours does it use?", {}});
        auto opts = greedy(4);
        opts.dropOldestTurns = true;
        auto r = small.generate(conv, opts);
        QCOMPARE(r.droppedTurns, 1);
        QVERIFY(r.promptIds.size() < 700);
        // Generation stops when the context is full.
        Session tiny(*m, 20);
        Conversation text;
        text.messages.push_back({Role::User, "Describe what a chart usually shows.", {}});
        auto full = tiny.generate(text, greedy(100));
        QVERIFY(full.stop == StopReason::ContextFull || full.stop == StopReason::EndOfSentence);
        QVERIFY(full.promptIds.size() + full.outputIds.size() <= 21);
    }

    void backendSelection()
    {
        TESSERA_REQUIRE_GOLDEN();
        QVERIFY_THROWS_EXCEPTION(Error, parseBackendKind("tpu"));
        ModelLoadOptions o;
        o.backend = BackendKind::Cpu;
        int calls = 0;
        o.progress = [&](const LoadProgress& p) {
            ++calls;
            return p.fraction < 0.5;  // cancel half-way
        };
        QVERIFY_THROWS_EXCEPTION(LoadCancelled, Model::load(test::goldenModel("mini-mha"), o));
        QVERIFY(calls > 2);
        QVERIFY_THROWS_EXCEPTION(Error, Model::load(test::goldenDir() / "images"));
    }
};

QTEST_GUILESS_MAIN(TestRuntime)
#include "test_runtime.moc"
