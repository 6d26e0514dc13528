#pragma once
// The one-warp routing of a token from its router logits, shared by the router kernels (moe.cu)
// and the fused decode layer (moe_decode.cu).
#include "tessera_kernels/moe.h"

#include "launch_util.cuh"

namespace tessera::kernels {

namespace {

constexpr int kMaxExperts = 256;
constexpr int kPerLane = kMaxExperts / 32;
constexpr int kMaxK = 16;

// Warp-wide argmax of (v, index); ties → lower index. Every lane gets the result.
__device__ __forceinline__ void warpArgmax(float& v, int& i)
{
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, v, o);
        const int oi = __shfl_xor_sync(0xffffffffu, i, o);
        if (ov > v || (ov == v && oi < i)) {
            v = ov;
            i = oi;
        }
    }
}

// An unsigned key ordered as the score v (a larger key for a larger score, equal keys for equal
// scores, −0 as +0); NaN and −inf give 0, below every other key, as they are never chosen.
__device__ __forceinline__ unsigned scoreKey(float v)
{
    if (!(v > -INFINITY))
        return 0u;
    const unsigned b = __float_as_uint(v + 0.f);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ __forceinline__ unsigned warpMaxKey(unsigned v)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    return __reduce_max_sync(0xffffffffu, v);
#else
    for (int o = 16; o > 0; o >>= 1)
        v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
#endif
}

// Round r of the top-k by keys (scoreKey; P per lane, experts lane + 32·j): one integer maximum
// over the warp (redux.sync) and one ballot per expert slot, issued together, for the lowest
// expert index holding it (the argmax rounds' rule for ties); that expert's key is cleared.
// Returns it (the same in every lane).
template <int P>
__device__ __forceinline__ int keyedRound(unsigned (&key)[P], int r, int E, int lane)
{
    unsigned best = 0u;
#pragma unroll
    for (int j = 0; j < P; ++j)
        best = max(best, key[j]);
    const unsigned m = warpMaxKey(best);
    unsigned hit[P];
#pragma unroll
    for (int j = 0; j < P; ++j)
        hit[j] = __ballot_sync(0xffffffffu, m != 0u && key[j] == m);
    int bi = 1 << 30;
#pragma unroll
    for (int j = P - 1; j >= 0; --j)
        if (hit[j])
            bi = 32 * j + __ffs(hit[j]) - 1;
    if (bi >= E)  // no score compared (NaN hidden states): a valid index all the same, never past the experts
        bi = min(r, E - 1);
#pragma unroll
    for (int j = 0; j < P; ++j)
        if (lane + 32 * j == bi)
            key[j] = 0u;
    return bi;
}

// A token's scores (soft-max or sigmoid of its router logits `row`) and the values the top-k
// compares (the scores, plus the bias with noaux_tc): P per lane, experts lane + 32·j, −inf and 0
// past the experts.
template <int P>
__device__ __forceinline__ void routeScores(const RouteArgs& a, const float* row, int lane, float (&s)[P], float (&choice)[P])
{
    const int E = a.experts;
#pragma unroll
    for (int j = 0; j < P; ++j) {
        const int e = lane + 32 * j;
        s[j] = e < E ? row[e] : -INFINITY;
    }
    if (a.scoring == Scoring::Softmax) {
        float mx = -INFINITY;
#pragma unroll
        for (int j = 0; j < P; ++j)
            mx = fmaxf(mx, s[j]);
        mx = warpMax(mx);
        double sum = 0.0;
#pragma unroll
        for (int j = 0; j < P; ++j) {
            const int e = lane + 32 * j;
            s[j] = e < E ? expf(s[j] - mx) : 0.f;
            sum += s[j];
        }
        sum = warpSumD(sum);
        const float inv = static_cast<float>(1.0 / sum);
#pragma unroll
        for (int j = 0; j < P; ++j)
            s[j] *= inv;
    } else {
#pragma unroll
        for (int j = 0; j < P; ++j)
            s[j] = 1.f / (1.f + expf(-s[j]));
    }
#pragma unroll
    for (int j = 0; j < P; ++j) {
        const int e = lane + 32 * j;
        choice[j] = e < E ? s[j] + (a.routing == Routing::NoAuxTc ? a.bias[e] : 0.f) : -INFINITY;
    }
}

