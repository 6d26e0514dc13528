#include "core/error.h"
#include "core/json_util.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

#include "golden.h"

#include <QtTest>

#include <chrono>
#include <fstream>
#include <thread>

using tessera::DecodeOptions;
using tessera::Error;
using tessera::StreamingDetokenizer;
using tessera::Tokenizer;
using nlohmann::json;

namespace {

struct GoldenEntry {
    std::string text;
    std::vector<std::int32_t> ids;
    std::string decoded;
    std::string decodedSkipSpecial;
};

std::vector<GoldenEntry> loadCorpus()
{
    const json root = tessera::parseJsonFile(tessera::test::goldenDir() / "tokenizer" / "tokenizer_golden.json");
    std::vector<GoldenEntry> entries;
    for (const json& e : root.at("entries"))
        entries.push_back({e.at("text").get<std::string>(), e.at("ids").get<std::vector<std::int32_t>>(),
                           e.at("decoded").get<std::string>(), e.at("decoded_skip_special").get<std::string>()});
    return entries;
}

std::string show(const std::vector<std::int32_t>& ids)
{
    std::string s = "[";
    for (std::size_t i = 0; i < ids.size(); ++i)
        s += (i ? "," : "") + std::to_string(ids[i]);
    return s + "]";
}

// A small byte-level BPE tokenizer.json built in memory, for error cases and edge behaviour.
json miniTokenizerJson()
{
    json vocab = json::object();
    for (int b = 0; b < 256; ++b)
        vocab[std::string(tessera::byte_level::charFor(static_cast<unsigned char>(b)))] = b;
    vocab["ab"] = 256;
    vocab["abab"] = 257;
    vocab["Ġa"] = 258;
    json merges = json::array({json::array({"a", "b"}), json::array({"ab", "ab"}), json::array({"Ġ", "a"})});
    return json{
        {"version", "1.0"},
        {"added_tokens", json::array({json{{"id", 259}, {"content", "<|x|>"}, {"special", true}, {"normalized", false}}})},
        {"normalizer", nullptr},
        {"pre_tokenizer",
         json{{"type", "Sequence"},
              {"pretokenizers",
               json::array({json{{"type", "Split"}, {"pattern", {{"Regex", "\\s+(?!\\S)|\\s*\\S+"}}}, {"behavior", "Isolated"}, {"invert", false}},
                            json{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}})}}},
        {"decoder", json{{"type", "ByteLevel"}}},
        {"model", json{{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}};
}

template <class F>
std::string errorOf(F&& f)
{
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

#define EXPECT_ERROR(expr, needle)                                                                       \
    do {                                                                                                 \
        const std::string message_ = errorOf([&] { (void)(expr); });                                     \
        QVERIFY2(message_.find(needle) != std::string::npos,                                             \
                 qPrintable(QString::fromStdString("expected \"" + std::string(needle) + "\" in: " + message_))); \
    } while (0)

}  // namespace

class TestTokenizer : public QObject {
    Q_OBJECT
private:
    std::vector<GoldenEntry> corpus_;
    std::optional<Tokenizer> mha_;
    std::optional<Tokenizer> mla_;

    const Tokenizer& tokenizer(const QString& layout) { return layout == "mha" ? *mha_ : *mla_; }

private slots:
    void initTestCase()
    {
        if (tessera::test::goldenDir().empty())
            return;
        corpus_ = loadCorpus();
        const auto t0 = std::chrono::steady_clock::now();
        mha_ = Tokenizer::fromFile(tessera::test::goldenModel("mini-mha") / "tokenizer.json");
        const auto t1 = std::chrono::steady_clock::now();
        mla_ = Tokenizer::fromFile(tessera::test::goldenModel("mini-mla") / "tokenizer.json");
        const auto t2 = std::chrono::steady_clock::now();
        qInfo("loaded tokenizer.json: mha (pair merges) %.0f ms, mla (string merges) %.0f ms",
              std::chrono::duration<double, std::milli>(t1 - t0).count(),
              std::chrono::duration<double, std::milli>(t2 - t1).count());
    }

    void goldenCorpus_data()
    {
        QTest::addColumn<QString>("layout");
        QTest::newRow("mini-mha (merges as pairs)") << QString("mha");
        QTest::newRow("mini-mla (merges as strings)") << QString("mla");
    }
    // Every corpus entry: encode, decode, decode skipping special tokens.
    void goldenCorpus()
    {
        TESSERA_REQUIRE_GOLDEN();
        QFETCH(QString, layout);
        const Tokenizer& tok = tokenizer(layout);
        QCOMPARE(corpus_.size(), std::size_t(74));
        std::size_t passed = 0;
        QStringList failures;
        for (std::size_t i = 0; i < corpus_.size(); ++i) {
            const GoldenEntry& e = corpus_[i];
            const auto ids = tok.encode(e.text);
            const std::string decoded = tok.decode(e.ids);
            const std::string skipped = tok.decode(e.ids, true);
            bool ok = true;
            if (ids != e.ids) {
                failures << QString("entry %1 encode: got %2, want %3").arg(i).arg(QString::fromStdString(show(ids)), QString::fromStdString(show(e.ids)));
                ok = false;
            }
            if (decoded != e.decoded) {
                failures << QString("entry %1 decode: got \"%2\"").arg(i).arg(QString::fromStdString(decoded));
                ok = false;
            }
            if (skipped != e.decodedSkipSpecial) {
                failures << QString("entry %1 decode(skip special): got \"%2\"").arg(i).arg(QString::fromStdString(skipped));
                ok = false;
            }
            // Second encode goes through the word cache.
            if (tok.encode(e.text) != e.ids) {
                failures << QString("entry %1: cached encode differs").arg(i);
                ok = false;
            }
            passed += ok;
        }
        qInfo("%s: %zu/%zu corpus entries match (encode, decode, decode skip-special)", qPrintable(layout), passed,
              corpus_.size());
        QVERIFY2(failures.isEmpty(), qPrintable(failures.join("\n")));
    }

    void streamingMatchesDecode_data() { goldenCorpus_data(); }
    void streamingMatchesDecode()
    {
        TESSERA_REQUIRE_GOLDEN();
        QFETCH(QString, layout);
        const Tokenizer& tok = tokenizer(layout);
        for (bool skip : {false, true}) {
            DecodeOptions options;
            options.skipSpecialTokens = skip;
            StreamingDetokenizer stream(tok, options);
            for (std::size_t i = 0; i < corpus_.size(); ++i) {
                std::string text;
                for (std::int32_t id : corpus_[i].ids) {
                    const std::string piece = stream.push(id);
                    QVERIFY2(tessera::utf8::isValid(piece), qPrintable(QString("entry %1: invalid UTF-8 mid-stream").arg(i)));
                    text += piece;
                }
                text += stream.flush();
                QCOMPARE(stream.pendingBytes(), std::size_t(0));
                QCOMPARE(text, skip ? corpus_[i].decodedSkipSpecial : corpus_[i].decoded);
            }
        }
    }

    void utf8LossyMatchesRust()
    {
        // Rust's from_utf8_lossy: one U+FFFD per maximal invalid subpart.
        const std::string r = "\xEF\xBF\xBD";
        auto lossy = [](std::string_view bytes) {
            std::string out;
            tessera::utf8::appendLossy(out, bytes);
            return out;
        };
        QCOMPARE(lossy("a\xE0\x80z"), "a" + r + r + "z");          // E0 needs A0..BF next
        QCOMPARE(lossy("\xED\xA0\x80"), r + r + r);                // surrogates are invalid
        QCOMPARE(lossy("\xF0\x9F\x98" "A"), r + "A");              // truncated emoji: one replacement
        QCOMPARE(lossy("\xC0\xAF"), r + r);                         // overlong lead bytes
        QCOMPARE(lossy("\xF4\x90\x80\x80"), r + r + r + r);       // above U+10FFFF
        QCOMPARE(lossy("\xF8\x80"), r + r);
        QCOMPARE(lossy("ok\xE2\x82"), "ok" + r);
        QCOMPARE(lossy("\xE2\x82\xAC"), std::string("€"));
        std::string held;
        QCOMPARE(tessera::utf8::appendLossyPrefix(held, "ok\xE2\x82"), std::size_t(2));
        QCOMPARE(held, std::string("ok"));
        held.clear();
        QCOMPARE(tessera::utf8::appendLossyPrefix(held, "\xE2\x41"), std::size_t(2));  // can no longer complete
        QCOMPARE(held, r + "A");
    }

    void streamingHoldsBackSplitCharacters()
    {
        TESSERA_REQUIRE_GOLDEN();
        const Tokenizer& tok = *mha_;
        // "🚀" is F0 9F 9A 80; feed it one byte token at a time.
        const std::string rocket = "\xF0\x9F\x9A\x80";
        std::vector<std::int32_t> byteIds;
        for (char c : rocket)
            byteIds.push_back(*tok.tokenId(tessera::byte_level::charFor(static_cast<unsigned char>(c))));
        StreamingDetokenizer stream(tok);
        QCOMPARE(stream.push(*tok.tokenId("Go")), std::string("Go"));
        for (std::size_t i = 0; i + 1 < byteIds.size(); ++i) {
            QCOMPARE(stream.push(byteIds[i]), std::string());
            QCOMPARE(stream.pendingBytes(), i + 1);
        }
        QCOMPARE(stream.push(byteIds.back()), rocket);
        QCOMPARE(stream.pendingBytes(), std::size_t(0));

        // The encoder itself splits emoji across tokens: every prefix is held back until complete.
        const auto ids = tok.encode("😀🚀👍🏽");
        QVERIFY(ids.size() > 4);
        stream.reset();
        std::string all;
        for (std::int32_t id : ids) {
            const std::string piece = stream.push(id);
            QVERIFY(tessera::utf8::isValid(piece));
            all += piece;
        }
        QCOMPARE(all, std::string("😀🚀👍🏽"));

        // A character that never completes becomes U+FFFD, like HF decode.
        stream.reset();
        QCOMPARE(stream.push(byteIds[0]), std::string());
        QCOMPARE(stream.push(byteIds[1]), std::string());
        QCOMPARE(stream.push(*tok.tokenId("Go")), std::string("\xEF\xBF\xBDGo"));
        QCOMPARE(stream.push(byteIds[0]), std::string());
        QCOMPARE(stream.flush(), std::string("\xEF\xBF\xBD"));
        const std::vector<std::int32_t> broken{byteIds[0], byteIds[1], *tok.tokenId("Go"), byteIds[0]};
        QCOMPARE(tok.decode(broken), std::string("\xEF\xBF\xBDGo\xEF\xBF\xBD"));
    }

    void streamingKeepsSpecialTokens()
    {
        TESSERA_REQUIRE_GOLDEN();
        const Tokenizer& tok = *mha_;
        StreamingDetokenizer stream(tok);
        std::string out;
        for (std::int32_t id : tok.encode("<|ref|>The giraffe<|/ref|><|det|>[[1,2,3,4]]<|/det|>"))
            out += stream.push(id);
        out += stream.flush();
        QCOMPARE(out, std::string("<|ref|>The giraffe<|/ref|><|det|>[[1,2,3,4]]<|/det|>"));
        QCOMPARE(stream.push(1), std::string("<｜end▁of▁sentence｜>"));
    }

    void generatedTextOfGoldenCases()
    {
        // gen_text in the case files is HF decode of gen_ids: ids past the tokenizer are dropped.
        TESSERA_REQUIRE_GOLDEN();
        int cases = 0;
        for (const char* model : {"mini-mha", "mini-mla"}) {
            for (const auto& file : std::filesystem::directory_iterator(tessera::test::goldenDir() / "cases" / model)) {
                if (file.path().extension() != ".json")
                    continue;
                const json c = tessera::parseJsonFile(file.path());
                const auto ids = c.at("gen_ids").get<std::vector<std::int32_t>>();
                DecodeOptions lenient;
                lenient.skipUnknownIds = true;
                const Tokenizer& tok = std::string(model) == "mini-mha" ? *mha_ : *mla_;
                QCOMPARE(tok.decode(ids, lenient), c.at("gen_text").get<std::string>());
                StreamingDetokenizer stream(tok, lenient);
                std::string streamed;
                for (std::int32_t id : ids)
                    streamed += stream.push(id);
                streamed += stream.flush();
                QCOMPARE(streamed, c.at("gen_text").get<std::string>());
                ++cases;
            }
        }
        QCOMPARE(cases, 16);
    }

    void apiFacts()
    {
        TESSERA_REQUIRE_GOLDEN();
        for (const Tokenizer* tok : {&*mha_, &*mla_}) {
            QCOMPARE(tok->vocabSize(), std::size_t(128823));
            QCOMPARE(tok->tokenId("<image>"), std::optional<std::int32_t>(128815));
            QCOMPARE(tok->tokenId("<|ref|>"), std::optional<std::int32_t>(128816));
            QCOMPARE(tok->tokenId("<|Assistant|>"), std::optional<std::int32_t>(128822));
            QCOMPARE(tok->tokenId("<｜▁pad▁｜>"), std::optional<std::int32_t>(2));
            QCOMPARE(tok->tokenId("Ġ"), std::optional<std::int32_t>(223));
            QCOMPARE(tok->tokenId("<|notatoken|>"), std::optional<std::int32_t>());
            QCOMPARE(tok->tokenText(223), std::string("Ġ"));
            QCOMPARE(tok->tokenText(0), std::string("<｜begin▁of▁sentence｜>"));
            QCOMPARE(tok->tokenBytes(223), std::string_view(" "));
            QVERIFY(tok->isSpecial(0) && tok->isSpecial(1) && tok->isSpecial(2) && tok->isSpecial(128820));
            QVERIFY(!tok->isSpecial(223));
            QVERIFY(!tok->isSpecial(*tok->tokenId("<｜tool▁sep｜>")));  // added but not special
            QVERIFY(!tok->isSpecial(-1) && !tok->isSpecial(200000));
            QVERIFY(tok->isKnownId(128822) && !tok->isKnownId(128823) && !tok->isKnownId(-5));
            QCOMPARE(tok->encode("").size(), std::size_t(0));
            QCOMPARE(tok->encode("text<image>text").size(), std::size_t(3));
        }
        // Copies share data and moves leave a working tokenizer behind in the target.
        Tokenizer copy = *mha_;
        Tokenizer moved = std::move(copy);
        QCOMPARE(moved.encode("Hello world"), mha_->encode("Hello world"));
        static_assert(std::is_nothrow_move_constructible_v<Tokenizer>);
        std::vector<std::int32_t> appended{7};
        moved.encodeAppend("Hello", appended);
        QCOMPARE(appended.size(), std::size_t(2));
    }

    void decodeRejectsUnknownIds()
    {
        TESSERA_REQUIRE_GOLDEN();
        const Tokenizer& tok = *mha_;
        const std::vector<std::int32_t> outOfRange{9906, 128823};
        EXPECT_ERROR(tok.decode(outOfRange), "token id 128823");
        EXPECT_ERROR(tok.decode(std::vector<std::int32_t>{-1}), "token id -1");
        EXPECT_ERROR(tok.tokenText(129000), "token id 129000");
        DecodeOptions lenient;
        lenient.skipUnknownIds = true;
        QCOMPARE(tok.decode(outOfRange, lenient), tok.decode(std::vector<std::int32_t>{9906}));
        StreamingDetokenizer stream(tok);
        QCOMPARE(stream.push(9906), tok.decode(std::vector<std::int32_t>{9906}));
        EXPECT_ERROR(stream.push(999999), "token id 999999");
        QCOMPARE(stream.flush(), std::string());
    }

    void encodeRejectsInvalidUtf8()
    {
        TESSERA_REQUIRE_GOLDEN();
        EXPECT_ERROR(mha_->encode(std::string("ok\xC3(", 4)), "not valid UTF-8 (byte 2");
    }

    void concurrentEncoding()
    {
        TESSERA_REQUIRE_GOLDEN();
        const Tokenizer tok = Tokenizer::fromFile(tessera::test::goldenModel("mini-mla") / "tokenizer.json");  // cold cache
        std::atomic<int> mismatches{0};
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t) {
            threads.emplace_back([&, t] {
                for (int round = 0; round < 20; ++round)
                    for (std::size_t i = (t + round) % 3; i < corpus_.size(); ++i)
                        if (tok.encode(corpus_[i].text) != corpus_[i].ids)
                            ++mismatches;
            });
        }
        for (auto& th : threads)
            th.join();
        QCOMPARE(mismatches.load(), 0);
    }

    void pathologicalInputsStayFast()
    {
        TESSERA_REQUIRE_GOLDEN();
        const Tokenizer& tok = *mha_;
        // One huge piece of spaces and one of letters: BPE must not go quadratic.
        const auto t0 = std::chrono::steady_clock::now();
        const std::string spaces(1 << 20, ' ');
        const std::string letters(1 << 20, 'a');
        const auto a = tok.encode(spaces);
        const auto b = tok.encode(letters);
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        QVERIFY2(seconds < 20.0, qPrintable(QString("took %1 s").arg(seconds)));
        QCOMPARE(tok.decode(a), spaces);
        QCOMPARE(tok.decode(b), letters);
        // The long-piece path (heap) and the short one agree: 64 vs 65 letters decode and merge alike.
        QCOMPARE(tok.decode(tok.encode(std::string(65, 'a'))), std::string(65, 'a'));
    }

    void miniTokenizerBehaviour()
    {
        const Tokenizer tok = Tokenizer::fromJson(miniTokenizerJson(), "mini.json");
        QCOMPARE(tok.vocabSize(), std::size_t(260));
        // "ababab" → ab ab ab → abab ab (leftmost first on equal ranks).
        QCOMPARE(tok.encode("ababab"), (std::vector<std::int32_t>{257, 256}));
        // " ab": the pair a+b (rank 0) beats Ġ+a (rank 2); " ac" has only Ġ+a.
        QCOMPARE(tok.encode("x<|x|> ab"), (std::vector<std::int32_t>{'x', 259, ' ', 256}));
        QCOMPARE(tok.encode(" ac"), (std::vector<std::int32_t>{258, 'c'}));
        QCOMPARE(tok.decode(tok.encode("x<|x|> ab"), true), std::string("x ab"));
        QCOMPARE(tok.encode("<|x"), (std::vector<std::int32_t>{'<', '|', 'x'}));
        // Long piece (> 64 bytes) goes through the heap merge; same rules.
        std::string longWord;
        for (int i = 0; i < 50; ++i)
            longWord += "ab";
        const auto ids = tok.encode(longWord);
        QCOMPARE(ids, std::vector<std::int32_t>(25, 257));
    }

    void loadErrors()
    {
        EXPECT_ERROR(Tokenizer::fromFile("/nonexistent/dir/tokenizer.json"), "/nonexistent/dir/tokenizer.json: file not found");
        QVERIFY(tempDir_.isValid());
        const std::filesystem::path badJson = tempDir_.filePath("broken.json").toStdString();
        std::ofstream(badJson) << "{\"model\": {\"type\": \"BPE\", ";
        EXPECT_ERROR(Tokenizer::fromFile(badJson), badJson.string() + ": invalid JSON at byte");

        auto edited = [](auto&& edit) {
            json j = miniTokenizerJson();
            edit(j);
            return j;
        };
        expectLoadError(edited([](json& j) { j["model"]["type"] = "WordPiece"; }), "model: model type \"WordPiece\" is not supported");
        expectLoadError(edited([](json& j) { j["model"]["merges"][1] = "abab"; }),
                        "model.merges[1]: \"abab\" is not two tokens separated by one space");
        expectLoadError(edited([](json& j) { j["model"]["merges"][1] = "a b c"; }),
                        "model.merges[1]: \"a b c\" is not two tokens separated by one space");
        expectLoadError(edited([](json& j) { j["model"]["merges"][0] = json::array({1, 2}); }),
                        "model.merges[0]: expected \"a b\" or [\"a\", \"b\"]");
        expectLoadError(edited([](json& j) { j["model"]["merges"][0] = json::array({"a", "b", "c"}); }),
                        "model.merges[0]: expected \"a b\" or [\"a\", \"b\"]");
        expectLoadError(edited([](json& j) { j["model"]["merges"][2] = 7; }), "model.merges[2]: expected \"a b\" or [\"a\", \"b\"], found 7");
        expectLoadError(edited([](json& j) { j["model"]["merges"].push_back("a zzz"); }),
                        "model.merges[3] (\"a\" + \"zzz\"): token \"zzz\" is not in the vocabulary");
        expectLoadError(edited([](json& j) { j["model"]["merges"].push_back(json::array({"b", "a"})); }),
                        "model.merges[3] (\"b\" + \"a\"): the merged token \"ba\" is not in the vocabulary");
        expectLoadError(edited([](json& j) { j["model"].erase("merges"); }), "model: field \"merges\" is missing");
        expectLoadError(edited([](json& j) { j["model"]["vocab"] = json::array(); }), "model: field \"vocab\" is missing");
        expectLoadError(edited([](json& j) { j["model"]["vocab"]["dup"] = 5; }), "model.vocab: id 5 is used by both");
        expectLoadError(edited([](json& j) { j["model"]["vocab"]["neg"] = -3; }), "model.vocab[\"neg\"]: token id must be an integer");
        expectLoadError(edited([](json& j) { j["model"]["vocab"]["str"] = "7"; }), "model.vocab[\"str\"]: token id must be an integer");
        expectLoadError(edited([](json& j) { j.erase("model"); }), "field \"model\" is missing");
        expectLoadError(edited([](json& j) { j["normalizer"] = json{{"type", "NFKC"}}; }), "normalizer {\"type\":\"NFKC\"} is not supported");
        expectLoadError(edited([](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(("; }),
                        "pre_tokenizer[0].pattern: invalid regular expression \"((\"");
        expectLoadError(edited([](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Contiguous"; }),
                        "pre_tokenizer[0]: Split behavior \"Contiguous\" is not supported");
        expectLoadError(edited([](json& j) { j["pre_tokenizer"]["pretokenizers"][1]["use_regex"] = true; }),
                        "pre_tokenizer[1]: ByteLevel with use_regex true");
        expectLoadError(edited([](json& j) { j["decoder"] = json{{"type", "WordPiece"}}; }), "decoder {\"type\":\"WordPiece\"} is not supported");
        expectLoadError(edited([](json& j) { j["added_tokens"][0]["id"] = "x"; }), "added_tokens[0].id: token id must be an integer");
        expectLoadError(json::array(), "expected a tokenizer.json object");
    }

    void miniTokenizerLoadsFromEitherLayout()
    {
        // The streaming reader (files) and the tree reader agree, for pair and string merges.
        json strings = miniTokenizerJson();
        for (json& m : strings["model"]["merges"])
            m = m[0].get<std::string>() + " " + m[1].get<std::string>();
        for (const json& j : {miniTokenizerJson(), strings}) {
            const std::filesystem::path file = tempDir_.filePath("mini.json").toStdString();
            std::ofstream(file, std::ios::trunc) << j.dump();
            const Tokenizer fromTree = Tokenizer::fromJson(j, "mini.json");
            const Tokenizer fromFile = Tokenizer::fromFile(file);
            for (const char* text : {"ababab", " ab ac", "x<|x|>y", ""}) {
                QCOMPARE(fromFile.encode(text), fromTree.encode(text));
            }
            QCOMPARE(fromFile.encode("ababab"), (std::vector<std::int32_t>{257, 256}));
            QCOMPARE(fromFile.vocabSize(), std::size_t(260));
        }
    }

private:
    QTemporaryDir tempDir_;

    // The tree reader (fromJson) and the streaming file reader (fromFile) must report the same
    // problem, each prefixed with its source name.
    void expectLoadError(const json& j, const std::string& needle)
    {
        EXPECT_ERROR(Tokenizer::fromJson(j, "t.json"), "t.json: " + needle);
        const std::filesystem::path file = tempDir_.filePath("t.json").toStdString();
        std::ofstream(file, std::ios::trunc) << j.dump();
        EXPECT_ERROR(Tokenizer::fromFile(file), file.string() + ": " + needle);
    }
};

QTEST_GUILESS_MAIN(TestTokenizer)
#include "test_tokenizer.moc"
