// The CPU language model against the golden outputs of the reference implementation (both mini
// models, all cases): per-layer hidden states, routing, logits, prompt top-8, greedy decode through
// the KV cache; plus chunked prefill, truncation, cancellation and capacity errors.
#include "backend/cpu/cpu_language_model.h"
#include "core/error.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "model/weight_map.h"

#include "golden.h"

#include <QtTest>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <numeric>

using namespace tessera;
using namespace tessera::cpu;

namespace {

const char* const kModels[] = {"mini-mha", "mini-mla"};
const char* const kCases[] = {"a_text",         "b_grounding", "c_two_images", "d_three_images", "e_multiturn_system",
                              "e2_system_role_text", "f1_odd_sizes", "f2_rgba"};

struct LoadedModel {
    ModelConfig config;
    TensorStore store;
    std::unique_ptr<WeightMap> weights;
    std::unique_ptr<CpuLanguageModel> model;
};

class GoldenCase {
public:
    GoldenCase(const std::string& model, const std::string& name)
        : file_(test::goldenDir() / "cases" / model / (name + ".safetensors"))
    {
    }
    bool has(const std::string& name) const { return file_.find(name) != nullptr; }
    const TensorView& view(const std::string& name) const
    {
        const TensorView* t = file_.find(name);
        if (!t)
            throw Error("golden case lacks " + name);
        return *t;
    }
    std::vector<float> floats(const std::string& name) const { return view(name).toFloat(); }
    std::vector<std::int64_t> ints(const std::string& name) const { return view(name).toInt64(); }

private:
    SafetensorsFile file_;
};

// Largest |got - ref| and whether every element is within atol + rtol·|ref|.
struct Diff {
    double maxAbs = 0;
    std::size_t failures = 0;
    std::size_t firstFailure = 0;
};

Diff compare(const float* got, const float* ref, std::size_t n, double atol, double rtol)
{
    Diff d;
    for (std::size_t i = 0; i < n; ++i) {
        const double e = std::abs(static_cast<double>(got[i]) - ref[i]);
        if (!(e <= atol + rtol * std::abs(ref[i]))) {  // NaN fails too
            if (d.failures++ == 0)
                d.firstFailure = i;
            d.maxAbs = std::max(d.maxAbs, std::isnan(e) ? INFINITY : e);
        }
        d.maxAbs = std::max(d.maxAbs, e);
    }
    return d;
}

// Indices of the k largest values, descending; ties to the lower index (torch.argmax's choice).
std::vector<int> topK(const float* v, int n, int k)
{
    std::vector<int> top;
    top.reserve(k + 1);
    for (int i = 0; i < n; ++i) {
        if (static_cast<int>(top.size()) == k && !(v[i] > v[top.back()]))
            continue;
        auto pos = std::upper_bound(top.begin(), top.end(), i, [v](int a, int b) { return v[a] > v[b]; });
        top.insert(pos, i);
        if (static_cast<int>(top.size()) > k)
            top.pop_back();
    }
    return top;
}

double logSumExp(const float* v, int n)
{
    const float mx = *std::max_element(v, v + n);
    double s = 0;
    for (int i = 0; i < n; ++i)
        s += std::exp(v[i] - mx);
    return mx + std::log(s);
}

// Worst error per "model tensor", printed at the end so the figures can be quoted.
std::map<std::string, double>& worst()
{
    static std::map<std::string, double> w;
    return w;
}
void record(const QString& model, const std::string& tensor, double err)
{
    auto& w = worst()[model.toStdString() + " " + tensor];
    w = std::max(w, err);
}

}  // namespace

class TestCpuLanguageModel : public QObject {
    Q_OBJECT

    std::map<QString, std::unique_ptr<LoadedModel>> models_;

    const LoadedModel& loaded(const QString& name) const { return *models_.at(name); }

    void addModelCaseRows()
    {
        QTest::addColumn<QString>("model");
        QTest::addColumn<QString>("caseName");
        for (const char* m : kModels)
            for (const char* c : kCases)
                QTest::addRow("%s/%s", m, c) << QString(m) << QString(c);
    }