// Routing of token t from its router logits `row` (one warp): row t of a.idx / a.weight (global
// or shared memory), the k routed experts then the shared ones. P experts per lane (lane + 32·j)
// and at most KMAX routed experts, both known when compiling: every loop unrolls and the chosen
// experts and their weights stay in registers. Experts past E enter as −inf scores and zero
// weights, so every P ≥ ⌈E / 32⌉ gives the same result, bit for bit.
template <int P, int KMAX>
__device__ __forceinline__ void routeRowOf(const RouteArgs& a, int t, const float* row, int lane, bool keyed)
{
    const int E = a.experts;
    float s[P], choice[P];
    routeScores<P>(a, row, lane, s, choice);
    if (a.routing == Routing::NoAuxTc && a.topkGroups < a.groups) {
        const int per = E / a.groups;
        float groupScore[32];
        for (int g = 0; g < a.groups && g < 32; ++g) {
            float best = -INFINITY;
            int bi = 1 << 30;
#pragma unroll
            for (int j = 0; j < P; ++j) {
                const int e = lane + 32 * j;
                if (e < E && e / per == g && choice[j] > best) {
                    best = choice[j];
                    bi = e;
                }
            }
            warpArgmax(best, bi);
            float second = -INFINITY;
            int si = 1 << 30;
#pragma unroll
            for (int j = 0; j < P; ++j) {
                const int e = lane + 32 * j;
                if (e < E && e / per == g && e != bi && choice[j] > second) {
                    second = choice[j];
                    si = e;
                }
            }
            warpArgmax(second, si);
            groupScore[g] = best + second;
        }
        unsigned kept = 0;
        for (int r = 0; r < a.topkGroups; ++r) {
            int bg = -1;
            for (int g = 0; g < a.groups && g < 32; ++g)
                if (!(kept & (1u << g)) && (bg < 0 || groupScore[g] > groupScore[bg]))
                    bg = g;
            kept |= 1u << bg;
        }
#pragma unroll
        for (int j = 0; j < P; ++j) {
            const int e = lane + 32 * j;
            if (e < E && !(kept & (1u << (e / per))))
                choice[j] = 0.f;  // the reference masks with 0.0, not −inf
        }
    }
    int chosen[KMAX];
    float w[KMAX];
    if (keyed) {
        // Top-k by keys (scoreKey): a round is one integer max over the warp (redux.sync) and one
        // ballot per expert slot, issued together, for the lowest expert index holding it: the
        // experts, ties and fallbacks of the argmax rounds below, with two dependent warp
        // exchanges a round where those take six. The weights are fetched after the rounds, their
        // shuffles independent of each other.
        unsigned key[P];
#pragma unroll
        for (int j = 0; j < P; ++j)
            key[j] = lane + 32 * j < E ? scoreKey(choice[j]) : 0u;
#pragma unroll
        for (int r = 0; r < KMAX; ++r) {
            if (r >= a.k)
                break;
            chosen[r] = keyedRound<P>(key, r, E, lane);
        }
#pragma unroll
        for (int r = 0; r < KMAX; ++r) {
            if (r >= a.k)
                break;
            float mine = 0.f;
#pragma unroll
            for (int j = 0; j < P; ++j)
                if (lane + 32 * j == chosen[r])
                    mine = s[j];
            w[r] = __shfl_sync(0xffffffffu, mine, chosen[r] & 31);
        }
    }
    // Top-k by repeated warp argmax; the lane that holds the winner hands its unbiased score to
    // the warp with the same shuffle that follows, so that the weights need no search afterwards.
#pragma unroll
    for (int r = 0; r < KMAX; ++r) {
        if (keyed || r >= a.k)
            break;
        float best = -INFINITY;
        int bi = 1 << 30;
#pragma unroll
        for (int j = 0; j < P; ++j) {
            const int e = lane + 32 * j;
            if (e < E && choice[j] > best) {
                best = choice[j];
                bi = e;
            }
        }
        warpArgmax(best, bi);
        if (bi >= E)  // no score compared (NaN hidden states): a valid index all the same, never past the experts
            bi = min(r, E - 1);
        float mine = 0.f;
#pragma unroll
        for (int j = 0; j < P; ++j)
            if (lane + 32 * j == bi) {
                mine = s[j];
                choice[j] = -INFINITY;
            }
        chosen[r] = bi;
        w[r] = __shfl_sync(0xffffffffu, mine, bi & 31);
    }
    // Weights: the unbiased scores of the chosen experts, in increasing expert order (an insertion
    // sort; past the first pair in order nothing moves, as the front is sorted).
#pragma unroll
    for (int i = 1; i < KMAX; ++i)
#pragma unroll
        for (int m = i; m > 0; --m) {
            if (i >= a.k || chosen[m - 1] <= chosen[m])
                continue;
            const int tc = chosen[m];
            chosen[m] = chosen[m - 1];
            chosen[m - 1] = tc;
            const float tw = w[m];
            w[m] = w[m - 1];
            w[m - 1] = tw;
        }
    float sum = 0.f;
#pragma unroll
    for (int i = 0; i < KMAX; ++i)
        if (i < a.k)
            sum += w[i];
    if (lane == 0) {
        const bool renormalize = a.k > 1 && a.normalize;
        const int width = a.k + a.sharedExperts;
#pragma unroll
        for (int i = 0; i < KMAX; ++i) {
            if (i >= a.k)
                break;
            a.idx[static_cast<long long>(t) * width + i] = chosen[i];
            a.weight[static_cast<long long>(t) * width + i] = renormalize ? w[i] / (sum + 1e-20f) * a.scaling : w[i] * a.scaling;
        }
        for (int i = 0; i < a.sharedExperts; ++i) {
            a.idx[static_cast<long long>(t) * width + a.k + i] = E + i;
            a.weight[static_cast<long long>(t) * width + a.k + i] = 1.f;
        }
    }
}

