// One cooperative kernel per decode layer: the attention half of mha_decode.cuh or
// mla_decode.cuh, a grid barrier (the MoE half normalises the whole residual), then the MoE half of
// moe_decode.cuh, on one grid whose shared memory serves both.
#include "tessera_kernels/decode_layer.h"

#include "mha_decode.cuh"
#include "mla_decode.cuh"
#include "moe_decode.cuh"

#include <algorithm>

namespace tessera::kernels {

namespace {

constexpr int kThreads = kCoopThreads, kMaxSmem = kCoopMaxSmem;

template <typename AttentionParams>
struct LayerParams {
    AttentionParams attention;
    moe_fused::Params moe;
};

template <typename T>
__global__ __launch_bounds__(kThreads) void mhaLayerKernel(LayerParams<mha_fused::Params> p)
{
    extern __shared__ __align__(16) float smem[];
    mha_fused::mhaAttentionHalf<T>(p.attention, smem);
    gridSync(p.attention.a.sync);
    moe_fused::moeLayer<T>(p.moe, smem);
}

template <typename T>
__global__ __launch_bounds__(kThreads) void mlaLayerKernel(LayerParams<mla_fused::Params> p)
{
    extern __shared__ __align__(16) float smem[];
    mla_fused::mlaAttentionHalf<T>(p.attention, smem);
    gridSync(p.attention.a.sync);
    moe_fused::moeLayer<T>(p.moe, smem);
}

template <typename Args, typename Params>
Status launchLayer(const char* op, void (*kernel)(LayerParams<Params>), const Args& attention, const Params& attentionParams,
                   const MoeDecodeArgs& moe, cudaStream_t stream)
{
    const LayerParams<Params> p{attentionParams, moe_fused::makeParams(moe)};
    const auto plan = [&](int blocks, LayerParams<Params>& q) {
        return std::max(planGrid(attention, blocks, q.attention), moe_fused::smemBytes(moe, blocks));
    };
    // More than two blocks per SM never fit; the partial sums of the MoE half hold 1024.
    static_assert(kMoeDecodeMaxBlocks >= 2 * 256, "the partial sums must hold two blocks per SM of the largest GPUs");
    return launchCooperativePlanned(op, kernel, kThreads, kMaxSmem, p, plan, stream);
}

}  // namespace

Status decodeLayer(const MhaDecodeArgs* mha, const MlaDecodeArgs* mla, const MoeDecodeArgs& moe, Stream stream)
{
    const RouteArgs& r = moe.route;
    if (!mha == !mla)
        return Status::failure("decode layer (fused): give the MHA or the MLA attention half");
    if (!moeDecodeSupports(r.experts, r.k, r.sharedExperts, moe.hidden, moe.inter) ||
        (r.k > 0 && r.routing == Routing::NoAuxTc && (r.groups > 32 || r.groups <= 0 || r.experts % r.groups)))
        return Status::failure("decode layer (fused): unsupported MoE shape");
    if (mha ? !mhaDecodeSupports(mha->hidden, mha->heads, mha->kvHeads, mha->headDim, mha->capacity)
            : !mlaDecodeSupports(mla->hidden, mla->heads, mla->nope, mla->rope, mla->rank, mla->vDim, mla->capacity))
        return Status::failure("decode layer (fused): unsupported attention shape");
    if ((mha ? mha->type : mla->type) != moe.xType || (mha ? mha->sync : mla->sync) != moe.sync)
        return Status::failure("decode layer (fused): the halves disagree on the activation type or the barrier state");
    const cudaStream_t s = cuStream(stream);
    Status st;
    TESSERA_DISPATCH_DTYPE(moe.xType, T, {
        if (mha) {
            auto kernel = mhaLayerKernel<T>;
            static const Status attribute = allowSharedMemory("decode layer (fused, mha)", kMaxSmem, kernel);
            if (!attribute.ok())
                return attribute;
            st = launchLayer("decode layer (fused, mha)", kernel, *mha, mha_fused::makeParams(*mha), moe, s);
        } else {
            auto kernel = mlaLayerKernel<T>;
            static const Status attribute = allowSharedMemory("decode layer (fused, mla)", kMaxSmem, kernel);
            if (!attribute.ok())
                return attribute;
            st = launchLayer("decode layer (fused, mla)", kernel, *mla, mla_fused::makeParams(*mla), moe, s);
        }
    });
    return st;
}

}  // namespace tessera::kernels