    // One-shot prefill of the case's inputs_embeds: final hidden [T, H].
    std::vector<float> prefill(const CpuLanguageModel& model, CpuKvCache& cache, const std::vector<float>& embeds,
                               int T, LanguageModelTrace* trace = nullptr)
    {
        std::vector<float> hidden(static_cast<std::size_t>(T) * model.hiddenSize());
        if (!model.forward(cache, embeds.data(), T, hidden.data(), trace))
            throw Error("forward returned false without a cancel flag");
        return hidden;
    }

private slots:
    void initTestCase()
    {
        TESSERA_REQUIRE_GOLDEN();
        for (const char* name : kModels) {
            auto m = std::make_unique<LoadedModel>();
            const auto dir = test::goldenModel(name);
            m->config = loadModelConfig(dir / "config.json");
            m->store = TensorStore::openFolder(dir);
            m->weights = std::make_unique<WeightMap>(m->config, m->store);
            m->model = std::make_unique<CpuLanguageModel>(m->config, *m->weights);
            models_[name] = std::move(m);
        }
    }

    void cleanupTestCase()
    {
        for (const auto& [name, err] : worst())
            qInfo("max |cpu - reference| %-34s %.3g", name.c_str(), err);
    }

    // Tests 1 and 2: one prefill of the prompt embeddings, every stored tensor compared.
    void prefillMatchesReference_data() { addModelCaseRows(); }
    void prefillMatchesReference()
    {
        QFETCH(QString, model);
        QFETCH(QString, caseName);
        const auto& lm = *loaded(model).model;
        GoldenCase g(model.toStdString(), caseName.toStdString());
        const int H = lm.hiddenSize();
        const int V = lm.vocabSize();
        const auto embeds = g.floats("inputs_embeds");
        const int T = static_cast<int>(embeds.size() / H);
        const std::size_t TH = static_cast<std::size_t>(T) * H;

        auto cache = lm.createCache(T + 16);
        LanguageModelTrace trace;
        trace.wantHiddenStates = true;
        trace.wantRouting = true;
        const auto hidden = prefill(lm, cache, embeds, T, &trace);
        QCOMPARE(cache.length(), T);

        auto check = [&](const char* tensor, const float* got, const float* ref, std::size_t n, double atol, double rtol) {
            const Diff d = compare(got, ref, n, atol, rtol);
            record(model, tensor, d.maxAbs);
            QVERIFY2(d.failures == 0, qPrintable(QString("%1: %2 elements out of tolerance, max error %3, first at %4")
                                                     .arg(tensor).arg(d.failures).arg(d.maxAbs).arg(d.firstFailure)));
        };

        if (g.has("hidden_states")) {
            const auto ref = g.floats("hidden_states");
            const int L = lm.layerCount();
            QCOMPARE(ref.size(), (L + 1) * TH);
            QCOMPARE(static_cast<int>(trace.hiddenStates.size()), L + 1);
            for (int l = 0; l <= L; ++l)
                check("hidden_states", trace.hiddenStates[l].data(), ref.data() + l * TH, TH, 3e-4, 1e-4);
            const auto last = g.floats("last_layer_output");
            check("last_layer_output", trace.lastLayerOutput.data(), last.data(), TH, 3e-4, 1e-4);
        }
        check("final_hidden", hidden.data(), g.floats("final_hidden").data(), TH, 3e-4, 1e-4);

        // Routing: exact experts, weights to 1e-4.
        const auto refIdx = g.ints("moe_topk_idx");
        const auto refWeight = g.floats("moe_topk_weight");
        const std::size_t nMoe = trace.moeTopkIdx.size();
        QCOMPARE(refIdx.size(), nMoe * T * loaded(model).config.language.numExpertsPerTok);
        std::size_t o = 0;
        for (std::size_t l = 0; l < nMoe; ++l)
            for (std::size_t i = 0; i < trace.moeTopkIdx[l].size(); ++i, ++o)
                if (trace.moeTopkIdx[l][i] != refIdx[o])
                    QFAIL(qPrintable(QString("MoE layer %1 token %2: expert %3, reference %4")
                                         .arg(l + 1).arg(i / trace.moeTopkIdx[l].size()).arg(trace.moeTopkIdx[l][i]).arg(refIdx[o])));
        std::vector<float> weights;
        for (const auto& w : trace.moeTopkWeight)
            weights.insert(weights.end(), w.begin(), w.end());
        check("moe_topk_weight", weights.data(), refWeight.data(), weights.size(), 1e-4, 0);

        std::vector<float> lastLogits(V);
        lm.logits(hidden.data() + static_cast<std::size_t>(T - 1) * H, 1, lastLogits.data());
        check("logits_last", lastLogits.data(), g.floats("logits_last").data(), V, 1e-3, 0);
        if (!g.has("hidden_states"))
            return;

        // Per-layer cases: the logits of every position, in row blocks, against the top-8 and logsumexp.
        const auto refTopIds = g.ints("prompt_top8_ids");
        const auto refTopValues = g.floats("prompt_top8_values");
        const auto refLse = g.floats("prompt_logsumexp");
        const int block = 128;
        std::vector<float> logits(static_cast<std::size_t>(block) * V);
        double topErr = 0, lseErr = 0;
        int swaps = 0;
        for (int t0 = 0; t0 < T; t0 += block) {
            const int nb = std::min(block, T - t0);
            lm.logits(hidden.data() + static_cast<std::size_t>(t0) * H, nb, logits.data());
            for (int r = 0; r < nb; ++r) {
                const int t = t0 + r;
                const float* row = logits.data() + static_cast<std::size_t>(r) * V;
                const auto top = topK(row, V, 8);
                for (int j = 0; j < 8; ++j) {
                    const float refV = refTopValues[t * 8 + j];
                    topErr = std::max(topErr, std::abs(double(row[top[j]]) - refV));
                    // The reference id at this rank must score the same in our logits.
                    topErr = std::max(topErr, std::abs(double(row[refTopIds[t * 8 + j]]) - refV));
                    if (top[j] != refTopIds[t * 8 + j]) {
                        // Only a reorder among near-equal reference values is acceptable.
                        double otherRef = row[top[j]];
                        for (int jj = 0; jj < 8; ++jj)
                            if (refTopIds[t * 8 + jj] == top[j])
                                otherRef = refTopValues[t * 8 + jj];
                        if (!(std::abs(otherRef - refV) < 1e-3))
                            QFAIL(qPrintable(QString("position %1 rank %2: id %3, reference %4 (values %5 vs %6)")
                                                 .arg(t).arg(j).arg(top[j]).arg(refTopIds[t * 8 + j]).arg(otherRef).arg(refV)));
                        ++swaps;
                    }
                }
                lseErr = std::max(lseErr, std::abs(logSumExp(row, V) - refLse[t]));
            }
        }
        record(model, "prompt_top8_values", topErr);
        record(model, "prompt_logsumexp", lseErr);
        QVERIFY2(topErr <= 1e-3, qPrintable(QString("prompt top-8 value error %1").arg(topErr)));
        QVERIFY2(lseErr <= 1e-3, qPrintable(QString("prompt logsumexp error %1").arg(lseErr)));
        qInfo("%s/%s T=%d: top-8 max err %.3g (%d near-tie swaps), logsumexp %.3g", qPrintable(model),
              qPrintable(caseName), T, topErr, swaps, lseErr);
    }

