#include "costestimate.h"

#include "processor/processor.h"

namespace tessera::app {

bool dynamicTilingFor(int imagesInConversation) { return imagesInConversation <= 2; }

ImageCost imageCost(const tessera::Processor& processor, int width, int height, int imagesInConversation)
{
    ImageCost c;
    if (width <= 0 || height <= 0)
        return c;
    const auto grid = processor.tileGrid(width, height, dynamicTilingFor(imagesInConversation));
    c.widthTiles = grid[0];
    c.heightTiles = grid[1];
    c.tokens = processor.imageTokenCount(grid[0], grid[1]);
    return c;
}

int userTurnTextTokens(const tessera::Processor& processor, const QString& text)
{
    const std::string turn = "<|User|>: " + text.trimmed().toStdString() + "\n\n<|Assistant|>:";
    return static_cast<int>(processor.tokenizer().encode(turn).size());
}

int historyTokens(const tessera::Processor& processor, const QList<Message>& messages, const QString& systemPrompt,
                  int imagesInConversation)
{
    int tokens = 1;  // bos
    if (!systemPrompt.trimmed().isEmpty())
        tokens += static_cast<int>(processor.tokenizer().encode(systemPrompt.trimmed().toStdString()).size());
    for (const Message& m : messages) {
        if (m.role == MessageRole::User) {
            tokens += userTurnTextTokens(processor, m.text);
            for (const StoredImage& img : m.images)
                tokens += imageCost(processor, img.width, img.height, imagesInConversation).tokens;
        } else {
            tokens += static_cast<int>(processor.tokenizer().encode(m.text.trimmed().toStdString()).size()) + 1;  // + eos
        }
    }
    return tokens;
}

}  // namespace tessera::app
