#pragma once
// Token text ↔ id for a whole vocabulary: one character arena and an open-addressing index, so
// loading 128k tokens costs a few allocations and a lookup touches one slot and one string.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tessera {

class TokenTable {
public:
    void reserve(std::size_t count);
    // Adds a token; returns false (and adds nothing) when `text` is already present.
    bool insert(std::string_view text, std::int32_t id);
    std::int32_t find(std::string_view text) const;  // -1 when absent
    std::size_t size() const { return entries_.size(); }

    // Builds the id → text index once every token is in; reports two tokens sharing an id.
    struct IdClash {
        std::int32_t id;
        std::string first;
        std::string second;
    };
    std::optional<IdClash> finishIds();
    // Valid after finishIds().
    std::size_t idLimit() const { return entryOfId_.size(); }  // largest id + 1
    bool has(std::int32_t id) const
    {
        return id >= 0 && static_cast<std::size_t>(id) < entryOfId_.size() && entryOfId_[static_cast<std::size_t>(id)] >= 0;
    }
    std::string_view text(std::int32_t id) const  // requires has(id)
    {
        return textOf(entries_[static_cast<std::size_t>(entryOfId_[static_cast<std::size_t>(id)])]);
    }

private:
    struct Entry {
        std::uint32_t offset;
        std::uint32_t length;
        std::int32_t id;
    };
    std::string_view textOf(const Entry& e) const { return std::string_view(arena_).substr(e.offset, e.length); }
    static std::uint64_t hash(std::string_view text);
    void rehash(std::size_t capacity);

    std::string arena_;
    std::vector<Entry> entries_;
    std::vector<std::uint64_t> slots_;  // (hash high 32 bits << 32) | (entry index + 1); 0 = empty
    std::vector<std::int32_t> entryOfId_;
};

}  // namespace tessera
