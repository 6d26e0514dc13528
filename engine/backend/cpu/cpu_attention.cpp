#include "backend/cpu/cpu_attention.h"

#include "core/error.h"

#include <cblas.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace tessera::cpu {

namespace {

// Score buffer budget per query block (floats): bounds memory for long prompts.
constexpr std::size_t kScoreBudget = std::size_t(4) << 20;

// Up to this many new positions (decode, speculative steps) attention runs on OpenMP kernels
// without BLAS: the decode step then never alternates between the two thread pools.
constexpr int kSmallBatch = 4;

bool haveAvx2()
{
    static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return yes;
}

__attribute__((target("avx2,fma"))) float dotAvx2(const float* a, const float* b, int n)
{
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc0 = _mm256_add_ps(acc0, acc1);
    __m128 lo = _mm_add_ps(_mm256_castps256_ps128(acc0), _mm256_extractf128_ps(acc0, 1));
    lo = _mm_hadd_ps(lo, lo);
    lo = _mm_hadd_ps(lo, lo);
    float s = _mm_cvtss_f32(lo);
    for (; i < n; ++i)
        s += a[i] * b[i];
    return s;
}

__attribute__((target("avx2,fma"))) void axpyAvx2(float a, const float* x, float* y, int n)
{
    const __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; ++i)
        y[i] += a * x[i];
}

float dot(const float* a, const float* b, int n)
{
    if (haveAvx2())
        return dotAvx2(a, b, n);
    float s = 0.f;
    for (int i = 0; i < n; ++i)
        s += a[i] * b[i];
    return s;
}

// y += a·x
void axpy(float a, const float* x, float* y, int n)
{
    if (haveAvx2()) {
        axpyAvx2(a, x, y, n);
        return;
    }
    for (int i = 0; i < n; ++i)
        y[i] += a * x[i];
}

// Scales the first `visible` scores, soft-maxes them in fp32 and zeroes the masked rest of the
// row (the reference adds finfo.min there: exp(min - max) is exactly 0).
void softmaxRow(float* row, int visible, int context, float scale)
{
    float mx = -INFINITY;
    for (int j = 0; j < visible; ++j) {
        row[j] *= scale;
        mx = std::max(mx, row[j]);
    }
    float sum = 0.f;
    for (int j = 0; j < visible; ++j) {
        row[j] = std::exp(row[j] - mx);
        sum += row[j];
    }
    const float inv = 1.f / sum;
    for (int j = 0; j < visible; ++j)
        row[j] *= inv;
    std::fill(row + visible, row + context, 0.f);
}

// The rope part of MLA queries and keys is stored interleaved (pairs); the reference
// de-interleaves it (evens, then odds) before the NeoX rotation.
void deinterleave(const float* in, int d, float* out)
{
    const int half = d / 2;
    for (int i = 0; i < half; ++i) {
        out[i] = in[2 * i];
        out[half + i] = in[2 * i + 1];
    }
}

// Query tokens per block so that block rows × context stays within the score budget.
int tokensPerBlock(int n, int rowsPerToken, int maxContext)
{
    const std::size_t perToken = static_cast<std::size_t>(rowsPerToken) * std::max(1, maxContext);
    return static_cast<int>(std::clamp<std::size_t>(kScoreBudget / perToken, 1, static_cast<std::size_t>(n)));
}

// Score rows of a query block against `context` cached positions: the row of query token t may see
// positions [0, firstVisible + t]. Scales, masks and soft-maxes each row in place.
void causalSoftmax(float* scores, int rows, int rowsPerToken, int context, int firstVisible, float scale)
{
#pragma omp parallel for schedule(static) if (rows > 8)
    for (int r = 0; r < rows; ++r)
        softmaxRow(scores + static_cast<std::size_t>(r) * context,
                   std::min(context, firstVisible + r / rowsPerToken + 1), context, scale);
}

WeightMatrix matrix(const WeightMap& weights, const std::string& name) { return WeightMatrix::from(weights.get(name)); }

}  // namespace

RotaryTable::RotaryTable(int dim, int maxPositions, double theta) : dim_(dim), maxPositions_(maxPositions)
{
    if (dim <= 0 || dim % 2 != 0)
        throw Error("rotary embedding dimension must be even and positive, found " + std::to_string(dim));
    const int half = dim / 2;
    std::vector<float> invFreq(half);
    const float base = static_cast<float>(theta);
    for (int i = 0; i < half; ++i)
        invFreq[i] = 1.0f / std::pow(base, static_cast<float>(2 * i) / static_cast<float>(dim));
    cos_.resize(static_cast<std::size_t>(maxPositions) * half);
    sin_.resize(cos_.size());
    for (int p = 0; p < maxPositions; ++p)
        for (int i = 0; i < half; ++i) {
            const float angle = static_cast<float>(p) * invFreq[i];
            cos_[static_cast<std::size_t>(p) * half + i] = static_cast<float>(std::cos(static_cast<double>(angle)));
            sin_[static_cast<std::size_t>(p) * half + i] = static_cast<float>(std::sin(static_cast<double>(angle)));
        }
}

