#include "tokenizer/pre_tokenizer.h"

#include "core/error.h"

#include <nlohmann/json.hpp>

namespace tessera {
namespace {

std::string typeOf(const nlohmann::json& node, const std::string& where)
{
    if (!node.is_object())
        throw Error(where + ": expected an object, found " + node.type_name());
    auto it = node.find("type");
    if (it == node.end() || !it->is_string())
        throw Error(where + ": field \"type\" is missing or not a string");
    return it->get<std::string>();
}

bool flag(const nlohmann::json& node, const char* key, bool fallback, const std::string& where)
{
    auto it = node.find(key);
    if (it == node.end() || it->is_null())
        return fallback;
    if (!it->is_boolean())
        throw Error(where + ": field \"" + key + "\" must be true or false, found " + it->dump());
    return it->get<bool>();
}

RegexSplit makeSplit(const nlohmann::json& node, const std::string& where)
{
    auto pattern = node.find("pattern");
    if (pattern == node.end() || !pattern->is_object())
        throw Error(where + ": Split needs a \"pattern\" object ({\"Regex\": ...} or {\"String\": ...})");
    std::string regexText;
    if (auto r = pattern->find("Regex"); r != pattern->end() && r->is_string())
        regexText = r->get<std::string>();
    else if (auto s = pattern->find("String"); s != pattern->end() && s->is_string())
        regexText = Regex::escape(s->get<std::string>());
    else
        throw Error(where + ": Split pattern must be {\"Regex\": string} or {\"String\": string}, found " + pattern->dump());

    auto behaviorNode = node.find("behavior");
    const std::string behavior = behaviorNode != node.end() && behaviorNode->is_string() ? behaviorNode->get<std::string>() : "";
    RegexSplit::Behavior b;
    if (behavior == "Isolated")
        b = RegexSplit::Behavior::Isolated;
    else if (behavior == "Removed")
        b = RegexSplit::Behavior::Removed;
    else
        throw Error(where + ": Split behavior \"" + behavior + "\" is not supported (Isolated and Removed are)");
    return RegexSplit(Regex(regexText, where + ".pattern"), b, flag(node, "invert", false, where));
}

void checkByteLevel(const nlohmann::json& node, const std::string& where)
{
    if (flag(node, "add_prefix_space", true, where))  // HF defaults both to true
        throw Error(where + ": ByteLevel with add_prefix_space true is not supported");
    if (flag(node, "use_regex", true, where))
        throw Error(where + ": ByteLevel with use_regex true (the built-in GPT-2 split) is not supported; "
                            "this tokenizer expects the split patterns as explicit Split steps");
}

}  // namespace

RegexSplit::RegexSplit(Regex regex, Behavior behavior, bool invert)
    : regex_(std::move(regex)), behavior_(behavior), invert_(invert)
{
}

PreTokenizer PreTokenizer::fromJson(const nlohmann::json& config, const std::string& where)
{
    const std::string base = where + ": pre_tokenizer";
    if (config.is_null())
        throw Error(base + " is null; this byte-level BPE tokenizer needs a ByteLevel pre-tokenizer");
    std::vector<const nlohmann::json*> steps;
    const std::string type = typeOf(config, base);
    if (type == "Sequence") {
        auto list = config.find("pretokenizers");
        if (list == config.end() || !list->is_array())
            throw Error(base + ": Sequence needs a \"pretokenizers\" array");
        for (const auto& step : *list)
            steps.push_back(&step);
    } else {
        steps.push_back(&config);
    }

    PreTokenizer result;
    bool sawByteLevel = false;
    for (std::size_t i = 0; i < steps.size(); ++i) {
        std::string stepWhere = base;
        if (type == "Sequence")
            stepWhere.append("[").append(std::to_string(i)).append("]");
        const std::string stepType = typeOf(*steps[i], stepWhere);
        if (sawByteLevel)
            throw Error(stepWhere + ": " + stepType + " after ByteLevel is not supported (ByteLevel must be last)");
        if (stepType == "Split") {
            result.stages_.push_back(makeSplit(*steps[i], stepWhere));
        } else if (stepType == "ByteLevel") {
            checkByteLevel(*steps[i], stepWhere);
            sawByteLevel = true;
        } else {
            throw Error(stepWhere + ": pre-tokenizer type \"" + stepType + "\" is not supported (Split and ByteLevel are)");
        }
    }
    if (!sawByteLevel)
        throw Error(base + " has no ByteLevel step; only byte-level BPE tokenizers are supported");
    return result;
}

}  // namespace tessera
