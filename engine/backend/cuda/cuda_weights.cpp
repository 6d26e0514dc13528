#include "backend/cuda/cuda_weights.h"

#include "tessera_kernels/elementwise.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <string>

namespace tessera::cuda {

namespace {

enum class VectorKind { Norm, Bias, Small };

// Rows [row0, row0 + rows) of a checkpoint matrix (flattened to 2-D), optionally only columns
// [col0, col0 + cols), optionally transposed.
struct RowBlock {
    std::string tensor;
    std::int64_t row0 = 0, rows = -1;  // -1: all rows
    bool transpose = false;
    std::int64_t col0 = 0, cols = -1;  // -1: all columns
};

struct MatrixJob {
    std::uint16_t* dst;
    int rows, cols;
    std::vector<RowBlock> blocks;
};

struct VectorJob {
    float* dst;
    int size;
    std::string tensor;
    VectorKind kind;
};

std::uint16_t toBf16(float f)
{
    std::uint32_t u = std::bit_cast<std::uint32_t>(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return static_cast<std::uint16_t>((u >> 16) | 0x40);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<std::uint16_t>(u >> 16);
}

// Streams host bytes to consecutive device addresses through two pinned buffers, merging
// contiguous pieces into large transfers.
class Uploader {
public:
    static constexpr std::size_t kChunk = std::size_t(32) << 20;

    Uploader(k::Stream stream, std::size_t total, const std::function<void(double)>& progress)
        : stream_(stream), total_(std::max<std::size_t>(total, 1)), progress_(progress)
    {
        for (int i = 0; i < 2; ++i) {
            staging_[i] = PinnedBuffer(kChunk);
            check(k::eventCreate(&done_[i]), "upload event");
        }
    }
    ~Uploader()
    {
        for (auto e : done_)
            k::eventDestroy(e);
    }

    void append(void* dst, const void* src, std::size_t bytes)
    {
        auto* d = static_cast<std::uint8_t*>(dst);
        auto* s = static_cast<const std::uint8_t*>(src);
        while (bytes > 0) {
            if (fill_ > 0 && (d != pendingDst_ + fill_ || fill_ == kChunk))
                flush();
            if (fill_ == 0) {
                if (recorded_[cur_])
                    check(k::eventSynchronize(done_[cur_]), "weight upload");
                pendingDst_ = d;
            }
            const std::size_t n = std::min(bytes, kChunk - fill_);
            std::memcpy(staging_[cur_].as<std::uint8_t>() + fill_, s, n);
            fill_ += n;
            d += n;
            s += n;
            bytes -= n;
        }
    }

    void finish()
    {
        flush();
        check(k::streamSynchronize(stream_), "weight upload");
    }

private:
    void flush()
    {
        if (fill_ == 0)
            return;
        check(k::copyToDevice(pendingDst_, staging_[cur_].as<std::uint8_t>(), fill_, stream_), "weight upload");
        check(k::eventRecord(done_[cur_], stream_), "weight upload");
        recorded_[cur_] = true;
        done_bytes_ += fill_;
        fill_ = 0;
        cur_ ^= 1;
        if (progress_)
            progress_(static_cast<double>(done_bytes_) / static_cast<double>(total_));
    }

    k::Stream stream_;
    std::size_t total_;
    const std::function<void(double)>& progress_;
    PinnedBuffer staging_[2];
    k::Event done_[2] = {nullptr, nullptr};
    bool recorded_[2] = {false, false};
    int cur_ = 0;
    std::size_t fill_ = 0;
    std::uint8_t* pendingDst_ = nullptr;
    std::size_t done_bytes_ = 0;
};

}  // namespace

class WeightLayout {
public:
    explicit WeightLayout(void* base) : carver_(base), planning_(base == nullptr) {}

