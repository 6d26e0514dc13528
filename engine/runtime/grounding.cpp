#include "runtime/grounding.h"

#include <algorithm>
#include <cctype>
#include <optional>  // BoxListParser results

namespace tessera {

namespace {

constexpr std::string_view kRefOpen = "<|ref|>";
constexpr std::string_view kRefClose = "<|/ref|>";
constexpr std::string_view kDetOpen = "<|det|>";
constexpr std::string_view kDetClose = "<|/det|>";
constexpr std::string_view kGrounding = "<|grounding|>";

// Strict box-list grammar: '[' box (',' box)* ']' with box = '[' int ',' int ',' int ',' int ']'
// and optional spaces. Numbers are plain decimal integers (an optional '-' is accepted and
// clamped); anything else rejects the whole list.
class BoxListParser {
public:
    explicit BoxListParser(std::string_view s) : s_(s) {}

    std::optional<std::vector<std::array<int, 4>>> parse()
    {
        std::vector<std::array<int, 4>> boxes;
        if (!eat('['))
            return std::nullopt;
        do {
            std::array<int, 4> b{};
            if (!eat('['))
                return std::nullopt;
            for (int i = 0; i < 4; ++i) {
                auto v = number();
                if (!v || (i < 3 && !eat(',')))
                    return std::nullopt;
                b[i] = *v;
            }
            if (!eat(']'))
                return std::nullopt;
            if (b[2] < b[0])
                std::swap(b[0], b[2]);
            if (b[3] < b[1])
                std::swap(b[1], b[3]);
            boxes.push_back(b);
        } while (eat(','));
        if (!eat(']'))
            return std::nullopt;
        skipSpace();
        if (pos_ != s_.size() || boxes.empty())
            return std::nullopt;
        return boxes;
    }

private:
    void skipSpace()
    {
        while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t'))
            ++pos_;
    }
    bool eat(char c)
    {
        skipSpace();
        if (pos_ < s_.size() && s_[pos_] == c) {
            ++pos_;
            return true;
        }
        return false;
    }
    std::optional<int> number()
    {
        skipSpace();
        bool negative = false;
        if (pos_ < s_.size() && s_[pos_] == '-') {
            negative = true;
            ++pos_;
        }
        const std::size_t start = pos_;
        long value = 0;
        while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) {
            if (pos_ - start >= 9)
                return std::nullopt;  // absurdly long numbers are malformed, not clamped
            value = value * 10 + (s_[pos_] - '0');
            ++pos_;
        }
        if (pos_ == start)
            return std::nullopt;
        if (negative)
            value = -value;
        return static_cast<int>(std::clamp(value, 0L, 999L));
    }

    std::string_view s_;
    std::size_t pos_ = 0;
};

}  // namespace

GroundedText parseGrounding(std::string_view answer, int image)
{
    GroundedText out;
    std::size_t pos = 0;
    constexpr std::size_t kNone = static_cast<std::size_t>(-1);
    std::size_t lastRef = kNone;  // a det right after a ref belongs to it
    while (pos < answer.size()) {
        const std::size_t ref = answer.find(kRefOpen, pos);
        const std::size_t det = answer.find(kDetOpen, pos);
        const std::size_t grounding = answer.find(kGrounding, pos);
        const std::size_t next = std::min({ref, det, grounding});
        // Plain text up to the next tag (or the end).
        const std::string_view plain = answer.substr(pos, next == std::string_view::npos ? std::string_view::npos : next - pos);
        if (!plain.empty()) {
            out.text += plain;
            if (plain.find_first_not_of(" \n\t") != std::string_view::npos)
                lastRef = kNone;
        }
        if (next == std::string_view::npos)
            break;
        if (next == grounding) {
            pos = next + kGrounding.size();
            continue;
        }
        if (next == ref) {
            const std::size_t close = answer.find(kRefClose, ref + kRefOpen.size());
            if (close == std::string_view::npos)
                break;  // still streaming: the label is not complete yet
            GroundedRef r;
            r.label = std::string(answer.substr(ref + kRefOpen.size(), close - ref - kRefOpen.size()));
            r.textBegin = out.text.size();
            out.text += r.label;
            r.textEnd = out.text.size();
            out.refs.push_back(std::move(r));
            lastRef = out.refs.size() - 1;
            pos = close + kRefClose.size();
            continue;
        }
        // A detection list.
        const std::size_t close = answer.find(kDetClose, det + kDetOpen.size());
        if (close == std::string_view::npos)
            break;
        const auto list = BoxListParser(answer.substr(det + kDetOpen.size(), close - det - kDetOpen.size())).parse();
        if (list) {
            if (lastRef == kNone) {  // boxes without a label still get a (empty-labelled) ref to link to
                GroundedRef r;
                r.textBegin = r.textEnd = out.text.size();
                out.refs.push_back(std::move(r));
                lastRef = out.refs.size() - 1;
            }
            for (const auto& b : *list) {
                out.refs[lastRef].boxes.push_back(out.boxes.size());
                out.boxes.push_back({out.refs[lastRef].label, image, b, lastRef});
            }
        }
        lastRef = kNone;
        pos = close + kDetClose.size();
    }
    return out;
}

std::array<double, 4> boxToPixels(const std::array<int, 4>& box, int width, int height)
{
    return {box[0] / 999.0 * width, box[1] / 999.0 * height, box[2] / 999.0 * width, box[3] / 999.0 * height};
}

std::vector<GroundingBox> GroundingStream::push(std::string_view piece)
{
    text_ += piece;
    auto parsed = parseGrounding(text_, image_);
    std::vector<GroundingBox> fresh;
    for (std::size_t i = emitted_; i < parsed.boxes.size(); ++i)
        fresh.push_back(std::move(parsed.boxes[i]));
    emitted_ = std::max(emitted_, parsed.boxes.size());
    return fresh;
}

}  // namespace tessera
