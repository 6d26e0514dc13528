#include "tessera_kernels/elementwise.h"

#include "launch_util.cuh"
#include "trace.cuh"

#include <algorithm>

namespace tessera::kernels {

namespace {

unsigned blocksFor(long long n, int threads = 256)
{
    const long long b = (n + threads - 1) / threads;
    return static_cast<unsigned>(b < 1 ? 1 : b > 65535LL * 16 ? 65535LL * 16 : b);
}

template <typename TI, typename TO>
__global__ void siluGateKernel(const TI* in, long long ldIn, int rows, int inter, TO* out, long long ldOut)
{
    const long long total = static_cast<long long>(rows) * inter;
    for (long long e = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; e < total;
         e += static_cast<long long>(gridDim.x) * blockDim.x) {
        const long long r = e / inter;
        const int i = static_cast<int>(e - r * inter);
        const float g = toFloat(in[r * ldIn + i]);
        const float u = toFloat(in[r * ldIn + inter + i]);
        out[r * ldOut + i] = fromFloat<TO>(g / (1.f + expf(-g)) * u);
    }
}

// The same for inter, ldIn and ldOut multiples of 8: a thread takes 8 consecutive columns of one
// row (vector loads, no division per element); blockIdx.y walks the rows.
template <typename TI, typename TO>
__global__ void siluGateVecKernel(const TI* in, long long ldIn, int rows, int inter, TO* out, long long ldOut)
{
    const int i = (blockIdx.x * blockDim.x + threadIdx.x) * 8;
    if (i >= inter)
        return;
    for (long long r = blockIdx.y; r < rows; r += gridDim.y) {
        const TI* g = in + r * ldIn + i;
        const TI* u = g + inter;
        const float4 g0 = load4(g), g1 = load4(g + 4), u0 = load4(u), u1 = load4(u + 4);
        auto act = [](float a, float b) { return a / (1.f + expf(-a)) * b; };
        TO* o = out + r * ldOut + i;
        store4(o, make_float4(act(g0.x, u0.x), act(g0.y, u0.y), act(g0.z, u0.z), act(g0.w, u0.w)));
        store4(o + 4, make_float4(act(g1.x, u1.x), act(g1.y, u1.y), act(g1.z, u1.z), act(g1.w, u1.w)));
    }
}

template <typename T>
__global__ void geluKernel(T* x, long long ld, int rows, int n, bool erfKind)
{
    const long long total = static_cast<long long>(rows) * n;
    for (long long e = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; e < total;
         e += static_cast<long long>(gridDim.x) * blockDim.x) {
        const long long r = e / n;
        const int i = static_cast<int>(e - r * n);
        T* p = x + r * ld + i;
        const float v = toFloat(*p);
        float o;
        if (erfKind) {
            o = 0.5f * v * (1.f + erff(v * 0.7071067811865476f));
        } else {
            const float k = 0.7978845608028654f;
            o = 0.5f * v * (1.f + tanhf(k * (v + 0.044715f * v * v * v)));
        }
        *p = fromFloat<T>(o);
    }
}

__global__ void addPeriodicRowsKernel(float* x, int rows, int n, const float* add, int period)
{
    const long long total = static_cast<long long>(rows) * n;
    for (long long e = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; e < total;
         e += static_cast<long long>(gridDim.x) * blockDim.x) {
        const long long r = e / n;
        const int i = static_cast<int>(e - r * n);
        x[e] += add[(r % period) * n + i];
    }
}

__global__ void embedRowsKernel(const bf16* table, const int* ids, int n, float* out)
{
    BlockTrace trace(TraceSite::Embed);
    trace.waited();
    const long long id = ids[blockIdx.x];
    const bf16* __restrict__ src = table + id * n;
    float* __restrict__ dst = out + static_cast<long long>(blockIdx.x) * n;
#pragma unroll 8
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        dst[i] = __bfloat162float(src[i]);
}

__global__ void gatherImageRowsKernel(const float* rows, const int* sources, int n, const float* newline,
                                      const float* separator, float* out)
{
    const int s = sources[blockIdx.x];
    const float* src = s >= 0 ? rows + static_cast<long long>(s) * n : s == -1 ? newline : separator;
    float* dst = out + static_cast<long long>(blockIdx.x) * n;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        dst[i] = src[i];
}

template <typename TI, typename TO>
__global__ void convertKernel(const TI* in, TO* out, long long count)
{
    for (long long e = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; e < count;
         e += static_cast<long long>(gridDim.x) * blockDim.x)
        out[e] = fromFloat<TO>(toFloat(in[e]));
}

__device__ __forceinline__ float hashUniform(unsigned long long seed, long long i)
{
    unsigned long long z = seed + 0x9E3779B97F4A7C15ull * static_cast<unsigned long long>(i + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return static_cast<float>(z >> 40) * (1.0f / 16777216.0f) * 2.f - 1.f;  // [-1, 1)
}

template <typename T>
__global__ void fillRandomKernel(T* out, long long count, float scale, float offset, unsigned long long seed)
{
    for (long long e = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; e < count;
         e += static_cast<long long>(gridDim.x) * blockDim.x)
        out[e] = fromFloat<T>(offset + scale * hashUniform(seed, e));
}

}  // namespace

Status setTraceSinkElementwise(const TraceSink& s) { return setThisFilesTraceSink(s); }

Status siluGate(const void* in, DType inType, std::int64_t ldIn, int rows, int inter, void* out, DType outType,
                std::int64_t ldOut, Stream stream)
{
    if (rows <= 0 || inter <= 0)
        return {};
    if (inter % 8 == 0 && ldIn % 8 == 0 && ldOut % 8 == 0 && aligned16(in) && aligned16(out)) {
        const dim3 grid((inter / 8 + 127) / 128, std::min(rows, 65535));
        TESSERA_DISPATCH_DTYPE(inType, TI, TESSERA_DISPATCH_DTYPE(outType, TO, siluGateVecKernel<TI, TO><<<grid, 128, 0, cuStream(stream)>>>(static_cast<const TI*>(in), ldIn, rows, inter, static_cast<TO*>(out), ldOut)));
        return launchStatus("silu_gate");
    }
    const unsigned blocks = blocksFor(static_cast<long long>(rows) * inter);
    TESSERA_DISPATCH_DTYPE(inType, TI, TESSERA_DISPATCH_DTYPE(outType, TO, siluGateKernel<TI, TO><<<blocks, 256, 0, cuStream(stream)>>>(static_cast<const TI*>(in), ldIn, rows, inter, static_cast<TO*>(out), ldOut)));
    return launchStatus("silu_gate");
}

Status gelu(void* x, DType type, std::int64_t ld, int rows, int n, Gelu kind, Stream stream)
{
    if (rows <= 0 || n <= 0)
        return {};
    const unsigned blocks = blocksFor(static_cast<long long>(rows) * n);
    TESSERA_DISPATCH_DTYPE(type, T, geluKernel<T><<<blocks, 256, 0, cuStream(stream)>>>(static_cast<T*>(x), ld, rows, n, kind == Gelu::Erf));
    return launchStatus("gelu");
}

Status addPeriodicRows(float* x, int rows, int n, const float* add, int period, Stream stream)
{
    if (rows <= 0)
        return {};
    addPeriodicRowsKernel<<<blocksFor(static_cast<long long>(rows) * n), 256, 0, cuStream(stream)>>>(x, rows, n, add, period);
    return launchStatus("add_position_rows");
}

Status embedRows(const std::uint16_t* table, const std::int32_t* ids, int count, int n, float* out, Stream stream)
{
    if (count <= 0)
        return {};
    embedRowsKernel<<<count, 128, 0, cuStream(stream)>>>(reinterpret_cast<const bf16*>(table), ids, n, out);
    return launchStatus("embed_tokens");
}

Status gatherImageRows(const float* rows, const std::int32_t* sources, int count, int n, const float* newline,
                       const float* separator, float* out, Stream stream)
{
    if (count <= 0)
        return {};
    gatherImageRowsKernel<<<count, 128, 0, cuStream(stream)>>>(rows, sources, n, newline, separator, out);
    return launchStatus("image_token_layout");
}

Status convert(const void* in, DType inType, void* out, DType outType, std::int64_t count, Stream stream)
{
    if (count <= 0)
        return {};
    const unsigned blocks = blocksFor(count);
    TESSERA_DISPATCH_DTYPE(inType, TI, TESSERA_DISPATCH_DTYPE(outType, TO, convertKernel<TI, TO><<<blocks, 256, 0, cuStream(stream)>>>(static_cast<const TI*>(in), static_cast<TO*>(out), count)));
    return launchStatus("convert");
}

Status fillRandomBf16(std::uint16_t* out, std::int64_t count, float scale, float offset, std::uint64_t seed, Stream stream)
{
    if (count <= 0)
        return {};
    fillRandomKernel<bf16><<<blocksFor(count), 256, 0, cuStream(stream)>>>(reinterpret_cast<bf16*>(out), count, scale, offset, seed);
    return launchStatus("fill_random");
}

Status fillRandomF32(float* out, std::int64_t count, float scale, float offset, std::uint64_t seed, Stream stream)
{
    if (count <= 0)
        return {};
    fillRandomKernel<float><<<blocksFor(count), 256, 0, cuStream(stream)>>>(out, count, scale, offset, seed);
    return launchStatus("fill_random");
}

}  // namespace tessera::kernels
