// Decode and tiling time per golden image (medians of repeats), printed as JSON.
// Usage: tessera-bench-image [golden_dir] [repeats]   (default ../shared/golden beside the source, 9)
#include "core/process_setup.h"
#include "core/error.h"
#include "image/image.h"
#include "image/tiling.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace {

double medianOf(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

template <class Fn>
double millis(Fn&& fn)
{
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv)
{
    tessera::preferPassiveThreadWaits(argv);
    const std::filesystem::path golden =
        argc > 1 ? std::filesystem::path(argv[1]) : std::filesystem::path(TESSERA_SOURCE_DIR) / ".." / "shared" / "golden";
    const int repeats = argc > 2 ? std::max(1, std::atoi(argv[2])) : 9;
    const std::vector<tessera::Resolution> candidates = {
        {384, 384},  {384, 768},   {768, 384},  {384, 1152}, {1152, 384}, {384, 1536}, {1536, 384}, {768, 768},
        {384, 1920}, {1920, 384},  {384, 2304}, {2304, 384}, {768, 1152}, {1152, 768}, {384, 2688}, {2688, 384},
        {384, 3072}, {3072, 384},  {768, 1536}, {1536, 768}, {384, 3456}, {3456, 384}, {1152, 1152}};
    const char* files[] = {"visual_grounding_1.jpeg", "multi_image_1.jpeg", "multi_image_2.jpeg", "multi_image_3.jpeg",
                           "vqa_1.jpg", "synthetic_2000x100.png", "synthetic_10x10.png", "synthetic_rgba_600x360.png"};
    try {
        std::printf("{\n  \"repeats\": %d,\n  \"hardware_threads\": %u,\n  \"images\": [\n", repeats,
                    std::thread::hardware_concurrency());
        bool first = true;
        for (const char* f : files) {
            const auto path = golden / "images" / f;
            if (!std::filesystem::exists(path)) {
                std::fprintf(stderr, "skipping %s: not found (pass the golden folder as the first argument)\n",
                             path.string().c_str());
                continue;
            }
            std::vector<double> decode, tiling, single;
            tessera::RgbImage img;
            tessera::ImageTiles tiles;
            for (int r = 0; r < repeats; ++r) {
                decode.push_back(millis([&] { img = tessera::decodeImageFile(path); }));
                tiling.push_back(millis([&] { tiles = tessera::makeTiles(img, candidates, true); }));
                single.push_back(millis([&] { (void)tessera::makeTiles(img, candidates, false); }));
            }
            std::printf("%s    {\"file\": \"%s\", \"width\": %d, \"height\": %d, \"tiles\": %d, \"decode_ms\": %.3f, "
                        "\"tiling_ms\": %.3f, \"single_view_ms\": %.3f}",
                        first ? "" : ",\n", f, img.width, img.height, tiles.count(), medianOf(decode),
                        medianOf(tiling), medianOf(single));
            first = false;
        }
        std::printf("\n  ]\n}\n");
    } catch (const tessera::Error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
