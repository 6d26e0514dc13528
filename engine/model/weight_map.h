#pragma once
// Every tensor the architecture needs, by name, shape and dtype, checked against a checkpoint
// before any of it is used. A folder with missing or misshapen tensors gets one error that lists
// them all; tensors the model does not use are reported, not fatal.
#include "model/config.h"
#include "model/safetensors.h"

#include <string>
#include <vector>

namespace tessera {

struct ExpectedTensor {
    std::string name;
    std::vector<std::int64_t> shape;
};

// The tensors a model with this configuration reads (the SigLIP attention-pool head, which the
// model never runs, is not among them).
std::vector<ExpectedTensor> expectedTensors(const ModelConfig& config);

// Tensors a checkpoint may carry that the model knowingly ignores.
bool isKnownUnusedTensor(const std::string& name);

struct WeightCheck {
    std::vector<std::string> missing;     // "name [shape]"
    std::vector<std::string> mismatched;  // "name: expected [..] BF16, found [..] F32"
    std::vector<std::string> unexpected;  // present, not used, not known to be unused
    std::size_t ignored = 0;              // known unused (attn_pool.*)
    bool ok() const { return missing.empty() && mismatched.empty(); }
    std::string describe(std::size_t maxListed = 12) const;
};

WeightCheck checkWeights(const ModelConfig& config, const TensorStore& store);

// The validated weights of one model: the tensor views, by name, after checkWeights passed.
class WeightMap {
public:
    WeightMap(const ModelConfig& config, const TensorStore& store);  // throws tessera::Error listing problems

    const TensorView& get(const std::string& name) const;  // throws if absent (a programming error)
    const WeightCheck& check() const { return check_; }
    std::uint64_t usedBytes() const { return usedBytes_; }

private:
    const TensorStore* store_;
    WeightCheck check_;
    std::uint64_t usedBytes_ = 0;
};

}  // namespace tessera