    void declare(const ModelConfig& config, DeviceWeights& w)
    {
        const auto& l = config.language;
        const int H = l.hiddenSize;
        const int V = static_cast<int>(l.vocabSize);
        w.embed = matrix(V, H, {{"language.model.embed_tokens.weight"}});
        w.layers.assign(l.numHiddenLayers, {});
        for (int i = 0; i < l.numHiddenLayers; ++i) {
            const std::string p = "language.model.layers." + std::to_string(i) + ".";
            const std::string a = p + "self_attn.";
            LanguageLayerWeights& lw = w.layers[i];
            lw.inputNorm = vector(H, p + "input_layernorm.weight", VectorKind::Norm);
            lw.postNorm = vector(H, p + "post_attention_layernorm.weight", VectorKind::Norm);
            const int heads = l.numAttentionHeads;
            if (l.useMla) {
                const int qhd = l.qkNopeHeadDim + l.qkRopeHeadDim;
                const int rank = l.kvLoraRank, rope = l.qkRopeHeadDim, nope = l.qkNopeHeadDim, vd = l.vHeadDim;
                lw.attnIn = matrix(heads * qhd + rank + rope, H, {{a + "q_proj.weight"}, {a + "kv_a_proj_with_mqa.weight"}});
                lw.kvNorm = vector(rank, a + "kv_a_layernorm.weight", VectorKind::Norm);
                std::vector<RowBlock> uk, uv;
                for (int h = 0; h < heads; ++h) {
                    uk.push_back({a + "kv_b_proj.weight", static_cast<std::int64_t>(h) * (nope + vd), nope, true});
                    uv.push_back({a + "kv_b_proj.weight", static_cast<std::int64_t>(h) * (nope + vd) + nope, vd, false});
                }
                lw.wUkT = matrix(heads * rank, nope, uk);
                lw.wUv = matrix(heads * vd, rank, uv);
                lw.attnOut = matrix(H, heads * vd, {{a + "o_proj.weight"}});
            } else {
                const int hd = l.headDim(), kvh = l.numKeyValueHeads;
                lw.attnIn = matrix((heads + 2 * kvh) * hd, H, {{a + "q_proj.weight"}, {a + "k_proj.weight"}, {a + "v_proj.weight"}});
                lw.attnOut = matrix(H, heads * hd, {{a + "o_proj.weight"}});
            }
            auto gateUp = [&](const std::string& m, int inter) {
                return matrix(2 * inter, H, {{m + "gate_proj.weight"}, {m + "up_proj.weight"}});
            };
            if (l.isMoeLayer(i)) {
                lw.moe = true;
                const int E = l.nRoutedExperts.value_or(0), I = l.moeIntermediateSize;
                lw.router = matrix(E, H, {{p + "mlp.gate.weight"}});
                if (l.topkMethod == TopkMethod::NoAuxTc)
                    lw.routerBias = vector(E, p + "mlp.gate.e_score_correction_bias", VectorKind::Bias);
                std::vector<RowBlock> gu, dn;
                for (int e = 0; e < E; ++e) {
                    const std::string m = p + "mlp.experts." + std::to_string(e) + ".";
                    gu.push_back({m + "gate_proj.weight"});
                    gu.push_back({m + "up_proj.weight"});
                    dn.push_back({m + "down_proj.weight"});
                }
                const int S = std::max(0, l.nSharedExperts.value_or(0));
                const std::string sh = p + "mlp.shared_experts.";
                for (int j = 0; j < S; ++j) {
                    gu.push_back({sh + "gate_proj.weight", static_cast<std::int64_t>(j) * I, I});
                    gu.push_back({sh + "up_proj.weight", static_cast<std::int64_t>(j) * I, I});
                    dn.push_back({sh + "down_proj.weight", 0, -1, false, static_cast<std::int64_t>(j) * I, I});
                }
                lw.sharedExperts = S;
                lw.expertsGateUp = matrix((E + S) * 2 * I, H, gu);
                lw.expertsDown = matrix((E + S) * H, I, dn);
            } else {
                lw.gateUp = gateUp(p + "mlp.", l.intermediateSize);
                lw.down = matrix(H, l.intermediateSize, {{p + "mlp.down_proj.weight"}});
            }
        }
        w.finalNorm = vector(H, "language.model.norm.weight", VectorKind::Norm);
        w.lmHead = matrix(V, H, {{"language.lm_head.weight"}});

        const auto& v = config.vision;
        const int W = v.width;
        w.patchEmbed = matrix(W, 3 * v.patchSize * v.patchSize, {{"vision.patch_embed.proj.weight"}});
        w.patchBias = vector(W, "vision.patch_embed.proj.bias", VectorKind::Bias);
        w.posEmbed = vector(v.patchesPerTile() * W, "vision.pos_embed", VectorKind::Small);
        w.blocks.assign(v.layers, {});
        for (int b = 0; b < v.layers; ++b) {
            const std::string p = "vision.blocks." + std::to_string(b) + ".";
            VisionBlockWeights& bw = w.blocks[b];
            bw.norm1Weight = vector(W, p + "norm1.weight", VectorKind::Norm);
            bw.norm1Bias = vector(W, p + "norm1.bias", VectorKind::Bias);
            bw.qkv = matrix(3 * W, W, {{p + "attn.qkv.weight"}});
            bw.qkvBias = vector(3 * W, p + "attn.qkv.bias", VectorKind::Bias);
            bw.proj = matrix(W, W, {{p + "attn.proj.weight"}});
            bw.projBias = vector(W, p + "attn.proj.bias", VectorKind::Bias);
            bw.norm2Weight = vector(W, p + "norm2.weight", VectorKind::Norm);
            bw.norm2Bias = vector(W, p + "norm2.bias", VectorKind::Bias);
            bw.fc1 = matrix(v.mlpHidden, W, {{p + "mlp.fc1.weight"}});
            bw.fc1Bias = vector(v.mlpHidden, p + "mlp.fc1.bias", VectorKind::Bias);
            bw.fc2 = matrix(W, v.mlpHidden, {{p + "mlp.fc2.weight"}});
            bw.fc2Bias = vector(W, p + "mlp.fc2.bias", VectorKind::Bias);
        }
        w.visionNormWeight = vector(W, "vision.norm.weight", VectorKind::Norm);
        w.visionNormBias = vector(W, "vision.norm.bias", VectorKind::Bias);

        const auto& pr = config.projector;
        const int projIn = pr.inputDim * pr.downsampleRatio * pr.downsampleRatio;
        const int projHidden = pr.nEmbed * pr.mlpRatio;
        w.projector.clear();
        for (int d = 0; d < pr.depth; ++d) {
            const std::string p = "projector.layers." + std::to_string(2 * d) + ".";
            const int out = d + 1 == pr.depth ? pr.nEmbed : projHidden;
            const int in = d == 0 ? projIn : projHidden;
            w.projector.push_back({matrix(out, in, {{p + "weight"}}), vector(out, p + "bias", VectorKind::Bias)});
        }
        w.imageNewline = vector(pr.nEmbed, "image_newline", VectorKind::Small);
        w.viewSeparator = vector(pr.nEmbed, "view_seperator", VectorKind::Small);
    }

