// tessera-cli commands that run the model: generate (one answer) and chat (interactive).
#include "cli/commands.h"
#include "core/error.h"
#include "runtime/model.h"
#include "runtime/session.h"

#include <atomic>
#include <chrono>
#include <csignal>
#include <iostream>

namespace tessera::cli {

namespace {

using nlohmann::json;

std::atomic<bool> g_interrupt{false};

extern "C" void onInterrupt(int) { g_interrupt.store(true); }

GenerationOptions generationOptions(const Args& args)
{
    GenerationOptions o;
    o.sampling.temperature = static_cast<float>(args.number("--temperature", o.sampling.temperature));
    o.sampling.topP = static_cast<float>(args.number("--top-p", o.sampling.topP));
    o.sampling.topK = static_cast<int>(args.number("--top-k", o.sampling.topK));
    o.sampling.repetitionPenalty = static_cast<float>(args.number("--repetition-penalty", o.sampling.repetitionPenalty));
    o.sampling.seed = static_cast<std::uint64_t>(args.number("--seed", 0));
    o.maxNewTokens = static_cast<int>(args.number("--max-new-tokens", o.maxNewTokens));
    if (o.sampling.temperature < 0)
        throw UsageError("--temperature must not be negative");
    if (o.sampling.topP <= 0 || o.sampling.topP > 1)
        throw UsageError("--top-p must be in (0, 1]");
    if (o.sampling.topK < 0)
        throw UsageError("--top-k must not be negative");
    if (o.sampling.repetitionPenalty <= 0)
        throw UsageError("--repetition-penalty must be positive");
    if (o.maxNewTokens < 1)
        throw UsageError("--max-new-tokens must be at least 1");
    return o;
}

std::unique_ptr<Model> loadModel(const Args& args, bool showProgress)
{
    ModelLoadOptions load;
    load.backend = parseBackendKind(args.get("--backend").value_or("auto"));
    int lastPercent = -1;
    load.progress = [&](const LoadProgress& p) {
        const int percent = static_cast<int>(p.fraction * 100);
        if (showProgress && percent != lastPercent) {
            std::cerr << "\rloading: " << percent << "% " << p.stage << "          " << std::flush;
            lastPercent = percent;
        }
        return !g_interrupt.load();
    };
    auto model = Model::load(args.require("--model"), load);
    if (showProgress)
        std::cerr << "\r" << std::string(60, ' ') << "\r";
    return model;
}

json boxesJson(const std::vector<GroundingBox>& boxes)
{
    json out = json::array();
    for (const auto& b : boxes)
        out.push_back({{"label", b.label}, {"image", b.image}, {"box", b.box}});
    return out;
}

}  // namespace

int generate(const Args& args)
{
    const bool asJson = args.has("--json");
    auto options = generationOptions(args);
    auto conversation = loadConversationFile(args.require("--conversation"));
    std::signal(SIGINT, onInterrupt);
    const auto t0 = std::chrono::steady_clock::now();
    auto model = loadModel(args, !asJson);
    const double loadSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    Session session(*model);
    GenerationCallbacks callbacks;
    if (!asJson)
        callbacks.onText = [](std::string_view piece) { std::cout << piece << std::flush; };
    auto result = session.generate(conversation, options, callbacks, &g_interrupt);
    if (asJson) {
        printJson({{"backend", model->backend().name()},
                   {"model", model->variant()},
                   {"prompt_ids", result.promptIds},
                   {"output_ids", result.outputIds},
                   {"text", result.text},
                   {"boxes", boxesJson(result.boxes)},
                   {"stop", stopReasonName(result.stop)},
                   {"timings",
                    {{"load_s", loadSeconds},
                     {"encode_s", result.timings.encodeSeconds},
                     {"prefill_s", result.timings.prefillSeconds},
                     {"ttft_s", result.timings.ttftSeconds},
                     {"decode_tokens_per_s", result.timings.decodeTokensPerSecond()}}}});
    } else {
        std::cout << '\n';
        std::cerr << "[" << model->backend().name() << ", " << result.promptIds.size() << " prompt tokens, "
                  << result.outputIds.size() << " generated, first token after " << result.timings.ttftSeconds
                  << " s, " << result.timings.decodeTokensPerSecond() << " tokens/s, stop: "
                  << stopReasonName(result.stop) << "]\n";
    }
    return result.stop == StopReason::Cancelled ? 130 : 0;
}

int chat(const Args& args)
{
    auto options = generationOptions(args);
    std::signal(SIGINT, onInterrupt);
    auto model = loadModel(args, true);
    Session session(*model);
    Conversation conversation;
    if (auto system = args.get("--system"))
        conversation.messages.push_back({Role::System, *system, {}});
    std::vector<std::filesystem::path> pending;
    for (const auto& p : args.all("--image"))
        pending.emplace_back(p);
    std::cerr << model->variant() << " on " << model->backend().description()
              << ". Type a message; /image PATH attaches an image, /reset starts over, /quit ends.\n";
    std::string line;
    for (;;) {
        g_interrupt.store(false);
        std::cout << "\n> " << std::flush;
        if (!std::getline(std::cin, line))
            break;
        if (line == "/quit" || line == "/exit")
            break;
        if (line == "/reset") {
            conversation.messages.erase(std::remove_if(conversation.messages.begin(), conversation.messages.end(),
                                                       [](const ChatMessage& m) { return m.role != Role::System; }),
                                        conversation.messages.end());
            pending.clear();
            session.reset();
            std::cerr << "(new conversation)\n";
            continue;
        }
        if (line.rfind("/image ", 0) == 0) {
            std::filesystem::path p = line.substr(7);
            try {
                decodeImageFile(p);  // fail now, not when the message is sent
                pending.push_back(p);
                std::cerr << "(" << pending.size() << " image(s) attached to the next message)\n";
            } catch (const Error& e) {
                std::cerr << "tessera-cli: " << e.what() << '\n';
            }
            continue;
        }
        if (line.empty())
            continue;
        ChatMessage user{Role::User, "", pending};
        for (std::size_t i = 0; i < pending.size(); ++i)
            user.content += "<image>\n";
        user.content += line;
        conversation.messages.push_back(user);
        GenerationCallbacks callbacks;
        callbacks.onText = [](std::string_view piece) { std::cout << piece << std::flush; };
        try {
            auto result = session.generate(conversation, options, callbacks, &g_interrupt);
            pending.clear();
            conversation.messages.push_back({Role::Assistant, result.text, {}});
            std::cerr << "\n[" << result.outputIds.size() << " tokens, " << result.timings.decodeTokensPerSecond()
                      << " tokens/s" << (result.stop == StopReason::Cancelled ? ", stopped" : "") << "]";
        } catch (const Error& e) {
            conversation.messages.pop_back();  // the message was not answered: keep the history clean
            std::cerr << "tessera-cli: " << e.what() << '\n';
        }
    }
    return 0;
}

}  // namespace tessera::cli
