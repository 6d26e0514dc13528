// Grouped bf16 product on the tensor cores (mma.sync m16n8k16, fp32 accumulation) for the
// experts of a mixture-of-experts layer: every block computes a 128×128 tile of one expert's
// rows, so all experts run in one launch with no host round trip. Three-stage cp.async pipeline
// of 64-deep k tiles, ldmatrix from padded shared memory (rows of 72 bf16: conflict-free
// 16-byte phases).
#include "gemm_internal.cuh"
#include "launch_util.cuh"


namespace tessera::kernels {

namespace {

constexpr int BM = kMmaTileRows, BN = 128, BK = 64, STAGES = 3, LDS = BK + 8;
constexpr int kChunksPerRow = BK / 8;
constexpr int kSmemBytes = STAGES * (BM + BN) * LDS * 2;

__device__ __forceinline__ void cpAsync16(void* smem, const void* gmem, bool valid)
{
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    const int bytes = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(bytes));
}
__device__ __forceinline__ void cpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cpAsyncWait()
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrixX4(unsigned (&r)[4], const void* smem)
{
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}

__device__ __forceinline__ void mma16816(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1)
{
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <typename TC>
__device__ __forceinline__ void store2(TC* p, float a, float b, bool second)
{
    p[0] = fromFloat<TC>(a);
    if (second)
        p[1] = fromFloat<TC>(b);
}

template <typename TC>
__global__ __launch_bounds__(256) void groupedMmaKernel(MmaParams p)
{
    extern __shared__ __align__(16) unsigned char smem[];
    bf16* As = reinterpret_cast<bf16*>(smem);
    bf16* Bs = As + STAGES * BM * LDS;

    const int tile = blockIdx.y;
    if (tile >= p.tileOffsets[p.groups])
        return;
    const int g = groupOfTile(p.tileOffsets, p.groups, tile);
    const long long rowBase = p.offsets[g] + static_cast<long long>(tile - p.tileOffsets[g]) * BM;
    const long long rowEnd = p.offsets[g + 1];
    const int n0 = blockIdx.x * BN;
    const bf16* A = p.A;
    const bf16* B = p.B + g * p.strideB;

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int wm = warp >> 2, wn = warp & 3;  // 2 × 4 warps, each 64 × 32
    const int KT = (p.K + BK - 1) / BK;

    auto load = [&](int stage, int kt) {
        const int k0 = kt * BK;
#pragma unroll
        for (int i = 0; i < BM * kChunksPerRow / 256; ++i) {
            const int c = tid + i * 256;
            const int r = c / kChunksPerRow, kc = (c % kChunksPerRow) * 8;
            const long long gr = rowBase + r;
            const int gk = k0 + kc;
            const bool va = gr < rowEnd && gk < p.K;
            cpAsync16(As + (stage * BM + r) * LDS + kc, va ? A + gr * p.lda + gk : A, va);
            const int gn = n0 + r;
            const bool vb = gn < p.N && gk < p.K;
            cpAsync16(Bs + (stage * BN + r) * LDS + kc, vb ? B + static_cast<long long>(gn) * p.ldb + gk : B, vb);
        }
    };

    float acc[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e)
                acc[i][j][e] = 0.f;

#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < KT)
            load(s, s);
        cpAsyncCommit();
    }
    for (int kt = 0; kt < KT; ++kt) {
        cpAsyncWait<STAGES - 2>();
        __syncthreads();
        const int next = kt + STAGES - 1;
        if (next < KT)
            load(next % STAGES, next);
        cpAsyncCommit();
        const int stage = kt % STAGES;
        const bf16* as = As + stage * BM * LDS;
        const bf16* bs = Bs + stage * BN * LDS;
#pragma unroll
        for (int ks = 0; ks < BK / 16; ++ks) {
            unsigned a[4][4];
#pragma unroll
            for (int mi = 0; mi < 4; ++mi) {
                const int row = wm * 64 + mi * 16 + (lane & 15);
                const int col = ks * 16 + (lane >> 4) * 8;
                ldmatrixX4(a[mi], as + row * LDS + col);
            }
            unsigned b[4][2];
#pragma unroll
            for (int nj = 0; nj < 2; ++nj) {
                const int n = wn * 32 + nj * 16 + (lane & 7) + ((lane >> 4) << 3);
                const int col = ks * 16 + ((lane >> 3) & 1) * 8;
                unsigned r[4];
                ldmatrixX4(r, bs + n * LDS + col);
                b[nj * 2][0] = r[0];
                b[nj * 2][1] = r[1];
                b[nj * 2 + 1][0] = r[2];
                b[nj * 2 + 1][1] = r[3];
            }
#pragma unroll
            for (int mi = 0; mi < 4; ++mi)
#pragma unroll
                for (int ni = 0; ni < 4; ++ni)
                    mma16816(acc[mi][ni], a[mi], b[ni][0], b[ni][1]);
        }
    }
    cpAsyncWait<0>();

    TC* C = static_cast<TC*>(p.C);
#pragma unroll
    for (int mi = 0; mi < 4; ++mi) {
        const long long r0 = rowBase + wm * 64 + mi * 16 + (lane >> 2);
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) {
            const int c = n0 + wn * 32 + ni * 8 + (lane & 3) * 2;
            if (c >= p.N)
                continue;
            const bool second = c + 1 < p.N;
            if (r0 < rowEnd)
                store2(C + r0 * p.ldc + c, acc[mi][ni][0], acc[mi][ni][1], second);
            if (r0 + 8 < rowEnd)
                store2(C + (r0 + 8) * p.ldc + c, acc[mi][ni][2], acc[mi][ni][3], second);
        }
    }
}

}  // namespace

Status launchGroupedMma(const GroupedGemmArgs& a, int maxTiles, cudaStream_t stream)
{
    static const Status attribute = allowSharedMemory("grouped gemm", kSmemBytes, groupedMmaKernel<float>, groupedMmaKernel<bf16>);
    if (!attribute.ok())
        return attribute;
    if (maxTiles > 65535)
        return Status::failure("grouped gemm: too many row tiles");
    const MmaParams p = mmaParams(a);
    const dim3 grid((a.N + BN - 1) / BN, maxTiles, 1);
    if (a.cType == DType::F32)
        groupedMmaKernel<float><<<grid, 256, kSmemBytes, stream>>>(p);
    else
        groupedMmaKernel<bf16><<<grid, 256, kSmemBytes, stream>>>(p);
    return launchStatus("grouped gemm (tensor cores)");
}

}  // namespace tessera::kernels
