#pragma once
// Shared-memory transaction barriers (mbarrier) and the bulk copies that complete on them: a
// barrier's phase ends once its expected arrivals have come and every byte announced with
// mbarArriveExpectTx() has landed. sm_90 and later; callers keep another path for older devices
// (kHaveBulkCopy), where these compile to nothing.
#include "launch_util.cuh"

#include <cstdint>

namespace tessera::kernels {

inline constexpr long long kSpinLimit = 1ll << 22;  // a lost arrival traps instead of hanging the GPU

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define TESSERA_MBAR_ASM(...) asm volatile(__VA_ARGS__)
inline constexpr bool kHaveBulkCopy = true;
#else
#define TESSERA_MBAR_ASM(...) ((void)0)
inline constexpr bool kHaveBulkCopy = false;
#endif

__device__ __forceinline__ void mbarInit(unsigned bar, unsigned count)
{
    TESSERA_MBAR_ASM("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
// Makes initialised barriers visible to the copy engine (and to the cluster) before first use.
__device__ __forceinline__ void mbarInitFence() { TESSERA_MBAR_ASM("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }
__device__ __forceinline__ void mbarArriveExpectTx(unsigned bar, unsigned bytes)
{
    TESSERA_MBAR_ASM("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbarArrive(unsigned bar)
{
    TESSERA_MBAR_ASM("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
// Waits for the end of phase `parity`; kCluster: with acquire at cluster scope, for data other
// blocks of the cluster stored into this block's shared memory with storeToCluster().
template <bool kCluster>
__device__ __forceinline__ void mbarWaitScoped(unsigned bar, unsigned parity)
{
    long long spin = 0;
    for (bool done = !kHaveBulkCopy; !done; ++spin) {
        unsigned ready = 0;
        if constexpr (kCluster)
            TESSERA_MBAR_ASM(
                "{\n"
                ".reg .pred p;\n"
                "mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 p, [%1], %2;\n"
                "selp.u32 %0, 1, 0, p;\n"
                "}\n"
                : "=r"(ready)
                : "r"(bar), "r"(parity)
                : "memory");
        else
            TESSERA_MBAR_ASM(
                "{\n"
                ".reg .pred p;\n"
                "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                "selp.u32 %0, 1, 0, p;\n"
                "}\n"
                : "=r"(ready)
                : "r"(bar), "r"(parity)
                : "memory");
        done = ready != 0;
        if (!done && spin > kSpinLimit)
            __trap();
    }
}
__device__ __forceinline__ void mbarWait(unsigned bar, unsigned parity) { mbarWaitScoped<false>(bar, parity); }
__device__ __forceinline__ void mbarWaitCluster(unsigned bar, unsigned parity) { mbarWaitScoped<true>(bar, parity); }
// The address of this block's shared-memory location `local` in the block of cluster rank `rank`.
__device__ __forceinline__ unsigned clusterSharedAddress(unsigned local, unsigned rank)
{
    unsigned remote = 0;
    TESSERA_MBAR_ASM("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(remote) : "r"(local), "r"(rank));
    return remote;
}
// Stores v into another block's shared memory (remote, remoteBar: clusterSharedAddress()es), the
// store counting as 4 transaction bytes on that block's barrier: the receiver waits on its own
// barrier, and the sender orders nothing else (no release of its earlier global stores).
__device__ __forceinline__ void storeToCluster(unsigned remote, float v, unsigned remoteBar)
{
    TESSERA_MBAR_ASM("st.async.shared::cluster.mbarrier::complete_tx::bytes.b32 [%0], %1, [%2];\n" ::"r"(remote), "r"(__float_as_uint(v)),
                     "r"(remoteBar)
                     : "memory");
}
// `bytes` (a multiple of 16; both addresses 16-byte aligned) from global to shared memory by the
// copy engine; they count towards barrier `bar`'s transaction bytes.
__device__ __forceinline__ void bulkCopyToShared(unsigned dst, const void* src, unsigned bytes, unsigned bar)
{
    TESSERA_MBAR_ASM("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(dst),
                 "l"(src), "r"(bytes), "r"(bar)
                 : "memory");
}
// The same, the lines marked in L2 with `policy` (createpolicy; l2EvictFirstPolicy()).
__device__ __forceinline__ void bulkCopyToSharedHint(unsigned dst, const void* src, unsigned bytes, unsigned bar,
                                                     unsigned long long policy)
{
    TESSERA_MBAR_ASM("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1], %2, [%3], %4;\n" ::"r"(dst),
                 "l"(src), "r"(bytes), "r"(bar), "l"(policy)
                 : "memory");
}
#undef TESSERA_MBAR_ASM

// A block's copies of rows (of a matrix, a cache, a vector) into shared memory, one thread per row:
// on sm_90 each row is one bulk copy, all completing on one barrier that expects `bytes` in all;
// elsewhere the thread copies its row in 16-byte pieces (cp.async). Every thread of the block
// constructs it (it synchronises the block); a row is 16-byte aligned at both ends and a multiple
// of 16 bytes long. Rows may be issued before and after gridDependencyWait().
class RowCopies {
public:
    // A kernel variant that copies otherwise: no barrier, nothing to call.
    __device__ static RowCopies none() { return RowCopies(); }
    __device__ RowCopies(unsigned bar, unsigned bytes) : bar_(bar)
    {
        if constexpr (kHaveBulkCopy) {
            if (threadIdx.x == 0) {
                mbarInit(bar, 1);
                mbarInitFence();
            }
            __syncthreads();
            if (threadIdx.x == 0)
                mbarArriveExpectTx(bar, bytes);
        }
    }
    __device__ void row(void* dst, const void* src, int bytes) const
    {
        if constexpr (kHaveBulkCopy) {
            bulkCopyToShared(static_cast<unsigned>(__cvta_generic_to_shared(dst)), src, static_cast<unsigned>(bytes), bar_);
        } else {
            for (int o = 0; o < bytes; o += 16)
                copyAsync16(static_cast<char*>(dst) + o, static_cast<const char*>(src) + o);
        }
    }
    // row() with the L2 lines marked by `policy` (l2EvictFirstPolicy()).
    __device__ void row(void* dst, const void* src, int bytes, unsigned long long policy) const
    {
        if constexpr (kHaveBulkCopy) {
            bulkCopyToSharedHint(static_cast<unsigned>(__cvta_generic_to_shared(dst)), src, static_cast<unsigned>(bytes), bar_, policy);
        } else {
            for (int o = 0; o < bytes; o += 16)
                copyAsync16Hint(static_cast<char*>(dst) + o, static_cast<const char*>(src) + o, policy);
        }
    }
    // Every row has landed (as this thread sees it; a __syncthreads() after it also shares the
    // block's plain shared-memory stores).
    __device__ void wait() const
    {
        if constexpr (kHaveBulkCopy) {
            mbarWait(bar_, 0);
        } else {
            copyAsyncCommit();
            copyAsyncWaitAll();
        }
    }

private:
    __device__ RowCopies() : bar_(0) {}
    unsigned bar_;
};

}  // namespace tessera::kernels
