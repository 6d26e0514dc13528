#include "backend/cpu/cpu_vision.h"

#include "core/error.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <string>

namespace tessera::cpu {

namespace {

// Activations of one batch of tiles are bounded by this budget (the scores of one tile's heads
// come on top); more tiles per batch would not make the products faster, only the memory larger.
constexpr std::size_t kBatchWorkspaceBytes = std::size_t(160) << 20;
// The projector's input is 4x the vision width per token; a few tiles at a time is plenty.
constexpr int kProjectorTilesPerBatch = 8;

void addInPlace(float* x, const float* y, std::size_t n)
{
#pragma omp parallel for schedule(static)
    for (std::size_t i = 0; i < n; ++i)
        x[i] += y[i];
}

std::string configError(const std::string& what)
{
    return "the vision encoder cannot run this model: " + what + " (check the vision_config / projector_config of config.json)";
}

}  // namespace

// Buffers of one encode() call, sized for `tiles` tiles; the residual stream lives in the output.
struct CpuVisionEncoder::Workspace {
    std::vector<float> normed;  // [rows, width]: LayerNorm outputs, then the attention output
    std::vector<float> wide;    // [rows, 3·width]: qkv, then the output of proj / fc2
    std::vector<float> hidden;  // [rows, max(mlpHidden, 3·patch²)]: patch rows, then the MLP hidden
    std::vector<float> scores;  // [heads, patches, patches] of one tile

