#include "core/error.h"
#include "core/mapped_file.h"
#include "model/config.h"
#include "model/weight_map.h"

#include "golden.h"

#include <QtTest>

#include <nlohmann/json.hpp>

using namespace tessera;

namespace {

std::filesystem::path configPath(const char* name)
{
    return test::sourceDir() / "tests/data/configs" / (std::string(name) + ".config.json");
}

std::int64_t parameterCount(const ModelConfig& c)
{
    std::int64_t n = 0;
    for (const auto& t : expectedTensors(c)) {
        std::int64_t k = 1;
        for (auto d : t.shape)
            k *= d;
        n += k;
    }
    return n;
}

std::string mutated(const char* name, const std::function<void(nlohmann::json&)>& edit)
{
    auto j = nlohmann::json::parse(readTextFile(configPath(name)));
    edit(j);
    return j.dump();
}

void expectError(const std::string& text, const char* needle)
{
    try {
        parseModelConfig(text, "config.json");
        QFAIL(qPrintable(QString("no error; expected one mentioning '%1'").arg(needle)));
    } catch (const Error& e) {
        const std::string msg = e.what();
        if (msg.find(needle) == std::string::npos)
            QFAIL(qPrintable(QString("error '%1' does not mention '%2'").arg(msg.c_str(), needle)));
    }
}

}  // namespace

