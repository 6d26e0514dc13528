#pragma once
// Shared by the .cu files: CUDA error → Status, bf16 loads and stores, block reductions, and the
// compile-time dispatch over element types, kept in one place.
#include "tessera_kernels/common.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <string>
#include <utility>

namespace tessera::kernels {

inline Status cudaStatus(cudaError_t err, const char* what)
{
    if (err == cudaSuccess)
        return {};
    cudaGetLastError();  // clear a non-sticky error so later calls start clean
    return Status::failure(std::string(what) + ": " + cudaGetErrorString(err));
}

// A driver function by its entry point (no link to libcuda), as the CUDA `version` defines it;
// null where the driver lacks it (callers fall back or report "unknown").
template <typename F>
F driverEntryPoint(const char* name, int version)
{
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion(name, &f, version, cudaEnableDefault, &q) != cudaSuccess || q != cudaDriverEntryPointSuccess) {
        cudaGetLastError();
        return nullptr;
    }
    return reinterpret_cast<F>(f);
}

// Whether the sm_90a kernels (wgmma, built only for that target) run here: compute capability 9.0.
bool deviceRunsSm90a();

// After a kernel launch: a bad configuration shows up here; faults show up at the next sync.
inline Status launchStatus(const char* op)
{
    const cudaError_t err = cudaGetLastError();
    if (err == cudaSuccess)
        return {};
    return Status::failure(std::string(op) + " kernel launch: " + cudaGetErrorString(err));
}

using bf16 = __nv_bfloat16;

__device__ __forceinline__ float toFloat(float v) { return v; }
__device__ __forceinline__ float toFloat(bf16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T fromFloat(float v);
template <>
__device__ __forceinline__ float fromFloat<float>(float v) { return v; }
template <>
__device__ __forceinline__ bf16 fromFloat<bf16>(float v) { return __float2bfloat16_rn(v); }

__device__ __forceinline__ float warpSum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ double warpSumD(double v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warpMax(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
__device__ __forceinline__ float blockSum(float v, float* scratch /* 33 floats */)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    v = warpSum(v);
    __syncthreads();  // scratch may still be read by a previous reduction
    if (lane == 0)
        scratch[warp] = v;
    __syncthreads();
    float t = lane < warps ? scratch[lane] : 0.f;
    t = warpSum(t);
    return t;
}

__device__ __forceinline__ float blockMax(float v, float* scratch /* 33 floats */)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    v = warpMax(v);
    __syncthreads();
    if (lane == 0)
        scratch[warp] = v;
    __syncthreads();
    float t = lane < warps ? scratch[lane] : -INFINITY;
    t = warpMax(t);
    return t;
}

inline cudaStream_t cuStream(Stream s) { return static_cast<cudaStream_t>(s); }

// Overlapped launches (Hopper's programmatic dependent launch). A kernel started with
// launchOverlapped() may begin while the kernel before it in the stream is still running: it may
// read only constant data (weights) until it calls gridDependencyWait(), which returns once every
// earlier kernel has finished and its writes are visible. Every kernel launched that way must
// call gridDependencyWait() in every block before its first write and before reading anything an
// earlier kernel writes; a kernel that returns early must wait first too (its completion vouches
// for the kernels before it). allowDependentLaunch() lets the next overlapped kernel start once
// every block of this one has called it. Both are no-ops in kernels launched the usual way.
__device__ __forceinline__ void gridDependencyWait()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void allowDependentLaunch()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// The thread-block cluster barrier in two halves (sm_90): clusterArrive() early, without ordering
// anything, clusterWait() where another block's shared memory is first touched (a block may only be
// accessed once it has started).
__device__ __forceinline__ void clusterArrive()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("barrier.cluster.arrive.relaxed.aligned;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void clusterWait()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("barrier.cluster.wait.aligned;\n" ::: "memory");
#endif
}

// Lets the kernels use `bytes` of dynamic shared memory (above the default 48 KB). Callers keep the
// result in a function-local static, so that it runs once:
//     static const Status attribute = allowSharedMemory("op", bytes, kernelA, kernelB);
template <typename... Kernels>
Status allowSharedMemory(const char* op, int bytes, Kernels... kernels)
{
    cudaError_t err = cudaSuccess;
    ((err = err == cudaSuccess ? cudaFuncSetAttribute(kernels, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes) : err), ...);
    return cudaStatus(err, (std::string(op) + ": cudaFuncSetAttribute").c_str());
}

inline bool aligned16(const void* p) { return (reinterpret_cast<unsigned long long>(p) & 15u) == 0; }

// Four consecutive values as floats, and back (16-byte float or 8-byte bf16 accesses; the caller
// checks the alignment).
__device__ __forceinline__ float4 load4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ float4 load4(const bf16* p)
{
    const uint2 u = *reinterpret_cast<const uint2*>(p);
    const float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&u.x));
    const float2 b = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&u.y));
    return make_float4(a.x, a.y, b.x, b.y);
}
__device__ __forceinline__ void store4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }
__device__ __forceinline__ void store4(bf16* p, float4 v)
{
    const __nv_bfloat162 a = __floats2bfloat162_rn(v.x, v.y), b = __floats2bfloat162_rn(v.z, v.w);
    uint2 u;
    u.x = *reinterpret_cast<const unsigned*>(&a);
    u.y = *reinterpret_cast<const unsigned*>(&b);
    *reinterpret_cast<uint2*>(p) = u;
}

