#include "model/safetensors.h"

#include "core/error.h"
#include "core/json_util.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <bit>
#include <cstring>
#include <fstream>
#include <limits>

namespace tessera {

static_assert(std::endian::native == std::endian::little, "safetensors is little-endian");

const char* dtypeName(DType t)
{
    switch (t) {
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::F32: return "F32";
    case DType::I64: return "I64";
    case DType::U8: return "U8";
    }
    return "?";
}

std::size_t dtypeSize(DType t)
{
    switch (t) {
    case DType::BF16:
    case DType::F16: return 2;
    case DType::F32: return 4;
    case DType::I64: return 8;
    case DType::U8: return 1;
    }
    return 0;
}

namespace {

bool parseDType(const std::string& s, DType& out)
{
    static const std::pair<const char*, DType> names[] = {
        {"BF16", DType::BF16}, {"F16", DType::F16}, {"F32", DType::F32},
        {"I64", DType::I64},   {"U8", DType::U8}};
    for (const auto& [n, t] : names)
        if (s == n) {
            out = t;
            return true;
        }
    return false;
}

float bf16ToFloat(std::uint16_t v) { return std::bit_cast<float>(static_cast<std::uint32_t>(v) << 16); }

float f16ToFloat(std::uint16_t h)
{
    std::uint32_t sign = (h & 0x8000u) << 16;
    std::uint32_t exp = (h >> 10) & 0x1f;
    std::uint32_t mant = h & 0x3ff;
    std::uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {  // subnormal: renormalise
            int e = -1;
            do {
                ++e;
                mant <<= 1;
            } while ((mant & 0x400) == 0);
            bits = sign | (static_cast<std::uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    return std::bit_cast<float>(bits);
}

template <typename T>
T load(const std::uint8_t* p)
{
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
}

}  // namespace

std::int64_t TensorView::numel() const
{
    std::int64_t n = 1;
    for (auto d : shape)
        n *= d;
    return n;
}

std::string TensorView::shapeString() const
{
    std::string s = "[";
    for (std::size_t i = 0; i < shape.size(); ++i)
        s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

float TensorView::floatAt(std::size_t i) const
{
    const std::uint8_t* p = data + i * dtypeSize(dtype);
    switch (dtype) {
    case DType::BF16: return bf16ToFloat(load<std::uint16_t>(p));
    case DType::F16: return f16ToFloat(load<std::uint16_t>(p));
    case DType::F32: return load<float>(p);
    case DType::I64: return static_cast<float>(load<std::int64_t>(p));
    case DType::U8: return static_cast<float>(*p);
    }
    return 0.f;
}

std::vector<float> TensorView::toFloat() const
{
    std::vector<float> out(static_cast<std::size_t>(numel()));
    for (std::size_t i = 0; i < out.size(); ++i)
        out[i] = floatAt(i);
    return out;
}

std::vector<std::int64_t> TensorView::toInt64() const
{
    std::vector<std::int64_t> out(static_cast<std::size_t>(numel()));
    for (std::size_t i = 0; i < out.size(); ++i) {
        const std::uint8_t* p = data + i * dtypeSize(dtype);
        switch (dtype) {
        case DType::I64: out[i] = load<std::int64_t>(p); break;
        case DType::U8: out[i] = *p; break;
        default:
            throw Error(name + ": dtype " + dtypeName(dtype) + " is not an integer type");
        }
    }
    return out;
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : file_(path)
{
    const std::string where = path.string();
    auto fail = [&](const std::string& what) -> void { throw Error(where + ": " + what); };
    const std::size_t size = file_.size();
    if (size < 8)
        fail("not a safetensors file (shorter than its 8-byte header length)");
    const std::uint64_t headerLen = load<std::uint64_t>(file_.data());
    if (headerLen > kMaxHeaderBytes)
        fail("header length " + std::to_string(headerLen) + " exceeds the " +
             std::to_string(kMaxHeaderBytes) + "-byte limit (corrupt or not a safetensors file)");
    if (headerLen > size - 8)
        fail("header length " + std::to_string(headerLen) + " runs past the end of the " +
             std::to_string(size) + "-byte file (truncated?)");
    const std::string headerText(reinterpret_cast<const char*>(file_.data() + 8), headerLen);
    nlohmann::json header;
    try {
        header = nlohmann::json::parse(headerText);
    } catch (const nlohmann::json::parse_error& e) {
        fail(std::string("header is not valid JSON: ") + e.what());
    }
    if (!header.is_object())
        fail("header must be a JSON object");

    const std::uint8_t* base = file_.data() + 8 + headerLen;
    const std::uint64_t dataSize = size - 8 - headerLen;
    struct Span {
        std::uint64_t begin, end;
        std::size_t index;
    };
    std::vector<Span> spans;

    for (auto it = header.begin(); it != header.end(); ++it) {
        const std::string& name = it.key();
        if (name == "__metadata__") {
            if (!it->is_object())
                fail("__metadata__ must be an object of strings");
            for (auto m = it->begin(); m != it->end(); ++m) {
                if (!m->is_string())
                    fail("__metadata__ value of \"" + m.key() + "\" must be a string");
                metadata_[m.key()] = m->get<std::string>();
            }
            continue;
        }
        auto tfail = [&](const std::string& what) { fail("tensor \"" + name + "\": " + what); };
        const auto& t = *it;
        if (!t.is_object())
            tfail("entry must be an object");
        auto dt = t.find("dtype");
        auto sh = t.find("shape");
        auto off = t.find("data_offsets");
        if (dt == t.end() || !dt->is_string())
            tfail("missing or non-string \"dtype\"");
        if (sh == t.end() || !sh->is_array())
            tfail("missing or non-array \"shape\"");
        if (off == t.end() || !off->is_array() || off->size() != 2)
            tfail("\"data_offsets\" must be [begin, end]");
        TensorView v;
        v.name = name;
        v.file = &file_.path();
        if (!parseDType(dt->get<std::string>(), v.dtype))
            tfail("unsupported dtype \"" + dt->get<std::string>() + "\" (supported: BF16, F16, F32, I64, U8)");
        if (sh->size() > 8)
            tfail("has " + std::to_string(sh->size()) + " dimensions, more than 8");
        std::uint64_t numel = 1;
        for (const auto& d : *sh) {
            if (!d.is_number_unsigned())
                tfail("shape entries must be non-negative integers");
            auto dim = d.get<std::uint64_t>();
            if (dim > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
                tfail("dimension too large");
            v.shape.push_back(static_cast<std::int64_t>(dim));
            if (__builtin_mul_overflow(numel, dim, &numel) || numel > (std::uint64_t{1} << 60))
                tfail("shape " + v.shapeString() + " is impossibly large");
        }
        for (const auto& o : *off)
            if (!o.is_number_unsigned())
                tfail("data_offsets must be non-negative integers");
        const std::uint64_t begin = (*off)[0].get<std::uint64_t>();
        const std::uint64_t end = (*off)[1].get<std::uint64_t>();
        if (begin > end)
            tfail("data_offsets begin " + std::to_string(begin) + " > end " + std::to_string(end));
        if (end > dataSize)
            tfail("data [" + std::to_string(begin) + ", " + std::to_string(end) +
                  ") runs past the end of the data section (" + std::to_string(dataSize) +
                  " bytes; file truncated?)");
        const std::uint64_t expected = numel * dtypeSize(v.dtype);  // numel ≤ 2^60: no overflow
        if (expected != end - begin)
            tfail("shape " + v.shapeString() + " × " + dtypeName(v.dtype) + " needs " +
                  std::to_string(expected) + " bytes but its span holds " +
                  std::to_string(end - begin));
        v.data = base + begin;
        v.byteSize = end - begin;
        spans.push_back({begin, end, tensors_.size()});
        tensors_.push_back(std::move(v));
    }

    std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
    for (std::size_t i = 1; i < spans.size(); ++i) {
        const auto& a = spans[i - 1];
        const auto& b = spans[i];
        if (b.begin < a.end && b.end > b.begin && a.end > a.begin)
            fail("tensors \"" + tensors_[a.index].name + "\" and \"" + tensors_[b.index].name +
                 "\" overlap in the file");
    }
    for (std::size_t i = 0; i < tensors_.size(); ++i)
        index_[tensors_[i].name] = i;
}

const TensorView* SafetensorsFile::find(const std::string& name) const
{
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
}

void writeSafetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                      const std::map<std::string, std::string>& metadata)
{
    nlohmann::json header = nlohmann::json::object();
    if (!metadata.empty())
        header["__metadata__"] = metadata;
    std::uint64_t offset = 0;
    for (const auto& t : tensors) {
        std::uint64_t numel = 1;
        for (auto d : t.shape)
            numel *= static_cast<std::uint64_t>(d);
        if (numel * dtypeSize(t.dtype) != t.bytes.size())
            throw Error(path.string() + ": tensor \"" + t.name + "\" has " +
                        std::to_string(t.bytes.size()) + " bytes, its shape needs " +
                        std::to_string(numel * dtypeSize(t.dtype)));
        header[t.name] = {{"dtype", dtypeName(t.dtype)},
                          {"shape", t.shape},
                          {"data_offsets", {offset, offset + t.bytes.size()}}};
        offset += t.bytes.size();
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');  // keep the data section 8-byte aligned
    const std::uint64_t len = text.size();
    std::filesystem::path tmp = path;
    tmp += ".partial";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out)
            throw Error(path.string() + ": cannot open for writing");
        out.write(reinterpret_cast<const char*>(&len), 8);
        out.write(text.data(), static_cast<std::streamsize>(text.size()));
        for (const auto& t : tensors)
            out.write(reinterpret_cast<const char*>(t.bytes.data()), static_cast<std::streamsize>(t.bytes.size()));
        if (!out.flush())
            throw Error(path.string() + ": write failed (disk full?)");
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec)
        throw Error(path.string() + ": cannot finish writing: " + ec.message());
}

TensorStore TensorStore::openFolder(const std::filesystem::path& dir)
{
    TensorStore store;
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec))
        throw Error(dir.string() + ": not a folder");
    const auto indexPath = dir / "model.safetensors.index.json";
    std::map<std::string, std::string> weightMap;
    std::vector<std::string> shardNames;
    if (std::filesystem::exists(indexPath, ec)) {
        auto index = parseJsonFile(indexPath);
        if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
            throw Error(indexPath.string() + ": missing \"weight_map\" object");
        for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
            if (!it->is_string())
                throw Error(indexPath.string() + ": weight_map entry \"" + it.key() + "\" is not a file name");
            std::string shard = it->get<std::string>();
            // A shard name must name a file inside this folder: no separators, no "..".
            if (shard.empty() || shard.find('/') != std::string::npos || shard.find('\\') != std::string::npos ||
                shard == "." || shard == ".." || shard.find('\0') != std::string::npos)
                throw Error(indexPath.string() + ": shard name \"" + shard + "\" of tensor \"" + it.key() +
                            "\" does not name a file inside the model folder");
            weightMap[it.key()] = shard;
            if (std::find(shardNames.begin(), shardNames.end(), shard) == shardNames.end())
                shardNames.push_back(shard);
        }
        if (shardNames.empty())
            throw Error(indexPath.string() + ": weight_map is empty");
    } else if (std::filesystem::exists(dir / "model.safetensors", ec)) {
        shardNames.push_back("model.safetensors");
    } else {
        throw Error(dir.string() + ": no model.safetensors.index.json or model.safetensors in this folder");
    }

