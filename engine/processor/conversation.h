#pragma once
// A chat as the processor takes it: messages with roles, text with <image> markers, and the image
// files they refer to. Reads the upstream conversation JSON: a list of {"role", "content",
// "images"} (roles "<|User|>"/"user", "<|Assistant|>"/"assistant", "system"), or an object
// {"conversation": [...], "system_prompt": "..."}; image paths are relative to the file.
#include <nlohmann/json_fwd.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace tessera {

enum class Role { User, Assistant, System };

const char* roleName(Role role);  // "<|User|>", "<|Assistant|>", "system"

struct ChatMessage {
    Role role = Role::User;
    std::string content;
    std::vector<std::filesystem::path> images;  // in the order their <image> markers appear
};

struct Conversation {
    std::vector<ChatMessage> messages;
    // The upstream processor's system_prompt argument: it only reaches the formatted prompt text,
    // never the token ids. A message with Role::System is what the model actually sees.
    std::string systemPrompt;

    std::vector<std::filesystem::path> imagePaths() const;  // all messages, in order
};

Conversation parseConversation(const nlohmann::json& json, const std::filesystem::path& baseDir,
                               const std::string& where);
Conversation loadConversationFile(const std::filesystem::path& path);

}  // namespace tessera
