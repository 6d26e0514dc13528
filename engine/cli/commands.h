#pragma once
#include "cli/args.h"

#include <nlohmann/json.hpp>

#include <iostream>
#include <set>
#include <string>
#include <vector>

namespace tessera::cli {

inline void printJson(const nlohmann::json& j) { std::cout << j.dump() << '\n'; }

// Options shared by the commands that generate.
inline std::set<std::string> withSamplingOptions(std::set<std::string> options)
{
    options.insert({"--max-new-tokens", "--temperature", "--top-p", "--top-k", "--repetition-penalty", "--seed"});
    return options;
}

int tokenize(const Args& args);
int preprocess(const Args& args);
int info(const Args& args);
int devices(const Args& args);
int generate(const Args& args);
int chat(const Args& args);

}  // namespace tessera::cli
