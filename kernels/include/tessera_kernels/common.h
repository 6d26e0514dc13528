#pragma once
// Types shared by every launcher of the kernel library. Launchers take raw device pointers, sizes,
// strides and a stream, and return a Status instead of throwing or exiting: the engine turns a
// failed Status into an error that names the operation.
#include <cstdint>
#include <string>

namespace tessera::kernels {

// Element type of an activation or weight buffer on the device.
enum class DType : std::uint8_t { F32, BF16 };

inline std::size_t dtypeBytes(DType t) { return t == DType::F32 ? 4 : 2; }

// How products are computed. Exact: fp32 fused multiply-adds on CUDA cores (bf16 operands are
// widened), never TF32. Fast: tensor cores on bf16 operands with fp32 accumulation.
enum class MathMode : std::uint8_t { ExactFp32, FastBf16 };

// An opaque cudaStream_t, so that engine code needs no CUDA headers.
using Stream = void*;

class Status {
public:
    Status() = default;
    static Status failure(std::string message) { Status s; s.message_ = std::move(message); if (s.message_.empty()) s.message_ = "unknown failure"; return s; }
    bool ok() const { return message_.empty(); }
    const std::string& message() const { return message_; }

private:
    std::string message_;
};

}  // namespace tessera::kernels
