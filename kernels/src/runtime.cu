#include "tessera_kernels/runtime.h"

#include "grid_sync.cuh"
#include "launch_util.cuh"

#include <cuda_profiler_api.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>

namespace tessera::kernels {

namespace {

__global__ void setIntKernel(int* dst, int value) { *dst = value; }
__global__ void addIntKernel(int* dst, int delta)
{
    gridDependencyWait();
    *dst += delta;
}

cudaStream_t s(Stream stream) { return static_cast<cudaStream_t>(stream); }

__global__ void gridBarrierKernel(unsigned* sync, int barriers)
{
    for (int i = 0; i < barriers; ++i)
        gridSync(sync);
}

}  // namespace

namespace {

// A switch's default from the environment: "1" on, "0" off, anything else `fallback`.
int environmentSwitch(const char* name, int fallback)
{
    const char* v = std::getenv(name);
    return v && std::string(v) == "1" ? 1 : v && std::string(v) == "0" ? 0 : fallback;
}

// An on/off switch: its default from the environment variable at first use, settable later.
template <const char* Name, int Fallback>
std::atomic<int>& switchSetting()
{
    static std::atomic<int> setting{environmentSwitch(Name, Fallback)};
    return setting;
}
template <const char* Name, int Fallback>
bool switchOn()
{
    return switchSetting<Name, Fallback>().load(std::memory_order_relaxed) != 0;
}
template <const char* Name, int Fallback>
void setSwitch(bool enabled)
{
    switchSetting<Name, Fallback>().store(enabled ? 1 : 0, std::memory_order_relaxed);
}
constexpr char kOverlap[] = "TESSERA_OVERLAP_LAUNCHES", kRouterCluster[] = "TESSERA_ROUTER_CLUSTER",
               kGemvTwoRows[] = "TESSERA_GEMV_TWO_ROWS", kGemvEvictFirst[] = "TESSERA_GEMV_EVICT_FIRST",
               kLatentSplit32[] = "TESSERA_LATENT_SPLIT32",
               kMhaFusedPrepare[] = "TESSERA_MHA_FUSED_PREPARE", kMlaFusedPrepare[] = "TESSERA_MLA_FUSED_PREPARE",
               kGatedExperts[] = "TESSERA_GATED_EXPERTS", kWgmmaAttention[] = "TESSERA_WGMMA_ATTENTION",
               kCombineOne[] = "TESSERA_COMBINE_ONE", kCombineTriggerFirst[] = "TESSERA_COMBINE_TRIGGER_FIRST",
               kGemvRowPairs[] = "TESSERA_GEMV_ROW_PAIRS", kRouterRows[] = "TESSERA_ROUTER_ROWS",
               kGemvEarlyY[] = "TESSERA_GEMV_EARLY_Y", kGemvFixedFirst[] = "TESSERA_GEMV_FIXED_FIRST",
               kAttentionTriggerLate[] = "TESSERA_ATTENTION_TRIGGER_LATE", kAttentionMergeRelease[] = "TESSERA_ATTENTION_MERGE_RELEASE",
               kRouterKeyedTopK[] = "TESSERA_ROUTER_KEYED_TOPK", kRouterFixedK[] = "TESSERA_ROUTER_FIXED_K",
               kFittedTiles[] = "TESSERA_ATTENTION_FITTED_TILES", kDownRowsEarly[] = "TESSERA_DOWN_ROWS_EARLY",
               kArgmaxToHost[] = "TESSERA_ARGMAX_TO_HOST",
               kAttentionSplitScores[] = "TESSERA_ATTENTION_SPLIT_SCORES", kAttentionClusters[] = "TESSERA_ATTENTION_CLUSTERS",
               kShortDecodeGraphs[] = "TESSERA_SHORT_DECODE_GRAPHS", kClusterAsyncStores[] = "TESSERA_CLUSTER_ASYNC_STORES",
               kAttentionSpreadSplits[] = "TESSERA_ATTENTION_SPREAD_SPLITS",
               kGemvExpertTiles[] = "TESSERA_GEMV_EXPERT_TILES", kGemvWideTiles[] = "TESSERA_GEMV_WIDE_TILES",
               kEmbedNorm[] = "TESSERA_EMBED_NORM", kGemvEvenRows[] = "TESSERA_GEMV_EVEN_ROWS";

std::atomic<int>& gemvTileSetting()
{
    static std::atomic<int> setting{[] {
        const char* v = std::getenv("TESSERA_GEMV_TILE_KB");
        const int kb = v ? std::atoi(v) : 0;
        return (kb >= 4 && kb <= 96 ? kb : 16) * 1024;
    }()};
    return setting;
}

// TESSERA_GEMV_BULK: "1" every product, "0" none, a larger N the products whose rows are at least N
// elements long.
std::atomic<int>& gemvBulkSetting()
{
    static std::atomic<int> setting{[] {
        const char* v = std::getenv("TESSERA_GEMV_BULK");
        const int n = v && *v ? std::atoi(v) : 1;
        return n > 0 ? n : 0;
    }()};
    return setting;
}

// TESSERA_LATENT_VALUE_PARTS: 1, 2 (the default) or 4.
std::atomic<int>& latentValuePartsSetting()
{
    static std::atomic<int> setting{[] {
        const char* v = std::getenv("TESSERA_LATENT_VALUE_PARTS");
        const int n = v ? std::atoi(v) : 2;
        return n == 1 || n == 2 || n == 4 ? n : 2;
    }()};
    return setting;
}

}  // namespace

bool overlappedLaunchesEnabled() { return switchOn<kOverlap, 1>(); }
void setOverlappedLaunches(bool enabled) { setSwitch<kOverlap, 1>(enabled); }

bool clusterRoutingEnabled() { return switchOn<kRouterCluster, 1>(); }
void setClusterRouting(bool enabled) { setSwitch<kRouterCluster, 1>(enabled); }

bool gemvTwoRowsEnabled() { return switchOn<kGemvTwoRows, 1>(); }
void setGemvTwoRows(bool enabled) { setSwitch<kGemvTwoRows, 1>(enabled); }

bool gemvEvictFirstEnabled() { return switchOn<kGemvEvictFirst, 1>(); }
void setGemvEvictFirst(bool enabled) { setSwitch<kGemvEvictFirst, 1>(enabled); }

int gemvBulkMinK() { return gemvBulkSetting().load(std::memory_order_relaxed); }
void setGemvBulkMinK(int k) { gemvBulkSetting().store(k > 0 ? k : 0, std::memory_order_relaxed); }

bool latentShortSplitsEnabled() { return switchOn<kLatentSplit32, 1>(); }
void setLatentShortSplits(bool enabled) { setSwitch<kLatentSplit32, 1>(enabled); }
int latentValueParts() { return latentValuePartsSetting().load(std::memory_order_relaxed); }
void setLatentValueParts(int parts) { latentValuePartsSetting().store(parts == 2 || parts == 4 ? parts : 1, std::memory_order_relaxed); }

bool mhaFusedPrepareEnabled() { return switchOn<kMhaFusedPrepare, 1>(); }
void setMhaFusedPrepare(bool enabled) { setSwitch<kMhaFusedPrepare, 1>(enabled); }

bool mlaFusedPrepareEnabled() { return switchOn<kMlaFusedPrepare, 1>(); }
void setMlaFusedPrepare(bool enabled) { setSwitch<kMlaFusedPrepare, 1>(enabled); }

bool gatedExpertsEnabled() { return switchOn<kGatedExperts, 1>(); }
void setGatedExperts(bool enabled) { setSwitch<kGatedExperts, 1>(enabled); }

bool wgmmaAttentionEnabled() { return switchOn<kWgmmaAttention, 1>(); }
void setWgmmaAttention(bool enabled) { setSwitch<kWgmmaAttention, 1>(enabled); }

bool combineOneEnabled() { return switchOn<kCombineOne, 1>(); }
void setCombineOne(bool enabled) { setSwitch<kCombineOne, 1>(enabled); }

bool combineTriggerFirstEnabled() { return switchOn<kCombineTriggerFirst, 1>(); }
void setCombineTriggerFirst(bool enabled) { setSwitch<kCombineTriggerFirst, 1>(enabled); }

bool gemvRowPairsEnabled() { return switchOn<kGemvRowPairs, 1>(); }
void setGemvRowPairs(bool enabled) { setSwitch<kGemvRowPairs, 1>(enabled); }

bool routerRowsStagedEnabled() { return switchOn<kRouterRows, 1>(); }
void setRouterRowsStaged(bool enabled) { setSwitch<kRouterRows, 1>(enabled); }

bool gemvEarlyYEnabled() { return switchOn<kGemvEarlyY, 1>(); }
void setGemvEarlyY(bool enabled) { setSwitch<kGemvEarlyY, 1>(enabled); }

bool gemvFixedFirstEnabled() { return switchOn<kGemvFixedFirst, 1>(); }
void setGemvFixedFirst(bool enabled) { setSwitch<kGemvFixedFirst, 1>(enabled); }

bool attentionTriggerLateEnabled() { return switchOn<kAttentionTriggerLate, 1>(); }
void setAttentionTriggerLate(bool enabled) { setSwitch<kAttentionTriggerLate, 1>(enabled); }

bool attentionMergeReleaseEnabled() { return switchOn<kAttentionMergeRelease, 1>(); }
void setAttentionMergeRelease(bool enabled) { setSwitch<kAttentionMergeRelease, 1>(enabled); }

bool routerKeyedTopKEnabled() { return switchOn<kRouterKeyedTopK, 1>(); }
void setRouterKeyedTopK(bool enabled) { setSwitch<kRouterKeyedTopK, 1>(enabled); }
bool routerFixedKEnabled() { return switchOn<kRouterFixedK, 1>(); }
void setRouterFixedK(bool enabled) { setSwitch<kRouterFixedK, 1>(enabled); }
bool fittedTilesEnabled() { return switchOn<kFittedTiles, 1>(); }
void setFittedTiles(bool enabled) { setSwitch<kFittedTiles, 1>(enabled); }
bool attentionSplitScoresEnabled() { return switchOn<kAttentionSplitScores, 1>(); }
void setAttentionSplitScores(bool enabled) { setSwitch<kAttentionSplitScores, 1>(enabled); }
bool attentionClustersEnabled() { return switchOn<kAttentionClusters, 1>(); }
void setAttentionClusters(bool enabled) { setSwitch<kAttentionClusters, 1>(enabled); }
bool shortDecodeGraphsEnabled() { return switchOn<kShortDecodeGraphs, 1>(); }
void setShortDecodeGraphs(bool enabled) { setSwitch<kShortDecodeGraphs, 1>(enabled); }
bool clusterAsyncStoresEnabled() { return switchOn<kClusterAsyncStores, 1>(); }
void setClusterAsyncStores(bool enabled) { setSwitch<kClusterAsyncStores, 1>(enabled); }
bool attentionSpreadSplitsEnabled() { return switchOn<kAttentionSpreadSplits, 1>(); }
void setAttentionSpreadSplits(bool enabled) { setSwitch<kAttentionSpreadSplits, 1>(enabled); }
bool downRowsEarlyEnabled() { return switchOn<kDownRowsEarly, 1>(); }
void setDownRowsEarly(bool enabled) { setSwitch<kDownRowsEarly, 1>(enabled); }

bool argmaxToHostEnabled() { return switchOn<kArgmaxToHost, 1>(); }
void setArgmaxToHost(bool enabled) { setSwitch<kArgmaxToHost, 1>(enabled); }

bool gemvExpertTilesEnabled() { return switchOn<kGemvExpertTiles, 1>(); }
void setGemvExpertTiles(bool enabled) { setSwitch<kGemvExpertTiles, 1>(enabled); }
bool embedNormEnabled() { return switchOn<kEmbedNorm, 1>(); }
void setEmbedNorm(bool enabled) { setSwitch<kEmbedNorm, 1>(enabled); }
bool gemvWideTilesEnabled() { return switchOn<kGemvWideTiles, 1>(); }
void setGemvWideTiles(bool enabled) { setSwitch<kGemvWideTiles, 1>(enabled); }
bool gemvEvenRowsEnabled() { return switchOn<kGemvEvenRows, 1>(); }
void setGemvEvenRows(bool enabled) { setSwitch<kGemvEvenRows, 1>(enabled); }

int gemvTileBytes() { return gemvTileSetting().load(std::memory_order_relaxed); }
void setGemvTileBytes(int bytes) { gemvTileSetting().store(std::clamp(bytes, 4096, 96 * 1024), std::memory_order_relaxed); }

bool deviceRunsSm90a()
{
#if TESSERA_HAVE_SM90A
    int device = 0, major = 0, minor = 0;
    if (cudaGetDevice(&device) != cudaSuccess || cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    return major == 9 && minor == 0;
#else
    return false;
#endif
}

Status setDevice(int index) { return cudaStatus(cudaSetDevice(index), "cudaSetDevice"); }

Status memoryInfo(std::size_t& freeBytes, std::size_t& totalBytes)
{
    return cudaStatus(cudaMemGetInfo(&freeBytes, &totalBytes), "cudaMemGetInfo");
}

Status deviceAlloc(void** ptr, std::size_t bytes)
{
    *ptr = nullptr;
    if (bytes == 0)
        return {};
    return cudaStatus(cudaMalloc(ptr, bytes), "cudaMalloc");
}

void deviceFree(void* ptr)
{
    if (ptr)
        cudaFree(ptr);
}

Status pinnedAlloc(void** ptr, std::size_t bytes)
{
    *ptr = nullptr;
    return cudaStatus(cudaMallocHost(ptr, bytes ? bytes : 1), "cudaMallocHost");
}

void pinnedFree(void* ptr)
{
    if (ptr)
        cudaFreeHost(ptr);
}

Status copyToDevice(void* dst, const void* src, std::size_t bytes, Stream stream)
{
    if (bytes == 0)
        return {};
    return cudaStatus(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s(stream)), "cudaMemcpyAsync(host to device)");
}

Status copyToHost(void* dst, const void* src, std::size_t bytes, Stream stream)
{
    if (bytes == 0)
        return {};
    return cudaStatus(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s(stream)), "cudaMemcpyAsync(device to host)");
}

