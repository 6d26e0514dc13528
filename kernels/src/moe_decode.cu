// Launchers of the kernels in moe_decode.cuh.
#include "moe_decode.cuh"

#include <algorithm>

namespace tessera::kernels {

namespace {

using namespace moe_fused;

template <typename TX>
__global__ __launch_bounds__(kThreads) void moeDecodeKernel(Params p)
{
    extern __shared__ __align__(16) float smem[];
    moeLayer<TX>(p, smem);
}

}  // namespace

bool moeDecodeSupports(int experts, int k, int sharedExperts, int hidden, int inter)
{
    const long long slots = static_cast<long long>(k) + sharedExperts;
    const bool routed = experts > 0 && experts <= kMaxExperts && k > 0 && k <= kMaxK && k <= experts && sharedExperts >= 0;
    const bool dense = experts == 0 && k == 0 && sharedExperts >= 1;
    return (routed || dense) && slots <= kMaxSlots && hidden > 0 && inter > 0 &&
           (std::max<long long>(hidden, slots * inter) + experts + slots) * 4 <= kMaxSmem / 2;
}

Status moeDecode(const MoeDecodeArgs& a, Stream stream)
{
    const RouteArgs& r = a.route;
    if (!moeDecodeSupports(r.experts, r.k, r.sharedExperts, a.hidden, a.inter))
        return Status::failure("moe layer (fused decode): unsupported shape");
    if (r.k > 0 && r.routing == Routing::NoAuxTc && (r.groups > 32 || r.groups <= 0 || r.experts % r.groups))
        return Status::failure("moe layer (fused decode): n_group must divide the experts into at most 32 groups");
    const auto smemFor = [&](int blocks) { return smemBytes(a, blocks); };
    const Params p = makeParams(a);
    Status st;
    TESSERA_DISPATCH_DTYPE(a.xType, TX, {
        auto kernel = moeDecodeKernel<TX>;
        static const Status attribute = allowSharedMemory("moe layer (fused decode)", kMaxSmem, kernel);
        if (!attribute.ok())
            return attribute;
        int blocks = 0;
        std::size_t smem = 0;
        st = cooperativeGrid("moe layer (fused decode)", kernel, kThreads, kMaxSmem, smemFor, blocks, smem);
        if (!st.ok())
            return st;
        if (blocks > kMoeDecodeMaxBlocks)
            return Status::failure("moe layer (fused decode): more blocks than the partial sums hold");
        st = launchCooperative("moe layer (fused decode)", kernel, blocks, kThreads, smem, cuStream(stream), p);
    });
    return st;
}

}  // namespace tessera::kernels
