// Launchers of the kernels in mha_decode.cuh.
#include "mha_decode.cuh"

#include <algorithm>

namespace tessera::kernels {

namespace {

using namespace mha_fused;

template <typename T>
__global__ __launch_bounds__(kThreads) void mhaDecodeKernel(Params p)
{
    extern __shared__ __align__(16) float smem[];
    mhaAttentionHalf<T>(p, smem);
}

}  // namespace

bool mhaDecodeSupports(int hidden, int heads, int kvHeads, int headDim, int capacity)
{
    // Shared memory of one block per SM on the smallest grid (one slice per head): the whole
    // context's scores in one slice.
    const long long groups = std::max(1, kThreads / std::max(headDim, 1));
    const long long phase2 = headDim + static_cast<long long>(capacity) + groups * headDim;
    const long long phase3 = static_cast<long long>(heads) * headDim + 2ll * heads;
    // Head widths that are not multiples of 8 gave logits other than the separate kernels' on the
    // GPU (fusedDecode, head width 126); they take the separate kernels.
    return hidden > 0 && heads > 0 && kvHeads > 0 && heads % kvHeads == 0 && headDim > 0 && headDim % 8 == 0 &&
           headDim <= kThreads && static_cast<long long>(heads) * headDim <= 16384 && hidden <= 16384 && capacity > 0 &&
           std::max({static_cast<long long>(hidden), phase2, phase3}) * 4 <= kMaxSmem;
}

std::size_t mhaDecodePartialFloats(int heads, int headDim) { return static_cast<std::size_t>(heads) * kMhaDecodeMaxSplits * (headDim + 2); }

Status mhaDecode(const MhaDecodeArgs& a, Stream stream)
{
    if (!mhaDecodeSupports(a.hidden, a.heads, a.kvHeads, a.headDim, a.capacity))
        return Status::failure("attention (fused decode): unsupported shape");
    const auto plan = [&](int blocks, Params& p) { return planGrid(a, blocks, p); };
    const Params p = makeParams(a);
    Status st;
    TESSERA_DISPATCH_DTYPE(a.type, T, {
        auto kernel = mhaDecodeKernel<T>;
        static const Status attribute = allowSharedMemory("attention (fused decode)", kMaxSmem, kernel);
        if (!attribute.ok())
            return attribute;
        st = launchCooperativePlanned("attention (fused decode)", kernel, kThreads, kMaxSmem, p, plan, cuStream(stream));
    });
    return st;
}

}  // namespace tessera::kernels
