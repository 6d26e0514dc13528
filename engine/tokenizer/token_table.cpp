#include "tokenizer/token_table.h"

#include <algorithm>
#include <functional>

namespace tessera {

std::uint64_t TokenTable::hash(std::string_view text) { return std::hash<std::string_view>{}(text); }

void TokenTable::reserve(std::size_t count)
{
    entries_.reserve(count);
    arena_.reserve(count * 8);
    std::size_t capacity = 16;
    while (capacity < count * 2)
        capacity *= 2;
    if (capacity > slots_.size())
        rehash(capacity);
}

void TokenTable::rehash(std::size_t capacity)
{
    slots_.assign(capacity, 0);
    const std::size_t mask = capacity - 1;
    for (std::size_t e = 0; e < entries_.size(); ++e) {
        const std::uint64_t h = hash(textOf(entries_[e]));
        std::size_t i = static_cast<std::size_t>(h) & mask;
        while (slots_[i] != 0)
            i = (i + 1) & mask;
        slots_[i] = (h & 0xFFFFFFFF00000000ull) | (e + 1);
    }
}

bool TokenTable::insert(std::string_view text, std::int32_t id)
{
    if ((entries_.size() + 1) * 2 > slots_.size())
        rehash(std::max<std::size_t>(16, slots_.size() * 2));
    const std::uint64_t h = hash(text);
    const std::size_t mask = slots_.size() - 1;
    std::size_t i = static_cast<std::size_t>(h) & mask;
    for (; slots_[i] != 0; i = (i + 1) & mask) {
        const std::uint64_t s = slots_[i];
        if ((s & 0xFFFFFFFF00000000ull) == (h & 0xFFFFFFFF00000000ull) && textOf(entries_[(s & 0xFFFFFFFFu) - 1]) == text)
            return false;
    }
    slots_[i] = (h & 0xFFFFFFFF00000000ull) | (entries_.size() + 1);
    entries_.push_back({static_cast<std::uint32_t>(arena_.size()), static_cast<std::uint32_t>(text.size()), id});
    arena_.append(text);
    return true;
}

std::int32_t TokenTable::find(std::string_view text) const
{
    if (slots_.empty())
        return -1;
    const std::uint64_t h = hash(text);
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = static_cast<std::size_t>(h) & mask; slots_[i] != 0; i = (i + 1) & mask) {
        const std::uint64_t s = slots_[i];
        if ((s & 0xFFFFFFFF00000000ull) == (h & 0xFFFFFFFF00000000ull)) {
            const Entry& e = entries_[(s & 0xFFFFFFFFu) - 1];
            if (textOf(e) == text)
                return e.id;
        }
    }
    return -1;
}

std::optional<TokenTable::IdClash> TokenTable::finishIds()
{
    std::int32_t maxId = -1;
    for (const Entry& e : entries_)
        maxId = std::max(maxId, e.id);
    entryOfId_.assign(static_cast<std::size_t>(maxId + 1), -1);
    for (std::size_t i = 0; i < entries_.size(); ++i) {
        std::int32_t& slot = entryOfId_[static_cast<std::size_t>(entries_[i].id)];
        if (slot >= 0)
            return IdClash{entries_[i].id, std::string(textOf(entries_[static_cast<std::size_t>(slot)])),
                           std::string(textOf(entries_[i]))};
        slot = static_cast<std::int32_t>(i);
    }
    return std::nullopt;
}

}  // namespace tessera
