#include "quickactions.h"

namespace tessera::app {

QStringList quickActionNames()
{
    return {QStringLiteral("locate"), QStringLiteral("describe"), QStringLiteral("ocr"), QStringLiteral("table"),
            QStringLiteral("chart")};
}

QString quickActionPrompt(const QString& action, const QString& argument)
{
    if (action == QLatin1String("locate")) {
        QString phrase = argument.simplified();
        // The tags are the model's; a phrase must not smuggle its own.
        phrase.remove(QStringLiteral("<|")).remove(QStringLiteral("|>"));
        return phrase.isEmpty() ? QString() : QStringLiteral("<|ref|>%1<|/ref|>.").arg(phrase);
    }
    if (action == QLatin1String("describe"))
        return QStringLiteral("<|grounding|>Describe the image in detail.");
    if (action == QLatin1String("ocr"))
        return QStringLiteral("Extract all the text in the image, keeping its reading order and line breaks.");
    if (action == QLatin1String("table"))
        return QStringLiteral("Convert the table in the image to Markdown.");
    if (action == QLatin1String("chart"))
        return QStringLiteral("Explain this chart: what it shows, its axes and units, and the main trends and outliers.");
    return {};
}

}  // namespace tessera::app
