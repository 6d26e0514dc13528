#pragma once
// Pieces of the Hopper (sm_90a) kernels: warpgroup products (wgmma) on shared-memory tiles in the
// 128-byte swizzled layout, and the bulk tensor copies (TMA) that fill them.
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime.h>

#include "launch_util.cuh"

#include <cstdint>

namespace tessera::kernels {

// Eight fp32 accumulators d[i] .. d[i + 7] as read-write operands of a wgmma asm statement.
#define TESSERA_WGMMA_D8(d, i)                                                                                       \
    "+f"(d[(i)]), "+f"(d[(i) + 1]), "+f"(d[(i) + 2]), "+f"(d[(i) + 3]), "+f"(d[(i) + 4]), "+f"(d[(i) + 5]), "+f"(d[(i) + 6]), \
        "+f"(d[(i) + 7])

__device__ __forceinline__ void wgmmaFence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmmaCommit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmmaWait()
{
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}

// Shared-memory matrix descriptor, 128-byte swizzle. K-major (the defaults): rows of 128 bytes
// (64 bf16 of k), 8-row groups `stride` bytes apart. MN-major (a transposed operand): rows of 128
// bytes hold 64 elements of m or n at one k; groups of 8 k rows are `stride` bytes apart and
// groups of 64 m or n elements `leading` bytes apart.
__device__ __forceinline__ std::uint64_t smemDescriptor(unsigned addr, unsigned stride = 1024, unsigned leading = 16)
{
    std::uint64_t d = (addr & 0x3FFFFu) >> 4;
    d |= std::uint64_t((leading & 0x3FFFFu) >> 4) << 16;
    d |= std::uint64_t((stride & 0x3FFFFu) >> 4) << 32;
    d |= std::uint64_t(1) << 62;  // 128-byte swizzle
    return d;
}

__device__ __forceinline__ void tmaLoad2d(unsigned dst, const CUtensorMap* map, int c0, int c1, unsigned bar)
{
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(dst),
        "l"(reinterpret_cast<std::uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar)
        : "memory");
}
__device__ __forceinline__ void tmaLoad3d(unsigned dst, const CUtensorMap* map, int c0, int c1, int c2, unsigned bar)
{
    asm volatile(
        "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(dst),
        "l"(reinterpret_cast<std::uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(bar)
        : "memory");
}
__device__ __forceinline__ void tmaLoad4d(unsigned dst, const CUtensorMap* map, int c0, int c1, int c2, int c3, unsigned bar)
{
    asm volatile(
        "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], [%6];\n" ::"r"(dst),
        "l"(reinterpret_cast<std::uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(bar)
        : "memory");
}

// The driver's tensor-map encoder (null where the driver lacks it: callers fall back).
inline PFN_cuTensorMapEncodeTiled_v12000 tensorMapEncoder()
{
    static const auto fn = driverEntryPoint<PFN_cuTensorMapEncodeTiled_v12000>("cuTensorMapEncodeTiled", 12000);
    return fn;
}

}  // namespace tessera::kernels