Status copyOnDevice(void* dst, const void* src, std::size_t bytes, Stream stream)
{
    if (bytes == 0)
        return {};
    return cudaStatus(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s(stream)), "cudaMemcpyAsync(device to device)");
}

Status fillZero(void* dst, std::size_t bytes, Stream stream)
{
    if (bytes == 0)
        return {};
    return cudaStatus(cudaMemsetAsync(dst, 0, bytes, s(stream)), "cudaMemsetAsync");
}

Status setInt(int* dst, int value, Stream stream)
{
    setIntKernel<<<1, 1, 0, s(stream)>>>(dst, value);
    return launchStatus("set_int");
}

Status addInt(int* dst, int delta, Stream stream)
{
    return launchOverlapped("add_int", addIntKernel, 1, 1, 0, s(stream), dst, delta);
}

Status gridBarriers(unsigned* sync, int barriers, int threads, Stream stream)
{
    int sms = 0;
    const Status r = multiprocessorCount("grid barriers", sms);
    if (!r.ok())
        return r;
    return launchCooperative("grid barriers", gridBarrierKernel, sms, threads, 0, s(stream), sync, barriers);
}

Status streamCreate(Stream* stream)
{
    cudaStream_t st = nullptr;
    Status r = cudaStatus(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking), "cudaStreamCreate");
    *stream = st;
    return r;
}

