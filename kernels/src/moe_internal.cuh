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

// Routing of token t from its router logits `row` (one warp): row t of a.idx / a.weight (global
// or shared memory), the k routed experts then the shared ones. routeRowRanked below gives the same
// result faster where it can; this is the general form.
__device__ void routeRowGeneral(const RouteArgs& a, int t, const float* row, int lane)
{
    const int E = a.experts;
    float s[kPerLane], choice[kPerLane];
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
        const int e = lane + 32 * j;
        s[j] = e < E ? row[e] : -INFINITY;
    }
    if (a.scoring == Scoring::Softmax) {
        float mx = -INFINITY;
#pragma unroll
        for (int j = 0; j < kPerLane; ++j)
            mx = fmaxf(mx, s[j]);
        mx = warpMax(mx);
        double sum = 0.0;
#pragma unroll
        for (int j = 0; j < kPerLane; ++j) {
            const int e = lane + 32 * j;
            s[j] = e < E ? expf(s[j] - mx) : 0.f;
            sum += s[j];
        }
        sum = warpSumD(sum);
        const float inv = static_cast<float>(1.0 / sum);
#pragma unroll
        for (int j = 0; j < kPerLane; ++j)
            s[j] *= inv;
    } else {
#pragma unroll
        for (int j = 0; j < kPerLane; ++j)
            s[j] = 1.f / (1.f + expf(-s[j]));
    }
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
        const int e = lane + 32 * j;
        choice[j] = e < E ? s[j] + (a.routing == Routing::NoAuxTc ? a.bias[e] : 0.f) : -INFINITY;
    }
    if (a.routing == Routing::NoAuxTc && a.topkGroups < a.groups) {
        const int per = E / a.groups;
        float groupScore[32];
        for (int g = 0; g < a.groups && g < 32; ++g) {
            float best = -INFINITY;
            int bi = 1 << 30;
#pragma unroll
            for (int j = 0; j < kPerLane; ++j) {
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
            for (int j = 0; j < kPerLane; ++j) {
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
        for (int j = 0; j < kPerLane; ++j) {
            const int e = lane + 32 * j;
            if (e < E && !(kept & (1u << (e / per))))
                choice[j] = 0.f;  // the reference masks with 0.0, not −inf
        }
    }
    // Top-k by repeated warp argmax; the lane that holds the winner hands its unbiased score to
    // the warp with the same shuffle that follows, so that the weights need no search afterwards.
    int chosen[kMaxK];
    float w[kMaxK];
    for (int r = 0; r < a.k; ++r) {
        float best = -INFINITY;
        int bi = 1 << 30;
#pragma unroll
        for (int j = 0; j < kPerLane; ++j) {
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
        for (int j = 0; j < kPerLane; ++j)
            if (lane + 32 * j == bi) {
                mine = s[j];
                choice[j] = -INFINITY;
            }
        chosen[r] = bi;
        w[r] = __shfl_sync(0xffffffffu, mine, bi & 31);
    }
    // Weights: the unbiased scores of the chosen experts, in increasing expert order.
    for (int i = 1; i < a.k; ++i)
        for (int m = i; m > 0 && chosen[m - 1] > chosen[m]; --m) {
            const int tc = chosen[m];
            chosen[m] = chosen[m - 1];
            chosen[m - 1] = tc;
            const float tw = w[m];
            w[m] = w[m - 1];
            w[m - 1] = tw;
        }
    float sum = 0.f;
    for (int i = 0; i < a.k; ++i)
        sum += w[i];
    if (lane == 0) {
        const bool renormalize = a.k > 1 && a.normalize;
        const int width = a.k + a.sharedExperts;
        for (int i = 0; i < a.k; ++i) {
            a.idx[static_cast<long long>(t) * width + i] = chosen[i];
            a.weight[static_cast<long long>(t) * width + i] = renormalize ? w[i] / (sum + 1e-20f) * a.scaling : w[i] * a.scaling;
        }
        for (int i = 0; i < a.sharedExperts; ++i) {
            a.idx[static_cast<long long>(t) * width + a.k + i] = E + i;
            a.weight[static_cast<long long>(t) * width + a.k + i] = 1.f;
        }
    }
}

// routeRowGeneral's result, bit for bit, in far fewer dependent steps, for P = ceil(E / 32) values
// per lane (no group limit; every score finite, else false and nothing written). The one-token
// router runs this on one warp between two kernels of the decode chain, where its k rounds of warp
// argmax, the insertion sort in local memory and the serial stores of lane 0 took 4–6 µs per layer
// (the kernels' own trace). Here every expert's rank (how many experts beat it: a higher score, or
// the same score and a lower index) comes from one pass over the scores broadcast lane by lane; the
// experts ranked below k are the top k, their slot is the number of chosen experts of lower index
// (ballots), the weight sum runs over the slots in order as routeRowGeneral's does, and each lane
// stores its own experts.
template <int P>
__device__ bool routeRowRanked(const RouteArgs& a, int t, const float* row, int lane)
{
    const int E = a.experts;
    float s[P], choice[P];
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
    bool finite = true;
#pragma unroll
    for (int j = 0; j < P; ++j) {
        const int e = lane + 32 * j;
        choice[j] = e < E ? s[j] + (a.routing == Routing::NoAuxTc ? a.bias[e] : 0.f) : -INFINITY;
        finite = finite && (e >= E || isfinite(choice[j]));
    }
    if (!__all_sync(0xffffffffu, finite))
        return false;
    int rank[P];
#pragma unroll
    for (int j = 0; j < P; ++j)
        rank[j] = 0;
#pragma unroll
    for (int jj = 0; jj < P; ++jj) {
#pragma unroll 8
        for (int src = 0; src < 32; ++src) {
            const float v = __shfl_sync(0xffffffffu, choice[jj], src);
            const int other = src + 32 * jj;
#pragma unroll
            for (int j = 0; j < P; ++j)
                rank[j] += (v > choice[j] || (v == choice[j] && other < lane + 32 * j)) ? 1 : 0;
        }
    }
    // Slots in increasing expert order: the chosen experts of the lower rows, then of lower lanes.
    int slot[P];
    int before = 0;
#pragma unroll
    for (int j = 0; j < P; ++j) {
        const bool chosen = lane + 32 * j < E && rank[j] < a.k;
        const unsigned mask = __ballot_sync(0xffffffffu, chosen);
        slot[j] = chosen ? before + __popc(mask & ((1u << lane) - 1u)) : -1;
        before += __popc(mask);
    }
    float sum = 0.f;
    for (int i = 0; i < a.k; ++i) {
        float mine = 0.f;
        bool owner = false;
#pragma unroll
        for (int j = 0; j < P; ++j)
            if (slot[j] == i) {
                mine = s[j];
                owner = true;
            }
        const int from = __ffs(__ballot_sync(0xffffffffu, owner)) - 1;
        sum += __shfl_sync(0xffffffffu, mine, from);
    }
    const bool renormalize = a.k > 1 && a.normalize;
    const int width = a.k + a.sharedExperts;
    const long long base = static_cast<long long>(t) * width;
#pragma unroll
    for (int j = 0; j < P; ++j)
        if (slot[j] >= 0) {
            a.idx[base + slot[j]] = lane + 32 * j;
            a.weight[base + slot[j]] = renormalize ? s[j] / (sum + 1e-20f) * a.scaling : s[j] * a.scaling;
        }
    if (lane < a.sharedExperts) {
        a.idx[base + a.k + lane] = E + lane;
        a.weight[base + a.k + lane] = 1.f;
    }
    return true;
}

__device__ void routeRow(const RouteArgs& a, int t, const float* row, int lane)
{
    const bool grouped = a.routing == Routing::NoAuxTc && a.topkGroups < a.groups;
    if (!grouped && a.ranked) {
        bool done = false;
        switch ((a.experts + 31) / 32) {
        case 1: done = routeRowRanked<1>(a, t, row, lane); break;
        case 2: done = routeRowRanked<2>(a, t, row, lane); break;
        case 3: done = routeRowRanked<3>(a, t, row, lane); break;
        case 4: done = routeRowRanked<4>(a, t, row, lane); break;
        default: break;
        }
        if (done)
            return;
    }
    routeRowGeneral(a, t, row, lane);
}

}  // namespace

}  // namespace tessera::kernels