    // Test 3: chunked prefill equals the one-shot prefill.
    void chunkedPrefill_data()
    {
        QTest::addColumn<QString>("model");
        QTest::addColumn<QString>("caseName");
        QTest::addColumn<QList<int>>("chunks");  // sizes; the last chunk takes the remainder
        for (const char* m : kModels) {
            QTest::addRow("%s/b_grounding by 500", m) << QString(m) << QString("b_grounding") << QList<int>{500, 500};
            QTest::addRow("%s/f2_rgba uneven", m) << QString(m) << QString("f2_rgba") << QList<int>{1, 300};
            QTest::addRow("%s/e2 token by token", m) << QString(m) << QString("e2_system_role_text") << QList<int>(40, 1);
            QTest::addRow("%s/e2 by 3", m) << QString(m) << QString("e2_system_role_text") << QList<int>(14, 3);
        }
    }
    void chunkedPrefill()
    {
        QFETCH(QString, model);
        QFETCH(QString, caseName);
        QFETCH(QList<int>, chunks);
        const auto& lm = *loaded(model).model;
        GoldenCase g(model.toStdString(), caseName.toStdString());
        const int H = lm.hiddenSize();
        const auto embeds = g.floats("inputs_embeds");
        const int T = static_cast<int>(embeds.size() / H);

        auto one = lm.createCache(T);
        const auto whole = prefill(lm, one, embeds, T);

        auto cache = lm.createCache(T);
        std::vector<float> pieces(whole.size());
        int done = 0;
        for (int i = 0; done < T; ++i) {
            const int n = i < chunks.size() ? std::min(chunks[i], T - done) : T - done;
            QVERIFY(lm.forward(cache, embeds.data() + static_cast<std::size_t>(done) * H, n,
                               pieces.data() + static_cast<std::size_t>(done) * H));
            done += n;
            QCOMPARE(cache.length(), done);
        }
        const Diff d = compare(pieces.data(), whole.data(), whole.size(), 2e-5, 1e-5);
        record(model, "chunked vs one-shot hidden", d.maxAbs);
        QVERIFY2(d.failures == 0, qPrintable(QString("chunked hidden differs by %1").arg(d.maxAbs)));

        std::vector<float> a(lm.vocabSize()), b(lm.vocabSize());
        lm.logits(whole.data() + static_cast<std::size_t>(T - 1) * H, 1, a.data());
        lm.logits(pieces.data() + static_cast<std::size_t>(T - 1) * H, 1, b.data());
        const Diff dl = compare(b.data(), a.data(), a.size(), 1e-4, 0);
        record(model, "chunked vs one-shot logits", dl.maxAbs);
        QVERIFY2(dl.failures == 0, qPrintable(QString("chunked logits differ by %1").arg(dl.maxAbs)));
    }

