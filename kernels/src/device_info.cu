#include "tessera_kernels/device_info.h"

#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime.h>

#include "launch_util.cuh"

namespace tessera::kernels {

namespace {

// Driver functions by entry point (no link to libcuda): the primary context's state, and a
// temporary context for the free-memory figure of a GPU this process does not use yet.
struct Driver {
    PFN_cuDeviceGet_v2000 deviceGet = nullptr;
    PFN_cuDevicePrimaryCtxGetState_v7000 primaryState = nullptr;
    PFN_cuCtxCreate_v3020 ctxCreate = nullptr;
    PFN_cuCtxDestroy_v4000 ctxDestroy = nullptr;
    PFN_cuMemGetInfo_v3020 memGetInfo = nullptr;
};

const Driver& driver()
{
    static const Driver d = [] {
        Driver r;
        r.deviceGet = driverEntryPoint<PFN_cuDeviceGet_v2000>("cuDeviceGet", 2000);
        r.primaryState = driverEntryPoint<PFN_cuDevicePrimaryCtxGetState_v7000>("cuDevicePrimaryCtxGetState", 7000);
        r.ctxCreate = driverEntryPoint<PFN_cuCtxCreate_v3020>("cuCtxCreate", 3020);
        r.ctxDestroy = driverEntryPoint<PFN_cuCtxDestroy_v4000>("cuCtxDestroy", 4000);
        r.memGetInfo = driverEntryPoint<PFN_cuMemGetInfo_v3020>("cuMemGetInfo", 3020);
        return r;
    }();
    return d;
}

// Free bytes on GPU `index`: through the primary context where this process already has it, else
// through a context made for the question and destroyed after it, so that asking (the app's
// device list, the CPU backend's choice) leaves no context, and no GPU memory, behind. 0 when
// unknown.
std::uint64_t freeMemory(int index)
{
    if (gpuContextActive(index)) {
        int previous = 0;
        cudaGetDevice(&previous);
        size_t freeBytes = 0, totalBytes = 0;
        const bool ok = cudaSetDevice(index) == cudaSuccess && cudaMemGetInfo(&freeBytes, &totalBytes) == cudaSuccess;
        cudaGetLastError();
        cudaSetDevice(previous);
        return ok ? freeBytes : 0;
    }
    const Driver& d = driver();
    CUdevice dev = 0;
    CUcontext ctx = nullptr;
    if (!d.deviceGet || !d.ctxCreate || !d.ctxDestroy || !d.memGetInfo || d.deviceGet(&dev, index) != CUDA_SUCCESS ||
        d.ctxCreate(&ctx, 0, dev) != CUDA_SUCCESS)
        return 0;
    size_t freeBytes = 0, totalBytes = 0;
    const bool ok = d.memGetInfo(&freeBytes, &totalBytes) == CUDA_SUCCESS;
    d.ctxDestroy(ctx);  // also makes the context current before it (if any) current again
    return ok ? freeBytes : 0;
}

}  // namespace

bool gpuContextActive(int index)
{
    const Driver& d = driver();
    CUdevice dev = 0;
    unsigned flags = 0;
    int active = 0;
    if (!d.deviceGet || !d.primaryState || d.deviceGet(&dev, index) != CUDA_SUCCESS || d.primaryState(dev, &flags, &active) != CUDA_SUCCESS)
        return false;
    return active != 0;
}

GpuQuery queryGpus()
{
    GpuQuery q;
    q.compiledWithCuda = true;
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        q.problem = std::string("CUDA runtime: ") + cudaGetErrorString(err);
        cudaGetLastError();  // clear the sticky error so later calls start clean
        return q;
    }
    for (int i = 0; i < count; ++i) {
        cudaDeviceProp prop{};
        if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) {
            cudaGetLastError();
            continue;
        }
        GpuInfo g;
        g.index = i;
        g.name = prop.name;
        g.computeMajor = prop.major;
        g.computeMinor = prop.minor;
        g.multiprocessors = prop.multiProcessorCount;
        g.totalMemoryBytes = prop.totalGlobalMem;
        g.freeMemoryBytes = freeMemory(i);
        q.gpus.push_back(std::move(g));
    }
    if (q.gpus.empty())
        q.problem = "no CUDA device";
    return q;
}

}  // namespace tessera::kernels