    Workspace(const VisionConfig& v, int tiles)
    {
        const std::size_t rows = static_cast<std::size_t>(tiles) * v.patchesPerTile();
        const std::size_t patchLen = static_cast<std::size_t>(3) * v.patchSize * v.patchSize;
        normed.resize(rows * v.width);
        wide.resize(rows * 3 * v.width);
        hidden.resize(rows * std::max<std::size_t>(v.mlpHidden, patchLen));
        scores.resize(static_cast<std::size_t>(v.heads) * v.patchesPerTile() * v.patchesPerTile());
    }
};

CpuVisionEncoder::CpuVisionEncoder(const ModelConfig& config, const WeightMap& weights, std::array<float, 3> mean,
                                   std::array<float, 3> stdev)
    : vision_(config.vision), mergeRatio_(config.projector.downsampleRatio), tokensPerSide_(config.tokensPerTileSide())
{
    const auto& v = vision_;
    const auto& pr = config.projector;
    if (v.width <= 0 || v.heads <= 0 || v.width % v.heads)
        throw Error(configError("width " + std::to_string(v.width) + " is not a multiple of heads " +
                                std::to_string(v.heads)));
    if (v.patchSize <= 0 || v.gridSize() <= 0)
        throw Error(configError("image_size " + std::to_string(v.imageSize) + " holds no patch of " +
                                std::to_string(v.patchSize)));
    if (pr.type != "downsample_mlp_gelu")
        throw Error(configError("projector_type \"" + pr.type + "\" (only downsample_mlp_gelu is supported)"));
    if (pr.inputDim != v.width)
        throw Error(configError("projector input_dim " + std::to_string(pr.inputDim) + " differs from the vision width " +
                                std::to_string(v.width)));
    if (pr.depth < 1 || mergeRatio_ < 1)
        throw Error(configError("projector depth and downsample_ratio must be at least 1"));
    for (int c = 0; c < 3; ++c) {
        if (!(stdev[c] != 0.f) || !std::isfinite(stdev[c]) || !std::isfinite(mean[c]))
            throw Error("image_mean / image_std of processor_config.json must be finite and image_std non-zero");
        // Exactly the processor's fp32 steps: to [0, 1] by a division, then (x − mean) / std.
        for (int p = 0; p < 256; ++p)
            pixelValue_[c][p] = (static_cast<float>(p) / 255.f - mean[c]) / stdev[c];
    }

    patchEmbed_ = WeightMatrix::from(weights.get("vision.patch_embed.proj.weight"));
    patchBias_ = toFloatVector(weights.get("vision.patch_embed.proj.bias"));
    posEmbed_ = toFloatVector(weights.get("vision.pos_embed"));
    normWeight_ = toFloatVector(weights.get("vision.norm.weight"));
    normBias_ = toFloatVector(weights.get("vision.norm.bias"));
    blocks_.resize(v.layers);
    for (int i = 0; i < v.layers; ++i) {
        const std::string p = "vision.blocks." + std::to_string(i) + ".";
        Block& b = blocks_[i];
        b.norm1Weight = toFloatVector(weights.get(p + "norm1.weight"));
        b.norm1Bias = toFloatVector(weights.get(p + "norm1.bias"));
        b.qkv = WeightMatrix::from(weights.get(p + "attn.qkv.weight"));
        b.qkvBias = toFloatVector(weights.get(p + "attn.qkv.bias"));
        b.proj = WeightMatrix::from(weights.get(p + "attn.proj.weight"));
        b.projBias = toFloatVector(weights.get(p + "attn.proj.bias"));
        b.norm2Weight = toFloatVector(weights.get(p + "norm2.weight"));
        b.norm2Bias = toFloatVector(weights.get(p + "norm2.bias"));
        b.fc1 = WeightMatrix::from(weights.get(p + "mlp.fc1.weight"));
        b.fc1Bias = toFloatVector(weights.get(p + "mlp.fc1.bias"));
        b.fc2 = WeightMatrix::from(weights.get(p + "mlp.fc2.weight"));
        b.fc2Bias = toFloatVector(weights.get(p + "mlp.fc2.bias"));
    }
    // Linear layers sit at even indices of the upstream nn.Sequential, GELUs between them.
    for (int d = 0; d < pr.depth; ++d) {
        const std::string p = "projector.layers." + std::to_string(2 * d) + ".";
        projector_.push_back({WeightMatrix::from(weights.get(p + "weight")), toFloatVector(weights.get(p + "bias"))});
    }
    if (projector_.front().weight.cols != v.width * mergeRatio_ * mergeRatio_)
        throw Error(configError("projector.layers.0.weight takes " + std::to_string(projector_.front().weight.cols) +
                                " inputs, the 2x2 merge gives " + std::to_string(v.width * mergeRatio_ * mergeRatio_)));
}

int CpuVisionEncoder::featuresPerTile() const { return vision_.patchesPerTile(); }

int CpuVisionEncoder::tokensPerTile() const { return tokensPerSide_ * tokensPerSide_; }

int CpuVisionEncoder::projectorWidth() const { return projector_.back().weight.rows; }

int CpuVisionEncoder::tilesPerBatch(int count) const
{
    const auto& v = vision_;
    const std::size_t perTile = static_cast<std::size_t>(v.patchesPerTile()) * sizeof(float) *
                                (4 * static_cast<std::size_t>(v.width) +
                                 std::max<std::size_t>(v.mlpHidden, 3 * v.patchSize * v.patchSize));
    return static_cast<int>(std::clamp<std::size_t>(kBatchWorkspaceBytes / perTile, 1, static_cast<std::size_t>(count)));
}

void CpuVisionEncoder::encode(const std::uint8_t* tiles, int count, float* visionOut) const
{
    if (count <= 0)
        return;
    if (!tiles || !visionOut)
        throw Error("CpuVisionEncoder::encode: null tile or output buffer");
    const int batch = tilesPerBatch(count);
    Workspace ws(vision_, batch);
    const std::size_t tileBytes = static_cast<std::size_t>(vision_.imageSize) * vision_.imageSize * 3;
    const std::size_t tileOut = static_cast<std::size_t>(featuresPerTile()) * vision_.width;
    for (int t0 = 0; t0 < count; t0 += batch) {
        const int n = std::min(batch, count - t0);
        encodeBatch(tiles + t0 * tileBytes, n, visionOut + t0 * tileOut, ws);
    }
}

void CpuVisionEncoder::encodeBatch(const std::uint8_t* tiles, int count, float* x, Workspace& ws) const
{
    const auto& v = vision_;
    const int W = v.width;
    const int P = v.patchesPerTile();
    const int rows = count * P;
    const std::size_t n = static_cast<std::size_t>(rows) * W;

    // Patch embedding: the stride-14 convolution as im2col rows times the flattened kernel.
    patchRows(tiles, count, ws.hidden.data());
    linear(ws.hidden.data(), rows, patchEmbed_, patchBias_.data(), x);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; ++r) {
        float* xr = x + static_cast<std::size_t>(r) * W;
        const float* pos = posEmbed_.data() + static_cast<std::size_t>(r % P) * W;
        for (int i = 0; i < W; ++i)
            xr[i] += pos[i];
    }

    for (const Block& b : blocks_) {
        layerNorm(x, rows, W, b.norm1Weight.data(), b.norm1Bias.data(), v.layerNormEps, ws.normed.data());
        linear(ws.normed.data(), rows, b.qkv, b.qkvBias.data(), ws.wide.data());
        attention(ws.wide.data(), count, ws.normed.data(), ws.scores.data());
        linear(ws.normed.data(), rows, b.proj, b.projBias.data(), ws.wide.data());
        addInPlace(x, ws.wide.data(), n);

        layerNorm(x, rows, W, b.norm2Weight.data(), b.norm2Bias.data(), v.layerNormEps, ws.normed.data());
        linear(ws.normed.data(), rows, b.fc1, b.fc1Bias.data(), ws.hidden.data());
        geluTanh(ws.hidden.data(), static_cast<std::size_t>(rows) * v.mlpHidden);
        linear(ws.hidden.data(), rows, b.fc2, b.fc2Bias.data(), ws.wide.data());
        addInPlace(x, ws.wide.data(), n);
    }
    layerNorm(x, rows, W, normWeight_.data(), normBias_.data(), v.layerNormEps, x);
}

