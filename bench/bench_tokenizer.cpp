// Tokenizer throughput: English text encoding (one thread), decoding and streaming detokenizing.
// Prints one JSON object. Usage: tessera-bench-tokenizer [tokenizer.json] [megabytes]
#include "core/error.h"
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// Prose of the kind a chat assistant sees: mixed sentence lengths, punctuation, numbers, names.
const char* const kSentences[] = {
    "The quick brown fox jumps over the lazy dog, and then it runs back into the forest.",
    "DeepSeek-VL2 is a mixture-of-experts vision-language model that reads charts, tables and documents.",
    "In 2023, the company reported revenue of $4.2 billion, up 17% from the previous year.",
    "She opened the window, looked at the grey sky, and decided that the walk could wait until tomorrow.",
    "Please describe what is shown in the picture, including the colours of the objects and their positions.",
    "It's not that we didn't try; we'd simply underestimated how long the migration would take.",
    "The museum's new wing houses more than 1,200 paintings, most of them donated by private collectors.",
    "According to the report, average temperatures rose by 1.5 degrees between 1990 and 2020.",
    "He wrote the letter by hand, folded it twice, and slipped it under the door before anyone woke up.",
    "Researchers at the university found that students who slept eight hours performed significantly better.",
    "Our train leaves at 7:45 in the morning, so we should pack tonight and set two alarms.",
    "The recipe calls for three eggs, 250 grams of flour, a pinch of salt and half a litre of milk.",
    "When the orchestra began to play, the audience fell silent and the conductor raised his hands.",
    "Can you summarise the main arguments of the article in a few short bullet points?",
    "Although the bridge was built in 1887, it still carries thousands of cars and cyclists every day.",
    "The committee will meet again on Thursday to review the budget and vote on the proposal.",
    "Photosynthesis converts light energy into chemical energy stored in glucose molecules.",
    "Mount Everest, at 8,849 metres, is the highest mountain above sea level on Earth.",
    "Good software is written twice: once to understand the problem, and once to solve it well.",
    "The giraffe at the back of the enclosure was eating leaves from the tallest acacia tree.",
};

std::string makeEnglishText(std::size_t targetBytes)
{
    std::string text;
    text.reserve(targetBytes + 256);
    std::uint64_t state = 0x9E3779B97F4A7C15ull;  // fixed seed: the same text on every run
    auto next = [&] {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        return state;
    };
    constexpr std::size_t count = sizeof(kSentences) / sizeof(kSentences[0]);
    while (text.size() < targetBytes) {
        const int sentencesInParagraph = 3 + static_cast<int>(next() % 5);
        for (int s = 0; s < sentencesInParagraph; ++s) {
            if (s)
                text += ' ';
            text += kSentences[next() % count];
            if (next() % 4 == 0)  // vary numbers so not every piece repeats
                text += " Item " + std::to_string(next() % 100000) + " was checked.";
        }
        text += "\n\n";
    }
    return text;
}

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

double secondsSince(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string jsonArray(const std::vector<double>& v)
{
    std::string s = "[";
    char buf[32];
    for (std::size_t i = 0; i < v.size(); ++i) {
        std::snprintf(buf, sizeof buf, "%s%.2f", i ? ", " : "", v[i]);
        s += buf;
    }
    return s + "]";
}

}  // namespace

int main(int argc, char** argv)
{
    std::filesystem::path path = argc > 1 ? argv[1] : "";
    if (path.empty()) {
        const char* golden = std::getenv("TESSERA_GOLDEN_DIR");
        path = std::filesystem::path(golden && *golden ? golden : TESSERA_SOURCE_DIR "/../shared/golden") / "models" /
               "mini-mha" / "tokenizer.json";
    }
    const double megabytes = argc > 2 ? std::atof(argv[2]) : 4.0;
    constexpr int kRepeats = 7;

    try {
        std::vector<double> loadMs;
        std::optional<tessera::Tokenizer> loaded;
        for (int i = 0; i < 3; ++i) {
            const auto t0 = Clock::now();
            loaded = tessera::Tokenizer::fromFile(path);
            loadMs.push_back(secondsSince(t0) * 1e3);
        }
        const tessera::Tokenizer& tok = *loaded;  // fresh: its word cache is cold for the first run

        const std::string text = makeEnglishText(static_cast<std::size_t>(megabytes * 1e6));
        const double mb = static_cast<double>(text.size()) / 1e6;

        std::vector<double> encodeRuns;
        std::vector<std::int32_t> ids;
        for (int r = 0; r < kRepeats; ++r) {
            const auto t0 = Clock::now();
            ids = tok.encode(text);
            encodeRuns.push_back(mb / secondsSince(t0));
        }

        // Prompt-sized calls (about 1 KB each), the way the processor encodes conversations.
        std::vector<std::string_view> chunks;
        for (std::size_t at = 0; at < text.size();) {
            std::size_t end = std::min(text.size(), at + 1024);
            while (end < text.size() && text[end] != ' ')
                ++end;
            chunks.emplace_back(text.data() + at, end - at);
            at = end;
        }
        std::vector<double> chunkRuns;
        std::vector<std::int32_t> scratch;
        for (int r = 0; r < kRepeats; ++r) {
            const auto t0 = Clock::now();
            for (std::string_view c : chunks) {
                scratch.clear();
                tok.encodeAppend(c, scratch);
            }
            chunkRuns.push_back(mb / secondsSince(t0));
        }

        std::vector<double> decodeRuns;
        std::string decoded;
        for (int r = 0; r < kRepeats; ++r) {
            const auto t0 = Clock::now();
            decoded = tok.decode(ids);
            decodeRuns.push_back(mb / secondsSince(t0));
        }
        if (decoded != text) {
            std::fprintf(stderr, "decode(encode(text)) != text\n");
            return 1;
        }

        std::vector<double> streamRuns;
        for (int r = 0; r < kRepeats; ++r) {
            tessera::StreamingDetokenizer stream(tok);
            std::size_t bytes = 0;
            const auto t0 = Clock::now();
            for (std::int32_t id : ids)
                bytes += stream.push(id).size();
            bytes += stream.flush().size();
            streamRuns.push_back(static_cast<double>(ids.size()) / secondsSince(t0) / 1e6);
            if (bytes != text.size())
                return 1;
        }

        std::printf("{\n");
        std::printf("  \"tokenizer\": \"%s\",\n", path.string().c_str());
        std::printf("  \"load_ms_median\": %.1f,\n", median(loadMs));
        std::printf("  \"text_mb\": %.3f,\n  \"tokens\": %zu,\n  \"bytes_per_token\": %.2f,\n", mb, ids.size(),
                    static_cast<double>(text.size()) / static_cast<double>(ids.size()));
        std::printf("  \"encode_mb_per_s_median\": %.2f,\n  \"encode_mb_per_s_runs\": %s,\n", median(encodeRuns),
                    jsonArray(encodeRuns).c_str());
        std::printf("  \"encode_cold_cache_mb_per_s\": %.2f,\n", encodeRuns.front());
        std::printf("  \"encode_1kb_chunks_mb_per_s_median\": %.2f,\n", median(chunkRuns));
        std::printf("  \"decode_mb_per_s_median\": %.2f,\n  \"decode_mb_per_s_runs\": %s,\n", median(decodeRuns),
                    jsonArray(decodeRuns).c_str());
        std::printf("  \"stream_detokenize_mtokens_per_s_median\": %.2f\n}\n", median(streamRuns));
    } catch (const tessera::Error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