// routeRowOf's result (keyed top-k, no expert groups) with k = K known when compiling, in fewer
// instructions: a routing runs once a layer from a cold instruction cache, where its time follows
// its length (2,234 cycles warm and 4,743 cold for routeRowOf<2, 8> on an H200). The rounds
// are the keyed rounds without their bound checks; then lane i < K takes the i-th chosen expert,
// its rank in expert order (a stable one, as the insertion sort's) by compares, the weights'
// sum in that order from one ballot and one shuffle per rank, and stores its own entry: no sort,
// and the K stores and divisions side by side in K lanes instead of one after another in lane 0.
template <int P, int K>
__device__ __forceinline__ void routeRowFixed(const RouteArgs& a, int t, const float* row, int lane)
{
    const int E = a.experts;
    float s[P], choice[P];
    routeScores<P>(a, row, lane, s, choice);
    unsigned key[P];
#pragma unroll
    for (int j = 0; j < P; ++j)
        key[j] = lane + 32 * j < E ? scoreKey(choice[j]) : 0u;
    int chosen[K];
#pragma unroll
    for (int r = 0; r < K; ++r)
        chosen[r] = keyedRound<P>(key, r, E, lane);
    // Lane i < K: the i-th chosen expert and its unbiased score.
    int mine = chosen[0];
#pragma unroll
    for (int r = 1; r < K; ++r)
        if (lane == r)
            mine = chosen[r];
    float w = 0.f;  // the score of expert `mine`: lane mine % 32 holds it as its s[mine / 32]
#pragma unroll
    for (int j = 0; j < P; ++j) {
        const float v = __shfl_sync(0xffffffffu, s[j], mine & 31);
        if (mine >> 5 == j)
            w = v;
    }
    int rank = 0;
#pragma unroll
    for (int r = 0; r < K; ++r)
        rank += chosen[r] < mine || (chosen[r] == mine && r < lane);
    float sorted[K];
#pragma unroll
    for (int i = 0; i < K; ++i) {
        const unsigned at = __ballot_sync(0xffffffffu, lane < K && rank == i);
        sorted[i] = __shfl_sync(0xffffffffu, w, __ffs(at) - 1);
    }
    float sum = 0.f;
#pragma unroll
    for (int i = 0; i < K; ++i)
        sum += sorted[i];
    const int width = K + a.sharedExperts;
    const bool renormalize = K > 1 && a.normalize;
    if (lane < K) {
        a.idx[static_cast<long long>(t) * width + rank] = mine;
        a.weight[static_cast<long long>(t) * width + rank] = renormalize ? w / (sum + 1e-20f) * a.scaling : w * a.scaling;
    } else if (lane < width) {
        a.idx[static_cast<long long>(t) * width + lane] = E + lane - K;
        a.weight[static_cast<long long>(t) * width + lane] = 1.f;
    }
}

// routeRowOf with the fewest experts per lane that hold a.experts: the DeepSeek-VL2 routers (64 and
// 72 experts, 6 chosen; without expert groups) as routeRowFixed where fixedK; the rest (up to
// kMaxExperts and kMaxK) in the general shape.
__device__ void routeRow(const RouteArgs& a, int t, const float* row, int lane, bool keyed = true, bool fixedK = true)
{
    // routeRowFixed stores an entry per lane: k + sharedExperts ≤ 32.
    if (fixedK && keyed && a.k == 6 && a.sharedExperts <= 32 - 6 && !(a.routing == Routing::NoAuxTc && a.topkGroups < a.groups)) {
        if (a.experts <= 64)
            return routeRowFixed<2, 6>(a, t, row, lane);
        if (a.experts <= 96)
            return routeRowFixed<3, 6>(a, t, row, lane);
    }
    if (a.k <= 8) {
        if (a.experts <= 32)
            return routeRowOf<1, 8>(a, t, row, lane, keyed);
        if (a.experts <= 64)
            return routeRowOf<2, 8>(a, t, row, lane, keyed);
        if (a.experts <= 96)
            return routeRowOf<3, 8>(a, t, row, lane, keyed);
    }
    routeRowOf<kPerLane, kMaxK>(a, t, row, lane, keyed);
}

}  // namespace

}  // namespace tessera::kernels