void CpuVisionEncoder::patchRows(const std::uint8_t* tiles, int count, float* rows) const
{
    const int S = vision_.imageSize;
    const int p = vision_.patchSize;
    const int grid = vision_.gridSize();
    const int P = grid * grid;
    const std::size_t len = static_cast<std::size_t>(3) * p * p;
    const std::size_t tileBytes = static_cast<std::size_t>(S) * S * 3;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < count * P; ++r) {
        const std::uint8_t* tile = tiles + (r / P) * tileBytes;
        const int py = (r % P) / grid;
        const int px = (r % P) % grid;
        float* out = rows + r * len;
        // Same order as the conv weight [width, 3, p, p]: channel, then kernel row, then column.
        for (int c = 0; c < 3; ++c)
            for (int ky = 0; ky < p; ++ky) {
                const std::uint8_t* src = tile + (static_cast<std::size_t>(py * p + ky) * S + px * p) * 3 + c;
                for (int kx = 0; kx < p; ++kx)
                    *out++ = pixelValue_[c][src[kx * 3]];
            }
    }
}

void CpuVisionEncoder::attention(const float* qkv, int count, float* out, float* scores) const
{
    const int W = vision_.width;
    const int P = vision_.patchesPerTile();
    const int H = vision_.heads;
    const int hd = W / H;
    const int ld = 3 * W;  // each qkv row is [3][heads][head_dim]
    const float scale = 1.f / std::sqrt(static_cast<float>(hd));
    const std::size_t headScores = static_cast<std::size_t>(P) * P;
    for (int t = 0; t < count; ++t) {
        const float* base = qkv + static_cast<std::size_t>(t) * P * ld;
        float* o = out + static_cast<std::size_t>(t) * P * W;
        // The products are big enough for BLAS's own threads; softmax runs on ours in between.
        for (int h = 0; h < H; ++h)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, P, P, hd, scale, base + h * hd, ld,
                        base + W + h * hd, ld, 0.f, scores + h * headScores, P);
        softmaxRows(scores, H * P, P);
        for (int h = 0; h < H; ++h)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, P, hd, P, 1.f, scores + h * headScores, P,
                        base + 2 * W + h * hd, ld, 0.f, o + h * hd, W);
    }
}

void CpuVisionEncoder::project(const float* visionOut, int count, float* projectorOut) const
{
    if (count <= 0)
        return;
    if (!visionOut || !projectorOut)
        throw Error("CpuVisionEncoder::project: null input or output buffer");
    const int W = vision_.width;
    const int grid = vision_.gridSize();
    const int r = mergeRatio_;
    const int side = tokensPerSide_;
    const int T = tokensPerTile();
    const int inDim = W * r * r;
    const int outDim = projectorWidth();
    const std::size_t visionTile = static_cast<std::size_t>(featuresPerTile()) * W;

    const int batch = std::min(count, kProjectorTilesPerBatch);
    std::vector<float> merged(static_cast<std::size_t>(batch) * T * inDim);
    std::vector<float> a, b;
    for (int t0 = 0; t0 < count; t0 += batch) {
        const int n = std::min(batch, count - t0);
        const int rows = n * T;
        // Zero-padded r×r unfold of the grid; feature order is channel-major: c·r² + dy·r + dx.
#pragma omp parallel for schedule(static)
        for (int row = 0; row < rows; ++row) {
            const float* tile = visionOut + (t0 + row / T) * visionTile;
            const int ty = (row % T) / side;
            const int tx = (row % T) % side;
            float* m = merged.data() + static_cast<std::size_t>(row) * inDim;
            for (int dy = 0; dy < r; ++dy)
                for (int dx = 0; dx < r; ++dx) {
                    const int y = ty * r + dy;
                    const int x = tx * r + dx;
                    const int k = dy * r + dx;
                    if (y < grid && x < grid) {
                        const float* src = tile + static_cast<std::size_t>(y * grid + x) * W;
                        for (int c = 0; c < W; ++c)
                            m[c * r * r + k] = src[c];
                    } else {
                        for (int c = 0; c < W; ++c)
                            m[c * r * r + k] = 0.f;
                    }
                }
        }
        const float* in = merged.data();
        for (std::size_t l = 0; l < projector_.size(); ++l) {
            const ProjectorLayer& layer = projector_[l];
            const bool last = l + 1 == projector_.size();
            std::vector<float>& buf = (l % 2 == 0) ? a : b;
            float* dst = last ? projectorOut + static_cast<std::size_t>(t0) * T * outDim : nullptr;
            if (!last) {
                buf.resize(static_cast<std::size_t>(rows) * layer.weight.rows);
                dst = buf.data();
            }
            linear(in, rows, layer.weight, layer.bias.data(), dst);
            if (!last)
                geluErf(dst, static_cast<std::size_t>(rows) * layer.weight.rows);
            in = dst;
        }
    }
}

}  // namespace tessera::cpu
