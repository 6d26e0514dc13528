#pragma once
// A barrier over every block of a cooperative launch (launchCooperative(): all blocks are resident
// at once, so blocks may wait for each other). State: three unsigned in global memory, zero before
// the first launch; sync[0] counts arrivals and is back at zero after every barrier, sync[1] is the
// generation, sync[2] is the counter of lastToArrive(), also left at zero by the block it picks.
// One state serves any number of launches that run one after another.
#include "launch_util.cuh"

namespace tessera::kernels {

namespace {

// The cooperative decode kernels' blocks (moe_, mha_, mla_, layer_ and step_decode): 512 threads,
// one block per SM at their register use, and up to 200 KB of dynamic shared memory. Kernels that
// run several of their bodies in one grid rely on all of them using these.
constexpr int kCoopThreads = 512, kCoopWarps = kCoopThreads / 32;
constexpr int kCoopMaxSmem = 200 * 1024;

__device__ __forceinline__ unsigned loadAcquire(const unsigned* p)
{
    unsigned v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];\n" : "=r"(v) : "l"(p) : "memory");
    return v;
}

// Every block's writes before the call are visible to every block after it (read data another
// block wrote with __ldcg or loadAcquire: not through a possibly stale L1 line).
__device__ __forceinline__ void gridSync(unsigned* sync)
{
    __syncthreads();
    if (threadIdx.x == 0) {
        // This block passed the previous barrier, and this one cannot open before it arrives:
        // the generation read here is the current one.
        const unsigned generation = loadAcquire(sync + 1);
        __threadfence();
        if (atomicAdd(sync, 1u) == gridDim.x - 1) {
            atomicExch(sync, 0u);
            __threadfence();
            atomicAdd(sync + 1, 1u);
        } else {
            while (loadAcquire(sync + 1) == generation) {
            }
        }
        __threadfence();
    }
    __syncthreads();
}

// True in exactly one block, the last to call it; that block sees every other block's writes made
// before their call. Every block calls it once, and a gridSync() must follow before the next call
// (the chosen block resets the counter).
__device__ __forceinline__ bool lastToArrive(unsigned* sync)
{
    __shared__ bool last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        last = atomicAdd(sync + 2, 1u) == gridDim.x - 1;
        if (last)
            atomicExch(sync + 2, 0u);  // ready for the next launch
    }
    __syncthreads();
    if (last)
        __threadfence();
    return last;
}

}  // namespace

}  // namespace tessera::kernels
