#include "core/json_util.h"

#include "core/error.h"
#include "core/mapped_file.h"

#include <cmath>

namespace tessera {

nlohmann::json parseJsonText(const std::string& text, const std::string& what)
{
    try {
        return nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
        throw Error(what + ": invalid JSON at byte " + std::to_string(e.byte) + ": " + e.what());
    }
}

nlohmann::json parseJsonFile(const std::filesystem::path& path, std::size_t maxBytes)
{
    return parseJsonText(readTextFile(path, maxBytes), path.string());
}

JsonReader::JsonReader(const nlohmann::json& object, std::string where)
    : obj_(object), where_(std::move(where))
{
    if (!obj_.is_object())
        throw Error(where_ + ": expected a JSON object, found " + obj_.type_name());
}

const nlohmann::json* JsonReader::find(const char* key) const
{
    auto it = obj_.find(key);
    return it == obj_.end() ? nullptr : &*it;
}

bool JsonReader::has(const char* key) const { return find(key) != nullptr; }

void JsonReader::fail(const char* key, const std::string& problem) const
{
    throw Error(where_ + ": field \"" + key + "\" " + problem);
}

std::int64_t JsonReader::integer(const char* key) const
{
    const auto* v = find(key);
    if (!v)
        fail(key, "is missing");
    if (v->is_number_integer())
        return v->get<std::int64_t>();
    if (v->is_number_float()) {
        double d = v->get<double>();
        if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15)
            return static_cast<std::int64_t>(d);
    }
    fail(key, std::string("must be an integer, found ") + v->dump());
}

std::int64_t JsonReader::integer(const char* key, std::int64_t fallback) const
{
    return has(key) ? integer(key) : fallback;
}

std::int64_t JsonReader::integerOrNull(const char* key, std::int64_t fallback) const
{
    const auto* v = find(key);
    if (!v || v->is_null())
        return fallback;
    return integer(key);
}

double JsonReader::number(const char* key) const
{
    const auto* v = find(key);
    if (!v)
        fail(key, "is missing");
    if (!v->is_number())
        fail(key, std::string("must be a number, found ") + v->dump());
    double d = v->get<double>();
    if (!std::isfinite(d))
        fail(key, "must be finite");
    return d;
}

double JsonReader::number(const char* key, double fallback) const
{
    const auto* v = find(key);
    return (!v || v->is_null()) ? fallback : number(key);
}

bool JsonReader::boolean(const char* key, bool fallback) const
{
    const auto* v = find(key);
    if (!v || v->is_null())
        return fallback;
    if (!v->is_boolean())
        fail(key, std::string("must be true or false, found ") + v->dump());
    return v->get<bool>();
}

std::string JsonReader::string(const char* key) const
{
    const auto* v = find(key);
    if (!v)
        fail(key, "is missing");
    if (!v->is_string())
        fail(key, std::string("must be a string, found ") + v->dump());
    return v->get<std::string>();
}

std::string JsonReader::string(const char* key, const std::string& fallback) const
{
    const auto* v = find(key);
    return (!v || v->is_null()) ? fallback : string(key);
}

JsonReader JsonReader::object(const char* key) const
{
    const auto* v = find(key);
    if (!v)
        fail(key, "is missing");
    if (!v->is_object())
        fail(key, std::string("must be an object, found ") + v->type_name());
    return JsonReader(*v, where_ + "." + key);
}

}  // namespace tessera