void RotaryTable::apply(float* x, int position) const
{
    const int half = dim_ / 2;
    const float* c = cos_.data() + static_cast<std::size_t>(position) * half;
    const float* s = sin_.data() + static_cast<std::size_t>(position) * half;
    for (int i = 0; i < half; ++i) {
        const float a = x[i];
        const float b = x[half + i];
        x[i] = a * c[i] - b * s[i];
        x[half + i] = b * c[i] + a * s[i];
    }
}

// ---------------------------------------------------------------------------------------------
// MHA

MhaAttention::MhaAttention(const LanguageConfig& config, const WeightMap& weights, const std::string& prefix,
                           const RotaryTable& rotary)
    : heads_(config.numAttentionHeads),
      kvHeads_(config.numKeyValueHeads),
      headDim_(config.headDim()),
      rotary_(&rotary),
      q_(matrix(weights, prefix + ".q_proj.weight")),
      k_(matrix(weights, prefix + ".k_proj.weight")),
      v_(matrix(weights, prefix + ".v_proj.weight")),
      o_(matrix(weights, prefix + ".o_proj.weight"))
{
    if (kvHeads_ <= 0 || heads_ % kvHeads_ != 0)
        throw Error("num_attention_heads (" + std::to_string(heads_) + ") must be a multiple of num_key_value_heads (" +
                    std::to_string(kvHeads_) + ")");
    if (rotary.dim() != headDim_)
        throw Error("internal error: MHA rotary table does not cover the head dimension");
}

void MhaAttention::forward(const KvLayer& cache, int start, int n, const float* x, float* out) const
{
    const int hd = headDim_;
    const int qs = heads_ * hd;    // query row stride
    const int ks = kvHeads_ * hd;  // cache row stride
    const int group = heads_ / kvHeads_;
    std::vector<float> q(static_cast<std::size_t>(n) * qs);
    float* keys = cache.a + static_cast<std::size_t>(start) * ks;
    float* values = cache.b + static_cast<std::size_t>(start) * ks;
    linear(x, n, q_, nullptr, q.data());
    linear(x, n, k_, nullptr, keys);
    linear(x, n, v_, nullptr, values);
#pragma omp parallel for schedule(static) if (n > 1)
    for (int t = 0; t < n; ++t) {
        for (int h = 0; h < heads_; ++h)
            rotary_->apply(q.data() + static_cast<std::size_t>(t) * qs + h * hd, start + t);
        for (int g = 0; g < kvHeads_; ++g)
            rotary_->apply(keys + static_cast<std::size_t>(t) * ks + g * hd, start + t);
    }

    // torch divides by sqrt(head_dim) as a multiplication by the fp32 reciprocal.
    const float scale = 1.0f / static_cast<float>(std::sqrt(static_cast<double>(hd)));
    std::vector<float> context(static_cast<std::size_t>(n) * qs);
    if (n <= kSmallBatch) {
        // Decode: one task per (token, head), dot products and axpys over the cached rows.
        const int ctx = start + n;
        std::vector<float> scores(static_cast<std::size_t>(n) * heads_ * ctx);
#pragma omp parallel for schedule(static)
        for (int r = 0; r < n * heads_; ++r) {
            const int t = r / heads_;
            const int h = r % heads_;
            const int g = h / group;
            const int visible = start + t + 1;
            const float* qh = q.data() + static_cast<std::size_t>(t) * qs + h * hd;
            float* row = scores.data() + static_cast<std::size_t>(r) * ctx;
            for (int j = 0; j < visible; ++j)
                row[j] = dot(qh, cache.a + static_cast<std::size_t>(j) * ks + g * hd, hd);
            softmaxRow(row, visible, visible, scale);
            float* o = context.data() + static_cast<std::size_t>(t) * qs + h * hd;
            std::fill(o, o + hd, 0.f);
            for (int j = 0; j < visible; ++j)
                axpy(row[j], cache.b + static_cast<std::size_t>(j) * ks + g * hd, o, hd);
        }
        linear(context.data(), n, o_, nullptr, out);
        return;
    }
    const int block = tokensPerBlock(n, 1, start + n);
    std::vector<float> scores(static_cast<std::size_t>(block) * (start + n));
    for (int h = 0; h < heads_; ++h) {
        const int g = h / group;
        for (int t0 = 0; t0 < n; t0 += block) {
            const int nb = std::min(block, n - t0);
            const int ctx = start + t0 + nb;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, ctx, hd, 1.f,
                        q.data() + static_cast<std::size_t>(t0) * qs + h * hd, qs, cache.a + g * hd, ks, 0.f,
                        scores.data(), ctx);
            causalSoftmax(scores.data(), nb, 1, ctx, start + t0, scale);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, hd, ctx, 1.f, scores.data(), ctx,
                        cache.b + g * hd, ks, 0.f, context.data() + static_cast<std::size_t>(t0) * qs + h * hd, qs);
        }
    }
    linear(context.data(), n, o_, nullptr, out);
}

