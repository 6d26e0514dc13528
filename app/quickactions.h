#pragma once
// The prompts behind the composer's quick actions, in the forms DeepSeek-VL2 was trained on:
// <|ref|>phrase<|/ref|> to locate, <|grounding|> for answers with boxes.
#include <QString>
#include <QStringList>

namespace tessera::app {

// "locate" (needs `argument`: what to find), "describe", "ocr", "table", "chart".
// Empty for an unknown action or a locate without a phrase.
QString quickActionPrompt(const QString& action, const QString& argument = {});
QStringList quickActionNames();

}  // namespace tessera::app
