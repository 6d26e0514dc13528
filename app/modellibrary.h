#pragma once
// The model folders Tessera knows about: every checkpoint folder under the data directory's
// models/ folder, plus the last one loaded. One row per folder with what inspectModelFolder says.
#include "modelinspector.h"

#include <QAbstractListModel>
#include <QtQml/qqmlregistration.h>

namespace tessera::app {

class ModelLibrary : public QAbstractListModel {
    Q_OBJECT
    QML_ELEMENT
    QML_UNCREATABLE("ModelLibrary belongs to Models")
    Q_PROPERTY(int count READ rowCount NOTIFY countChanged)
    Q_PROPERTY(QString modelsDir READ modelsDir CONSTANT)

public:
    enum Role {
        FolderRole = Qt::UserRole + 1,  // absolute path
        NameRole,                       // the folder's name
        VariantRole,                    // "deepseek-vl2-tiny" ...
        SizeRole,                       // weights, formatted
        ValidRole,                      // a loadable checkpoint folder
        ProblemRole,                    // why not, when not
        FitMessageRole,                 // whether it fits the GPU / memory
    };
    Q_ENUM(Role)

    ModelLibrary(QString modelsDir, QObject* parent = nullptr);

    int rowCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role) const override;
    QHash<int, QByteArray> roleNames() const override;

    QString modelsDir() const { return modelsDir_; }
    // Rescans the models folder; `extra` folders (the last model) are listed too.
    void rescan(const QStringList& extra, const GpuSnapshot& gpus);

signals:
    void countChanged();

private:
    QString modelsDir_;
    QList<ModelFolderReport> rows_;
};

}  // namespace tessera::app
