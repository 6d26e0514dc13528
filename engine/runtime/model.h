#pragma once
// A loaded checkpoint folder: configuration, validated weights, processor and the backend that
// runs it. Load progress and cancel go through one callback, as a progress bar needs.
#include "core/error.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "model/weight_map.h"
#include "processor/processor.h"
#include "runtime/backend.h"

#include <filesystem>
#include <functional>
#include <memory>
#include <string>

namespace tessera {

enum class BackendKind { Auto, Cpu, Cuda };

BackendKind parseBackendKind(const std::string& name);  // "auto", "cpu", "cuda"; throws otherwise

struct LoadProgress {
    std::string stage;     // "reading configuration", "mapping weights", ...
    double fraction = 0;   // 0..1 over the whole load
};

struct ModelLoadOptions {
    BackendKind backend = BackendKind::Auto;
    // Called during the load; return false to cancel (load() then throws LoadCancelled).
    std::function<bool(const LoadProgress&)> progress;
    // Read every weight page once while loading (with progress), so the first answer does not
    // stall on disk reads.
    bool prefetchWeights = true;
};

class LoadCancelled : public Error {
public:
    LoadCancelled() : Error("model loading was cancelled") {}
};

class Model {
public:
    static std::unique_ptr<Model> load(const std::filesystem::path& dir, const ModelLoadOptions& options = {});
    ~Model();

    const std::filesystem::path& folder() const { return folder_; }
    const ModelConfig& config() const { return config_; }
    const Processor& processor() const { return *processor_; }
    Backend& backend() { return *backend_; }
    const WeightMap& weights() const { return *weights_; }
    std::string variant() const { return config_.variantName(); }
    std::uint64_t weightBytes() const { return store_.totalBytes(); }
    int contextLength() const { return config_.language.maxPositionEmbeddings; }

private:
    Model() = default;
    std::filesystem::path folder_;
    ModelConfig config_;
    TensorStore store_;
    std::unique_ptr<WeightMap> weights_;
    std::unique_ptr<Processor> processor_;
    std::unique_ptr<Backend> backend_;
};

}  // namespace tessera
