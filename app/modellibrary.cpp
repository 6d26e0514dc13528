#include "modellibrary.h"

#include <QDir>
#include <QFileInfo>

namespace tessera::app {

ModelLibrary::ModelLibrary(QString modelsDir, QObject* parent) : QAbstractListModel(parent), modelsDir_(std::move(modelsDir)) {}

int ModelLibrary::rowCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : static_cast<int>(rows_.size()); }

QVariant ModelLibrary::data(const QModelIndex& index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
        return {};
    const ModelFolderReport& r = rows_.at(index.row());
    switch (role) {
    case Qt::DisplayRole:
    case NameRole: return QFileInfo(r.folder).fileName();
    case FolderRole: return r.folder;
    case VariantRole: return r.variant;
    case SizeRole: return r.weightBytes ? formatBytes(r.weightBytes) : QString();
    case ValidRole: return r.valid;
    case ProblemRole: return r.problem;
    case FitMessageRole: return r.fitMessage;
    default: return {};
    }
}

QHash<int, QByteArray> ModelLibrary::roleNames() const
{
    return {{FolderRole, "folder"}, {NameRole, "name"},       {VariantRole, "variant"},      {SizeRole, "size"},
            {ValidRole, "valid"},   {ProblemRole, "problem"}, {FitMessageRole, "fitMessage"}};
}

void ModelLibrary::rescan(const QStringList& extra, const GpuSnapshot& gpus)
{
    QStringList folders;
    const QDir dir(modelsDir_);
    for (const QString& sub : dir.entryList(QDir::Dirs | QDir::NoDotAndDotDot, QDir::Name)) {
        if (QFileInfo::exists(dir.filePath(sub + QStringLiteral("/config.json"))))
            folders << QDir::cleanPath(dir.filePath(sub));
    }
    for (const QString& f : extra) {
        const QString clean = QDir::cleanPath(f);
        if (!f.isEmpty() && !folders.contains(clean) && QFileInfo(clean).isDir())
            folders << clean;
    }
    const quint64 memory = systemMemoryBytes();
    QList<ModelFolderReport> rows;
    for (const QString& f : folders)
        rows << inspectModelFolder(f, gpus, memory);
    beginResetModel();
    const bool countChanges = rows.size() != rows_.size();
    rows_ = std::move(rows);
    endResetModel();
    if (countChanges)
        emit countChanged();
}

}  // namespace tessera::app
