#pragma once
// fp32 building blocks of the CPU backend. Weights stay as the checkpoint stores them (bf16 in
// every published model), memory-mapped; products convert them block by block, so no fp32 copy
// of the model ever exists.
#include "model/safetensors.h"

#include <cstdint>
#include <vector>

namespace tessera::cpu {

// A row-major [rows, cols] weight matrix in the checkpoint's dtype (BF16, F16 or F32).
struct WeightMatrix {
    const std::uint8_t* data = nullptr;
    DType dtype = DType::BF16;
    int rows = 0;  // output features
    int cols = 0;  // input features

    static WeightMatrix from(const TensorView& t);  // 2-D, or N-D flattened to [shape[0], rest]
    // Row r converted to fp32.
    void rowToFloat(int r, float* out) const;
    // Rows [r0, r0 + n) converted to fp32, row-major.
    void rowsToFloat(int r0, int n, float* out) const;
};

// A small tensor (norm weights, biases, embeddings rows) converted to fp32.
std::vector<float> toFloatVector(const TensorView& t);

// y[M, N] = x[M, K] · W[N, K]ᵀ (+ bias[N] when not null). K must equal W.cols.
void linear(const float* x, int M, const WeightMatrix& W, const float* bias, float* y);

// LayerNorm over rows of length n (biased variance, as torch): out may alias x.
void layerNorm(const float* x, int rows, int n, const float* gamma, const float* beta, float eps, float* out);
// RMSNorm over rows of length n in fp32: out = x / sqrt(mean(x²) + eps) · weight. out may alias x.
void rmsNorm(const float* x, int rows, int n, const float* weight, float eps, float* out);

void geluTanh(float* x, std::size_t n);  // the tanh approximation (SigLIP's MLP)
void geluErf(float* x, std::size_t n);   // exact erf GELU (the projector)
// out[i] = silu(gate[i]) * up[i]
void siluMul(const float* gate, const float* up, float* out, std::size_t n);
// In-place softmax of each row of length n.
void softmaxRows(float* x, int rows, int n);

// Number of threads the CPU backend uses for its own loops.
int threadCount();

}  // namespace tessera::cpu
