#pragma once
// What a message will cost before it is sent: the tile grid each image gets and the tokens it
// takes from the context. Dynamic tiling applies only while the whole conversation holds at most
// two images (the processor's rule); from the third image on every image is one 384x384 view.
#include "chattypes.h"
#include "inferenceworker.h"

#include <QString>

namespace tessera::app {

struct ImageCost {
    int widthTiles = 1;
    int heightTiles = 1;
    int tokens = 0;
};

bool dynamicTilingFor(int imagesInConversation);
ImageCost imageCost(const tessera::Processor& processor, int width, int height, int imagesInConversation);
// Tokens the templated history takes (bos, turns, images, answers), with the tiling the
// conversation will have once it holds `imagesInConversation` images.
int historyTokens(const tessera::Processor& processor, const QList<Message>& messages, const QString& systemPrompt,
                  int imagesInConversation);
// Tokens of one new user turn's text (template included), without its images.
int userTurnTextTokens(const tessera::Processor& processor, const QString& text);

}  // namespace tessera::app