// ---------------------------------------------------------------------------------------------
// MLA

MlaAttention::MlaAttention(const LanguageConfig& config, const WeightMap& weights, const std::string& prefix,
                           const RotaryTable& rotary)
    : heads_(config.numAttentionHeads),
      nope_(config.qkNopeHeadDim),
      rope_(config.qkRopeHeadDim),
      vDim_(config.vHeadDim),
      rank_(config.kvLoraRank),
      eps_(1e-6f),  // kv_a_layernorm / q_a_layernorm are built with the RMSNorm default, not rms_norm_eps
      rotary_(&rotary),
      qLora_(config.qLoraRank.has_value())
{
    if (rotary.dim() != rope_)
        throw Error("internal error: MLA rotary table does not cover qk_rope_head_dim");
    if (qLora_) {
        qA_ = matrix(weights, prefix + ".q_a_proj.weight");
        qANorm_ = toFloatVector(weights.get(prefix + ".q_a_layernorm.weight"));
        qB_ = matrix(weights, prefix + ".q_b_proj.weight");
    } else {
        q_ = matrix(weights, prefix + ".q_proj.weight");
    }
    kvA_ = matrix(weights, prefix + ".kv_a_proj_with_mqa.weight");
    kvANorm_ = toFloatVector(weights.get(prefix + ".kv_a_layernorm.weight"));
    kvB_ = matrix(weights, prefix + ".kv_b_proj.weight");
    o_ = matrix(weights, prefix + ".o_proj.weight");
}

void MlaAttention::projectQueries(const float* x, int n, float* q) const
{
    if (!qLora_) {
        linear(x, n, q_, nullptr, q);
        return;
    }
    const int r = qA_.rows;
    std::vector<float> qa(static_cast<std::size_t>(n) * r);
    linear(x, n, qA_, nullptr, qa.data());
    rmsNorm(qa.data(), n, r, qANorm_.data(), eps_, qa.data());
    linear(qa.data(), n, qB_, nullptr, q);
}

