#include "modelinspector.h"

#include "core/error.h"
#include "model/config.h"
#include "tessera_kernels/device_info.h"

#include <QDir>
#include <QFileInfo>

#include <unistd.h>

namespace tessera::app {

namespace {

// Beyond the weights: the KV cache over the whole context (fp32, the larger of the backends'
// formats; MLA keeps only the compressed latent), activations and the vision tower's buffers.
quint64 workingMemoryEstimate(const LanguageConfig& l, quint64 weightBytes)
{
    const quint64 perPosition = l.useMla ? static_cast<quint64>(l.kvLoraRank + l.qkRopeHeadDim)
                                         : 2ull * static_cast<quint64>(l.numKeyValueHeads) * static_cast<quint64>(l.headDim());
    const quint64 kv = perPosition * static_cast<quint64>(l.numHiddenLayers) * static_cast<quint64>(l.maxPositionEmbeddings) * 4;
    return kv + weightBytes / 10 + (256ull << 20);
}

}  // namespace

GpuSnapshot queryGpuSnapshot()
{
    const kernels::GpuQuery q = kernels::queryGpus();
    GpuSnapshot s;
    s.compiledWithCuda = q.compiledWithCuda;
    s.problem = QString::fromStdString(q.problem);
    for (const auto& g : q.gpus)
        s.gpus << GpuSnapshot::Gpu{QString::fromStdString(g.name), g.totalMemoryBytes, g.freeMemoryBytes};
    return s;
}

quint64 systemMemoryBytes()
{
    const long pages = ::sysconf(_SC_PHYS_PAGES);
    const long pageSize = ::sysconf(_SC_PAGESIZE);
    return pages > 0 && pageSize > 0 ? static_cast<quint64>(pages) * static_cast<quint64>(pageSize) : 0;
}

QString formatBytes(quint64 bytes)
{
    const double gb = static_cast<double>(bytes) / 1e9;
    if (gb >= 1.0)
        return QStringLiteral("%1 GB").arg(gb, 0, 'f', gb >= 100 ? 0 : 1);
    const double mb = static_cast<double>(bytes) / 1e6;
    if (mb >= 1.0)
        return QStringLiteral("%1 MB").arg(mb, 0, 'f', 0);
    return QStringLiteral("%1 KB").arg(std::max(1.0, static_cast<double>(bytes) / 1e3), 0, 'f', 0);
}

QString acceptedFolderDescription()
{
    return QStringLiteral(
        "A DeepSeek-VL2 folder exactly as downloaded from the deepseek-ai Hugging Face repositories "
        "(deepseek-vl2-tiny, deepseek-vl2-small or deepseek-vl2): config.json, processor_config.json, "
        "tokenizer.json and the model-*.safetensors files with model.safetensors.index.json. "
        "No conversion step.");
}

QVariantMap ModelFolderReport::toVariantMap() const
{
    return {{"folder", folder},
            {"name", QFileInfo(folder).fileName()},
            {"valid", valid},
            {"problem", problem},
            {"variant", variant},
            {"weightBytes", weightBytes},
            {"size", weightBytes ? formatBytes(weightBytes) : QString()},
            {"shards", shards},
            {"contextLength", contextLength},
            {"fits", fits},
            {"fitMessage", fitMessage}};
}

ModelFolderReport inspectModelFolder(const QString& folder, const GpuSnapshot& gpus, quint64 memoryBytes)
{
    ModelFolderReport r;
    r.folder = QDir::cleanPath(folder);
    const QDir dir(r.folder);
    if (folder.isEmpty() || !dir.exists()) {
        r.problem = QStringLiteral("%1 does not exist or is not a folder.").arg(folder.isEmpty() ? QStringLiteral("The path") : folder);
        return r;
    }
    const QStringList shards = dir.entryList({QStringLiteral("*.safetensors")}, QDir::Files, QDir::Name);
    if (!dir.exists(QStringLiteral("config.json"))) {
        // A common mistake: picking the folder that holds the model folders.
        QStringList inside;
        for (const QString& sub : dir.entryList(QDir::Dirs | QDir::NoDotAndDotDot)) {
            if (QFileInfo::exists(dir.filePath(sub + QStringLiteral("/config.json"))))
                inside << sub;
        }
        r.problem = inside.isEmpty()
                        ? QStringLiteral("This folder has no config.json, so it is not a model folder. ") + acceptedFolderDescription()
                        : QStringLiteral("This folder holds model folders (%1); choose one of them.").arg(inside.join(QStringLiteral(", ")));
        return r;
    }
    for (const char* required : {"tokenizer.json", "processor_config.json"}) {
        if (!dir.exists(QString::fromLatin1(required))) {
            r.problem = QStringLiteral("%1 is missing from this folder; download the whole repository, not only the weights.")
                            .arg(QString::fromLatin1(required));
            return r;
        }
    }
    if (shards.isEmpty()) {
        r.problem = QStringLiteral("This folder has no .safetensors weights. Download them too (git lfs pull, or "
                                   "huggingface-cli download deepseek-ai/deepseek-vl2-tiny).");
        return r;
    }
    if (shards.size() > 1 && !dir.exists(QStringLiteral("model.safetensors.index.json"))) {
        r.problem = QStringLiteral("The weights are split in %1 files but model.safetensors.index.json is missing.").arg(shards.size());
        return r;
    }
    LanguageConfig language;
    try {
        const ModelConfig config = loadModelConfig(dir.filePath(QStringLiteral("config.json")).toStdString());
        r.variant = QString::fromStdString(config.variantName());
        r.contextLength = config.language.maxPositionEmbeddings;
        language = config.language;
    } catch (const tessera::Error& e) {
        r.problem = QString::fromStdString(e.what());
        return r;
    }
    for (const QString& s : shards)
        r.weightBytes += static_cast<quint64>(QFileInfo(dir.filePath(s)).size());
    r.shards = static_cast<int>(shards.size());
    r.valid = true;

    const quint64 needed = r.weightBytes + workingMemoryEstimate(language, r.weightBytes);
    const GpuSnapshot::Gpu* best = nullptr;
    for (const auto& g : gpus.gpus) {
        if (!best || g.totalBytes > best->totalBytes)
            best = &g;
    }
    if (best) {
        r.fits = needed <= best->totalBytes;
        r.fitMessage = r.fits ? QStringLiteral("Fits on %1: needs about %2 of its %3.")
                                    .arg(best->name, formatBytes(needed), formatBytes(best->totalBytes))
                              : QStringLiteral("Needs about %1 but %2 has %3: it will not fit on the GPU; the CPU backend can run it (slowly).")
                                    .arg(formatBytes(needed), best->name, formatBytes(best->totalBytes));
    } else {
        r.fits = memoryBytes == 0 || needed <= memoryBytes;
        const QString why = gpus.problem.isEmpty() ? QStringLiteral("no NVIDIA GPU") : gpus.problem;
        r.fitMessage = r.fits ? QStringLiteral("Runs on the CPU backend (%1): needs about %2 of this machine's %3 of memory.")
                                    .arg(why, formatBytes(needed), formatBytes(memoryBytes))
                              : QStringLiteral("Needs about %1 of memory but this machine has %2, and there is %3.")
                                    .arg(formatBytes(needed), formatBytes(memoryBytes), why);
    }
    return r;
}

}  // namespace tessera::app
