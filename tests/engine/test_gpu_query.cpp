// Asking which GPUs there are leaves no CUDA context behind (a context holds hundreds of MB of GPU
// memory): the app lists the GPUs and the CPU backend checks for them without using them. Its own
// executable, so that nothing else in the process has touched the GPU first.
#include "tessera_kernels/device_info.h"
#if TESSERA_HAVE_CUDA
#include "tessera_kernels/runtime.h"
#endif

#include <QtTest>

using namespace tessera;

class TestGpuQuery : public QObject {
    Q_OBJECT

private slots:
    void queryLeavesNoContext()
    {
        const kernels::GpuQuery q = kernels::queryGpus();
        if (q.gpus.empty())
            QSKIP(qPrintable(QString("no CUDA GPU: %1").arg(QString::fromStdString(q.problem))));
        for (const auto& g : q.gpus) {
            QVERIFY2(!kernels::gpuContextActive(g.index), qPrintable(QString("GPU %1 has a context after the query").arg(g.index)));
            QVERIFY(g.totalMemoryBytes > 0);
            QVERIFY2(g.freeMemoryBytes > 0 && g.freeMemoryBytes <= g.totalMemoryBytes,
                     qPrintable(QString("GPU %1: %2 of %3 bytes free").arg(g.index).arg(g.freeMemoryBytes).arg(g.totalMemoryBytes)));
        }
        // Asked again: the same GPUs, still no context.
        const kernels::GpuQuery again = kernels::queryGpus();
        QCOMPARE(again.gpus.size(), q.gpus.size());
        for (const auto& g : again.gpus)
            QVERIFY(!kernels::gpuContextActive(g.index));

#if TESSERA_HAVE_CUDA
        // The control: using the runtime on GPU 0 makes its context, and the check sees it.
        std::size_t freeBytes = 0, totalBytes = 0;
        QVERIFY(kernels::setDevice(0).ok());
        QVERIFY(kernels::memoryInfo(freeBytes, totalBytes).ok());
        QVERIFY(kernels::gpuContextActive(0));
        const kernels::GpuQuery used = kernels::queryGpus();
        QVERIFY(used.gpus.front().freeMemoryBytes > 0 && used.gpus.front().freeMemoryBytes <= totalBytes);
#endif
    }
};

QTEST_GUILESS_MAIN(TestGpuQuery)
#include "test_gpu_query.moc"
