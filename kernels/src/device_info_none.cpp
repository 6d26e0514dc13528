#include "tessera_kernels/device_info.h"

namespace tessera::kernels {

GpuQuery queryGpus()
{
    GpuQuery q;
    q.problem = "this build of Tessera has no CUDA support";
    return q;
}

bool gpuContextActive(int) { return false; }

}  // namespace tessera::kernels
