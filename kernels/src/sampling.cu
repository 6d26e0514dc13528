// Sampling kernels. Greedy is one block-wide argmax. Stochastic sampling sorts the whole
// vocabulary once (CUB radix sort, stable, so equal logits keep index order like the host
// sampler) and then one block computes top-k / top-p / the draw over the sorted list.
#include "tessera_kernels/sampling.h"

#include "launch_util.cuh"

#include <cub/device/device_radix_sort.cuh>

namespace tessera::kernels {

namespace {

constexpr int kThreads = 1024;

__global__ void penaltyKernel(float* out, int vocab, const int* seen, int count, float penalty, int* stamps, int stamp)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < count; i += gridDim.x * blockDim.x) {
        const int id = seen[i];
        if (id < 0 || id >= vocab)
            continue;
        if (atomicExch(&stamps[id], stamp) == stamp)
            continue;  // already penalised by another occurrence
        const float l = out[id];
        out[id] = l < 0.f ? l * penalty : l / penalty;
    }
}

constexpr int kArgmaxBlocks = 132;

// (value, index) maximum with the lower index on ties.
__device__ __forceinline__ void better(float& v, int& i, float ov, int oi)
{
    if (ov > v || (ov == v && oi < i)) {
        v = ov;
        i = oi;
    }
}

__device__ void blockArgmax(float& best, int& bi)
{
    __shared__ float sv[32];
    __shared__ int si[32];
    for (int o = 16; o > 0; o >>= 1)
        better(best, bi, __shfl_xor_sync(0xffffffffu, best, o), __shfl_xor_sync(0xffffffffu, bi, o));
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) {
        sv[warp] = best;
        si[warp] = bi;
    }
    __syncthreads();
    if (warp == 0) {
        const int warps = blockDim.x / 32;
        best = lane < warps ? sv[lane] : -INFINITY;
        bi = lane < warps ? si[lane] : 0x7fffffff;
        for (int o = 16; o > 0; o >>= 1)
            better(best, bi, __shfl_xor_sync(0xffffffffu, best, o), __shfl_xor_sync(0xffffffffu, bi, o));
    }
}

// Phase 1: one candidate per block; phase 2: the best candidate.
__global__ void argmaxPartialKernel(const float* logits, int vocab, float* values, int* indices)
{
    float best = -INFINITY;
    int bi = 0x7fffffff;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < vocab; i += gridDim.x * blockDim.x)
        better(best, bi, logits[i], i);
    blockArgmax(best, bi);
    if (threadIdx.x == 0) {
        values[blockIdx.x] = best;
        indices[blockIdx.x] = bi;
    }
}

__global__ void argmaxFinalKernel(const float* values, const int* indices, int count, int* token)
{
    float best = -INFINITY;
    int bi = 0x7fffffff;
    for (int i = threadIdx.x; i < count; i += blockDim.x)
        better(best, bi, values[i], indices[i]);
    blockArgmax(best, bi);
    if (threadIdx.x == 0)
        *token = bi == 0x7fffffff ? 0 : bi;  // all NaN: token 0, as the host argmax would
}

__global__ void iotaKernel(int* v, int n)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        v[i] = i;
}

__device__ double blockSumD(double v, double* scratch)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warpSumD(v);
    __syncthreads();
    if (lane == 0)
        scratch[warp] = v;
    __syncthreads();
    double t = lane < (blockDim.x >> 5) ? scratch[lane] : 0.0;
    return warpSumD(t);
}

// Sorted (descending) logits and their ids → the drawn token.
__global__ __launch_bounds__(kThreads) void drawKernel(const float* keys, const int* ids, int vocab, float invT,
                                                       float topP, int topK, double u, int* token)
{
    __shared__ double seg[kThreads];
    __shared__ double scratch[32];
    __shared__ int keepShared, cutShared, pickShared;
    if (threadIdx.x == 0) {
        int keep = vocab;
        if (topK > 0 && topK < vocab) {
            keep = topK;
            while (keep < vocab && keys[keep] == keys[keep - 1])
                ++keep;  // ties with the k-th logit survive
        }
        keepShared = keep;
        cutShared = keep;
        pickShared = 0x7fffffff;
    }
    __syncthreads();
    const int keep = keepShared;
    const float maxLogit = keys[0] * invT;
    const int per = (keep + kThreads - 1) / kThreads;
    const int b = min(keep, threadIdx.x * per), e = min(keep, b + per);
    auto prob = [&](int i) { return exp(static_cast<double>(keys[i] * invT - maxLogit)); };
    double mine = 0.0;
    for (int i = b; i < e; ++i)
        mine += prob(i);
    seg[threadIdx.x] = mine;
    const double sum = blockSumD(mine, scratch);
    __syncthreads();
    // Exclusive prefix of the segment sums (one thread: 1024 additions).
    if (threadIdx.x == 0) {
        double run = 0.0;
        for (int t = 0; t < kThreads; ++t) {
            const double v = seg[t];
            seg[t] = run;
            run += v;
        }
    }
    __syncthreads();
    if (topP < 1.f) {
        // cut = first i ≥ 1 whose tail mass (i .. keep−1) is ≤ 1 − topP.
        const double limit = 1.0 - static_cast<double>(topP);
        double tail = (sum - seg[threadIdx.x]) / sum;  // mass of [b, keep)
        for (int i = b; i < e; ++i) {
            if (i >= 1 && tail <= limit) {
                atomicMin(&cutShared, i);
                break;
            }
            tail -= prob(i) / sum;
        }
    }
    __syncthreads();
    const int cut = cutShared;
    // Mass of the kept prefix [0, cut) and the draw.
    double before = seg[threadIdx.x];
    double kept = 0.0;
    for (int i = b; i < min(e, cut); ++i)
        kept += prob(i);
    const double total = blockSumD(kept, scratch);
    const double r = u * total;
    for (int i = b; i < min(e, cut); ++i) {
        before += prob(i);
        if (before > r) {
            atomicMin(&pickShared, i);
            break;
        }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        const int pick = pickShared == 0x7fffffff ? cut - 1 : pickShared;
        *token = ids[pick];
    }
}