    // Test 4: greedy decode through the KV cache reproduces the reference tokens.
    void greedyDecode_data() { addModelCaseRows(); }
    void greedyDecode()
    {
        QFETCH(QString, model);
        QFETCH(QString, caseName);
        const auto& lm = *loaded(model).model;
        GoldenCase g(model.toStdString(), caseName.toStdString());
        const int H = lm.hiddenSize();
        const int V = lm.vocabSize();
        const auto embeds = g.floats("inputs_embeds");
        const int T = static_cast<int>(embeds.size() / H);
        const auto refIds = g.ints("gen_ids");
        const auto refTop = g.floats("gen_top32_values");
        const int steps = static_cast<int>(refIds.size());

        auto cache = lm.createCache(T + steps);
        const auto hidden = prefill(lm, cache, embeds, T);
        std::vector<float> last(hidden.end() - H, hidden.end()), logits(V), emb(H);
        double topErr = 0;
        for (int s = 0; s < steps; ++s) {
            lm.logits(last.data(), 1, logits.data());
            const auto top = topK(logits.data(), V, 32);
            for (int j = 0; j < 32; ++j)
                topErr = std::max(topErr, std::abs(double(logits[top[j]]) - refTop[s * 32 + j]));
            QVERIFY2(top[0] == refIds[s], qPrintable(QString("step %1: token %2, reference %3").arg(s).arg(top[0]).arg(refIds[s])));
            const std::int32_t id = top[0];
            lm.embed({&id, 1}, emb.data());
            QVERIFY(lm.forward(cache, emb.data(), 1, last.data()));
        }
        QCOMPARE(cache.length(), T + steps);
        record(model, "gen_top32_values", topErr);
        QVERIFY2(topErr <= 1e-3, qPrintable(QString("decode top-32 value error %1").arg(topErr)));
    }

