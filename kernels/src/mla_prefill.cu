// The rope columns of MLA prefill's expanded queries and keys (see mla_prefill.h): one block per
// row, a thread per (head, rope column).
#include "tessera_kernels/mla_prefill.h"

#include "launch_util.cuh"

namespace tessera::kernels {

namespace {

__global__ void mlaPackKernel(MlaPackArgs a)
{
    const long long t = blockIdx.x;
    const int qhd = a.nope + a.rope, width = a.rank + a.rope;
    const bf16* qcat = static_cast<const bf16*>(a.qcat);
    const bf16* cache = static_cast<const bf16*>(a.cache);
    bf16* q = static_cast<bf16*>(a.q);
    bf16* keys = static_cast<bf16*>(a.keys);
    for (int e = threadIdx.x; e < a.heads * a.rope; e += blockDim.x) {
        const int h = e / a.rope, j = e % a.rope;
        if (t < a.n)
            q[t * a.ldq + h * qhd + a.nope + j] = qcat[(t * a.heads + h) * width + a.rank + j];
        if (t < a.ctx)
            keys[t * a.ldk + h * qhd + a.nope + j] = cache[t * width + a.rank + j];
    }
}

}  // namespace

Status mlaPrefillPack(const MlaPackArgs& a, Stream stream)
{
    const int rows = a.n > a.ctx ? a.n : a.ctx;
    if (rows <= 0 || a.heads <= 0 || a.rope <= 0)
        return {};
    mlaPackKernel<<<rows, 256, 0, cuStream(stream)>>>(a);
    return launchStatus("mla prefill pack");
}

}  // namespace tessera::kernels