struct SortBuffers {
    float* keys;
    int* idsIn;
    int* idsOut;
    void* temp;
    std::size_t tempBytes;
};

std::size_t cubTempBytes(int vocab)
{
    std::size_t bytes = 0;
    cub::DeviceRadixSort::SortPairsDescending(nullptr, bytes, static_cast<const float*>(nullptr), static_cast<float*>(nullptr),
                                              static_cast<const int*>(nullptr), static_cast<int*>(nullptr), vocab);
    return bytes;
}

std::size_t align256(std::size_t v) { return (v + 255) & ~std::size_t(255); }

SortBuffers carve(void* workspace, int vocab)
{
    auto* base = static_cast<unsigned char*>(workspace);
    SortBuffers b{};
    const std::size_t fb = align256(sizeof(float) * vocab), ib = align256(sizeof(int) * vocab);
    b.keys = reinterpret_cast<float*>(base);
    b.idsIn = reinterpret_cast<int*>(base + fb);
    b.idsOut = reinterpret_cast<int*>(base + fb + ib);
    b.temp = base + fb + 2 * ib;
    b.tempBytes = cubTempBytes(vocab);
    return b;
}

}  // namespace

Status repetitionPenalty(const float* logits, float* out, int vocab, const std::int32_t* seen, int count, float penalty,
                         int* stamps, int stamp, Stream stream)
{
    cudaStream_t s = cuStream(stream);
    if (logits != out) {
        Status r = cudaStatus(cudaMemcpyAsync(out, logits, sizeof(float) * vocab, cudaMemcpyDeviceToDevice, s),
                              "repetition penalty: cudaMemcpyAsync");
        if (!r.ok())
            return r;
    }
    if (count <= 0 || penalty == 1.f)
        return {};
    penaltyKernel<<<(count + 255) / 256, 256, 0, s>>>(out, vocab, seen, count, penalty, stamps, stamp);
    return launchStatus("repetition penalty");
}

std::size_t argmaxWorkspaceBytes() { return kArgmaxBlocks * (sizeof(float) + sizeof(int)); }

Status argmaxToken(const float* logits, int vocab, std::int32_t* token, void* workspace, Stream stream)
{
    float* values = static_cast<float*>(workspace);
    int* indices = reinterpret_cast<int*>(values + kArgmaxBlocks);
    argmaxPartialKernel<<<kArgmaxBlocks, 256, 0, cuStream(stream)>>>(logits, vocab, values, indices);
    argmaxFinalKernel<<<1, 256, 0, cuStream(stream)>>>(values, indices, kArgmaxBlocks, token);
    return launchStatus("greedy argmax");
}

std::size_t samplingWorkspaceBytes(int vocab)
{
    return align256(sizeof(float) * vocab) + 2 * align256(sizeof(int) * vocab) + align256(cubTempBytes(vocab));
}

Status sampleToken(const SampleArgs& a, Stream stream)
{
    if (!(a.temperature > 0.f))
        return Status::failure("sampling: temperature must be positive (0 is greedy)");
    if (a.workspaceBytes < samplingWorkspaceBytes(a.vocab))
        return Status::failure("sampling: workspace too small");
    cudaStream_t s = cuStream(stream);
    SortBuffers b = carve(a.workspace, a.vocab);
    iotaKernel<<<(a.vocab + 255) / 256, 256, 0, s>>>(b.idsIn, a.vocab);
    Status r = launchStatus("sampling iota");
    if (!r.ok())
        return r;
    std::size_t tempBytes = b.tempBytes;
    r = cudaStatus(cub::DeviceRadixSort::SortPairsDescending(b.temp, tempBytes, a.logits, b.keys, b.idsIn, b.idsOut, a.vocab, 0,
                                                            static_cast<int>(sizeof(float) * 8), s),
                   "sampling: radix sort");
    if (!r.ok())
        return r;
    drawKernel<<<1, kThreads, 0, s>>>(b.keys, b.idsOut, a.vocab, 1.f / a.temperature, a.topP, a.topK, a.uniform, a.token);
    return launchStatus("sampling draw");
}

}  // namespace tessera::kernels