    std::size_t used() const { return carver_.used(); }

    void upload(const WeightMap& weights, k::Stream stream, const std::function<void(double)>& progress)
    {
        Uploader up(stream, used(), progress);
        for (const MatrixJob& job : matrices_) {
            std::uint8_t* dst = reinterpret_cast<std::uint8_t*>(job.dst);
            std::int64_t written = 0;
            for (const RowBlock& b : job.blocks) {
                const TensorView& t = weights.get(b.tensor);
                const std::int64_t rows = t.shape.empty() ? 1 : t.shape[0];
                const std::int64_t width = rows ? t.numel() / rows : 0;
                const std::int64_t n = b.rows < 0 ? rows : b.rows;
                const std::int64_t cols = b.cols < 0 ? width : b.cols;
                if (b.row0 < 0 || b.row0 + n > rows || b.col0 < 0 || b.col0 + cols > width)
                    throw Error("internal error: block outside " + b.tensor);
                const std::int64_t elems = n * cols;
                if (t.dtype == DType::BF16 && !b.transpose && cols == width) {
                    up.append(dst + written * 2, t.data + b.row0 * width * 2, static_cast<std::size_t>(elems) * 2);
                } else {
                    // Transposed, a column range, or not bf16 in the file: build the block on the host.
                    std::vector<std::uint16_t> tmp(static_cast<std::size_t>(elems));
                    for (std::int64_t r = 0; r < n; ++r)
                        for (std::int64_t c = 0; c < cols; ++c) {
                            const std::size_t src = static_cast<std::size_t>((b.row0 + r) * width + b.col0 + c);
                            std::uint16_t v;
                            if (t.dtype == DType::BF16)
                                std::memcpy(&v, t.data + src * 2, 2);
                            else
                                v = toBf16(t.floatAt(src));
                            tmp[b.transpose ? static_cast<std::size_t>(c * n + r) : static_cast<std::size_t>(r * cols + c)] = v;
                        }
                    up.append(dst + written * 2, tmp.data(), tmp.size() * 2);
                }
                written += elems;
            }
            if (written != static_cast<std::int64_t>(job.rows) * job.cols)
                throw Error("internal error: " + job.blocks.front().tensor + " fills " + std::to_string(written) +
                            " of " + std::to_string(static_cast<std::int64_t>(job.rows) * job.cols) + " elements");
        }
        for (const VectorJob& job : vectors_) {
            const auto values = weights.get(job.tensor).toFloat();
            if (values.size() != static_cast<std::size_t>(job.size))
                throw Error("internal error: " + job.tensor + " has " + std::to_string(values.size()) + " values");
            up.append(job.dst, values.data(), values.size() * sizeof(float));
        }
        up.finish();
    }

