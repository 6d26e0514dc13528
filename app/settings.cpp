#include "settings.h"

#include "runtime/session.h"

#include <QRandomGenerator>

#include <algorithm>
#include <cmath>

namespace tessera::app {

Settings::Settings(const QString& file, QObject* parent)
    : QObject(parent), store_(std::make_unique<QSettings>(file, QSettings::IniFormat))
{
}

Settings::~Settings() = default;

double Settings::temperature() const { return store_->value("sampling/temperature", kDefaultTemperature).toDouble(); }
double Settings::topP() const { return store_->value("sampling/topP", kDefaultTopP).toDouble(); }
int Settings::topK() const { return store_->value("sampling/topK", kDefaultTopK).toInt(); }
double Settings::repetitionPenalty() const { return store_->value("sampling/repetitionPenalty", kDefaultRepetitionPenalty).toDouble(); }
int Settings::maxNewTokens() const { return store_->value("sampling/maxNewTokens", kDefaultMaxNewTokens).toInt(); }
QString Settings::systemPrompt() const { return store_->value("chat/systemPrompt").toString(); }
QString Settings::backend() const { return store_->value("model/backend", QStringLiteral("auto")).toString(); }
QString Settings::theme() const { return store_->value("appearance/theme", QStringLiteral("system")).toString(); }
QString Settings::lastModel() const { return store_->value("model/last").toString(); }
bool Settings::showBoxes() const { return store_->value("grounding/showBoxes", true).toBool(); }

bool Settings::samplingIsDefault() const
{
    auto same = [](double a, double b) { return std::abs(a - b) < 1e-9; };
    return same(temperature(), kDefaultTemperature) && same(topP(), kDefaultTopP) && topK() == kDefaultTopK &&
           same(repetitionPenalty(), kDefaultRepetitionPenalty) && maxNewTokens() == kDefaultMaxNewTokens;
}

void Settings::write(const char* key, const QVariant& value)
{
    if (store_->value(key) == value && store_->contains(key))
        return;
    store_->setValue(key, value);
    store_->sync();
    emit changed();
}

void Settings::setTemperature(double v) { write("sampling/temperature", std::clamp(v, 0.0, 2.0)); }
void Settings::setTopP(double v) { write("sampling/topP", std::clamp(v, 0.0, 1.0)); }
void Settings::setTopK(int v) { write("sampling/topK", std::clamp(v, 0, 1000)); }
void Settings::setRepetitionPenalty(double v) { write("sampling/repetitionPenalty", std::clamp(v, 1.0, 2.0)); }
void Settings::setMaxNewTokens(int v) { write("sampling/maxNewTokens", std::clamp(v, 1, 4096)); }
void Settings::setSystemPrompt(const QString& v) { write("chat/systemPrompt", v); }

void Settings::setBackend(const QString& v)
{
    if (v == QLatin1String("auto") || v == QLatin1String("cuda") || v == QLatin1String("cpu"))
        write("model/backend", v);
}

void Settings::setTheme(const QString& v)
{
    if (v == QLatin1String("system") || v == QLatin1String("light") || v == QLatin1String("dark"))
        write("appearance/theme", v);
}

void Settings::setLastModel(const QString& v) { write("model/last", v); }
void Settings::setShowBoxes(bool v) { write("grounding/showBoxes", v); }

void Settings::resetSampling()
{
    for (const char* key : {"sampling/temperature", "sampling/topP", "sampling/topK", "sampling/repetitionPenalty",
                            "sampling/maxNewTokens"})
        store_->remove(key);
    store_->sync();
    emit changed();
}

GenerationOptions Settings::generationOptions() const
{
    GenerationOptions o;
    o.sampling.temperature = static_cast<float>(temperature());
    o.sampling.topP = static_cast<float>(topP());
    o.sampling.topK = topK();
    o.sampling.repetitionPenalty = static_cast<float>(repetitionPenalty());
    o.maxNewTokens = maxNewTokens();
    // A fresh draw each time, so Regenerate gives another answer (temperature 0 stays greedy).
    o.sampling.seed = QRandomGenerator::global()->generate64();
    // Like the upstream demo: when the history outgrows the context, the oldest turns go first
    // (the answer says so), instead of refusing to answer.
    o.dropOldestTurns = true;
    return o;
}

}  // namespace tessera::app
