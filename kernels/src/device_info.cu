#include "tessera_kernels/device_info.h"

#include <cuda_runtime.h>

namespace tessera::kernels {

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
        int previous = 0;
        cudaGetDevice(&previous);
        if (cudaSetDevice(i) == cudaSuccess) {
            size_t freeBytes = 0, totalBytes = 0;
            if (cudaMemGetInfo(&freeBytes, &totalBytes) == cudaSuccess)
                g.freeMemoryBytes = freeBytes;
            else
                cudaGetLastError();
            cudaSetDevice(previous);
        }
        q.gpus.push_back(std::move(g));
    }
    if (q.gpus.empty())
        q.problem = "no CUDA device";
    return q;
}

}  // namespace tessera::kernels
