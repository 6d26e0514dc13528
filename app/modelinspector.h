#pragma once
// Checks a folder before loading it: is it a DeepSeek-VL2 checkpoint as the deepseek-ai Hugging
// Face repositories ship it, which variant, how big, and whether it fits the GPU (or memory).
// Reads only config.json and file sizes: fast enough for the GUI thread.
#include <QList>
#include <QString>
#include <QVariantMap>

namespace tessera::app {

struct GpuSnapshot {
    struct Gpu {
        QString name;
        quint64 totalBytes = 0;
        quint64 freeBytes = 0;
    };
    bool compiledWithCuda = false;
    QList<Gpu> gpus;
    QString problem;  // why `gpus` is empty
};

GpuSnapshot queryGpuSnapshot();  // may take a moment the first time (CUDA initialisation)
quint64 systemMemoryBytes();

struct ModelFolderReport {
    QString folder;
    bool valid = false;
    QString problem;       // what is wrong and what to do, when !valid
    QString variant;       // "deepseek-vl2-tiny", ...
    quint64 weightBytes = 0;
    int shards = 0;
    int contextLength = 0;
    bool fits = false;     // on the device it would run on
    QString fitMessage;    // "Fits on NVIDIA H200: 6.7 GB of 139.8 GB" ...

    QVariantMap toVariantMap() const;
};

ModelFolderReport inspectModelFolder(const QString& folder, const GpuSnapshot& gpus, quint64 memoryBytes);

// "6.7 GB", "512 MB"
QString formatBytes(quint64 bytes);

// What the first-run page says Tessera accepts.
QString acceptedFolderDescription();

}  // namespace tessera::app
