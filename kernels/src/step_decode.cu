// One cooperative kernel per decode step (see decode_step.h): the layer halves of
// mha_decode.cuh / mla_decode.cuh and moe_decode.cuh in a loop over a table of per-layer
// parameters in device memory, grid barriers between them, and the step's own pieces (embedding
// row, first input norm, lm_head) split over the blocks by rows.
#include "tessera_kernels/decode_step.h"

#include "mha_decode.cuh"
#include "mla_decode.cuh"
#include "moe_decode.cuh"

#include <algorithm>
#include <vector>

namespace tessera::kernels {

namespace {

constexpr int kThreads = kCoopThreads, kWarps = kCoopWarps, kMaxSmem = kCoopMaxSmem;

template <typename AttentionParams>
struct StepLayer {
    AttentionParams attention;
    moe_fused::Params moe;
};

struct StepParams {
    const void* table;
    int layers;
    const bf16* embed;
    const int* token;
    const float* inputNorm;
    float eps;
    void* x;
    float* h;
    int H;
    const bf16* lmHead;
    int vocab;
    float* logits;
    int* length;
    unsigned* sync;
    bool vec;
};

template <typename T, typename AttentionParams, typename AttentionHalf>
__device__ __forceinline__ void step(const StepParams& p, float* smem, AttentionHalf attentionHalf)
{
    __shared__ float scratch[33];
    const int G = gridDim.x, b = blockIdx.x, H = p.H;
    const int j0 = static_cast<int>(static_cast<long long>(H) * b / G), j1 = static_cast<int>(static_cast<long long>(H) * (b + 1) / G);
    T* x = static_cast<T*>(p.x);

    // The embedding row into the residual and the first layer's input norm: every block sums the
    // whole row (from the table, which no one writes) and writes its slice of both.
    const bf16* row = p.embed + static_cast<long long>(*p.token) * H;
    float ss = 0.f;
    for (int k = threadIdx.x; k < H; k += kThreads) {
        const float v = __bfloat162float(row[k]);
        ss = fmaf(v, v, ss);
    }
    ss = blockSum(ss, scratch);
    const float inv = rsqrtf(ss / H + p.eps);
    for (int j = j0 + threadIdx.x; j < j1; j += kThreads) {
        const float v = __bfloat162float(row[j]);
        p.h[j] = v;
        x[j] = fromFloat<T>(p.inputNorm[j] * (v * inv));
    }
    gridSync(p.sync);

    const StepLayer<AttentionParams>* layers = static_cast<const StepLayer<AttentionParams>*>(p.table);
    for (int l = 0; l < p.layers; ++l) {
        attentionHalf(layers[l].attention, smem);
        gridSync(p.sync);  // the residual is whole before the MoE half normalises it
        moe_fused::moeLayer<T>(layers[l].moe, smem);
        gridSync(p.sync);  // and the next input (or the final norm) is written
    }

    // lm_head over the final norm, rows split over the blocks.
    float* xs = smem;
    for (int k = threadIdx.x; k < H; k += kThreads)
        xs[k] = loadL2(x + k);
    __syncthreads();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int r0 = static_cast<int>(static_cast<long long>(p.vocab) * b / G), r1 = static_cast<int>(static_cast<long long>(p.vocab) * (b + 1) / G);
    for (int r = r0 + 2 * warp; r < r1; r += 2 * kWarps) {
        const int rb = min(r + 1, r1 - 1);
        const bf16* const rows[2] = {p.lmHead + static_cast<long long>(r) * H, p.lmHead + static_cast<long long>(rb) * H};
        const float* const xr[2] = {xs, xs};
        float d[2];
        warpDots<2, 8>(rows, xr, H, p.vec, d);
        if (lane == 0) {
            p.logits[r] = d[0];
            if (rb != r)
                p.logits[rb] = d[1];
        }
    }
    // Every block read the position at the start of each attention half, long before this.
    if (b == 0 && threadIdx.x == 0)
        *p.length += 1;
}

template <typename T>
__global__ __launch_bounds__(kThreads) void mhaStepKernel(StepParams p)
{
    extern __shared__ __align__(16) float smem[];
    step<T, mha_fused::Params>(p, smem, [](const mha_fused::Params& a, float* s) { mha_fused::mhaAttentionHalf<T>(a, s); });
}

template <typename T>
__global__ __launch_bounds__(kThreads) void mlaStepKernel(StepParams p)
{
    extern __shared__ __align__(16) float smem[];
    step<T, mla_fused::Params>(p, smem, [](const mla_fused::Params& a, float* s) { mla_fused::mlaAttentionHalf<T>(a, s); });
}

mha_fused::Params attentionParams(const MhaDecodeArgs& a) { return mha_fused::makeParams(a); }
mla_fused::Params attentionParams(const MlaDecodeArgs& a) { return mla_fused::makeParams(a); }

StepParams stepParams(const DecodeStepArgs& a)
{
    return StepParams{a.layerTable, a.layers, reinterpret_cast<const bf16*>(a.embed), a.token, a.inputNorm, a.eps, a.x,
                      a.residual, a.hidden, reinterpret_cast<const bf16*>(a.lmHead), a.vocab, a.logits, a.lengthOnDevice, a.sync,
                      a.hidden % 8 == 0 && aligned16(a.lmHead)};
}

// The grid (as cooperativeGrid chooses it for the largest shared memory of any part) and the
// per-layer parameters settled for it.
template <typename Args, typename AttentionParams, typename Kernel>
Status plan(const Args* attention, const DecodeStepArgs& a, Kernel kernel, int& blocks, std::size_t& smem,
            std::vector<StepLayer<AttentionParams>>& table)
{
    const auto smemFor = [&](int n) {
        std::size_t bytes = static_cast<std::size_t>(a.hidden) * sizeof(float);
        for (int l = 0; l < a.layers; ++l) {
            AttentionParams probe = attentionParams(attention[l]);
            bytes = std::max({bytes, planGrid(attention[l], n, probe), moe_fused::smemBytes(a.moe[l], n)});
        }
        return bytes;
    };
    const Status st = cooperativeGrid("decode step (fused)", kernel, kThreads, kMaxSmem, smemFor, blocks, smem);
    if (!st.ok())
        return st;
    if (blocks > kMoeDecodeMaxBlocks)
        return Status::failure("decode step (fused): more blocks than the MoE halves' partial sums hold");
    table.clear();
    for (int l = 0; l < a.layers; ++l) {
        StepLayer<AttentionParams> layer{attentionParams(attention[l]), moe_fused::makeParams(a.moe[l])};
        planGrid(attention[l], blocks, layer.attention);
        table.push_back(layer);
    }
    return {};
}

template <typename Run>
Status dispatch(const DecodeStepArgs& a, const Run& run)
{
    Status st;
    TESSERA_DISPATCH_DTYPE(a.type, T, {
        if (a.mha) {
            auto kernel = mhaStepKernel<T>;
            static const Status attribute = allowSharedMemory("decode step (fused)", kMaxSmem, kernel);
            if (!attribute.ok())
                return attribute;
            std::vector<StepLayer<mha_fused::Params>> table;
            st = run(kernel, a.mha, table);
        } else {
            auto kernel = mlaStepKernel<T>;
            static const Status attribute = allowSharedMemory("decode step (fused)", kMaxSmem, kernel);
            if (!attribute.ok())
                return attribute;
            std::vector<StepLayer<mla_fused::Params>> table;
            st = run(kernel, a.mla, table);
        }
    });
    return st;
}

}  // namespace

bool decodeStepSupports(const DecodeStepArgs& a)
{
    if (a.layers <= 0 || !a.mha == !a.mla || !a.moe || !a.embed || !a.token || !a.lmHead || !a.logits || !a.lengthOnDevice ||
        !a.layerTable || !a.x || !a.residual || !a.sync || a.hidden <= 0 || a.vocab <= 0)
        return false;
    for (int l = 0; l < a.layers; ++l) {
        const MoeDecodeArgs& m = a.moe[l];
        const RouteArgs& r = m.route;
        // Every MoE half leaves the next input (or the final norm) in x, on the one residual.
        if (!m.nextNorm || m.normOut != a.x || m.residual != a.residual || m.hidden != a.hidden)
            return false;
        const void* x = a.mha ? a.mha[l].x : a.mla[l].x;
        const float* residual = a.mha ? a.mha[l].residual : a.mla[l].residual;
        const int hidden = a.mha ? a.mha[l].hidden : a.mla[l].hidden;
        if (x != a.x || residual != a.residual || hidden != a.hidden)
            return false;
        if (!moeDecodeSupports(r.experts, r.k, r.sharedExperts, m.hidden, m.inter) || m.xType != a.type || m.sync != a.sync ||
            (r.k > 0 && r.routing == Routing::NoAuxTc && (r.groups > 32 || r.groups <= 0 || r.experts % r.groups)))
            return false;
        if (a.mha ? !mhaDecodeSupports(a.mha[l].hidden, a.mha[l].heads, a.mha[l].kvHeads, a.mha[l].headDim, a.mha[l].capacity) ||
                        a.mha[l].type != a.type || a.mha[l].sync != a.sync
                  : !mlaDecodeSupports(a.mla[l].hidden, a.mla[l].heads, a.mla[l].nope, a.mla[l].rope, a.mla[l].rank, a.mla[l].vDim,
                                       a.mla[l].capacity) ||
                        a.mla[l].type != a.type || a.mla[l].sync != a.sync)
            return false;
    }
    return true;
}

std::size_t decodeStepTableBytes(int layers, bool mla)
{
    return static_cast<std::size_t>(layers) * (mla ? sizeof(StepLayer<mla_fused::Params>) : sizeof(StepLayer<mha_fused::Params>));
}

Status uploadDecodeStep(const DecodeStepArgs& a, Stream stream)
{
    if (!decodeStepSupports(a))
        return Status::failure("decode step (fused): unsupported model or arguments");
    return dispatch(a, [&](auto kernel, const auto* attention, auto& table) {
        int blocks = 0;
        std::size_t smem = 0;
        Status st = plan(attention, a, kernel, blocks, smem, table);
        // On the stream the step runs on, and waited for: `table` is a local vector.
        if (st.ok())
            st = cudaStatus(cudaMemcpyAsync(a.layerTable, table.data(), table.size() * sizeof(table[0]), cudaMemcpyHostToDevice,
                                            cuStream(stream)),
                            "decode step (fused): the layer table");
        if (st.ok())
            st = cudaStatus(cudaStreamSynchronize(cuStream(stream)), "decode step (fused): the layer table");
        return st;
    });
}

Status decodeStep(const DecodeStepArgs& a, Stream stream)
{
    if (!decodeStepSupports(a))
        return Status::failure("decode step (fused): unsupported model or arguments");
    return dispatch(a, [&](auto kernel, const auto* attention, auto& table) {
        int blocks = 0;
        std::size_t smem = 0;
        const Status st = plan(attention, a, kernel, blocks, smem, table);
        if (!st.ok())
            return st;
        return launchCooperative("decode step (fused)", kernel, blocks, kThreads, smem, cuStream(stream), stepParams(a));
    });
}

}  // namespace tessera::kernels