// One rotary pair (i, i + half) at angle (c, s), without contractions, so that every kernel that
// rotates the same values (mhaPrepare, the decode attention with its prepare fused) rounds alike.
__device__ __forceinline__ float2 rotatePair(float x0, float x1, float c, float s)
{
    return make_float2(__fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s)), __fadd_rn(__fmul_rn(x1, c), __fmul_rn(x0, s)));
}

// Σ v[i]² over n values by one warp in a fixed order (lane l takes l, l + 32, ...), so that every
// kernel that norms the same row (mlaPrepare, the latent decode attention with its prepare fused)
// gets the same sum whatever its block size. Every lane gets the result.
template <typename T>
__device__ __forceinline__ float warpSumSquares(const T* v, int n)
{
    float ss = 0.f;
    for (int i = threadIdx.x & 31; i < n; i += 32)
        ss = fmaf(toFloat(v[i]), toFloat(v[i]), ss);
    return warpSum(ss);
}

// Whether launchOverlapped() asks for the overlap (TESSERA_OVERLAP_LAUNCHES=0 turns it off, to
// measure what it brings or to rule it out).
bool overlappedLaunchesEnabled();

// cudaLaunchKernelEx with `count` launch attributes.
template <typename... Params, typename... Args>
Status launchWith(const char* op, const cudaLaunchAttribute* attributes, int count, void (*kernel)(Params...), dim3 grid, dim3 block,
                  std::size_t smem, cudaStream_t stream, Args&&... args)
{
    cudaLaunchConfig_t config = {};
    config.gridDim = grid;
    config.blockDim = block;
    config.dynamicSmemBytes = smem;
    config.stream = stream;
    config.attrs = const_cast<cudaLaunchAttribute*>(attributes);
    config.numAttrs = count;
    const cudaError_t err = cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
    if (err != cudaSuccess) {
        cudaGetLastError();
        return Status::failure(std::string(op) + " kernel launch: " + cudaGetErrorString(err));
    }
    return launchStatus(op);
}

template <typename... Params, typename... Args>
Status launchOverlapped(const char* op, void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t smem, cudaStream_t stream,
                        Args&&... args)
{
    cudaLaunchAttribute overlap;
    overlap.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    overlap.val.programmaticStreamSerializationAllowed = 1;
    return launchWith(op, &overlap, overlappedLaunchesEnabled() ? 1 : 0, kernel, grid, block, smem, stream, std::forward<Args>(args)...);
}

// Thread-block clusters of `cluster` blocks (at most 8, 16 where the kernel allows non-portable
// sizes; a cluster's blocks may use each other's shared memory and meet at cluster barriers),
// overlapped with the kernel before as launchOverlapped() is.
template <typename... Params, typename... Args>
Status launchClusters(const char* op, void (*kernel)(Params...), dim3 grid, dim3 cluster, dim3 block, std::size_t smem,
                      cudaStream_t stream, Args&&... args)
{
    cudaLaunchAttribute attributes[2];
    attributes[0].id = cudaLaunchAttributeClusterDimension;
    attributes[0].val.clusterDim.x = cluster.x;
    attributes[0].val.clusterDim.y = cluster.y;
    attributes[0].val.clusterDim.z = cluster.z;
    attributes[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attributes[1].val.programmaticStreamSerializationAllowed = 1;
    return launchWith(op, attributes, overlappedLaunchesEnabled() ? 2 : 1, kernel, grid, block, smem, stream,
                      std::forward<Args>(args)...);
}

// The whole grid as one thread-block cluster.
template <typename... Params, typename... Args>
Status launchCluster(const char* op, void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t smem, cudaStream_t stream,
                     Args&&... args)
{
    return launchClusters(op, kernel, grid, grid, block, smem, stream, std::forward<Args>(args)...);
}

// A cooperative launch: every block of the grid is resident at once (the launch fails otherwise),
// so that the blocks may wait for each other (grid_sync.cuh). Not overlapped with the kernel before.
template <typename... Params, typename... Args>
Status launchCooperative(const char* op, void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t smem, cudaStream_t stream,
                         Args&&... args)
{
    cudaLaunchAttribute cooperative;
    cooperative.id = cudaLaunchAttributeCooperative;
    cooperative.val.cooperative = 1;
    return launchWith(op, &cooperative, 1, kernel, grid, block, smem, stream, std::forward<Args>(args)...);
}

// Streaming multiprocessors of the current device.
inline Status multiprocessorCount(const char* op, int& sms)
{
    int device = 0;
    Status st = cudaStatus(cudaGetDevice(&device), (std::string(op) + ": cudaGetDevice").c_str());
    if (st.ok())
        st = cudaStatus(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), (std::string(op) + ": SM count").c_str());
    return st;
}