class TestModelConfig : public QObject {
    Q_OBJECT
private slots:
    void tiny()
    {
        auto c = loadModelConfig(configPath("deepseek-vl2-tiny"));
        const auto& l = c.language;
        QCOMPARE(c.variantName(), std::string("deepseek-vl2-tiny"));
        QVERIFY(!l.useMla);
        QCOMPARE(l.hiddenSize, 1280);
        QCOMPARE(l.numHiddenLayers, 12);
        QCOMPARE(l.numAttentionHeads, 10);
        QCOMPARE(l.numKeyValueHeads, 10);
        QCOMPARE(l.headDim(), 128);
        QCOMPARE(*l.nRoutedExperts, 64);
        QCOMPARE(l.numExpertsPerTok, 6);
        QCOMPARE(*l.nSharedExperts, 2);
        QCOMPARE(l.moeIntermediateSize, 896);
        QCOMPARE(l.intermediateSize, 6848);
        QVERIFY(l.topkMethod == TopkMethod::Greedy);
        QVERIFY(l.scoringFunc == ScoringFunc::Softmax);
        QVERIFY(!l.normTopkProb);
        QCOMPARE(l.routedScalingFactor, 1.0);
        QVERIFY(!l.isMoeLayer(0));
        QVERIFY(l.isMoeLayer(1));
        QCOMPARE(l.ropeTheta, 10000.0);
        QCOMPARE(l.rmsNormEps, 1e-6f);
        QCOMPARE(l.bosTokenId, 0);
        QCOMPARE(l.eosTokenId, 1);
        QCOMPARE(l.maxPositionEmbeddings, 4096);
        QCOMPARE(c.vision.mlpHidden, 4304);
        QCOMPARE(c.vision.patchesPerTile(), 729);
        QCOMPARE(c.tokensPerTileSide(), 14);
        // 3.37B parameters in total (published); the unused attention-pool head is not counted.
        QVERIFY(std::abs(parameterCount(c) - 3.37e9) < 0.02e9);
    }
    void small()
    {
        auto c = loadModelConfig(configPath("deepseek-vl2-small"));
        const auto& l = c.language;
        QCOMPARE(c.variantName(), std::string("deepseek-vl2-small"));
        QVERIFY(l.useMla);  // absent use_mla → DeepseekV2Config default
        QCOMPARE(l.kvLoraRank, 512);
        QVERIFY(!l.qLoraRank.has_value());  // explicit null
        QCOMPARE(l.qkNopeHeadDim, 128);
        QCOMPARE(l.qkRopeHeadDim, 64);
        QCOMPARE(l.vHeadDim, 128);
        QCOMPARE(l.qHeadDim(), 192);
        QCOMPARE(l.numHiddenLayers, 27);
        QCOMPARE(l.numAttentionHeads, 16);
        QVERIFY(l.topkMethod == TopkMethod::Greedy);
        QVERIFY(std::abs(parameterCount(c) - 16.1e9) < 0.15e9);
    }
    void base()
    {
        auto c = loadModelConfig(configPath("deepseek-vl2"));
        const auto& l = c.language;
        QCOMPARE(c.variantName(), std::string("deepseek-vl2"));
        // The base config.json omits these: DeepseekV2Config defaults apply.
        QCOMPARE(l.numHiddenLayers, 30);
        QCOMPARE(l.numAttentionHeads, 32);
        QCOMPARE(l.kvLoraRank, 512);
        QCOMPARE(l.qkNopeHeadDim, 128);
        QCOMPARE(l.qkRopeHeadDim, 64);
        QCOMPARE(l.vHeadDim, 128);
        QVERIFY(l.useMla);
        QVERIFY(l.topkMethod == TopkMethod::NoAuxTc);
        QVERIFY(l.scoringFunc == ScoringFunc::Sigmoid);
        QVERIFY(l.normTopkProb);
        QCOMPARE(l.routedScalingFactor, 2.0);
        QCOMPARE(*l.nRoutedExperts, 72);
        QVERIFY(std::abs(parameterCount(c) - 27.5e9) < 0.25e9);
        bool hasBias = false;
        for (const auto& t : expectedTensors(c))
            hasBias |= t.name == "language.model.layers.1.mlp.gate.e_score_correction_bias";
        QVERIFY(hasBias);
    }
    void imageTokenFormula()
    {
        auto c = loadModelConfig(configPath("deepseek-vl2-tiny"));
        QCOMPARE(c.imageTokenCount(1, 1), 421);   // d_three_images
        QCOMPARE(c.imageTokenCount(2, 3), 1429);  // b_grounding
        QCOMPARE(c.imageTokenCount(3, 2), 1415);  // c_two_images, first image
        QCOMPARE(c.imageTokenCount(2, 1), 617);
        QCOMPARE(c.imageTokenCount(4, 2), 1807);
        QCOMPARE(c.imageTokenCount(6, 1), 1401);
    }
    void goldenMiniModels()
    {
        TESSERA_REQUIRE_GOLDEN();
        auto mha = loadModelConfig(test::goldenModel("mini-mha") / "config.json");
        QVERIFY(!mha.language.useMla);
        QCOMPARE(mha.language.headDim(), 32);
        QCOMPARE(mha.vision.mlpHidden, 239);
        QCOMPARE(mha.variantName().rfind("custom (MHA", 0), 0u);
        auto mla = loadModelConfig(test::goldenModel("mini-mla") / "config.json");
        QVERIFY(mla.language.useMla);
        QCOMPARE(mla.language.kvLoraRank, 32);
        QCOMPARE(mla.language.qkRopeHeadDim, 8);
        QVERIFY(mla.language.topkMethod == TopkMethod::NoAuxTc);
        auto p = loadProcessorConfig(test::goldenModel("mini-mha") / "processor_config.json");
        QCOMPARE(p.candidateResolutions.size(), 23u);
        QCOMPARE(p.candidateResolutions.front(), (Resolution2D{384, 384}));
        QCOMPARE(p.candidateResolutions.back(), (Resolution2D{1152, 1152}));
        QCOMPARE(p.imageToken, std::string("<image>"));
        QCOMPARE(p.padToken, std::string("<｜▁pad▁｜>"));
        QCOMPARE(p.imageMean[0], 0.5f);
    }
    void brokenConfigs()
    {
        expectError("{\"model_type\": ", "invalid JSON");
        expectError("[1, 2]", "expected a JSON object");
        expectError(mutated("deepseek-vl2-tiny", [](auto& j) { j["model_type"] = "llava"; }), "model_type");
        expectError(mutated("deepseek-vl2-tiny", [](auto& j) { j.erase("vision_config"); }), "vision_config");
        expectError(mutated("deepseek-vl2-tiny", [](auto& j) { j["language_config"]["hidden_size"] = "big"; }),
                    "hidden_size");
        expectError(mutated("deepseek-vl2-tiny", [](auto& j) { j["language_config"]["hidden_size"] = -5; }),
                    "hidden_size");
        expectError(mutated("deepseek-vl2-tiny", [](auto& j) { j["language_config"]["num_attention_heads"] = 7; }),
                    "num_attention_heads");
        expectError(mutated("deepseek-vl2", [](auto& j) { j["language_config"]["topk_method"] = "magic"; }),
                    "topk_method");
        expectError(mutated("deepseek-vl2", [](auto& j) { j["language_config"]["num_experts_per_tok"] = 100; }),
                    "num_experts_per_tok");
        expectError(mutated("deepseek-vl2", [](auto& j) { j["projector_config"]["n_embed"] = 17; }), "n_embed");
        expectError(mutated("deepseek-vl2", [](auto& j) { j["projector_config"]["projector_type"] = "linear"; }),
                    "projector_type");
        expectError(mutated("deepseek-vl2", [](auto& j) { j["language_config"]["rope_scaling"] = {{"type", "yarn"}}; }),
                    "rope_scaling");
        expectError(mutated("deepseek-vl2", [](auto& j) { j["candidate_resolutions"] = {{384, 100}}; }),
                    "candidate_resolutions");
        QVERIFY_THROWS_EXCEPTION(Error, loadModelConfig("/nonexistent/config.json"));
        QVERIFY_THROWS_EXCEPTION(Error, parseProcessorConfig("{\"image_mean\": [0.5]}", "processor_config.json"));
        QVERIFY_THROWS_EXCEPTION(Error, parseProcessorConfig("{}", "processor_config.json"));
    }
};

QTEST_GUILESS_MAIN(TestModelConfig)
#include "test_model_config.moc"
