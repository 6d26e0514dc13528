#pragma once
// The user's persisted preferences: sampling (upstream demo defaults), system prompt, backend,
// theme, the last model. One INI file; every setter writes through so a crash loses nothing.
#include <QObject>
#include <QSettings>
#include <QtQml/qqmlregistration.h>

#include <memory>

class QQmlEngine;
class QJSEngine;

namespace tessera {
struct GenerationOptions;
}

namespace tessera::app {

class Settings : public QObject {
    Q_OBJECT
    QML_NAMED_ELEMENT(AppSettings)
    QML_SINGLETON
    Q_PROPERTY(double temperature READ temperature WRITE setTemperature NOTIFY changed)
    Q_PROPERTY(double topP READ topP WRITE setTopP NOTIFY changed)
    Q_PROPERTY(int topK READ topK WRITE setTopK NOTIFY changed)
    Q_PROPERTY(double repetitionPenalty READ repetitionPenalty WRITE setRepetitionPenalty NOTIFY changed)
    Q_PROPERTY(int maxNewTokens READ maxNewTokens WRITE setMaxNewTokens NOTIFY changed)
    Q_PROPERTY(QString systemPrompt READ systemPrompt WRITE setSystemPrompt NOTIFY changed)
    Q_PROPERTY(QString backend READ backend WRITE setBackend NOTIFY changed)       // auto | cuda | cpu
    Q_PROPERTY(QString theme READ theme WRITE setTheme NOTIFY changed)             // system | light | dark
    Q_PROPERTY(QString lastModel READ lastModel WRITE setLastModel NOTIFY changed)
    Q_PROPERTY(bool showBoxes READ showBoxes WRITE setShowBoxes NOTIFY changed)
    Q_PROPERTY(bool samplingIsDefault READ samplingIsDefault NOTIFY changed)

public:
    // Upstream DeepSeek-VL2 demo defaults.
    static constexpr double kDefaultTemperature = 0.1;
    static constexpr double kDefaultTopP = 0.9;
    static constexpr int kDefaultTopK = 0;
    static constexpr double kDefaultRepetitionPenalty = 1.1;
    static constexpr int kDefaultMaxNewTokens = 2048;

    explicit Settings(const QString& file, QObject* parent = nullptr);
    ~Settings() override;
    // The running app's instance (see AppContext).
    static Settings* create(QQmlEngine*, QJSEngine*);

    double temperature() const;
    double topP() const;
    int topK() const;
    double repetitionPenalty() const;
    int maxNewTokens() const;
    QString systemPrompt() const;
    QString backend() const;
    QString theme() const;
    QString lastModel() const;
    bool showBoxes() const;
    bool samplingIsDefault() const;

    void setTemperature(double v);
    void setTopP(double v);
    void setTopK(int v);
    void setRepetitionPenalty(double v);
    void setMaxNewTokens(int v);
    void setSystemPrompt(const QString& v);
    void setBackend(const QString& v);
    void setTheme(const QString& v);
    void setLastModel(const QString& v);
    void setShowBoxes(bool v);

    Q_INVOKABLE void resetSampling();

    // What the engine takes for one answer.
    GenerationOptions generationOptions() const;

signals:
    void changed();

private:
    void write(const char* key, const QVariant& value);
    std::unique_ptr<QSettings> store_;
};

}  // namespace tessera::app
