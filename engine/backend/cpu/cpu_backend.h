#pragma once
// The CPU reference backend: fp32 compute over the memory-mapped bf16 checkpoint.
#include "backend/cpu/cpu_language_model.h"
#include "backend/cpu/cpu_vision.h"
#include "model/config.h"
#include "model/weight_map.h"
#include "runtime/backend.h"

#include <vector>

namespace tessera::cpu {

class CpuBackend final : public Backend {
public:
    // `weights` must outlive the backend (it holds views into the mapped files).
    CpuBackend(const ModelConfig& config, const WeightMap& weights, const ProcessorConfig& processor);

    std::string name() const override { return "cpu"; }
    std::string description() const override;
    int vocabSize() const override;
    int maxContext() const override;

    std::shared_ptr<EncodedImage> encodeImage(const ImageTiles& tiles, const std::atomic<bool>* cancel) override;
    std::unique_ptr<Sequence> createSequence(int capacity) override;
    bool append(Sequence& sequence, std::span<const PromptSegment> segments, const std::atomic<bool>* cancel) override;
    void lastLogits(const Sequence& sequence, std::span<float> out) override;

    // The language model's input rows for these segments, [positions, hidden] (for tests).
    std::vector<float> embeddings(std::span<const PromptSegment> segments) const;
    const CpuVisionEncoder& vision() const { return vision_; }
    const CpuLanguageModel& language() const { return language_; }

    static constexpr int kPrefillChunk = 512;

private:
    ModelConfig config_;  // a copy: the caller's config need not outlive the backend
    CpuVisionEncoder vision_;
    CpuLanguageModel language_;
    std::vector<float> imageNewline_;
    std::vector<float> viewSeparator_;
};

}  // namespace tessera::cpu
