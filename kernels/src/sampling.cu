// Sampling kernels. Greedy is one block-wide argmax. A draw with top-p or top-k needs the most
// likely tokens in order, but only down to the cut: the vocabulary's maximum and its soft-max
// denominator come from passes over every logit, which also gather the candidates within a fixed
// temperature-scaled distance of the maximum (a handful at the usual settings); one block sorts
// those and draws. The sorted prefix of the whole vocabulary and the candidates agree wherever the
// draw looks, so the token is the one a full sort gives; when the cut may lie past the candidates
// (or they overflow), the caller sorts the whole vocabulary (CUB radix sort, stable, so equal
// logits keep index order like the host sampler). Plain temperature sampling draws in index order
// over the whole vocabulary, as the host does.
#include "tessera_kernels/sampling.h"

#include "launch_util.cuh"
#include "trace.cuh"

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
    BlockTrace trace(TraceSite::ArgmaxPartial);
    gridDependencyWait();
    trace.waited();
    allowDependentLaunch();
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

__global__ void argmaxFinalKernel(const float* values, const int* indices, int count, int* token, int* hostToken)
{
    BlockTrace trace(TraceSite::ArgmaxFinal);
    gridDependencyWait();
    trace.waited();
    float best = -INFINITY;
    int bi = 0x7fffffff;
    for (int i = threadIdx.x; i < count; i += blockDim.x)
        better(best, bi, values[i], indices[i]);
    blockArgmax(best, bi);
    if (threadIdx.x == 0) {
        const int chosen = bi == 0x7fffffff ? 0 : bi;  // all NaN: token 0, as the host argmax would
        *token = chosen;
        if (hostToken)
            *hostToken = chosen;
    }
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

// The block's threads own contiguous segments of a list; with each thread's segment sum `mine`,
// seg[t] becomes the sum of the segments before t (one thread adds them up). Returns the total.
__device__ double segmentPrefix(double mine, double* seg /* kThreads */, double* scratch)
{
    seg[threadIdx.x] = mine;
    const double total = blockSumD(mine, scratch);
    __syncthreads();
    if (threadIdx.x == 0) {
        double run = 0.0;
        for (int t = 0; t < kThreads; ++t) {
            const double v = seg[t];
            seg[t] = run;
            run += v;
        }
    }
    __syncthreads();
    return total;
}

// Top-p, as the host sampler cuts: the first i ≥ 1 of [b, e) where the mass from i on,
// (base − weight before i) / base, is at most `limit`; `before` is the weight before b. Into *cut
// (the smallest over the block wins).
template <typename Prob>
__device__ void firstTopPCut(int b, int e, double before, double base, double limit, const Prob& prob, int* cut)
{
    for (int i = b; i < e; ++i) {
        if (i >= 1 && (base - before) / base <= limit) {
            atomicMin(cut, i);
            return;
        }
        before += prob(i);
    }
}

// The first i of [b, e) where the running weight, from `before`, passes r: into *pick (the
// smallest over the block wins).
template <typename Prob>
__device__ void firstPast(int b, int e, double before, double r, const Prob& prob, int* pick)
{
    for (int i = b; i < e; ++i) {
        before += prob(i);
        if (before > r) {
            atomicMin(pick, i);
            return;
        }
    }
}

// The draw from the kept prefix [0, cut) of the sorted weights, each thread holding [b, e) and
// the weight before b: the mass of the prefix, then the first index whose running weight passes
// u · that mass (cut − 1 when rounding leaves none). Every thread gets the index.
template <typename Prob>
__device__ int drawFromPrefix(int b, int e, int cut, double before, double u, const Prob& prob, double* scratch, int* pickShared)
{
    double kept = 0.0;
    for (int i = b; i < min(e, cut); ++i)
        kept += prob(i);
    const double total = blockSumD(kept, scratch);
    firstPast(b, min(e, cut), before, u * total, prob, pickShared);
    __syncthreads();
    return *pickShared == 0x7fffffff ? cut - 1 : *pickShared;
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
    const float maxLogit = keys[0];
    const int per = (keep + kThreads - 1) / kThreads;
    const int b = min(keep, threadIdx.x * per), e = min(keep, b + per);
    auto prob = [&](int i) { return exp(static_cast<double>((keys[i] - maxLogit) * invT)); };  // as the host rounds
    double mine = 0.0;
    for (int i = b; i < e; ++i)
        mine += prob(i);
    const double sum = segmentPrefix(mine, seg, scratch);
    if (topP < 1.f)
        firstTopPCut(b, e, seg[threadIdx.x], sum, 1.0 - static_cast<double>(topP), prob, &cutShared);
    __syncthreads();
    const int pick = drawFromPrefix(b, e, cutShared, seg[threadIdx.x], u, prob, scratch, &pickShared);
    if (threadIdx.x == 0)
        *token = ids[pick];
}

// Candidates: tokens whose temperature-scaled logit lies within kCandidateRange of the maximum
// (relative weight ≥ e^-30: whatever lies beyond weighs less than 1e-8 of the maximum's weight,
// summed over the whole vocabulary).
constexpr float kCandidateRange = 30.f;
constexpr int kCandidateCapacity = 4096;

// Sum of the weights exp((logit − max)·invT) over the vocabulary (per block, in double, as the
// host sums them), and the candidates appended to keys / ids (count: zero before the launch).
__global__ void candidatesKernel(const float* logits, int vocab, float invT, const float* blockMax, int blocks, double* blockSums,
                                 float* keys, int* ids, int* count)
{
    __shared__ double scratch[32];
    __shared__ float maxShared;
    if (threadIdx.x < 32) {
        float m = -INFINITY;
        for (int i = threadIdx.x; i < blocks; i += 32)
            m = fmaxf(m, blockMax[i]);
        m = warpMax(m);
        if (threadIdx.x == 0)
            maxShared = m;
    }
    __syncthreads();
    const float maxLogit = maxShared;
    double sum = 0.0;
    const int lane = threadIdx.x & 31;
    // Whole warps step through the vocabulary together, so that one atomic per warp reserves the
    // slots of all its candidates (a flat distribution makes most tokens candidates).
    const int stride = gridDim.x * blockDim.x;
    for (int base = blockIdx.x * blockDim.x + (threadIdx.x & ~31); base < vocab; base += stride) {
        const int i = base + lane;
        const float l = i < vocab ? logits[i] : -INFINITY;
        const float z = (l - maxLogit) * invT;
        if (i < vocab)
            sum += exp(static_cast<double>(z));
        const bool candidate = i < vocab && z >= -kCandidateRange;
        const unsigned mask = __ballot_sync(0xffffffffu, candidate);
        int first = 0;
        if (lane == 0 && mask)
            first = atomicAdd(count, __popc(mask));
        first = __shfl_sync(0xffffffffu, first, 0);
        if (candidate) {
            const int slot = first + __popc(mask & ((1u << lane) - 1u));
            if (slot < kCandidateCapacity) {
                keys[slot] = l;
                ids[slot] = i;
            }
        }
    }
    sum = blockSumD(sum, scratch);
    if (threadIdx.x == 0)
        blockSums[blockIdx.x] = sum;
}

// (key, id) pairs in descending key order, ties by ascending id: a before b.
__device__ __forceinline__ bool before(float ka, int ia, float kb, int ib) { return ka > kb || (ka == kb && ia < ib); }

// The candidates sorted (bitonic, in shared memory), then top-k, top-p and the draw as drawKernel.
// needsSort = 1 (and no token) when the candidates cannot decide the draw.
__global__ __launch_bounds__(kThreads) void drawCandidatesKernel(const float* candKeys, const int* candIds, const int* count,
                                                                 const double* blockSums, int blocks, int vocab, float invT,
                                                                 float topP, int topK, double u, int* token, int* needsSort)
{
    __shared__ float keys[kCandidateCapacity];
    __shared__ int ids[kCandidateCapacity];
    __shared__ double seg[kThreads];
    __shared__ double scratch[32];
    __shared__ double totalShared;
    __shared__ int keepShared, cutShared, pickShared, failShared;
    const int found = *count;
    if (found < 1 || found > kCandidateCapacity) {  // none: no finite maximum
        if (threadIdx.x == 0)
            *needsSort = 1;
        return;
    }
    const int n = found;
    int size = 1;
    while (size < n)
        size <<= 1;
    for (int i = threadIdx.x; i < size; i += kThreads) {
        keys[i] = i < n ? candKeys[i] : -INFINITY;
        ids[i] = i < n ? candIds[i] : 0x7fffffff;
    }
    if (threadIdx.x == 0) {
        double t = 0.0;
        for (int b = 0; b < blocks; ++b)
            t += blockSums[b];
        totalShared = t;
        failShared = 0;
        pickShared = 0x7fffffff;
    }
    __syncthreads();
    for (int k = 2; k <= size; k <<= 1)
        for (int j = k >> 1; j > 0; j >>= 1) {
            for (int i = threadIdx.x; i < size; i += kThreads) {
                const int l = i ^ j;
                if (l > i) {
                    // Runs of k alternate in direction; the last merge (k = size) is one run in order.
                    const bool reversed = (i & k) != 0;
                    const bool swap = reversed ? before(keys[i], ids[i], keys[l], ids[l]) : before(keys[l], ids[l], keys[i], ids[i]);
                    if (swap) {
                        const float tk = keys[i];
                        keys[i] = keys[l];
                        keys[l] = tk;
                        const int ti = ids[i];
                        ids[i] = ids[l];
                        ids[l] = ti;
                    }
                }
            }
            __syncthreads();
        }
    if (threadIdx.x == 0) {
        int keep = n;
        if (topK > 0) {
            if (topK > n && n < vocab) {
                failShared = 1;  // top-k reaches past the candidates
            } else {
                keep = min(topK, n);
                while (keep < n && keys[keep] == keys[keep - 1])
                    ++keep;  // ties with the k-th logit survive (all of them are candidates)
            }
        }
        keepShared = keep;
        cutShared = keep;
    }
    __syncthreads();
    if (failShared) {
        if (threadIdx.x == 0)
            *needsSort = 1;
        return;
    }
    const int keep = keepShared;
    const float maxLogit = keys[0];
    const int per = (keep + kThreads - 1) / kThreads;
    const int b = min(keep, threadIdx.x * per), e = min(keep, b + per);
    auto prob = [&](int i) { return exp(static_cast<double>((keys[i] - maxLogit) * invT)); };
    double mine = 0.0;
    for (int i = b; i < e; ++i)
        mine += prob(i);
    const double keptSum = segmentPrefix(mine, seg, scratch);
    // Top-k: the kept mass is the base; else the whole vocabulary's.
    const double base = topK > 0 ? keptSum : totalShared;
    if (topP < 1.f) {
        const double limit = 1.0 - static_cast<double>(topP);
        firstTopPCut(b, e, seg[threadIdx.x], base, limit, prob, &cutShared);
        __syncthreads();
        if (threadIdx.x == 0 && cutShared == keep && keep == n && n < vocab) {
            // The first position past the candidates: the cut if the candidates hold enough mass,
            // else it lies further on and only a full sort finds it.
            if (!(n >= 1 && (base - keptSum) / base <= limit))
                failShared = 1;
        }
        __syncthreads();
        if (failShared) {
            if (threadIdx.x == 0)
                *needsSort = 1;
            return;
        }
    }
    const int pick = drawFromPrefix(b, e, cutShared, seg[threadIdx.x], u, prob, scratch, &pickShared);
    if (threadIdx.x == 0) {
        *token = ids[pick];
        *needsSort = 0;
    }
}

// Plain temperature sampling: the first index whose running weight (in index order) passes
// u · total, as the host draws.
__global__ __launch_bounds__(kThreads) void drawInOrderKernel(const float* logits, int vocab, float invT, const float* blockMax,
                                                              int blocks, double u, int* token, int* needsSort)
{
    __shared__ double seg[kThreads];
    __shared__ double scratch[32];
    __shared__ float maxShared;
    __shared__ int pickShared;
    if (threadIdx.x < 32) {
        float m = -INFINITY;
        for (int i = threadIdx.x; i < blocks; i += 32)
            m = fmaxf(m, blockMax[i]);
        m = warpMax(m);
        if (threadIdx.x == 0) {
            maxShared = m;
            pickShared = 0x7fffffff;
        }
    }
    __syncthreads();
    const float maxLogit = maxShared;
    const int per = (vocab + kThreads - 1) / kThreads;
    const int b = min(vocab, threadIdx.x * per), e = min(vocab, b + per);
    auto prob = [&](int i) { return exp(static_cast<double>((logits[i] - maxLogit) * invT)); };
    double mine = 0.0;
    for (int i = b; i < e; ++i)
        mine += prob(i);
    const double total = segmentPrefix(mine, seg, scratch);
    firstPast(b, e, seg[threadIdx.x], u * total, prob, &pickShared);
    __syncthreads();
    if (threadIdx.x == 0) {
        *token = pickShared == 0x7fffffff ? vocab - 1 : pickShared;
        *needsSort = 0;
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

Status setTraceSinkSampling(const TraceSink& s) { return setThisFilesTraceSink(s); }

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

Status argmaxToken(const float* logits, int vocab, std::int32_t* token, void* workspace, Stream stream, std::int32_t* hostToken)
{
    float* values = static_cast<float*>(workspace);
    int* indices = reinterpret_cast<int*>(values + kArgmaxBlocks);
    // Overlapped: the final pass is resident when the partial one ends (a plain launch waited ~6 µs).
    const Status partial = launchOverlapped("greedy argmax", argmaxPartialKernel, kArgmaxBlocks, 256, 0, cuStream(stream), logits, vocab,
                                            values, indices);
    if (!partial.ok())
        return partial;
    return launchOverlapped("greedy argmax", argmaxFinalKernel, 1, 256, 0, cuStream(stream), values, indices, kArgmaxBlocks, token,
                            hostToken);
}

namespace {

// The candidate path's scratch: per-block maxima (and their indices), per-block sums, the count,
// the candidates.
struct CandidateBuffers {
    float* blockMax;
    int* blockArg;
    double* blockSums;
    int* count;
    float* keys;
    int* ids;
};

std::size_t candidateBytes()
{
    return align256(kArgmaxBlocks * (sizeof(float) + sizeof(int))) + align256(kArgmaxBlocks * sizeof(double)) + align256(sizeof(int)) +
           align256(kCandidateCapacity * sizeof(float)) + align256(kCandidateCapacity * sizeof(int));
}

CandidateBuffers carveCandidates(void* workspace)
{
    auto* base = static_cast<unsigned char*>(workspace);
    CandidateBuffers c{};
    c.blockMax = reinterpret_cast<float*>(base);
    c.blockArg = reinterpret_cast<int*>(c.blockMax + kArgmaxBlocks);
    base += align256(kArgmaxBlocks * (sizeof(float) + sizeof(int)));
    c.blockSums = reinterpret_cast<double*>(base);
    base += align256(kArgmaxBlocks * sizeof(double));
    c.count = reinterpret_cast<int*>(base);
    base += align256(sizeof(int));
    c.keys = reinterpret_cast<float*>(base);
    base += align256(kCandidateCapacity * sizeof(float));
    c.ids = reinterpret_cast<int*>(base);
    return c;
}

}  // namespace

std::size_t samplingWorkspaceBytes(int vocab)
{
    const std::size_t sorted =
        align256(sizeof(float) * vocab) + 2 * align256(sizeof(int) * vocab) + align256(cubTempBytes(vocab));
    return std::max(sorted, candidateBytes());
}

Status sampleToken(const SampleArgs& a, Stream stream)
{
    if (!(a.temperature > 0.f))
        return Status::failure("sampling: temperature must be positive (0 is greedy)");
    if (a.workspaceBytes < samplingWorkspaceBytes(a.vocab))
        return Status::failure("sampling: workspace too small");
    if (!a.needsSort)
        return Status::failure("sampling: needsSort must point to a device int");
    cudaStream_t s = cuStream(stream);
    const CandidateBuffers c = carveCandidates(a.workspace);
    const float invT = 1.f / a.temperature;
    argmaxPartialKernel<<<kArgmaxBlocks, 256, 0, s>>>(a.logits, a.vocab, c.blockMax, c.blockArg);
    if (a.topK <= 0 && a.topP >= 1.f) {
        drawInOrderKernel<<<1, kThreads, 0, s>>>(a.logits, a.vocab, invT, c.blockMax, kArgmaxBlocks, a.uniform, a.token, a.needsSort);
        return launchStatus("sampling draw");
    }
    Status r = cudaStatus(cudaMemsetAsync(c.count, 0, sizeof(int), s), "sampling: cudaMemsetAsync");
    if (!r.ok())
        return r;
    candidatesKernel<<<kArgmaxBlocks, 256, 0, s>>>(a.logits, a.vocab, invT, c.blockMax, kArgmaxBlocks, c.blockSums, c.keys, c.ids,
                                                   c.count);
    drawCandidatesKernel<<<1, kThreads, 0, s>>>(c.keys, c.ids, c.count, c.blockSums, kArgmaxBlocks, a.vocab, invT, a.topP, a.topK,
                                                a.uniform, a.token, a.needsSort);
    return launchStatus("sampling draw");
}

Status sampleTokenSorted(const SampleArgs& a, Stream stream)
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
