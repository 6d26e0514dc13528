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
    std::uint64_t freeMemoryBytes = 0;
};

struct GpuQuery {
    bool compiledWithCuda = false;
    std::vector<GpuInfo> gpus;
    // Why the list is empty when it is: no driver, no device, runtime too old...
    std::string problem;
};

GpuQuery queryGpus();

}  // namespace tessera::kernels
