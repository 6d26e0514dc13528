#include "tokenizer/bpe_model.h"

#include "tokenizer/byte_level.h"

#include <algorithm>
#include <functional>
#include <unordered_map>
#include <array>
#include <limits>
#include <mutex>
#include <queue>

namespace tessera {

// Open-addressing map (left id, right id) → (rank, merged id): the BPE inner loop is mostly
// these lookups, so they must not chase hash-node pointers.
class BpeModel::PairTable {
public:
    static constexpr std::uint32_t kNoRank = std::numeric_limits<std::uint32_t>::max();

    explicit PairTable(std::size_t count)
    {
        std::size_t capacity = 16;
        while (capacity < count * 2)
            capacity *= 2;
        slots_.assign(capacity, Slot{kEmpty, 0, 0});
        mask_ = capacity - 1;
    }

    void insert(std::int32_t left, std::int32_t right, std::uint32_t rank, std::int32_t merged)
    {
        const std::uint64_t key = makeKey(left, right);
        for (std::size_t i = home(key);; i = (i + 1) & mask_) {
            if (slots_[i].key == kEmpty || slots_[i].key == key) {
                slots_[i] = Slot{key, rank, merged};
                return;
            }
        }
    }

    // kNoRank when the pair does not merge.
    std::uint32_t find(std::int32_t left, std::int32_t right, std::int32_t& merged) const
    {
        const std::uint64_t key = makeKey(left, right);
        for (std::size_t i = home(key);; i = (i + 1) & mask_) {
            const Slot& s = slots_[i];
            if (s.key == key) {
                merged = s.merged;
                return s.rank;
            }
            if (s.key == kEmpty)
                return kNoRank;
        }
    }

private:
    static constexpr std::uint64_t kEmpty = std::numeric_limits<std::uint64_t>::max();
    struct Slot {
        std::uint64_t key;
        std::uint32_t rank;
        std::int32_t merged;
    };
    static std::uint64_t makeKey(std::int32_t left, std::int32_t right)
    {
        return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) | static_cast<std::uint32_t>(right);
    }
    std::size_t home(std::uint64_t key) const
    {
        return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ull) >> 29) & mask_;
    }

    std::vector<Slot> slots_;
    std::size_t mask_ = 0;
};

// Results per piece, shared by all threads: sharded so concurrent encoders rarely contend, and
// bounded (a shard that fills up starts over) so memory stays flat on endless input.
class BpeWordCache {
public:
    static constexpr std::size_t kMaxPieceBytes = 256;  // longer pieces are rare; not worth keeping

    bool find(std::string_view piece, std::vector<std::int32_t>& out) const
    {
        const std::size_t h = std::hash<std::string_view>{}(piece);
        const Shard& shard = shards_[h % kShards];
        std::lock_guard lock(shard.mutex);
        auto it = shard.map.find(piece);
        if (it == shard.map.end())
            return false;
        out.insert(out.end(), it->second.begin(), it->second.end());
        return true;
    }

    void insert(std::string_view piece, const std::int32_t* ids, std::size_t count)
    {
        const std::size_t h = std::hash<std::string_view>{}(piece);
        Shard& shard = shards_[h % kShards];
        std::lock_guard lock(shard.mutex);
        if (shard.map.size() >= kShardCapacity)
            shard.map.clear();
        shard.map.try_emplace(std::string(piece), ids, ids + count);
    }

private:
    static constexpr std::size_t kShards = 16;
    static constexpr std::size_t kShardCapacity = 4096;
    struct Hash {
        using is_transparent = void;  // find() by string_view without building a std::string
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };
    struct Shard {
        mutable std::mutex mutex;
        std::unordered_map<std::string, std::vector<std::int32_t>, Hash, std::equal_to<>> map;
    };
    mutable std::array<Shard, kShards> shards_;
};

BpeModel::BpeModel() : pairs_(std::make_unique<PairTable>(0)), cache_(std::make_unique<BpeWordCache>())
{
    std::fill(std::begin(byteIds_), std::end(byteIds_), -1);
}

BpeModel::BpeModel(TokenTable vocab, const std::vector<MergeRule>& merges, Options options)
    : vocab_(std::move(vocab)), pairs_(std::make_unique<PairTable>(merges.size())), options_(options),
      cache_(std::make_unique<BpeWordCache>())
{
    for (int b = 0; b < 256; ++b)
        byteIds_[b] = vocab_.find(byte_level::charFor(static_cast<unsigned char>(b)));
    for (std::size_t rank = 0; rank < merges.size(); ++rank) {
        const MergeRule& m = merges[rank];
        pairs_->insert(m.left, m.right, static_cast<std::uint32_t>(rank), m.merged);
    }
}

BpeModel::~BpeModel() = default;
BpeModel::BpeModel(BpeModel&&) noexcept = default;
BpeModel& BpeModel::operator=(BpeModel&&) noexcept = default;

std::optional<std::int32_t> BpeModel::find(std::string_view token) const
{
    const std::int32_t id = vocab_.find(token);
    if (id < 0)
        return std::nullopt;
    return id;
}

