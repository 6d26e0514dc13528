#pragma once
// Between attention.cu (decode attention, combine) and decode_attention_mma.cu (its tensor-core kernels).
#include "tessera_kernels/attention.h"

#include "launch_util.cuh"

#include <cuda_runtime.h>

namespace tessera::kernels {

inline constexpr int kDecodeChunk = 64;  // context positions per decode split
inline constexpr int kMaxDecodeSplits = 1024;  // capacity up to 65536 positions

// Merges the `used` split partials (max, sum, values) of head h into its output dimensions
// [d0, d1): split weights exp(m_s − M) once into `weights` (shared, ≥ used + 8 floats), then every
// value dimension sums over the splits with independent loads. The partials are read through L2 (__ldcg): they may come
// from other blocks of the running grid. Every thread of the block calls it.
template <typename TO>
__device__ void combineHeadPartials(const DecodeAttentionArgs& a, int splits, int used, int h, float* weights, float* scratch, int d0,
                                    int d1)
{
    const int stride = a.valueDim + 2;
    const float* part = a.workspace + static_cast<long long>(h) * splits * stride;
    float mx = -INFINITY;
    for (int s = threadIdx.x; s < used; s += blockDim.x)
        mx = fmaxf(mx, __ldcg(part + s * stride));
    mx = blockMax(mx, scratch);
    float total = 0.f;
    for (int s = threadIdx.x; s < used; s += blockDim.x) {
        const float w = expf(__ldcg(part + s * stride) - mx);
        weights[s] = w;
        total += __ldcg(part + s * stride + 1) * w;
    }
    total = blockSum(total, scratch);  // also orders the weights[] writes before the reads below
    const float inv = 1.f / total;
    TO* out = static_cast<TO*>(a.out) + h * a.outHeadStride;
    for (int d = d0 + threadIdx.x; d < d1; d += blockDim.x) {
        float acc = 0.f;
#pragma unroll 16
        for (int s = 0; s < used; ++s)
            acc = fmaf(__ldcg(part + s * stride + 2 + d), weights[s], acc);
        out[d] = fromFloat<TO>(acc * inv);
    }
    __syncthreads();  // weights[] and scratch may be reused by the caller
}

// Decode partials on the tensor cores (bf16): one block per (split, kv head) computes every head of
// that kv head (all of them for MLA's shared latent rows). Same partial layout as the CUDA-core
// kernel, which runs whatever this one does not support (fp32, odd sizes).
// combined: set when the launch also merged the partials (the last block of each kv head does it,
// when a.counters is given); otherwise a combine pass must follow.
bool decodeSharedKvSupported(const DecodeAttentionArgs& a);
Status decodeSharedKvPartials(const DecodeAttentionArgs& a, int splits, cudaStream_t stream, bool& combined);

}  // namespace tessera::kernels
