#pragma once
// Minimal "--flag value" / "--switch" parsing for tessera-cli; unknown options are errors.
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace tessera::cli {

class UsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class Args {
public:
    // `valued` options take a value (and may repeat), `switches` do not.
    Args(const std::vector<std::string>& argv, const std::set<std::string>& valued, const std::set<std::string>& switches)
    {
        for (std::size_t i = 0; i < argv.size(); ++i) {
            const std::string& a = argv[i];
            if (valued.count(a)) {
                if (i + 1 >= argv.size())
                    throw UsageError(a + " needs a value");
                values_[a].push_back(argv[++i]);
            } else if (switches.count(a)) {
                switches_.insert(a);
            } else {
                throw UsageError("unknown option " + a);
            }
        }
    }
    std::optional<std::string> get(const std::string& name) const
    {
        auto it = values_.find(name);
        return it == values_.end() ? std::nullopt : std::optional<std::string>(it->second.back());
    }
    std::vector<std::string> all(const std::string& name) const
    {
        auto it = values_.find(name);
        return it == values_.end() ? std::vector<std::string>{} : it->second;
    }
    std::string require(const std::string& name) const
    {
        auto v = get(name);
        if (!v)
            throw UsageError(name + " is required");
        return *v;
    }
    bool has(const std::string& name) const { return switches_.count(name) > 0; }

    double number(const std::string& name, double fallback) const
    {
        auto v = get(name);
        if (!v)
            return fallback;
        try {
            std::size_t used = 0;
            double d = std::stod(*v, &used);
            if (used != v->size())
                throw std::invalid_argument(*v);
            return d;
        } catch (const std::exception&) {
            throw UsageError(name + " needs a number, got \"" + *v + "\"");
        }
    }

private:
    std::map<std::string, std::vector<std::string>> values_;
    std::set<std::string> switches_;
};

}  // namespace tessera::cli