void BpeModel::tokenize(std::string_view piece, std::vector<std::int32_t>& out) const
{
    if (piece.size() > BpeWordCache::kMaxPieceBytes) {
        tokenizeUncached(piece, out);
        return;
    }
    if (cache_->find(piece, out))
        return;
    const std::size_t first = out.size();
    tokenizeUncached(piece, out);
    cache_->insert(piece, out.data() + first, out.size() - first);
}

void BpeModel::tokenizeUncached(std::string_view piece, std::vector<std::int32_t>& out) const
{
    if (piece.empty())
        return;
    if (options_.ignoreMerges) {
        if (auto id = find(byte_level::encode(piece))) {
            out.push_back(*id);
            return;
        }
    }
    constexpr std::size_t kSmall = 64;  // quadratic scan beats a heap for short pieces
    std::int32_t stackIds[kSmall];
    std::vector<std::int32_t> heapIds;
    std::int32_t* ids = stackIds;
    if (piece.size() > kSmall) {
        heapIds.resize(piece.size());
        ids = heapIds.data();
    }
    std::size_t n = 0;
    bool previousUnknown = false;
    for (char c : piece) {
        const std::int32_t id = byteIds_[static_cast<unsigned char>(c)];
        if (id >= 0) {
            ids[n++] = id;
            previousUnknown = false;
        } else if (options_.unkId) {
            // HF BPE: with an unk token an unknown symbol becomes it (fused runs if fuse_unk); without one it is dropped.
            if (!(options_.fuseUnk && previousUnknown))
                ids[n++] = *options_.unkId;
            previousUnknown = true;
        }
    }
    if (n <= kSmall)
        mergeSmall(ids, n, out);
    else
        mergeLarge(ids, n, out);
}

void BpeModel::mergeSmall(std::int32_t* ids, std::size_t n, std::vector<std::int32_t>& out) const
{
    if (n == 0)
        return;
    constexpr std::uint32_t kNoRank = PairTable::kNoRank;
    std::uint32_t ranks[64];
    std::int32_t merged[64];
    for (std::size_t i = 0; i + 1 < n; ++i)
        ranks[i] = pairs_->find(ids[i], ids[i + 1], merged[i]);
    while (n > 1) {
        std::size_t best = 0;
        std::uint32_t bestRank = kNoRank;
        for (std::size_t i = 0; i + 1 < n; ++i) {
            if (ranks[i] < bestRank) {  // strict: the leftmost of equal ranks wins, as in HF
                bestRank = ranks[i];
                best = i;
            }
        }
        if (bestRank == kNoRank)
            break;
        ids[best] = merged[best];
        // Close the gap left by the right half of the pair.
        for (std::size_t i = best + 1; i + 1 < n; ++i) {
            ids[i] = ids[i + 1];
            if (i + 1 < n - 1) {
                ranks[i] = ranks[i + 1];
                merged[i] = merged[i + 1];
            }
        }
        --n;
        if (best > 0)
            ranks[best - 1] = pairs_->find(ids[best - 1], ids[best], merged[best - 1]);
        if (best + 1 < n)
            ranks[best] = pairs_->find(ids[best], ids[best + 1], merged[best]);
    }
    out.insert(out.end(), ids, ids + n);
}

void BpeModel::mergeLarge(const std::int32_t* ids, std::size_t n, std::vector<std::int32_t>& out) const
{
    // Symbols in a linked list, candidate pairs in a min-heap ordered by (rank, position); stale
    // entries are skipped when popped. O(n log n) for pathological pieces (megabytes of one letter).
    struct Symbol {
        std::int32_t id;
        std::int32_t prev;
        std::int32_t next;
    };
    struct Candidate {
        std::uint32_t rank;
        std::int32_t pos;
        std::int32_t left;
        std::int32_t right;
        std::int32_t merged;
        bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::vector<Symbol> sym(n);
    for (std::size_t i = 0; i < n; ++i)
        sym[i] = {ids[i], static_cast<std::int32_t>(i) - 1, i + 1 < n ? static_cast<std::int32_t>(i + 1) : -1};
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
    auto consider = [&](std::int32_t pos) {
        const std::int32_t next = sym[pos].next;
        if (next < 0)
            return;
        std::int32_t m = 0;
        const std::uint32_t rank = pairs_->find(sym[pos].id, sym[next].id, m);
        if (rank != PairTable::kNoRank)
            heap.push({rank, pos, sym[pos].id, sym[next].id, m});
    };
    for (std::size_t i = 0; i + 1 < n; ++i)
        consider(static_cast<std::int32_t>(i));
    std::vector<bool> dead(n, false);
    while (!heap.empty()) {
        const Candidate c = heap.top();
        heap.pop();
        if (dead[c.pos])
            continue;
        const std::int32_t next = sym[c.pos].next;
        if (next < 0 || sym[c.pos].id != c.left || sym[next].id != c.right)
            continue;
        sym[c.pos].id = c.merged;
        dead[next] = true;
        sym[c.pos].next = sym[next].next;
        if (sym[next].next >= 0)
            sym[sym[next].next].prev = c.pos;
        if (sym[c.pos].prev >= 0)
            consider(sym[c.pos].prev);
        consider(c.pos);
    }
    for (std::int32_t i = 0; i >= 0; i = sym[i].next)
        out.push_back(sym[i].id);
}

}  // namespace tessera
