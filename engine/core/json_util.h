#pragma once
// Strict accessors for JSON read from files we do not control: every failure says which file and
// which field, and what was expected.
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

namespace tessera {

// Parses a JSON file (size-capped); errors name the file and the parse position.
nlohmann::json parseJsonFile(const std::filesystem::path& path, std::size_t maxBytes = 64u << 20);
nlohmann::json parseJsonText(const std::string& text, const std::string& what);

class JsonReader {
public:
    JsonReader(const nlohmann::json& object, std::string where);

    bool has(const char* key) const;
    const nlohmann::json& raw() const { return obj_; }
    const std::string& where() const { return where_; }

    std::int64_t integer(const char* key) const;
    std::int64_t integer(const char* key, std::int64_t fallback) const;
    double number(const char* key) const;
    double number(const char* key, double fallback) const;
    bool boolean(const char* key, bool fallback) const;
    std::string string(const char* key) const;
    std::string string(const char* key, const std::string& fallback) const;
    // Absent or null → fallback.
    std::int64_t integerOrNull(const char* key, std::int64_t fallback) const;
    JsonReader object(const char* key) const;

    [[noreturn]] void fail(const char* key, const std::string& problem) const;

private:
    const nlohmann::json* find(const char* key) const;
    const nlohmann::json& obj_;
    std::string where_;
};

}  // namespace tessera
