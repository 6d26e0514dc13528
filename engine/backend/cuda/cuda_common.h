#pragma once
// Engine-side helpers of the CUDA backend: kernel Status → tessera::Error naming the operation,
// owning device / pinned buffers, and a bump allocator that lays out workspaces.
#include "core/error.h"

#include "tessera_kernels/common.h"
#include "tessera_kernels/runtime.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

namespace tessera::cuda {

namespace k = tessera::kernels;

inline void check(const k::Status& status, const char* op)
{
    if (!status.ok())
        throw Error(std::string("CUDA backend, ") + op + ": " + status.message());
}

class DeviceBuffer {
public:
    DeviceBuffer() = default;
    DeviceBuffer(std::size_t bytes, const char* what)
    {
        const k::Status s = k::deviceAlloc(&ptr_, bytes);
        if (!s.ok())
            throw Error(std::string("CUDA backend: could not allocate ") + std::to_string(bytes >> 20) + " MiB for " + what +
                        " on the GPU (" + s.message() + "); close other GPU programs, use a shorter context or --backend cpu");
        bytes_ = bytes;
    }
    DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
    DeviceBuffer& operator=(DeviceBuffer&& o) noexcept
    {
        if (this != &o) {
            k::deviceFree(ptr_);
            ptr_ = std::exchange(o.ptr_, nullptr);
            bytes_ = std::exchange(o.bytes_, 0);
        }
        return *this;
    }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    ~DeviceBuffer() { k::deviceFree(ptr_); }

    void* get() const { return ptr_; }
    template <typename T>
    T* as() const { return static_cast<T*>(ptr_); }
    std::size_t bytes() const { return bytes_; }

private:
    void* ptr_ = nullptr;
    std::size_t bytes_ = 0;
};

class PinnedBuffer {
public:
    PinnedBuffer() = default;
    explicit PinnedBuffer(std::size_t bytes)
    {
        check(k::pinnedAlloc(&ptr_, bytes), "pinned staging memory");
        bytes_ = bytes;
    }
    PinnedBuffer(PinnedBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
    PinnedBuffer& operator=(PinnedBuffer&& o) noexcept
    {
        if (this != &o) {
            k::pinnedFree(ptr_);
            ptr_ = std::exchange(o.ptr_, nullptr);
            bytes_ = std::exchange(o.bytes_, 0);
        }
        return *this;
    }
    ~PinnedBuffer() { k::pinnedFree(ptr_); }
    template <typename T>
    T* as() const { return static_cast<T*>(ptr_); }
    std::size_t bytes() const { return bytes_; }

private:
    void* ptr_ = nullptr;
    std::size_t bytes_ = 0;
};

// Hands out 256-byte aligned offsets; with a base pointer it hands out addresses.
class Carver {
public:
    explicit Carver(void* base = nullptr) : base_(static_cast<std::uint8_t*>(base)) {}
    template <typename T>
    T* take(std::size_t count)
    {
        const std::size_t at = used_;
        used_ += (count * sizeof(T) + 255) & ~std::size_t(255);
        return base_ ? reinterpret_cast<T*>(base_ + at) : nullptr;
    }
    void* takeBytes(std::size_t bytes) { return take<std::uint8_t>(bytes); }
    std::size_t used() const { return used_; }
    // Buffers that are never live at the same time share memory: carve one set, rewind to the
    // mark, carve the next, and extend to the largest end.
    void rewind(std::size_t mark) { used_ = mark; }
    void extendTo(std::size_t end) { used_ = used_ > end ? used_ : end; }

private:
    std::uint8_t* base_;
    std::size_t used_ = 0;
};

inline std::string mib(std::size_t bytes) { return std::to_string((bytes + (1u << 19)) >> 20) + " MiB"; }

}  // namespace tessera::cuda
