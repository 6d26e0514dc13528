#pragma once
// The device side of tessera_kernels/trace.h. Each .cu file that traces keeps its own copy of the
// sink in constant memory (no separate compilation here), set through its setTraceSink… function
// by setDecodeTrace(). Builds without TESSERA_DECODE_TRACE get an empty BlockTrace: the sink's check
// alone, at the start of every kernel, cost 3–5 % of decode (measured).
#include "tessera_kernels/trace.h"

#include <cuda_runtime.h>

namespace tessera::kernels {

struct TraceSink {
    TraceRecord* records;
    unsigned* count;
    unsigned capacity;
};

namespace {
#if TESSERA_DECODE_TRACE
__constant__ TraceSink traceSink;

__device__ __forceinline__ unsigned long long globalTimerNs()
{
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

// One record per block, written by thread 0 when it leaves (a destructor, so every return path
// counts). waited(): call right after gridDependencyWait().
class BlockTrace {
public:
    __device__ explicit BlockTrace(TraceSite site, unsigned aux = 0) : site_(static_cast<unsigned>(site)), aux_(aux)
    {
        on_ = traceSink.records != nullptr && threadIdx.x == 0;
        if (on_)
            start_ = globalTimerNs();
    }
    __device__ void waited()
    {
        if (on_)
            waited_ = globalTimerNs();
    }
    __device__ void mark(int i)
    {
        if (on_)
            mark_[i] = globalTimerNs();
    }
    __device__ ~BlockTrace()
    {
        if (!on_)
            return;
        const unsigned long long end = globalTimerNs();
        const unsigned i = atomicAdd(traceSink.count, 1u);
        if (i < traceSink.capacity)
            traceSink.records[i] = TraceRecord{start_, waited_, end, {mark_[0], mark_[1]}, site_, gridDim.x, gridDim.y, aux_};
    }
    BlockTrace(const BlockTrace&) = delete;
    BlockTrace& operator=(const BlockTrace&) = delete;

private:
    unsigned long long start_ = 0, waited_ = 0, mark_[2] = {0, 0};
    unsigned site_, aux_;
    bool on_ = false;
};

inline Status setThisFilesTraceSink(const TraceSink& s)
{
    const cudaError_t err = cudaMemcpyToSymbol(traceSink, &s, sizeof s);
    if (err == cudaSuccess)
        return {};
    cudaGetLastError();
    return Status::failure(std::string("decode trace: ") + cudaGetErrorString(err));
}
#else
// Without TESSERA_DECODE_TRACE: nothing at all in the kernels.
class BlockTrace {
public:
    __device__ explicit BlockTrace(TraceSite, unsigned = 0) {}
    __device__ void waited() {}
    __device__ void mark(int) {}
};

inline Status setThisFilesTraceSink(const TraceSink& s)
{
    if (!s.records)
        return {};
    return Status::failure("decode trace: this build has none (configure with -DTESSERA_DECODE_TRACE=ON: cmake --preset trace)");
}
#endif
}  // namespace

// One per traced file.
Status setTraceSinkGemv(const TraceSink& s);
Status setTraceSinkDecodeAttention(const TraceSink& s);
Status setTraceSinkMoe(const TraceSink& s);
Status setTraceSinkNorm(const TraceSink& s);
Status setTraceSinkSampling(const TraceSink& s);
Status setTraceSinkElementwise(const TraceSink& s);
Status setTraceSinkAttention(const TraceSink& s);

}  // namespace tessera::kernels
