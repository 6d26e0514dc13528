// RMSNorm and LayerNorm, one block per row, fp32 statistics (LayerNorm in two passes so that the
// variance does not cancel).
#include "tessera_kernels/norm.h"

#include "launch_util.cuh"

namespace tessera::kernels {

namespace {

int threadsFor(int n) { return n >= 1024 ? 256 : n >= 256 ? 128 : 64; }

template <typename TO>
__global__ void rmsNormKernel(const float* x, long long ldx, int n, const float* w, float eps, TO* out, long long ldo)
{
    __shared__ float scratch[33];
    gridDependencyWait();
    allowDependentLaunch();
    const float* xr = x + blockIdx.x * ldx;
    TO* o = out + blockIdx.x * ldo;
    float ss = 0.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        ss = fmaf(xr[i], xr[i], ss);
    ss = blockSum(ss, scratch);
    const float inv = rsqrtf(ss / n + eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        o[i] = fromFloat<TO>(w[i] * (xr[i] * inv));
}

template <typename TO>
__global__ void layerNormKernel(const float* x, long long ldx, int n, const float* gamma, const float* beta, float eps,
                                TO* out, long long ldo)
{
    __shared__ float scratch[33];
    const float* xr = x + blockIdx.x * ldx;
    TO* o = out + blockIdx.x * ldo;
    float s = 0.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        s += xr[i];
    const float mean = blockSum(s, scratch) / n;
    float v = 0.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float d = xr[i] - mean;
        v = fmaf(d, d, v);
    }
    const float var = blockSum(v, scratch) / n;
    const float inv = rsqrtf(var + eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        o[i] = fromFloat<TO>((xr[i] - mean) * inv * gamma[i] + (beta ? beta[i] : 0.f));
}

}  // namespace

Status rmsNorm(const float* x, std::int64_t ldx, int rows, int n, const float* weight, float eps, void* out,
               DType outType, std::int64_t ldo, Stream stream)
{
    if (rows <= 0)
        return {};
    Status r;
    TESSERA_DISPATCH_DTYPE(outType, T, r = launchOverlapped("rms_norm", rmsNormKernel<T>, rows, threadsFor(n), 0, cuStream(stream), x, ldx, n, weight, eps, static_cast<T*>(out), ldo));
    return r;
}

Status layerNorm(const float* x, std::int64_t ldx, int rows, int n, const float* gamma, const float* beta, float eps,
                 void* out, DType outType, std::int64_t ldo, Stream stream)
{
    if (rows <= 0)
        return {};
    TESSERA_DISPATCH_DTYPE(outType, T, layerNormKernel<T><<<rows, threadsFor(n), 0, cuStream(stream)>>>(x, ldx, n, gamma, beta, eps, static_cast<T*>(out), ldo));
    return launchStatus("layer_norm");
}

}  // namespace tessera::kernels
