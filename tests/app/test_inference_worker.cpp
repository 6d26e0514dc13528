// The inference worker on its own thread with the golden mini model on the CPU backend: load with
// progress and cancel, streamed answers, stop mid-answer through the atomic, errors as messages.
#include "inferenceworker.h"

#include "golden.h"

#include <QSignalSpy>
#include <QThread>
#include <QTimer>
#include <QtTest>

using namespace tessera::app;

namespace {

QString miniModel() { return QString::fromStdString(tessera::test::goldenModel("mini-mha").string()); }
std::string goldenImage(const char* name) { return (tessera::test::goldenDir() / "images" / name).string(); }

tessera::Conversation describe(const std::string& image)
{
    tessera::Conversation c;
    c.messages.push_back({tessera::Role::User, "<image>\nDescribe the image.", {image}});
    return c;
}

}  // namespace

class TestInferenceWorker : public QObject {
    Q_OBJECT

    WorkerFlags flags_;
    QThread thread_;
    InferenceWorker* worker_ = nullptr;

    // Queues `f` on the worker's thread, but only once this thread runs its event loop, that is
    // inside the QSignalSpy::wait() that follows. Qt 6.4's wait() misses an emission from another
    // thread that lands before it starts, and the worker rejects a bad folder that fast.
    template <typename F>
    void post(F&& f)
    {
        QTimer::singleShot(0, this, [w = worker_, f = std::forward<F>(f)]() mutable {
            QMetaObject::invokeMethod(w, std::move(f), Qt::QueuedConnection);
        });
    }

    bool loadMini()
    {
        QSignalSpy loaded(worker_, &InferenceWorker::modelLoaded);
        flags_.cancelLoad = false;
        post([w = worker_, m = miniModel()] { w->loadModel(m, tessera::BackendKind::Cpu); });
        return loaded.wait(60000);
    }

private slots:
    void init()
    {
        TESSERA_REQUIRE_GOLDEN();
        worker_ = new InferenceWorker(flags_);
        worker_->moveToThread(&thread_);
        connect(&thread_, &QThread::finished, worker_, &QObject::deleteLater);
        thread_.start();
    }

    void cleanup()
    {
        flags_.stopGeneration = true;
        flags_.cancelLoad = true;
        thread_.quit();
        thread_.wait();
        worker_ = nullptr;
        flags_.stopGeneration = false;
        flags_.cancelLoad = false;
    }

    void loadsWithProgress()
    {
        QSignalSpy progress(worker_, &InferenceWorker::loadProgress);
        QSignalSpy loaded(worker_, &InferenceWorker::modelLoaded);
        post([w = worker_, m = miniModel()] { w->loadModel(m, tessera::BackendKind::Cpu); });
        QVERIFY(loaded.wait(60000));
        QVERIFY(progress.count() >= 3);
        double last = -1;
        for (const auto& args : progress) {
            QVERIFY(args.at(1).toDouble() >= last);
            last = args.at(1).toDouble();
        }
        QCOMPARE(last, 1.0);
        const QVariantMap info = loaded.first().at(0).toMap();
        QCOMPARE(info.value("backend").toString(), QStringLiteral("cpu"));
        QVERIFY(info.value("weightBytes").toULongLong() > 0);
        QCOMPARE(info.value("contextLength").toInt(), 4096);
        const auto processor = loaded.first().at(1).value<ProcessorHandle>();
        QVERIFY(processor);
        QVERIFY(processor->imageTokenCount(1, 1) > 0);
    }

    void cancelsLoading()
    {
        // Cancel from inside the first progress report (runs on the worker's thread).
        connect(worker_, &InferenceWorker::loadProgress, worker_, [this] { flags_.cancelLoad = true; }, Qt::DirectConnection);
        QSignalSpy failed(worker_, &InferenceWorker::loadFailed);
        post([w = worker_, m = miniModel()] { w->loadModel(m, tessera::BackendKind::Cpu); });
        QVERIFY(failed.wait(60000));
        QVERIFY(failed.first().at(1).toBool());  // cancelled, not an error
    }

