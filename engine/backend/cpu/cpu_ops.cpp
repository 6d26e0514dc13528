#include "backend/cpu/cpu_ops.h"

#include "core/error.h"

#include <cblas.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

namespace tessera::cpu {

namespace {

inline float bf16(std::uint16_t v) { return std::bit_cast<float>(static_cast<std::uint32_t>(v) << 16); }

float f16(std::uint16_t h)
{
    const std::uint32_t sign = (h & 0x8000u) << 16;
    const std::uint32_t exp = (h >> 10) & 0x1f;
    std::uint32_t mant = h & 0x3ff;
    if (exp == 0) {
        if (mant == 0)
            return std::bit_cast<float>(sign);
        float v = std::ldexp(static_cast<float>(mant), -24);
        return sign ? -v : v;
    }
    if (exp == 31)
        return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));
    return std::bit_cast<float>(sign | ((exp + 112) << 23) | (mant << 13));
}

bool haveAvx2()
{
    static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return yes;
}

__attribute__((target("avx2,fma"))) void bf16RowToFloatAvx2(const std::uint16_t* src, int n, float* dst)
{
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
        __m256i w = _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16);
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(w));
    }
    for (; i < n; ++i)
        dst[i] = bf16(src[i]);
}

// Dot products of up to 4 activation rows with one bf16 weight row.
__attribute__((target("avx2,fma"))) void dotBf16Avx2(const float* x, int M, int K, const std::uint16_t* w,
                                                      float* out)
{
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int k = 0;
    for (; k + 8 <= K; k += 8) {
        __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + k));
        __m256 wf = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
        for (int m = 0; m < M; ++m)
            acc[m] = _mm256_fmadd_ps(_mm256_loadu_ps(x + static_cast<std::size_t>(m) * K + k), wf, acc[m]);
    }
    for (int m = 0; m < M; ++m) {
        __m128 lo = _mm256_castps256_ps128(acc[m]);
        __m128 hi = _mm256_extractf128_ps(acc[m], 1);
        lo = _mm_add_ps(lo, hi);
        lo = _mm_hadd_ps(lo, lo);
        lo = _mm_hadd_ps(lo, lo);
        float s = _mm_cvtss_f32(lo);
        for (int kk = k; kk < K; ++kk)
            s += x[static_cast<std::size_t>(m) * K + kk] * bf16(w[kk]);
        out[m] = s;
    }
}

// OpenBLAS runs single-threaded inside our OpenMP regions (see linear()).
const bool kBlasSingleThreaded = [] {
    openblas_set_num_threads(1);
    return true;
}();

}  // namespace

int threadCount() { return std::max(1, omp_get_max_threads()); }

WeightMatrix WeightMatrix::from(const TensorView& t)
{
    if (t.shape.empty())
        throw Error(t.name + ": expected a matrix, found a scalar");
    if (t.dtype != DType::BF16 && t.dtype != DType::F16 && t.dtype != DType::F32)
        throw Error(t.name + ": weights must be BF16, F16 or F32, found " + dtypeName(t.dtype));
    WeightMatrix w;
    w.data = t.data;
    w.dtype = t.dtype;
    w.rows = static_cast<int>(t.shape[0]);
    std::int64_t cols = 1;
    for (std::size_t i = 1; i < t.shape.size(); ++i)
        cols *= t.shape[i];
    w.cols = static_cast<int>(cols);
    return w;
}

void WeightMatrix::rowToFloat(int r, float* out) const { rowsToFloat(r, 1, out); }

void WeightMatrix::rowsToFloat(int r0, int n, float* out) const
{
    const std::size_t count = static_cast<std::size_t>(n) * cols;
    const std::size_t offset = static_cast<std::size_t>(r0) * cols;
    switch (dtype) {
    case DType::BF16: {
        // Checkpoint data is not guaranteed 2-byte aligned: copy through memcpy-safe loads.
        const auto* src = reinterpret_cast<const std::uint16_t*>(data) + offset;
        if (haveAvx2() && reinterpret_cast<std::uintptr_t>(src) % 2 == 0) {
            bf16RowToFloatAvx2(src, static_cast<int>(count), out);
        } else {
            for (std::size_t i = 0; i < count; ++i) {
                std::uint16_t v;
                std::memcpy(&v, data + (offset + i) * 2, 2);
                out[i] = bf16(v);
            }
        }
        break;
    }
    case DType::F16:
        for (std::size_t i = 0; i < count; ++i) {
            std::uint16_t v;
            std::memcpy(&v, data + (offset + i) * 2, 2);
            out[i] = f16(v);
        }
        break;
    case DType::F32:
        std::memcpy(out, data + offset * 4, count * 4);
        break;
    default:
        throw Error("unsupported weight dtype");
    }
}

std::vector<float> toFloatVector(const TensorView& t) { return t.toFloat(); }