void streamDestroy(Stream stream)
{
    if (stream)
        cudaStreamDestroy(s(stream));
}

Status streamSynchronize(Stream stream) { return cudaStatus(cudaStreamSynchronize(s(stream)), "cudaStreamSynchronize"); }

Status eventCreate(Event* event)
{
    cudaEvent_t e = nullptr;
    Status r = cudaStatus(cudaEventCreate(&e), "cudaEventCreate");
    *event = e;
    return r;
}

void eventDestroy(Event event)
{
    if (event)
        cudaEventDestroy(static_cast<cudaEvent_t>(event));
}

Status eventRecord(Event event, Stream stream)
{
    return cudaStatus(cudaEventRecord(static_cast<cudaEvent_t>(event), s(stream)), "cudaEventRecord");
}

Status eventElapsedMs(Event start, Event stop, float& ms)
{
    Status r = cudaStatus(cudaEventSynchronize(static_cast<cudaEvent_t>(stop)), "cudaEventSynchronize");
    if (!r.ok())
        return r;
    return cudaStatus(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start), static_cast<cudaEvent_t>(stop)),
                      "cudaEventElapsedTime");
}

Status eventSynchronize(Event event)
{
    return cudaStatus(cudaEventSynchronize(static_cast<cudaEvent_t>(event)), "cudaEventSynchronize");
}

Status captureBegin(Stream stream)
{
    return cudaStatus(cudaStreamBeginCapture(s(stream), cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
}

Status captureEnd(Stream stream, GraphExec* exec)
{
    *exec = nullptr;
    cudaGraph_t graph = nullptr;
    Status r = cudaStatus(cudaStreamEndCapture(s(stream), &graph), "cudaStreamEndCapture");
    if (!r.ok())
        return r;
    cudaGraphExec_t e = nullptr;
    r = cudaStatus(cudaGraphInstantiate(&e, graph, 0), "cudaGraphInstantiate");
    cudaGraphDestroy(graph);
    *exec = e;
    return r;
}

Status graphLaunch(GraphExec exec, Stream stream)
{
    return cudaStatus(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec), s(stream)), "cudaGraphLaunch");
}

void graphDestroy(GraphExec exec)
{
    if (exec)
        cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec));
}

Status profilerStart() { return cudaStatus(cudaProfilerStart(), "cudaProfilerStart"); }
Status profilerStop() { return cudaStatus(cudaProfilerStop(), "cudaProfilerStop"); }

}  // namespace tessera::kernels
