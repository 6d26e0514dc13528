#pragma once
// A read-only memory mapping of a whole file. Weights stay in the page cache, not in our heap.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>

namespace tessera {

class MappedFile {
public:
    MappedFile() = default;
    explicit MappedFile(const std::filesystem::path& path);  // throws tessera::Error
    ~MappedFile();
    MappedFile(MappedFile&& other) noexcept;
    MappedFile& operator=(MappedFile&& other) noexcept;
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    std::span<const std::uint8_t> bytes() const { return {data_, size_}; }
    const std::uint8_t* data() const { return data_; }
    std::size_t size() const { return size_; }
    const std::filesystem::path& path() const { return path_; }

private:
    void reset() noexcept;
    std::filesystem::path path_;
    const std::uint8_t* data_ = nullptr;
    std::size_t size_ = 0;
};

// Reads a whole (small) file into memory; `maxBytes` guards against reading something huge by mistake.
std::string readTextFile(const std::filesystem::path& path, std::size_t maxBytes = 64u << 20);

}  // namespace tessera
