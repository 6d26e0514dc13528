#pragma once
// Memory-mapped safetensors files, validated before anything is trusted: header size cap, JSON
// shape, dtype names, shape × dtype = byte span, spans inside the file and not overlapping.
// A sharded checkpoint (model.safetensors.index.json) opens as one TensorStore.
#include "core/mapped_file.h"

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace tessera {

enum class DType { BF16, F16, F32, I64, U8 };

const char* dtypeName(DType t);
std::size_t dtypeSize(DType t);

struct TensorView {
    std::string name;
    DType dtype = DType::F32;
    std::vector<std::int64_t> shape;
    const std::uint8_t* data = nullptr;  // not necessarily aligned: read through memcpy
    std::size_t byteSize = 0;
    const std::filesystem::path* file = nullptr;

    std::int64_t numel() const;
    std::string shapeString() const;  // "[3, 4]"
    // Elements converted to float / int64; errors if the dtype does not convert.
    std::vector<float> toFloat() const;
    std::vector<std::int64_t> toInt64() const;
    float floatAt(std::size_t index) const;
};

class SafetensorsFile {
public:
    static constexpr std::uint64_t kMaxHeaderBytes = 100u << 20;

    explicit SafetensorsFile(const std::filesystem::path& path);  // throws tessera::Error

    const std::filesystem::path& path() const { return file_.path(); }
    const std::vector<TensorView>& tensors() const { return tensors_; }
    const TensorView* find(const std::string& name) const;
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    std::size_t fileSize() const { return file_.size(); }

private:
    MappedFile file_;
    std::vector<TensorView> tensors_;
    std::map<std::string, std::size_t> index_;
    std::map<std::string, std::string> metadata_;
};

// Writes tensors to a new safetensors file (used for --dump-tiles and tests).
struct TensorToWrite {
    std::string name;
    DType dtype;
    std::vector<std::int64_t> shape;
    std::span<const std::uint8_t> bytes;
};
void writeSafetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// All tensors of a checkpoint folder: model.safetensors.index.json with its shards, or a single
// model.safetensors.
class TensorStore {
public:
    static TensorStore openFolder(const std::filesystem::path& dir);  // throws tessera::Error

    const TensorView* find(const std::string& name) const;
    const std::map<std::string, const TensorView*>& all() const { return byName_; }
    const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }
    std::uint64_t totalBytes() const;

private:
    std::vector<std::unique_ptr<SafetensorsFile>> files_;
    std::map<std::string, const TensorView*> byName_;
};

}  // namespace tessera
