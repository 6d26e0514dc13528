// Launchers of the kernels in mla_decode.cuh.
#include "mla_decode.cuh"

#include <algorithm>

namespace tessera::kernels {

namespace {

using namespace mla_fused;

template <typename T>
__global__ __launch_bounds__(kThreads) void mlaDecodeKernel(Params p)
{
    extern __shared__ __align__(16) float smem[];
    mlaAttentionHalf<T>(p, smem);
}

}  // namespace

bool mlaDecodeSupports(int hidden, int heads, int nope, int rope, int rank, int vDim, int capacity)
{
    // Shared memory of each phase on the smallest grid mlaDecode launches (a block per SM).
    int sms = 1;
    if (!multiprocessorCount("mla attention (fused decode)", sms).ok())
        return false;
    const int groups = (heads + kHeadsPerGroup - 1) / kHeadsPerGroup;
    const long long splits = std::clamp(sms / groups, 1, kMlaDecodeMaxSplits);
    const long long hpg = (heads + groups - 1) / groups;
    const long long phase3 = hpg * (rank + rope) + hpg * ((capacity + splits - 1) / splits);
    const long long largest = std::max({static_cast<long long>(hidden), static_cast<long long>(heads) * nope, phase3,
                                        static_cast<long long>(kMlaDecodeMaxSplits) + rank, static_cast<long long>(heads) * vDim});
    return hidden > 0 && heads > 0 && nope > 0 && nope % 2 == 0 && rope > 0 && rope % 2 == 0 && rank > 0 && rank % 2 == 0 &&
           vDim > 0 && hidden <= 16384 && capacity > 0 && largest * 4 <= kMaxSmem;
}

std::size_t mlaDecodePartialFloats(int heads, int rank)
{
    return static_cast<std::size_t>(kMlaDecodeMaxSplits) * heads * (rank + 2);
}

Status mlaDecode(const MlaDecodeArgs& a, Stream stream)
{
    if (!mlaDecodeSupports(a.hidden, a.heads, a.nope, a.rope, a.rank, a.vDim, a.capacity))
        return Status::failure("mla attention (fused decode): unsupported shape");
    const auto plan = [&](int blocks, Params& p) { return planGrid(a, blocks, p); };
    const Params p = makeParams(a);
    Status st;
    TESSERA_DISPATCH_DTYPE(a.type, T, {
        auto kernel = mlaDecodeKernel<T>;
        static const Status attribute = allowSharedMemory("mla attention (fused decode)", kMaxSmem, kernel);
        if (!attribute.ok())
            return attribute;
        st = launchCooperativePlanned("mla attention (fused decode)", kernel, kThreads, kMaxSmem, p, plan, cuStream(stream));
    });
    return st;
}

}  // namespace tessera::kernels
