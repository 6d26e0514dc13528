#pragma once
// Grounding answers: "<|ref|>label<|/ref|><|det|>[[x1,y1,x2,y2],...]<|/det|>" with coordinates
// normalised to 0..999 of the image's width and height. Parsed without eval: a strict grammar,
// malformed boxes rejected, coordinates clamped, several boxes per label, and text that is still
// streaming in (an unfinished tag is simply not complete yet).
#include <array>
#include <string>
#include <string_view>
#include <vector>

namespace tessera {

struct GroundingBox {
    std::string label;
    int image = 0;                 // which image of the conversation the box belongs to
    std::array<int, 4> box{};      // x1, y1, x2, y2 in 0..999
    std::size_t refIndex = 0;      // index into GroundedText::refs
};

struct GroundedRef {
    std::string label;
    std::size_t textBegin = 0;     // the label's span in GroundedText::text
    std::size_t textEnd = 0;
    std::vector<std::size_t> boxes;  // indices into GroundedText::boxes
};

struct GroundedText {
    std::string text;              // the answer with the tags removed (labels kept as text)
    std::vector<GroundedRef> refs;
    std::vector<GroundingBox> boxes;
};

// Parses a whole (or partial) answer. `image` is the image the boxes refer to: the last image of
// the conversation, as the model is trained to answer about it.
GroundedText parseGrounding(std::string_view answer, int image = 0);

// Pixel rectangle of a normalised box on an image of the given size (x = v / 999 · W).
std::array<double, 4> boxToPixels(const std::array<int, 4>& box, int width, int height);

// Feed streamed text; each call returns the boxes completed by this piece.
class GroundingStream {
public:
    explicit GroundingStream(int image = 0) : image_(image) {}
    std::vector<GroundingBox> push(std::string_view piece);
    const std::string& text() const { return text_; }

private:
    int image_;
    std::string text_;
    std::size_t emitted_ = 0;
};

}  // namespace tessera
