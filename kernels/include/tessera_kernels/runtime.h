#pragma once
// The CUDA runtime calls the engine needs (memory, copies, streams, events, graphs), behind
// plain C++ so that engine code needs no CUDA headers. Every function returns a Status naming the
// call that failed.
#include "tessera_kernels/common.h"

#include <cstddef>

namespace tessera::kernels {

Status setDevice(int index);
Status memoryInfo(std::size_t& freeBytes, std::size_t& totalBytes);

Status deviceAlloc(void** ptr, std::size_t bytes);  // plain cudaMalloc, never managed memory
void deviceFree(void* ptr);
Status pinnedAlloc(void** ptr, std::size_t bytes);   // page-locked host memory for staging
void pinnedFree(void* ptr);

Status copyToDevice(void* dst, const void* src, std::size_t bytes, Stream stream);    // async
Status copyToHost(void* dst, const void* src, std::size_t bytes, Stream stream);      // async
Status copyOnDevice(void* dst, const void* src, std::size_t bytes, Stream stream);    // async
Status fillZero(void* dst, std::size_t bytes, Stream stream);                          // async
Status setInt(int* dst, int value, Stream stream);                                     // tiny kernel, capturable
Status addInt(int* dst, int delta, Stream stream);                                     // *dst += delta on the device

Status streamCreate(Stream* stream);
void streamDestroy(Stream stream);
Status streamSynchronize(Stream stream);

// Events for timing; an Event is an opaque cudaEvent_t.
using Event = void*;
Status eventCreate(Event* event);
void eventDestroy(Event event);
Status eventRecord(Event event, Stream stream);
Status eventElapsedMs(Event start, Event stop, float& ms);  // synchronises on stop
Status eventSynchronize(Event event);

// Stream capture into a CUDA graph, and replays of it. A GraphExec is an opaque cudaGraphExec_t.
using GraphExec = void*;
Status captureBegin(Stream stream);
Status captureEnd(Stream stream, GraphExec* exec);  // also instantiates
Status graphLaunch(GraphExec exec, Stream stream);
void graphDestroy(GraphExec exec);

// Decode kernels start while the kernel before them finishes (programmatic dependent launch) unless
// this is off; TESSERA_OVERLAP_LAUNCHES=0 sets the default to off. Applies to launches after the call.
void setOverlappedLaunches(bool enabled);

// The one-token MoE router as one thread-block cluster whose blocks hand their logits to the first
// block through distributed shared memory, instead of a counter and a read-back through global
// memory (about 1.5 % faster decode on tiny, measured). On unless TESSERA_ROUTER_CLUSTER=0; the
// same arithmetic either way. Applies to launches after the call.
void setClusterRouting(bool enabled);
bool clusterRoutingEnabled();

// The weight bytes a one-row product's block copies at once (gemv): 16 KB unless
// TESSERA_GEMV_TILE_KB says otherwise (4 to 96; under measurement).
void setGemvTileBytes(int bytes);
int gemvTileBytes();

// At least two rows per block where one row alone fills the tile (base's expert gate/up rows are
// 10 KB): base decodes 3.7 % faster (measured; the other models' shapes are not affected). On
// unless TESSERA_GEMV_TWO_ROWS=0.
void setGemvTwoRows(bool enabled);
bool gemvTwoRowsEnabled();

// The one-row products' weight copies mark their L2 lines evict-first: a decode step streams
// every weight once, and the lines it would otherwise leave behind push out what the step reads
// again (the KV cache, activations, partials). Alone: base +1.7 %, small +1.1 %, tiny +2.1 %
// (measured). On unless TESSERA_GEMV_EVICT_FIRST=0.
void setGemvEvictFirst(bool enabled);
bool gemvEvictFirstEnabled();

// The one-row products' weight rows and x as one bulk copy each (sm_90's copy engine, a thread
// per row) instead of 16-byte copies from every thread, for the products whose rows have at least
// gemvBulkMinK() elements (0: none). With the evict-first lines above, every product (1) measured
// base +4.6 %, small +5.2 %, tiny +1.6 % against neither; rows of 1536 and more: base +5.5 %,
// small +3.6 %, tiny +1.7 %. 1 unless TESSERA_GEMV_BULK says otherwise (0 off, N > 1 the
// threshold). Applies to launches after the call.
void setGemvBulkMinK(int k);
int gemvBulkMinK();

// MLA decode attention over splits of 32 positions instead of 64: twice the blocks share a
// context (16 busy blocks per 16 heads at 1024 positions with 64): base +1.9 %, small +0.4 %
// (measured). On unless TESSERA_LATENT_SPLIT32=0. Applies to launches after the call.
void setLatentShortSplits(bool enabled);
bool latentShortSplitsEnabled();

// MLA decode attention: blocks per (split, group of 16 heads), each computing the scores and
// soft-max and then its share of the value columns (1, 2 or 4; the same bits for any), where the
// used splits' blocks times this stay within three quarters of the SMs (short contexts; else one
// block does all columns): small +1.6 % at 1024 positions (measured). 2 unless
// TESSERA_LATENT_VALUE_PARTS says otherwise. Applies to launches after the call.
void setLatentValueParts(int parts);
int latentValueParts();

// MHA decode: the tensor-core attention kernel rotates q and the new key and writes the cache row
// itself (DecodeAttentionArgs::fusePrepare), one launch fewer per layer. On unless
// TESSERA_MHA_FUSED_PREPARE=0. Applies to launches after the call.
void setMhaFusedPrepare(bool enabled);
bool mhaFusedPrepareEnabled();

// MLA decode: likewise the latent attention kernel makes the cache row (latent norm, rotated k_pe)
// and its queries' rotary columns, in place of mlaPrepare; the query absorption runs before it. On
// unless TESSERA_MLA_FUSED_PREPARE=0. Applies to launches after the call.
void setMlaFusedPrepare(bool enabled);
bool mlaFusedPrepareEnabled();

// Prefill: the experts' gate/up product stores silu(gate)·up itself (GroupedGemmArgs::gatedOutput)
// where the tensor-core kernel runs, instead of the gate and up rows and then siluGate. On unless
// TESSERA_GATED_EXPERTS=0. Applies to launches after the call.
void setGatedExperts(bool enabled);
bool gatedExpertsEnabled();

// Prefill and vision: the fused attention of the family's head shapes (flashAttentionOnWgmma) on
// the Hopper tensor-core kernel (wgmma) where the GPU has one, instead of the mma.sync kernel. On
// unless TESSERA_WGMMA_ATTENTION=0. Applies to launches after the call.
void setWgmmaAttention(bool enabled);
bool wgmmaAttentionEnabled();

// Decode, kernels with one round trip to memory fewer after their wait (the same arithmetic):
// - the MoE combine of one token reads the routing weights, the experts' rows and the residual at
//   once, the next norm's weights before the wait (TESSERA_COMBINE_ONE=0: combineKernel);
// - the router's blocks copy their router rows into shared memory before the wait instead of
//   asking L2 for them (TESSERA_ROUTER_ROWS=0);
// - a one-row product that adds to its output (beta, the residual) reads the old values right
//   after the wait, beside x, instead of after its dot products (TESSERA_GEMV_EARLY_Y=0).
// On by default. Apply to launches after the call.
void setCombineOne(bool enabled);
bool combineOneEnabled();
void setRouterRowsStaged(bool enabled);
bool routerRowsStagedEnabled();
void setGemvEarlyY(bool enabled);
bool gemvEarlyYEnabled();

// The one-token MoE combine lets the next kernel (the next layer's input product) launch before its
// own wait, so that those blocks are resident and copying their rows when the combine ends (the
// kernels' trace: the input product's wait returned 2.5–4 µs after the combine ended): tiny
// +0.6 %, small +0.3 %, base +0.1 % (measured). On unless TESSERA_COMBINE_TRIGGER_FIRST=0.
// Applies to launches after the call.
void setCombineTriggerFirst(bool enabled);
bool combineTriggerFirstEnabled();

// The one-row products whose rows span a whole warp reduce two rows at a time, loading and widening
// each chunk of x once for both (the kernels' trace: a block's arithmetic after its rows arrive took
// 1.7–3.5 µs, as long as their copy). The same sums in the same order. On unless
// TESSERA_GEMV_ROW_PAIRS=0. Applies to launches after the call.
void setGemvRowPairs(bool enabled);
bool gemvRowPairsEnabled();

// A one-row product over routed experts and fixed ones (GemvArgs::fixedFrom: the experts' gate/up
// in decode) starts the fixed entries' blocks first: the blocks that start before the router has
// finished then copy the shared experts' rows, which need no routing, instead of waiting for the
// routing with nothing to copy. On unless TESSERA_GEMV_FIXED_FIRST=0. Applies to launches after
// the call.
void setGemvFixedFirst(bool enabled);
bool gemvFixedFirstEnabled();

// The decode attention kernels let the next kernel start once their own work is done (MHA: the
// scores, soft-max and values, before the merge of the last block of a head; MLA: the scores and
// soft-max) instead of right after their wait. The next kernel's blocks, resident early, copy
// their weights into the same SMs and slowed the attention's warps (the kernels' trace: tiny's
// warp work 4.4 → 2.9 µs a layer). On unless TESSERA_ATTENTION_TRIGGER_LATE=0. Applies to launches
// after the call.
void setAttentionTriggerLate(bool enabled);
bool attentionTriggerLateEnabled();

// The MHA decode attention's blocks publish their split partials to the block that merges a head
// (the last to finish) by one release-acquire add of one thread after a block barrier, instead of a
// fence by every thread before a plain add and another after it. The same arithmetic. On unless
// TESSERA_ATTENTION_MERGE_RELEASE=0. Applies to launches after the call.
void setAttentionMergeRelease(bool enabled);
bool attentionMergeReleaseEnabled();

// The routers pick their top-k experts by keys ordered as the scores: a round is one integer max
// over the warp and one ballot per expert slot, not a five-step argmax of value and index
// shuffles, and the weights are fetched after the rounds. The same experts, order and weights. On
// unless TESSERA_ROUTER_KEYED_TOPK=0. Applies to launches after the call.
void setRouterKeyedTopK(bool enabled);
bool routerKeyedTopKEnabled();
// With the keyed top-k, the routers of 6 chosen experts (every DeepSeek-VL2 model's) take a routine
// with k known when compiling, the stores side by side in six lanes: the same experts and weights,
// bit for bit (TESSERA_ROUTER_FIXED_K).
void setRouterFixedK(bool enabled);
bool routerFixedKEnabled();
// The MHA decode attention compiled for the value tiles its warps take (4 for tiny's heads), not
// for the most it supports (TESSERA_ATTENTION_FITTED_TILES).
void setFittedTiles(bool enabled);
bool fittedTilesEnabled();
// The MHA decode attention's warps that share a 16-row query tile split its score columns and
// exchange them through shared memory instead of each computing all of them: the same products,
// so the same bits (TESSERA_ATTENTION_SPLIT_SCORES).
void setAttentionSplitScores(bool enabled);
bool attentionSplitScoresEnabled();
// The MHA decode attention, where a launch's capacity is at most kDecodeClusterContext positions
// (attention.h), takes four 64-position splits a block of 16 warps in clusters of 8 blocks, one
// cluster per kv head, that merge the head's splits in their shared memory instead of the last
// block merging them through L2: the same partials and merge arithmetic, so the same bits
// (TESSERA_ATTENTION_CLUSTERS).
void setAttentionClusters(bool enabled);
bool attentionClustersEnabled();
// A sequence whose cache holds more than kDecodeClusterContext positions gets two decode graphs:
// one whose attention launches are sized for contexts up to that (and so may take the clusters
// above), and one for longer contexts (TESSERA_SHORT_DECODE_GRAPHS).
void setShortDecodeGraphs(bool enabled);
bool shortDecodeGraphsEnabled();
// The thread-block clusters that hand values to other blocks (the router's logits, the MHA
// attention's split partials) store them with st.async, each completing on the receiving block's
// transaction barrier, which only the receiver waits for, instead of a cluster barrier whose
// release also waits for every earlier global store of the block (TESSERA_CLUSTER_ASYNC_STORES).
void setClusterAsyncStores(bool enabled);
bool clusterAsyncStoresEnabled();
// The MHA attention's clusters spread a step's splits over all their blocks, the fewest a block
// (two at 1,024 positions), instead of four a block from the first (TESSERA_ATTENTION_SPREAD_SPLITS).
void setAttentionSpreadSplits(bool enabled);
bool attentionSpreadSplitsEnabled();
// A one-row product over routed experts whose index list an earlier kernel wrote (GemvArgs::
// indexEarly: decode's experts' down product) copies their rows before its wait, while the kernel
// before runs, where its grid stays within 3,000 blocks of the usual tiles (tiny's; not small's or
// base's). TESSERA_DOWN_ROWS_EARLY=0: never (the shared experts' rows still before the wait).
void setDownRowsEarly(bool enabled);
bool downRowsEarlyEnabled();

// The greedy decode's argmax stores the chosen token into pinned host memory itself (argmaxToken's
// hostToken), instead of a copy launched after it on the stream between the argmax and the next
// decode step. On unless TESSERA_ARGMAX_TO_HOST=0. Read by the CUDA backend at each step.
void setArgmaxToHost(bool enabled);
bool argmaxToHostEnabled();

// One-row products over routed experts whose grid of the usual tiles (setGemvTileBytes) would pass
// 3,000 blocks take larger tiles: 24 KB for the down product, 32 KB for gate/up rows (the
// experts' products of small and base, not tiny's; measured, see gemv.cu). The same sums. On
// unless TESSERA_GEMV_EXPERT_TILES=0. Applies to launches after the call.
void setGemvExpertTiles(bool enabled);
bool gemvExpertTilesEnabled();

// One-row products of at least 32,768 rows (the lm_head) take 32 KB tiles (measured, see gemv.cu).
// The same sums. On unless TESSERA_GEMV_WIDE_TILES=0. Applies to launches after the call.
void setGemvWideTiles(bool enabled);
bool gemvWideTilesEnabled();

// A one-row product whose blocks would hold 6 to 11 rows (tiny's input product: 6 rows of 2,560
// bytes in 16 KB; its experts' down product: 9 of 1,792) takes 8, one pair per warp
// (setGemvRowPairs), so that no warp's rows outlast the others' (measured, see gemv.cu). The same
// sums. On unless TESSERA_GEMV_EVEN_ROWS=0. Applies to launches after the call.
void setGemvEvenRows(bool enabled);
bool gemvEvenRowsEnabled();

// A decode step's embedding row and the first layer's input norm in one launch (embedRmsNorm):
// the same bits as the two launches. On unless TESSERA_EMBED_NORM=0. Applies to decode graphs
// captured after the call.
void setEmbedNorm(bool enabled);
bool embedNormEnabled();

// Measurement: one cooperative launch of a block of `threads` per SM that meets at `barriers` grid
// barriers (grid_sync.cuh). sync: three unsigned, zero before the first launch.
Status gridBarriers(unsigned* sync, int barriers, int threads, Stream stream);

// Brackets the region an external profiler (ncu --profile-from-start off) records.
Status profilerStart();
Status profilerStop();

}  // namespace tessera::kernels
