#include "runtime/model.h"

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

#include "tessera_kernels/device_info.h"

#if TESSERA_HAVE_CUDA_BACKEND
#include "backend/cuda/cuda_backend.h"
#endif

#include <cstdlib>
#include <cstring>

namespace tessera {

BackendKind parseBackendKind(const std::string& name)
{
    if (name == "auto")
        return BackendKind::Auto;
    if (name == "cpu")
        return BackendKind::Cpu;
    if (name == "cuda")
        return BackendKind::Cuda;
    throw Error("unknown backend \"" + name + "\" (expected auto, cpu or cuda)");
}

Model::~Model() = default;

std::unique_ptr<Model> Model::load(const std::filesystem::path& dir, const ModelLoadOptions& options)
{
    auto report = [&](const char* stage, double fraction) {
        if (options.progress && !options.progress({stage, fraction}))
            throw LoadCancelled();
    };
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec))
        throw Error(dir.string() + ": not a folder; choose a DeepSeek-VL2 model folder (config.json, tokenizer.json, *.safetensors)");
    if (options.backend == BackendKind::Cuda) {
        auto gpus = kernels::queryGpus();
        if (gpus.gpus.empty())
            throw Error("no CUDA backend available: " + gpus.problem + "; use the CPU backend");
    }
    std::unique_ptr<Model> m(new Model());
    m->folder_ = dir;
    report("reading configuration", 0.0);
    m->config_ = loadModelConfig(dir / "config.json");
    report("reading tokenizer", 0.02);
    m->processor_ = std::make_unique<Processor>(Processor::fromModelFolder(dir));
    report("mapping weights", 0.05);
    m->store_ = TensorStore::openFolder(dir);
    m->weights_ = std::make_unique<WeightMap>(m->config_, m->store_);

    // Auto: the GPU when this build has the CUDA backend and the machine has a GPU.
    BackendKind kind = options.backend;
    if (kind == BackendKind::Auto) {
#if TESSERA_HAVE_CUDA_BACKEND
        kind = kernels::queryGpus().gpus.empty() ? BackendKind::Cpu : BackendKind::Cuda;
#else
        kind = BackendKind::Cpu;
#endif
    }

    // The GPU upload reads every weight once anyway (with its own progress).
    if (options.prefetchWeights && kind == BackendKind::Cpu) {
        // Touch one byte per page: the kernel reads the file ahead of us, and we can report progress.
        const std::uint64_t total = std::max<std::uint64_t>(1, m->store_.totalBytes());
        std::uint64_t done = 0;
        volatile std::uint8_t sink = 0;
        for (const auto& file : m->store_.files()) {
            for (const auto& view : file->tensors()) {
                for (std::size_t off = 0; off < view.byteSize; off += 4096)
                    sink = sink ^ view.data[off];
                done += view.byteSize;
                report("reading weights", 0.05 + 0.9 * static_cast<double>(done) / static_cast<double>(total));
            }
        }
    }

    if (kind == BackendKind::Cuda) {
#if TESSERA_HAVE_CUDA_BACKEND
        cuda::CudaBackendOptions cudaOptions;
        // TESSERA_CUDA_PRECISION=fp32 selects the exact fp32 mode (diagnostics); bf16 is the default.
        if (const char* p = std::getenv("TESSERA_CUDA_PRECISION"); p && std::strcmp(p, "fp32") == 0)
            cudaOptions.math = kernels::MathMode::ExactFp32;
        report("uploading weights to the GPU", 0.05);
        m->backend_ = std::make_unique<cuda::CudaBackend>(
            m->config_, *m->weights_, m->processor_->config(), cudaOptions,
            [&](double f) { report("uploading weights to the GPU", 0.05 + 0.9 * f); });
        report("ready", 1.0);
        return m;
#else
        throw Error("this build of Tessera has no CUDA support; use the CPU backend");
#endif
    }

    report("preparing the CPU backend", 0.96);
    m->backend_ = std::make_unique<cpu::CpuBackend>(m->config_, *m->weights_, m->processor_->config());
    report("ready", 1.0);
    return m;
}

}  // namespace tessera
