#include "backend/cuda/cuda_vision.h"

#include "tessera_kernels/attention.h"
#include "tessera_kernels/elementwise.h"
#include "tessera_kernels/norm.h"
#include "tessera_kernels/vision.h"

#include <algorithm>
#include <cmath>

namespace tessera::cuda {

namespace {

// Tiles encoded together: one image's tiles (up to 10 for the published processors) in one pass.
constexpr int kTilesPerBatch = 10;

}  // namespace

CudaVision::CudaVision(const ModelConfig& config, const DeviceWeights& weights, std::array<float, 3> mean,
                       std::array<float, 3> stdev, k::MathMode math, k::Stream stream, k::GemmContext* gemm, int maxTiles)
    : vision_(config.vision),
      weights_(weights),
      math_(math),
      act_(math == k::MathMode::ExactFp32 ? k::DType::F32 : k::DType::BF16),
      stream_(stream),
      gemm_(gemm),
      ratio_(config.projector.downsampleRatio),
      side_(config.tokensPerTileSide()),
      hidden_(config.projector.nEmbed),
      batch_(std::min(kTilesPerBatch, std::max(1, maxTiles))),
      maxTiles_(std::max(1, maxTiles))
{
    if (config.projector.type != "downsample_mlp_gelu")
        throw Error("the vision encoder cannot run projector_type \"" + config.projector.type + "\"");
    if (vision_.width % vision_.heads)
        throw Error("vision width must be a multiple of its heads");
    if (weights.projector.empty() || weights.projector.size() > 2)
        throw Error("the CUDA vision encoder runs projectors of depth 1 or 2 (every DeepSeek-VL2 model has 2)");
    std::vector<float> lut(3 * 256);
    for (int c = 0; c < 3; ++c) {
        if (!(stdev[c] != 0.f) || !std::isfinite(stdev[c]) || !std::isfinite(mean[c]))
            throw Error("image_mean / image_std of processor_config.json must be finite and image_std non-zero");
        for (int p = 0; p < 256; ++p)
            lut[c * 256 + p] = (static_cast<float>(p) / 255.f - mean[c]) / stdev[c];
    }
    lut_ = DeviceBuffer(lut.size() * sizeof(float), "the pixel table");
    check(k::copyToDevice(lut_.get(), lut.data(), lut.size() * sizeof(float), stream_), "pixel table");
    check(k::streamSynchronize(stream_), "pixel table");
    Carver measure;
    layout(measure);
    workspaceBytes_ = measure.used();
}

void CudaVision::layout(Carver& c)
{
    const std::size_t P = vision_.patchesPerTile(), W = vision_.width, rows = batch_ * P;
    const std::size_t a = k::dtypeBytes(act_);
    const std::size_t patchLen = 3 * static_cast<std::size_t>(vision_.patchSize) * vision_.patchSize;
    const std::size_t T = tokensPerTile();
    std::size_t projWidest = 0;
    for (const auto& l : weights_.projector)
        projWidest = std::max<std::size_t>(projWidest, l.weight.rows);
    tiles_ = c.take<std::uint8_t>(batch_ * static_cast<std::size_t>(vision_.imageSize) * vision_.imageSize * 3);
    x_ = c.take<float>(rows * W);
    normed_ = c.takeBytes(rows * W * a);
    wide_ = c.takeBytes(rows * 3 * W * a);
    hidden_buf_ = c.takeBytes(rows * std::max<std::size_t>(vision_.mlpHidden, patchLen) * a);
    attn_ = c.takeBytes(rows * W * a);
    const bool fused = act_ == k::DType::BF16 && k::flashAttentionSupports(vision_.width / vision_.heads);
    if (!fused) {  // the unfused attention's score matrices of one tile
        scores_ = c.take<float>(static_cast<std::size_t>(vision_.heads) * P * P);
        probs_ = act_ == k::DType::F32 ? static_cast<void*>(scores_) : c.takeBytes(static_cast<std::size_t>(vision_.heads) * P * P * a);
    }
    merged_ = c.takeBytes(batch_ * T * W * ratio_ * ratio_ * a);
    projHidden_ = c.takeBytes(batch_ * T * projWidest * a);
    projected_ = c.take<float>(maxTiles_ * T * static_cast<std::size_t>(hidden_));
}

void CudaVision::bindWorkspace(void* base)
{
    Carver c(base);
    layout(c);
}

void CudaVision::gemm(const void* A, std::int64_t lda, int M, const DeviceMatrix& W, const float* bias, void* C,
                      k::DType cType, std::int64_t ldc, float beta, k::Epilogue epilogue)
{
    k::GemmArgs g;
    g.M = M;
    g.N = W.rows;
    g.K = W.cols;
    g.A = A;
    g.aType = act_;
    g.lda = lda;
    g.B = W.data;
    g.bType = k::DType::BF16;
    g.ldb = W.cols;
    g.C = C;
    g.cType = cType;
    g.ldc = ldc;
    g.bias = bias;
    g.beta = beta;
    g.epilogue = epilogue;
    g.math = math_;
    check(k::gemm(gemm_, g, stream_), "vision linear");
}

void CudaVision::attentionUnfused(int nb, float scale)
{
    const int P = vision_.patchesPerTile(), W = vision_.width, heads = vision_.heads, hd = W / heads;
    const std::size_t a = k::dtypeBytes(act_);
    for (int t = 0; t < nb; ++t) {
        const auto* base = static_cast<const std::uint8_t*>(wide_) + static_cast<std::size_t>(t) * P * 3 * W * a;
        k::GemmArgs s;
        s.M = P;
        s.N = P;
        s.K = hd;
        s.A = base;
        s.aType = act_;
        s.lda = 3 * W;
        s.strideA = hd;
        s.B = base + static_cast<std::size_t>(W) * a;
        s.bType = act_;
        s.bLayout = k::BLayout::NK;
        s.ldb = 3 * W;
        s.strideB = hd;
        s.C = scores_;
        s.cType = k::DType::F32;
        s.ldc = P;
        s.strideC = static_cast<std::int64_t>(P) * P;
        s.batch = heads;
        s.alpha = scale;
        s.math = math_;
        check(k::gemm(gemm_, s, stream_), "vision attention scores");
        k::SoftmaxArgs sm;
        sm.scores = scores_;
        sm.rows = heads * P;
        sm.context = P;
        sm.ld = P;
        sm.firstVisible = P;
        sm.out = probs_;
        sm.outType = act_;
        sm.ldo = P;
        check(k::causalSoftmax(sm, stream_), "vision attention softmax");
        k::GemmArgs pv;
        pv.M = P;
        pv.N = hd;
        pv.K = P;
        pv.A = probs_;
        pv.aType = act_;
        pv.lda = P;
        pv.strideA = static_cast<std::int64_t>(P) * P;
        pv.B = base + static_cast<std::size_t>(2 * W) * a;
        pv.bType = act_;
        pv.bLayout = k::BLayout::KN;
        pv.ldb = 3 * W;
        pv.strideB = hd;
        pv.C = static_cast<std::uint8_t*>(attn_) + static_cast<std::size_t>(t) * P * W * a;
        pv.cType = act_;
        pv.ldc = W;
        pv.strideC = hd;
        pv.batch = heads;
        pv.math = math_;
        check(k::gemm(gemm_, pv, stream_), "vision attention values");
    }
}

bool CudaVision::encode(const std::uint8_t* tiles, int count, float* projected, std::vector<float>* visionOut,
                        const std::atomic<bool>* cancel)
{
    const int S = vision_.imageSize, p = vision_.patchSize, grid = vision_.gridSize();
    const int P = vision_.patchesPerTile(), W = vision_.width, heads = vision_.heads, hd = W / heads;
    const int T = tokensPerTile();
    const std::size_t tileBytes = static_cast<std::size_t>(S) * S * 3;
    const std::size_t a = k::dtypeBytes(act_);
    const float scale = 1.f / std::sqrt(static_cast<float>(hd));
    if (visionOut)
        visionOut->assign(static_cast<std::size_t>(count) * P * W, 0.f);
    for (int t0 = 0; t0 < count; t0 += batch_) {
        if (cancel && cancel->load())
            return false;
        const int nb = std::min(batch_, count - t0);
        const int rows = nb * P;
        check(k::copyToDevice(tiles_, tiles + t0 * tileBytes, nb * tileBytes, stream_), "tile upload");
        check(k::patchRows(tiles_, nb, S, p, grid, lut_.as<float>(), hidden_buf_, act_, stream_), "patch embedding");
        gemm(hidden_buf_, 3 * p * p, rows, weights_.patchEmbed, weights_.patchBias.data, x_, k::DType::F32, W, 0.f);
        check(k::addPeriodicRows(x_, rows, W, weights_.posEmbed.data, P, stream_), "position embedding");
        for (const VisionBlockWeights& b : weights_.blocks) {
            check(k::layerNorm(x_, W, rows, W, b.norm1Weight.data, b.norm1Bias.data, vision_.layerNormEps, normed_, act_, W, stream_),
                  "vision norm1");
            gemm(normed_, W, rows, b.qkv, b.qkvBias.data, wide_, act_, 3 * W, 0.f);
            if (act_ == k::DType::BF16 && k::flashAttentionSupports(hd)) {
                // Fast mode: every tile and head in one fused launch, scores never leave the chip.
                k::FlashAttentionArgs fa;
                fa.q = wide_;
                fa.ldq = 3 * W;
                fa.qHeadStride = hd;
                fa.qBatchStride = static_cast<std::int64_t>(P) * 3 * W;
                fa.k = static_cast<const std::uint8_t*>(wide_) + static_cast<std::size_t>(W) * a;
                fa.ldk = fa.ldq;
                fa.kHeadStride = hd;
                fa.kBatchStride = fa.qBatchStride;
                fa.v = static_cast<const std::uint8_t*>(wide_) + static_cast<std::size_t>(2 * W) * a;
                fa.ldv = fa.ldq;
                fa.vHeadStride = hd;
                fa.vBatchStride = fa.qBatchStride;
                fa.o = attn_;
                fa.ldo = W;
                fa.oHeadStride = hd;
                fa.oBatchStride = static_cast<std::int64_t>(P) * W;
                fa.batch = nb;
                fa.heads = heads;
                fa.queries = P;
                fa.keys = P;
                fa.headDim = hd;
                fa.scale = scale;
                check(k::flashAttention(fa, stream_), "vision attention");
            } else {
                attentionUnfused(nb, scale);
            }
            gemm(attn_, W, rows, b.proj, b.projBias.data, x_, k::DType::F32, W, 1.f);
            check(k::layerNorm(x_, W, rows, W, b.norm2Weight.data, b.norm2Bias.data, vision_.layerNormEps, normed_, act_, W, stream_),
                  "vision norm2");
            if (act_ == k::DType::BF16) {  // bias and GELU in the product's epilogue, on the fp32 accumulator
                gemm(normed_, W, rows, b.fc1, b.fc1Bias.data, hidden_buf_, act_, vision_.mlpHidden, 0.f, k::Epilogue::GeluTanh);
            } else {
                gemm(normed_, W, rows, b.fc1, b.fc1Bias.data, hidden_buf_, act_, vision_.mlpHidden, 0.f);
                check(k::gelu(hidden_buf_, act_, vision_.mlpHidden, rows, vision_.mlpHidden, k::Gelu::Tanh, stream_), "vision gelu");
            }
            gemm(hidden_buf_, vision_.mlpHidden, rows, b.fc2, b.fc2Bias.data, x_, k::DType::F32, W, 1.f);
        }
        check(k::layerNorm(x_, W, rows, W, weights_.visionNormWeight.data, weights_.visionNormBias.data, vision_.layerNormEps, x_,
                           k::DType::F32, W, stream_),
              "vision final norm");
        if (visionOut) {
            check(k::copyToHost(visionOut->data() + static_cast<std::size_t>(t0) * P * W, x_,
                                static_cast<std::size_t>(rows) * W * sizeof(float), stream_),
                  "vision output download");
            check(k::streamSynchronize(stream_), "vision output download");
        }
        check(k::mergePatches(x_, nb, grid, W, ratio_, side_, merged_, act_, stream_), "projector merge");
        const void* in = merged_;
        std::int64_t inWidth = static_cast<std::int64_t>(W) * ratio_ * ratio_;
        for (std::size_t d = 0; d < weights_.projector.size(); ++d) {
            const auto& layer = weights_.projector[d];
            const bool last = d + 1 == weights_.projector.size();
            void* out = last ? static_cast<void*>(projected + static_cast<std::size_t>(t0) * T * hidden_) : projHidden_;
            gemm(in, inWidth, nb * T, layer.weight, layer.bias.data, out, last ? k::DType::F32 : act_, layer.weight.rows, 0.f);
            if (!last)
                check(k::gelu(out, act_, layer.weight.rows, nb * T, layer.weight.rows, k::Gelu::Erf, stream_), "projector gelu");
            in = out;
            inWidth = layer.weight.rows;
        }
    }
    return true;
}

}  // namespace tessera::cuda
