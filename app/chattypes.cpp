#include "chattypes.h"

#include <QJsonDocument>
#include <QJsonObject>

namespace tessera::app {

QString roleName(MessageRole role) { return role == MessageRole::User ? QStringLiteral("user") : QStringLiteral("assistant"); }

MessageRole roleFromName(const QString& name) { return name == QLatin1String("assistant") ? MessageRole::Assistant : MessageRole::User; }

QString stateName(MessageState state)
{
    switch (state) {
    case MessageState::Complete: return QStringLiteral("complete");
    case MessageState::Streaming: return QStringLiteral("streaming");
    case MessageState::Stopped: return QStringLiteral("stopped");
    case MessageState::Failed: return QStringLiteral("failed");
    case MessageState::Interrupted: return QStringLiteral("interrupted");
    }
    return QStringLiteral("complete");
}

MessageState stateFromName(const QString& name)
{
    if (name == QLatin1String("streaming"))
        return MessageState::Streaming;
    if (name == QLatin1String("stopped"))
        return MessageState::Stopped;
    if (name == QLatin1String("failed"))
        return MessageState::Failed;
    if (name == QLatin1String("interrupted"))
        return MessageState::Interrupted;
    return MessageState::Complete;
}

QString AnswerStats::toJson() const
{
    QJsonObject o{{"ttft", ttftSeconds},
                  {"tps", tokensPerSecond},
                  {"outputTokens", outputTokens},
                  {"promptTokens", promptTokens},
                  {"reused", reusedPositions},
                  {"dropped", droppedTurns},
                  {"stop", stopReason}};
    return QString::fromUtf8(QJsonDocument(o).toJson(QJsonDocument::Compact));
}

AnswerStats AnswerStats::fromJson(const QString& json)
{
    const QJsonObject o = QJsonDocument::fromJson(json.toUtf8()).object();
    AnswerStats s;
    s.ttftSeconds = o.value("ttft").toDouble();
    s.tokensPerSecond = o.value("tps").toDouble();
    s.outputTokens = o.value("outputTokens").toInt();
    s.promptTokens = o.value("promptTokens").toInt();
    s.reusedPositions = o.value("reused").toInt();
    s.droppedTurns = o.value("dropped").toInt();
    s.stopReason = o.value("stop").toString();
    return s;
}

}  // namespace tessera::app
