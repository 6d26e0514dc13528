#pragma once
// What the CUDA runtime says about the GPUs of this machine. Plain C++ so the engine needs no
// CUDA headers; works (and says "none") in a build without CUDA.
#include <cstdint>
#include <string>
#include <vector>

namespace tessera::kernels {

struct GpuInfo {
    int index = 0;
    std::string name;
    int computeMajor = 0;
    int computeMinor = 0;
    int multiprocessors = 0;
    std::uint64_t totalMemoryBytes = 0;
    std::uint64_t freeMemoryBytes = 0;  // 0 when unknown
};

struct GpuQuery {
    bool compiledWithCuda = false;
    std::vector<GpuInfo> gpus;
    // Why the list is empty when it is: no driver, no device, runtime too old...
    std::string problem;
};

// Asking makes no CUDA context that outlives the call: a process that only asks (the CPU
// backend, the app's device list) holds no GPU memory.
GpuQuery queryGpus();

// Whether this process holds the primary CUDA context of GPU `index` (made by the first use of the
// runtime on it, released at exit).
bool gpuContextActive(int index);

}  // namespace tessera::kernels
