// tessera-cli: the engine from a terminal. JSON on stdout with --json, errors on stderr, non-zero
// exit status on failure.
#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/process_setup.h"

#include <iostream>

namespace {

constexpr const char* kUsage = R"(usage: tessera-cli <command> [options]

commands:
  tokenize   --model DIR (--text TEXT | --file PATH) [--json]
             Token ids of a text (no special tokens added; added tokens such as <image> are matched).
  preprocess --model DIR --conversation FILE.json [--json] [--dump-tiles OUT.safetensors]
             The model input of a conversation: token ids, image mask, tile grids, image tokens.
  info       --model DIR [--json]
             Validate a checkpoint folder: variant, parameters, every tensor present and well-shaped.
  devices    [--json]
             The CUDA devices this build can use.
  generate   --model DIR --conversation FILE.json [--max-new-tokens N] [--temperature T] [--top-p P]
             [--top-k K] [--repetition-penalty R] [--seed S] [--backend auto|cpu|cuda] [--json]
             Answer the conversation: text streams to stdout; --json prints one object at the end.
             Temperature 0 is greedy. Defaults are the upstream demo's (0.1, 0.9, 1.1, 2048).
  chat       --model DIR [--image PATH]... [--system TEXT] [sampling options] [--backend ...]
             A conversation in the terminal. Type a message and press Enter; "/image PATH" attaches
             an image to your next message, "/reset" starts over, "/quit" ends. Ctrl+C stops an answer.

A conversation file is a JSON list of {"role", "content", "images"} messages (roles user,
assistant, system; <image> in the content marks each image; image paths are relative to the file),
or an object {"conversation": [...], "system_prompt": "..."}.
)";

}  // namespace

int main(int argc, char** argv)
{
    tessera::preferPassiveThreadWaits(argv);
    using namespace tessera::cli;
    std::vector<std::string> rest(argv + 1, argv + argc);
    if (rest.empty() || rest[0] == "--help" || rest[0] == "-h" || rest[0] == "help") {
        std::cout << kUsage;
        return rest.empty() ? 2 : 0;
    }
    const std::string command = rest[0];
    rest.erase(rest.begin());
    try {
        if (command == "tokenize")
            return tokenize(Args(rest, {"--model", "--text", "--file"}, {"--json"}));
        if (command == "preprocess")
            return preprocess(Args(rest, {"--model", "--conversation", "--dump-tiles"}, {"--json"}));
        if (command == "info")
            return info(Args(rest, {"--model"}, {"--json"}));
        if (command == "devices")
            return devices(Args(rest, {}, {"--json"}));
        if (command == "generate")
            return generate(Args(rest, withSamplingOptions({"--model", "--conversation", "--backend"}), {"--json"}));
        if (command == "chat")
            return chat(Args(rest, withSamplingOptions({"--model", "--backend", "--system", "--image"}), {}));
        throw UsageError("unknown command \"" + command + "\"");
    } catch (const UsageError& e) {
        std::cerr << "tessera-cli: " << e.what() << "\n\n" << kUsage;
        return 2;
    } catch (const tessera::Error& e) {
        std::cerr << "tessera-cli: " << e.what() << '\n';
        return 1;
    } catch (const std::exception& e) {
        std::cerr << "tessera-cli: unexpected error: " << e.what() << '\n';
        return 1;
    }
}