    void reportsBadFolders()
    {
        QSignalSpy failed(worker_, &InferenceWorker::loadFailed);
        post([w = worker_] { w->loadModel(QStringLiteral("/nonexistent/model"), tessera::BackendKind::Cpu); });
        QVERIFY(failed.wait(10000));
        QVERIFY(!failed.first().at(1).toBool());
        QVERIFY2(failed.first().at(0).toString().contains("/nonexistent/model"), qPrintable(failed.first().at(0).toString()));
    }

    void streamsAnAnswer()
    {
        QVERIFY(loadMini());
        QSignalSpy text(worker_, &InferenceWorker::textReceived);
        QSignalSpy finished(worker_, &InferenceWorker::generationFinished);
        tessera::GenerationOptions options;
        options.maxNewTokens = 24;
        post([w = worker_, c = describe(goldenImage("synthetic_10x10.png")), options] { w->generate(7, c, options); });
        QVERIFY(finished.wait(120000));
        QCOMPARE(finished.first().at(0).toULongLong(), 7ull);
        const QVariantMap stats = finished.first().at(1).toMap();
        QString streamed;
        for (const auto& args : text) {
            QCOMPARE(args.at(0).toULongLong(), 7ull);
            streamed += args.at(1).toString();
        }
        QVERIFY(text.count() >= 1);
        QCOMPARE(streamed, stats.value("text").toString());
        QVERIFY(stats.value("ttft").toDouble() > 0);
        QVERIFY(stats.value("promptTokens").toInt() > 400);  // the image's tokens are in the prompt
        QVERIFY(stats.value("outputTokens").toInt() <= 24);
    }

    void stopsMidAnswer()
    {
        QVERIFY(loadMini());
        int pieces = 0;
        connect(worker_, &InferenceWorker::textReceived, worker_, [&] {
            if (++pieces == 3)
                flags_.stopGeneration = true;
        }, Qt::DirectConnection);
        QSignalSpy finished(worker_, &InferenceWorker::generationFinished);
        tessera::GenerationOptions options;
        options.maxNewTokens = 2000;
        options.sampling.temperature = 0;  // random weights: greedy keeps talking
        flags_.stopGeneration = false;
        post([w = worker_, c = describe(goldenImage("synthetic_10x10.png")), options] { w->generate(8, c, options); });
        QVERIFY(finished.wait(120000));
        const QVariantMap stats = finished.first().at(1).toMap();
        QCOMPARE(stats.value("stopReason").toString(), QStringLiteral("cancelled"));
        QVERIFY(stats.value("outputTokens").toInt() < 50);

        // The session stays usable after a stop.
        flags_.stopGeneration = false;
        QSignalSpy again(worker_, &InferenceWorker::generationFinished);
        options.maxNewTokens = 4;
        post([w = worker_, c = describe(goldenImage("synthetic_10x10.png")), options] { w->generate(9, c, options); });
        QVERIFY(again.wait(120000));
        QCOMPARE(again.first().at(1).toMap().value("stopReason").toString(), QStringLiteral("max_tokens"));
    }

    void reportsErrorsAsMessages()
    {
        QSignalSpy failed(worker_, &InferenceWorker::generationFailed);
        post([w = worker_, c = describe("/nowhere/cat.jpg")] { w->generate(1, c, {}); });
        QVERIFY(failed.wait(10000));
        QVERIFY(failed.first().at(1).toString().contains("model"));  // none loaded yet

        QVERIFY(loadMini());
        failed.clear();
        post([w = worker_, c = describe("/nowhere/cat.jpg")] { w->generate(2, c, {}); });
        QVERIFY(failed.wait(10000));
        QVERIFY2(failed.first().at(1).toString().contains("/nowhere/cat.jpg"), qPrintable(failed.first().at(1).toString()));

        // Too many images for the context: a clear message, and the worker carries on.
        tessera::Conversation big;
        std::string content;
        std::vector<std::filesystem::path> images;
        for (int i = 0; i < 12; ++i) {
            content += "<image>\n";
            images.push_back(goldenImage("synthetic_10x10.png"));
        }
        big.messages.push_back({tessera::Role::User, content + "Compare them.", images});
        failed.clear();
        post([w = worker_, big] { w->generate(3, big, {}); });
        QVERIFY(failed.wait(60000));
        QVERIFY2(failed.first().at(1).toString().contains("context"), qPrintable(failed.first().at(1).toString()));
    }
};

QTEST_GUILESS_MAIN(TestInferenceWorker)
#include "test_inference_worker.moc"