// The grid of a cooperative kernel of `threads`-thread blocks: two blocks per SM when two fit with
// the shared memory that grid needs (smemFor(blocks)), else one. blocks = 0 when none fits.
template <typename Kernel, typename SmemFor>
Status cooperativeGrid(const char* op, Kernel kernel, int threads, int maxSmem, const SmemFor& smemFor, int& blocks, std::size_t& smem)
{
    int sms = 0;
    Status st = multiprocessorCount(op, sms);
    blocks = 0;
    for (int perSm = 2; st.ok() && perSm >= 1; --perSm) {
        const std::size_t bytes = smemFor(sms * perSm);
        int fit = 0;
        st = cudaStatus(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&fit, kernel, threads, bytes), (std::string(op) + ": occupancy").c_str());
        if (st.ok() && fit >= perSm && bytes <= static_cast<std::size_t>(maxSmem)) {
            blocks = sms * perSm;
            smem = bytes;
            return {};
        }
    }
    if (st.ok())
        st = Status::failure(std::string(op) + ": a block does not fit on a multiprocessor");
    return st;
}

// Launches a cooperative kernel whose shared memory depends on its grid: plan(blocks, params)
// settles the grid-dependent parameters and returns the shared memory; the grid is chosen by
// cooperativeGrid().
template <typename Params, typename Plan>
Status launchCooperativePlanned(const char* op, void (*kernel)(Params), int threads, int maxSmem, Params params, const Plan& plan,
                                cudaStream_t stream)
{
    int blocks = 0;
    std::size_t smem = 0;
    const auto smemFor = [&](int n) {
        Params probe = params;
        return plan(n, probe);
    };
    const Status st = cooperativeGrid(op, kernel, threads, maxSmem, smemFor, blocks, smem);
    if (!st.ok())
        return st;
    plan(blocks, params);
    return launchCooperative(op, kernel, blocks, threads, smem, stream, params);
}

// Asks for the 128-byte line at p in L2 (no registers, no wait): for weights a kernel will read
// after gridDependencyWait().
__device__ __forceinline__ void prefetchL2(const void* p) { asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p)); }

// The block asks for `bytes` from p in L2, a line per thread in turn.
__device__ __forceinline__ void prefetchBytesL2(const void* p, long long bytes)
{
    for (long long o = threadIdx.x * 128ll; o < bytes; o += blockDim.x * 128ll)
        prefetchL2(static_cast<const char*>(p) + o);
}

// 16-byte asynchronous copy global → shared (L2 only); `valid` false writes zeros.
__device__ __forceinline__ void copyAsync16(void* smem, const void* gmem, bool valid = true)
{
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(valid ? 16 : 0));
}
// The same with an L2 eviction policy (l2EvictFirstPolicy()): the line goes first when L2 needs room.
__device__ __forceinline__ unsigned long long l2EvictFirstPolicy()
{
    unsigned long long policy;
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(policy));
    return policy;
}
__device__ __forceinline__ void copyAsync16Hint(void* smem, const void* gmem, unsigned long long policy)
{
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "l"(policy));
}
__device__ __forceinline__ void copyAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void copyAsyncWaitAll() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }
// Waits until at most N committed groups are still in flight.
template <int N>
__device__ __forceinline__ void copyAsyncWait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

}  // namespace tessera::kernels

// Calls BODY with `using T = float` or `using T = bf16` according to a DType value.
#define TESSERA_DISPATCH_DTYPE(dtype, T, ...)          \
    do {                                               \
        if ((dtype) == ::tessera::kernels::DType::F32) { \
            using T = float;                           \
            __VA_ARGS__;                               \
        } else {                                       \
            using T = ::tessera::kernels::bf16;        \
            __VA_ARGS__;                               \
        }                                              \
    } while (0)