    // Test 5: capacity, cancellation, truncation, bad ids.
    void errorsAndCacheReuse_data()
    {
        QTest::addColumn<QString>("model");
        for (const char* m : kModels)
            QTest::newRow(m) << QString(m);
    }
    void errorsAndCacheReuse()
    {
        QFETCH(QString, model);
        const auto& lm = *loaded(model).model;
        GoldenCase g(model.toStdString(), "e2_system_role_text");
        const int H = lm.hiddenSize();
        const auto embeds = g.floats("inputs_embeds");
        const int T = static_cast<int>(embeds.size() / H);
        std::vector<float> out(static_cast<std::size_t>(T) * H);

        QVERIFY_THROWS_EXCEPTION(Error, lm.createCache(lm.maxPositions() + 1));
        QVERIFY_THROWS_EXCEPTION(Error, lm.createCache(0));
        const std::int32_t bad[] = {5, lm.vocabSize()};
        QVERIFY_THROWS_EXCEPTION(Error, lm.embed(bad, out.data()));
        const std::int32_t negative[] = {-1};
        QVERIFY_THROWS_EXCEPTION(Error, lm.embed(negative, out.data()));

        // Overflow throws and leaves the cache usable.
        auto small = lm.createCache(10);
        QVERIFY_THROWS_EXCEPTION(Error, lm.forward(small, embeds.data(), 12, out.data()));
        QCOMPARE(small.length(), 0);
        QVERIFY(lm.forward(small, embeds.data(), 6, out.data()));
        QVERIFY_THROWS_EXCEPTION(Error, lm.forward(small, embeds.data() + 6 * H, 5, out.data()));
        QCOMPARE(small.length(), 6);
        QVERIFY(lm.forward(small, embeds.data() + 6 * H, 4, out.data()));
        QCOMPARE(small.length(), 10);
        QVERIFY(small.bytes() > 0);

        // A cache of another model is refused.
        const auto& other = *loaded(model == "mini-mha" ? "mini-mla" : "mini-mha").model;
        auto foreign = other.createCache(8);
        QVERIFY_THROWS_EXCEPTION(Error, lm.forward(foreign, embeds.data(), 1, out.data()));

        // Cancel: false, cache length unchanged, and the cache still gives the right answer after.
        const int k = 17;
        auto cache = lm.createCache(T);
        QVERIFY(lm.forward(cache, embeds.data(), k, out.data()));
        std::atomic<bool> cancel{true};
        QVERIFY(!lm.forward(cache, embeds.data() + static_cast<std::size_t>(k) * H, T - k, out.data(), nullptr, &cancel));
        QCOMPARE(cache.length(), k);
        std::vector<float> first(static_cast<std::size_t>(T - k) * H);
        cancel = false;
        QVERIFY(lm.forward(cache, embeds.data() + static_cast<std::size_t>(k) * H, T - k, first.data(), nullptr, &cancel));
        QCOMPARE(cache.length(), T);

        // Truncate to the prefix and run the rest again: the same numbers, bit for bit.
        QVERIFY_THROWS_EXCEPTION(Error, cache.truncate(T + 1));
        cache.truncate(k);
        QCOMPARE(cache.length(), k);
        std::vector<float> second(first.size());
        QVERIFY(lm.forward(cache, embeds.data() + static_cast<std::size_t>(k) * H, T - k, second.data()));
        QVERIFY(first == second);

        // A different continuation after truncation, then back: still the same as the first run.
        cache.truncate(k);
        QVERIFY(lm.forward(cache, embeds.data(), 5, out.data()));
        cache.truncate(k);
        QVERIFY(lm.forward(cache, embeds.data() + static_cast<std::size_t>(k) * H, T - k, second.data()));
        QVERIFY(first == second);

        // Against the reference too.
        const auto ref = g.floats("final_hidden");
        const Diff d = compare(second.data(), ref.data() + static_cast<std::size_t>(k) * H, second.size(), 3e-4, 1e-4);
        QVERIFY2(d.failures == 0, qPrintable(QString("after truncation: max error %1").arg(d.maxAbs)));
    }
};

QTEST_GUILESS_MAIN(TestCpuLanguageModel)
#include "test_cpu_language_model.moc"