    std::map<std::string, const SafetensorsFile*> shardByName;
    for (const auto& shard : shardNames) {
        auto p = dir / shard;
        if (!std::filesystem::exists(p, ec))
            throw Error(p.string() + ": shard listed in model.safetensors.index.json is missing");
        store.files_.push_back(std::make_unique<SafetensorsFile>(p));
        shardByName[shard] = store.files_.back().get();
    }
    for (const auto& file : store.files_) {
        for (const auto& t : file->tensors()) {
            auto [it, inserted] = store.byName_.emplace(t.name, &t);
            if (!inserted)
                throw Error(file->path().string() + ": tensor \"" + t.name + "\" also appears in " +
                            it->second->file->string());
        }
    }
    for (const auto& [name, shard] : weightMap) {
        const auto* t = shardByName[shard]->find(name);
        if (!t)
            throw Error((dir / shard).string() + ": model.safetensors.index.json says it holds \"" + name +
                        "\" but it does not");
    }
    return store;
}

const TensorView* TensorStore::find(const std::string& name) const
{
    auto it = byName_.find(name);
    return it == byName_.end() ? nullptr : it->second;
}

std::uint64_t TensorStore::totalBytes() const
{
    std::uint64_t n = 0;
    for (const auto& [name, t] : byName_)
        n += t->byteSize;
    return n;
}

}  // namespace tessera
