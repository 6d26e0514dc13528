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
// or shared memory), the k routed experts then the shared ones. P experts per lane (lane + 32·j)
// and at most KMAX routed experts, both known when compiling: every loop unrolls and the chosen
// experts and their weights stay in registers. Experts past E enter as −inf scores and zero
// weights, so every P ≥ ⌈E / 32⌉ gives the same result, bit for bit.
template <int P, int KMAX>
__device__ __forceinline__ void routeRowOf(const RouteArgs& a, int t, const float* row, int lane)
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
#pragma unroll
    for (int j = 0; j < P; ++j) {
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
    // Top-k by repeated warp argmax; the lane that holds the winner hands its unbiased score to
    // the warp with the same shuffle that follows, so that the weights need no search afterwards.
    int chosen[KMAX];
    float w[KMAX];
#pragma unroll
    for (int r = 0; r < KMAX; ++r) {
        if (r >= a.k)
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

// routeRowOf with the fewest experts per lane that hold a.experts: the DeepSeek-VL2 routers (64 and
// 72 experts, 6 chosen) in registers; the rest (up to kMaxExperts and kMaxK) in the general shape.
__device__ void routeRow(const RouteArgs& a, int t, const float* row, int lane)
{
    if (a.k <= 8) {
        if (a.experts <= 32)
            return routeRowOf<1, 8>(a, t, row, lane);
        if (a.experts <= 64)
            return routeRowOf<2, 8>(a, t, row, lane);
        if (a.experts <= 96)
            return routeRowOf<3, 8>(a, t, row, lane);
    }
    routeRowOf<kPerLane, kMaxK>(a, t, row, lane);
}

}  // namespace

}  // namespace tessera::kernels