void MlaAttention::forward(const KvLayer& cache, int start, int n, const float* x, float* out) const
{
    const int qhd = nope_ + rope_;
    const int qs = heads_ * qhd;
    const int kvw = rank_ + rope_;
    const int bw = nope_ + vDim_;  // kv_b_proj rows per head: nope key part, then value part
    std::vector<float> q(static_cast<std::size_t>(n) * qs);
    std::vector<float> kv(static_cast<std::size_t>(n) * kvw);
    projectQueries(x, n, q.data());
    linear(x, n, kvA_, nullptr, kv.data());

    // Cache the normalised latent and the rotated shared k_pe of the new positions.
    float* latent = cache.a + static_cast<std::size_t>(start) * rank_;
    float* kpe = cache.b + static_cast<std::size_t>(start) * rope_;
    std::vector<float> qpe(static_cast<std::size_t>(n) * heads_ * rope_);
#pragma omp parallel for schedule(static) if (n > 1)
    for (int t = 0; t < n; ++t) {
        const float* row = kv.data() + static_cast<std::size_t>(t) * kvw;
        std::memcpy(latent + static_cast<std::size_t>(t) * rank_, row, sizeof(float) * rank_);
        float* k = kpe + static_cast<std::size_t>(t) * rope_;
        deinterleave(row + rank_, rope_, k);
        rotary_->apply(k, start + t);
        for (int h = 0; h < heads_; ++h) {
            float* qp = qpe.data() + (static_cast<std::size_t>(t) * heads_ + h) * rope_;
            deinterleave(q.data() + static_cast<std::size_t>(t) * qs + h * qhd + nope_, rope_, qp);
            rotary_->apply(qp, start + t);
        }
    }
    rmsNorm(latent, n, rank_, kvANorm_.data(), eps_, latent);

    // kv_b_proj in fp32: per head, W_uk [nope, rank] (absorbed into the queries) then W_uv
    // [vDim, rank] (applied after attention).
    std::vector<float> wkvb(static_cast<std::size_t>(kvB_.rows) * rank_);
    {
        const int chunk = std::max(1, (kvB_.rows + threadCount() - 1) / threadCount());
#pragma omp parallel for schedule(static)
        for (int r = 0; r < kvB_.rows; r += chunk)
            kvB_.rowsToFloat(r, std::min(chunk, kvB_.rows - r), wkvb.data() + static_cast<std::size_t>(r) * rank_);
    }
    const float scale = static_cast<float>(std::pow(static_cast<double>(qhd), -0.5));
    std::vector<float> qlat(static_cast<std::size_t>(n) * heads_ * rank_);
    std::vector<float> olat(qlat.size());
    std::vector<float> ov(static_cast<std::size_t>(n) * heads_ * vDim_);
    if (n <= kSmallBatch) {
        // Decode: one task per (token, head) from query absorption to the value expansion.
        const int ctx = start + n;
        std::vector<float> scores(static_cast<std::size_t>(n) * heads_ * ctx);
#pragma omp parallel for schedule(static)
        for (int r = 0; r < n * heads_; ++r) {
            const int t = r / heads_;
            const int h = r % heads_;
            const float* w = wkvb.data() + static_cast<std::size_t>(h) * bw * rank_;
            const float* qn = q.data() + static_cast<std::size_t>(t) * qs + h * qhd;
            float* ql = qlat.data() + static_cast<std::size_t>(r) * rank_;
            std::fill(ql, ql + rank_, 0.f);
            for (int j = 0; j < nope_; ++j)
                axpy(qn[j], w + static_cast<std::size_t>(j) * rank_, ql, rank_);
            const float* qp = qpe.data() + static_cast<std::size_t>(r) * rope_;
            const int visible = start + t + 1;
            float* row = scores.data() + static_cast<std::size_t>(r) * ctx;
            for (int j = 0; j < visible; ++j)
                row[j] = dot(ql, cache.a + static_cast<std::size_t>(j) * rank_, rank_) +
                         dot(qp, cache.b + static_cast<std::size_t>(j) * rope_, rope_);
            softmaxRow(row, visible, visible, scale);
            float* ol = olat.data() + static_cast<std::size_t>(r) * rank_;
            std::fill(ol, ol + rank_, 0.f);
            for (int j = 0; j < visible; ++j)
                axpy(row[j], cache.a + static_cast<std::size_t>(j) * rank_, ol, rank_);
            float* o = ov.data() + static_cast<std::size_t>(r) * vDim_;  // [t, h, v] = row r
            for (int i = 0; i < vDim_; ++i)
                o[i] = dot(ol, w + static_cast<std::size_t>(nope_ + i) * rank_, rank_);
        }
        linear(ov.data(), n, o_, nullptr, out);
        return;
    }

    // Prefill: absorb W_uk into the queries with one product per head.
    for (int h = 0; h < heads_; ++h)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, rank_, nope_, 1.f, q.data() + h * qhd, qs,
                    wkvb.data() + static_cast<std::size_t>(h) * bw * rank_, rank_, 0.f, qlat.data() + h * rank_,
                    heads_ * rank_);

    // Every head reads the same latent rows, so all heads of a token block form one product:
    // rows are (token, head) pairs.
    const int block = tokensPerBlock(n, heads_, start + n);
    std::vector<float> scores(static_cast<std::size_t>(block) * heads_ * (start + n));
    for (int t0 = 0; t0 < n; t0 += block) {
        const int nb = std::min(block, n - t0);
        const int rows = nb * heads_;
        const int ctx = start + t0 + nb;
        const std::size_t r0 = static_cast<std::size_t>(t0) * heads_;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, ctx, rank_, 1.f, qlat.data() + r0 * rank_, rank_,
                    cache.a, rank_, 0.f, scores.data(), ctx);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, ctx, rope_, 1.f, qpe.data() + r0 * rope_, rope_,
                    cache.b, rope_, 1.f, scores.data(), ctx);
        causalSoftmax(scores.data(), rows, heads_, ctx, start + t0, scale);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, rank_, ctx, 1.f, scores.data(), ctx, cache.a,
                    rank_, 0.f, olat.data() + r0 * rank_, rank_);
    }

    // Expand through kv_b_proj's value part: o[t, h] = o_lat[t, h] · W_uv[h]ᵀ ([vDim, rank]).
    for (int h = 0; h < heads_; ++h)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, vDim_, rank_, 1.f, olat.data() + h * rank_,
                    heads_ * rank_, wkvb.data() + (static_cast<std::size_t>(h) * bw + nope_) * rank_, rank_, 0.f,
                    ov.data() + h * vDim_, heads_ * vDim_);
    linear(ov.data(), n, o_, nullptr, out);
}

}  // namespace tessera::cpu