    void randomize(std::uint64_t seed, k::Stream stream)
    {
        std::uint64_t n = 0;
        for (const MatrixJob& job : matrices_) {
            const float scale = std::sqrt(3.f / static_cast<float>(std::max(job.cols, 1)));
            check(k::fillRandomBf16(job.dst, static_cast<std::int64_t>(job.rows) * job.cols, scale, 0.f, seed + (++n) * 7919, stream),
                  "random weights");
        }
        for (const VectorJob& job : vectors_) {
            const float offset = job.kind == VectorKind::Norm ? 1.f : 0.f;
            const float scale = job.kind == VectorKind::Norm ? 0.1f : job.kind == VectorKind::Bias ? 0.05f : 0.02f;
            check(k::fillRandomF32(job.dst, job.size, scale, offset, seed + (++n) * 7919, stream), "random weights");
        }
        check(k::streamSynchronize(stream), "random weights");
    }

private:
    DeviceMatrix matrix(int rows, int cols, std::vector<RowBlock> blocks)
    {
        std::uint16_t* p = carver_.take<std::uint16_t>(static_cast<std::size_t>(rows) * cols);
        if (!planning_)
            matrices_.push_back({p, rows, cols, std::move(blocks)});
        return {p, rows, cols};
    }
    DeviceVector vector(int size, std::string tensor, VectorKind kind)
    {
        float* p = carver_.take<float>(static_cast<std::size_t>(size));
        if (!planning_)
            vectors_.push_back({p, size, std::move(tensor), kind});
        return {p, size};
    }

    Carver carver_;
    bool planning_;
    std::vector<MatrixJob> matrices_;
    std::vector<VectorJob> vectors_;
};

std::size_t DeviceWeights::plannedBytes(const ModelConfig& config)
{
    WeightLayout layout(nullptr);
    DeviceWeights scratch;
    layout.declare(config, scratch);
    return layout.used();
}

std::unique_ptr<DeviceWeights> DeviceWeights::shapesOnly(const ModelConfig& config)
{
    auto w = std::make_unique<DeviceWeights>();
    WeightLayout layout(nullptr);
    layout.declare(config, *w);
    w->plannedBytes_ = layout.used();
    return w;
}

std::unique_ptr<DeviceWeights> DeviceWeights::upload(const ModelConfig& config, const WeightMap& weights, k::Stream stream,
                                                     const std::function<void(double)>& progress)
{
    auto w = std::make_unique<DeviceWeights>();
    w->storage_ = DeviceBuffer(plannedBytes(config), "the model weights");
    WeightLayout layout(w->storage_.get());
    layout.declare(config, *w);
    layout.upload(weights, stream, progress);
    return w;
}

std::unique_ptr<DeviceWeights> DeviceWeights::random(const ModelConfig& config, std::uint64_t seed, k::Stream stream)
{
    auto w = std::make_unique<DeviceWeights>();
    w->storage_ = DeviceBuffer(plannedBytes(config), "the model weights");
    WeightLayout layout(w->storage_.get());
    layout.declare(config, *w);
    layout.randomize(seed, stream);
    return w;
}

}  // namespace tessera::cuda
