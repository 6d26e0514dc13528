#include "processor/conversation.h"

#include "core/error.h"
#include "core/json_util.h"

#include <nlohmann/json.hpp>

namespace tessera {

const char* roleName(Role role)
{
    switch (role) {
    case Role::User: return "<|User|>";
    case Role::Assistant: return "<|Assistant|>";
    case Role::System: return "system";
    }
    return "?";
}

std::vector<std::filesystem::path> Conversation::imagePaths() const
{
    std::vector<std::filesystem::path> out;
    for (const auto& m : messages)
        out.insert(out.end(), m.images.begin(), m.images.end());
    return out;
}

Conversation parseConversation(const nlohmann::json& json, const std::filesystem::path& baseDir,
                               const std::string& where)
{
    Conversation conv;
    const nlohmann::json* list = &json;
    if (json.is_object()) {
        JsonReader r(json, where);
        conv.systemPrompt = r.string("system_prompt", "");
        if (!json.contains("conversation") || !json["conversation"].is_array())
            throw Error(where + ": expected a \"conversation\" list of messages");
        list = &json["conversation"];
    } else if (!json.is_array()) {
        throw Error(where + ": expected a list of messages ({\"role\", \"content\", \"images\"})");
    }
    if (list->empty())
        throw Error(where + ": the conversation has no messages");
    std::size_t index = 0;
    for (const auto& item : *list) {
        const std::string at = where + ": message " + std::to_string(index);
        JsonReader r(item, at);
        ChatMessage m;
        const std::string role = r.string("role");
        if (role == "<|User|>" || role == "user")
            m.role = Role::User;
        else if (role == "<|Assistant|>" || role == "assistant")
            m.role = Role::Assistant;
        else if (role == "system")
            m.role = Role::System;
        else
            r.fail("role", "is \"" + role + "\"; expected user, assistant or system");
        m.content = r.string("content", "");
        if (item.contains("images") && !item["images"].is_null()) {
            if (!item["images"].is_array())
                r.fail("images", "must be a list of file paths");
            for (const auto& img : item["images"]) {
                if (!img.is_string() || img.get<std::string>().empty())
                    r.fail("images", "entries must be non-empty file paths");
                std::filesystem::path p = img.get<std::string>();
                m.images.push_back(p.is_absolute() ? p : baseDir / p);
            }
        }
        conv.messages.push_back(std::move(m));
        ++index;
    }
    return conv;
}

Conversation loadConversationFile(const std::filesystem::path& path)
{
    auto json = parseJsonFile(path, 16u << 20);
    return parseConversation(json, path.parent_path(), path.string());
}

}  // namespace tessera