void linear(const float* x, int M, const WeightMatrix& W, const float* bias, float* y)
{
    const int N = W.rows;
    const int K = W.cols;
    if (M <= 0 || N <= 0)
        return;
    const bool alignedBf16 = W.dtype == DType::BF16 && reinterpret_cast<std::uintptr_t>(W.data) % 2 == 0;
    if (M <= 4 && alignedBf16 && haveAvx2()) {
        // Decode-sized products are bound by reading the weights once: stream them as bf16.
        const auto* w = reinterpret_cast<const std::uint16_t*>(W.data);
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; ++n) {
            float out[4];
            dotBf16Avx2(x, M, K, w + static_cast<std::size_t>(n) * K, out);
            for (int m = 0; m < M; ++m)
                y[static_cast<std::size_t>(m) * N + n] = out[m] + (bias ? bias[n] : 0.f);
        }
        return;
    }
    // Larger products: each thread converts its own blocks of weight rows to fp32 and multiplies
    // them with a single-threaded BLAS call, so one thread pool (OpenMP) does all the work and no
    // second pool spins beside it.
    const int block = std::clamp(N / (4 * threadCount()), 16, 256);
    const int blocks = (N + block - 1) / block;
#pragma omp parallel
    {
        std::vector<float> wf(static_cast<std::size_t>(block) * K);
#pragma omp for schedule(dynamic, 1)
        for (int b = 0; b < blocks; ++b) {
            const int n0 = b * block;
            const int nb = std::min(block, N - n0);
            W.rowsToFloat(n0, nb, wf.data());
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, nb, K, 1.0f, x, K, wf.data(), K, 0.0f, y + n0, N);
        }
    }
    if (bias) {
#pragma omp parallel for schedule(static)
        for (int m = 0; m < M; ++m)
            for (int n = 0; n < N; ++n)
                y[static_cast<std::size_t>(m) * N + n] += bias[n];
    }
}

void layerNorm(const float* x, int rows, int n, const float* gamma, const float* beta, float eps, float* out)
{
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; ++r) {
        const float* xr = x + static_cast<std::size_t>(r) * n;
        float* o = out + static_cast<std::size_t>(r) * n;
        double mean = 0;
        for (int i = 0; i < n; ++i)
            mean += xr[i];
        mean /= n;
        double var = 0;
        for (int i = 0; i < n; ++i)
            var += (xr[i] - mean) * (xr[i] - mean);
        var /= n;
        const float inv = static_cast<float>(1.0 / std::sqrt(var + eps));
        const float mu = static_cast<float>(mean);
        for (int i = 0; i < n; ++i)
            o[i] = (xr[i] - mu) * inv * gamma[i] + (beta ? beta[i] : 0.f);
    }
}

void rmsNorm(const float* x, int rows, int n, const float* weight, float eps, float* out)
{
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; ++r) {
        const float* xr = x + static_cast<std::size_t>(r) * n;
        float* o = out + static_cast<std::size_t>(r) * n;
        double ss = 0;
        for (int i = 0; i < n; ++i)
            ss += static_cast<double>(xr[i]) * xr[i];
        const float inv = static_cast<float>(1.0 / std::sqrt(ss / n + eps));
        for (int i = 0; i < n; ++i)
            o[i] = weight[i] * (xr[i] * inv);
    }
}

void geluTanh(float* x, std::size_t n)
{
    constexpr float k = 0.7978845608028654f;  // sqrt(2/pi)
#pragma omp parallel for schedule(static)
    for (std::size_t i = 0; i < n; ++i) {
        const float v = x[i];
        x[i] = 0.5f * v * (1.f + std::tanh(k * (v + 0.044715f * v * v * v)));
    }
}

void geluErf(float* x, std::size_t n)
{
#pragma omp parallel for schedule(static)
    for (std::size_t i = 0; i < n; ++i)
        x[i] = 0.5f * x[i] * (1.f + std::erf(x[i] * 0.7071067811865476f));
}

void siluMul(const float* gate, const float* up, float* out, std::size_t n)
{
#pragma omp parallel for schedule(static)
    for (std::size_t i = 0; i < n; ++i) {
        const float g = gate[i];
        out[i] = g / (1.f + std::exp(-g)) * up[i];
    }
}

void softmaxRows(float* x, int rows, int n)
{
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; ++r) {
        float* xr = x + static_cast<std::size_t>(r) * n;
        float mx = xr[0];
        for (int i = 1; i < n; ++i)
            mx = std::max(mx, xr[i]);
        double sum = 0;
        for (int i = 0; i < n; ++i) {
            xr[i] = std::exp(xr[i] - mx);
            sum += xr[i];
        }
        const float inv = static_cast<float>(1.0 / sum);
        for (int i = 0; i < n; ++i)
            xr[i] *= inv;
    }
}

}  // namespace tessera::cpu
