#include "tessera_kernels/vision.h"

#include "launch_util.cuh"

namespace tessera::kernels {

namespace {

template <typename T>
__global__ void patchRowsKernel(const unsigned char* tiles, int imageSize, int patch, int grid, const float* lut, T* rows)
{
    const long long r = blockIdx.x;  // one patch row per block
    const int perTile = grid * grid;
    const long long tile = r / perTile;
    const int py = static_cast<int>(r % perTile) / grid, px = static_cast<int>(r % perTile) % grid;
    const int len = 3 * patch * patch;
    const unsigned char* base = tiles + tile * imageSize * imageSize * 3;
    T* out = rows + r * len;
    for (int e = threadIdx.x; e < len; e += blockDim.x) {
        const int c = e / (patch * patch), rem = e % (patch * patch);
        const int ky = rem / patch, kx = rem % patch;
        const unsigned char v = base[(static_cast<long long>(py * patch + ky) * imageSize + px * patch + kx) * 3 + c];
        out[e] = fromFloat<T>(lut[c * 256 + v]);
    }
}

template <typename T>
__global__ void mergeKernel(const float* vision, int grid, int width, int ratio, int side, T* merged)
{
    const long long row = blockIdx.x;
    const int perTile = side * side;
    const long long tile = row / perTile;
    const int ty = static_cast<int>(row % perTile) / side, tx = static_cast<int>(row % perTile) % side;
    const int rr = ratio * ratio;
    T* out = merged + row * width * rr;
    for (int e = threadIdx.x; e < width * rr; e += blockDim.x) {
        const int c = e / rr, k = e % rr;
        const int y = ty * ratio + k / ratio, x = tx * ratio + k % ratio;
        float v = 0.f;
        if (y < grid && x < grid)
            v = vision[(tile * grid * grid + y * grid + x) * width + c];
        out[e] = fromFloat<T>(v);
    }
}

}  // namespace

Status patchRows(const std::uint8_t* tiles, int count, int imageSize, int patch, int grid, const float* pixelValue,
                 void* rows, DType rowType, Stream stream)
{
    if (count <= 0)
        return {};
    const int blocks = count * grid * grid;
    TESSERA_DISPATCH_DTYPE(rowType, T, patchRowsKernel<T><<<blocks, 256, 0, cuStream(stream)>>>(tiles, imageSize, patch, grid, pixelValue, static_cast<T*>(rows)));
    return launchStatus("vision patch rows");
}

Status mergePatches(const float* vision, int count, int grid, int width, int ratio, int side, void* merged,
                    DType mergedType, Stream stream)
{
    if (count <= 0)
        return {};
    const int blocks = count * side * side;
    TESSERA_DISPATCH_DTYPE(mergedType, T, mergeKernel<T><<<blocks, 256, 0, cuStream(stream)>>>(vision, grid, width, ratio, side, static_cast<T*>(merged)));
    return launchStatus("projector patch merge");
}

}  // namespace tessera::kernels
