#include "conversationstore.h"

#include "core/error.h"
#include "image/image.h"

#include <QCoreApplication>
#include <QCryptographicHash>
#include <QDir>
#include <QDirIterator>
#include <QFile>
#include <QFileInfo>
#include <QSqlDatabase>
#include <QSqlError>
#include <QSqlQuery>
#include <QSet>
#include <QUuid>
#include <QVariant>

#include <fcntl.h>
#include <unistd.h>

namespace tessera::app {

namespace {

constexpr qint64 kMaxImageBytes = 256ll << 20;

// SQLite stores a null QString as NULL; the columns are NOT NULL text.
QString text(const QString& s) { return s.isNull() ? QString(QLatin1String("")) : s; }

qint64 nowMs() { return QDateTime::currentMSecsSinceEpoch(); }

QDateTime fromMs(qint64 ms) { return QDateTime::fromMSecsSinceEpoch(ms); }

[[noreturn]] void fail(const QString& what, const QSqlError& error)
{
    throw StoreError(QStringLiteral("%1: %2").arg(what, error.text()));
}

void exec(QSqlQuery& q, const QString& what)
{
    if (!q.exec())
        fail(what, q.lastError());
}

QSqlQuery prepare(const QSqlDatabase& db, const QString& sql)
{
    QSqlQuery q(db);
    if (!q.prepare(sql))
        fail(QStringLiteral("preparing \"%1\"").arg(sql.left(60)), q.lastError());
    return q;
}

void execSql(const QSqlDatabase& db, const QString& sql)
{
    QSqlQuery q(db);
    if (!q.exec(sql))
        fail(QStringLiteral("running \"%1\"").arg(sql.left(60)), q.lastError());
}

// Makes the rename (or the new file) durable: fsync the folder entry.
void syncDirectory(const QString& dir)
{
    const int fd = ::open(QFile::encodeName(dir).constData(), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
}

// A transaction that rolls back unless committed (exceptions included).
class Transaction {
public:
    explicit Transaction(QSqlDatabase db) : db_(std::move(db))
    {
        if (!db_.transaction())
            fail(QStringLiteral("starting a transaction"), db_.lastError());
    }
    ~Transaction()
    {
        if (!done_)
            db_.rollback();
    }
    void commit()
    {
        if (!db_.commit())
            fail(QStringLiteral("saving to the conversations database"), db_.lastError());
        done_ = true;
    }

private:
    QSqlDatabase db_;
    bool done_ = false;
};

QString extensionFor(ImageFormat format)
{
    switch (format) {
    case ImageFormat::Jpeg: return QStringLiteral("jpg");
    case ImageFormat::Png: return QStringLiteral("png");
    case ImageFormat::Gif: return QStringLiteral("gif");
    case ImageFormat::Bmp: return QStringLiteral("bmp");
    case ImageFormat::WebP: return QStringLiteral("webp");
    case ImageFormat::Unknown: break;
    }
    return QStringLiteral("img");
}

// Each migration takes the schema from version i to i + 1.
const char* const kMigrations[] = {
    R"sql(
CREATE TABLE conversations (
  id INTEGER PRIMARY KEY,
  title TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL);
CREATE TABLE messages (
  id INTEGER PRIMARY KEY,
  conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
  content TEXT NOT NULL,
  state TEXT NOT NULL,
  error TEXT NOT NULL DEFAULT '',
  stats TEXT NOT NULL DEFAULT '{}',
  created_at INTEGER NOT NULL,
  UNIQUE (conversation_id, position));
CREATE TABLE images (
  id INTEGER PRIMARY KEY,
  message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  file TEXT NOT NULL,
  original_name TEXT NOT NULL,
  width INTEGER NOT NULL,
  height INTEGER NOT NULL);
CREATE INDEX images_by_message ON images(message_id, position);
CREATE INDEX images_by_file ON images(file);
CREATE INDEX conversations_by_update ON conversations(updated_at);
)sql",
};
static_assert(std::size(kMigrations) == ConversationStore::kSchemaVersion);

}  // namespace

ConversationStore::ConversationStore(const QString& dataDir)
    : connection_(QStringLiteral("tessera-store-") + QUuid::createUuid().toString(QUuid::Id128)),
      dataDir_(QDir(dataDir).absolutePath())
{
    if (!QDir().mkpath(dataDir_) || !QDir().mkpath(imagesDir()))
        throw StoreError(QStringLiteral("cannot create %1; check the folder's permissions").arg(imagesDir()));
    QSqlDatabase db = QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), connection_);
    if (!db.isValid())
        throw StoreError(QStringLiteral("the Qt SQLite driver is missing (install libqt6sql6-sqlite)"));
    db.setDatabaseName(databaseFile());
    db.setConnectOptions(QStringLiteral("QSQLITE_BUSY_TIMEOUT=5000"));
    if (!db.open())
        fail(QStringLiteral("opening %1").arg(databaseFile()), db.lastError());
    execSql(db, QStringLiteral("PRAGMA journal_mode=WAL"));
    execSql(db, QStringLiteral("PRAGMA synchronous=FULL"));
    execSql(db, QStringLiteral("PRAGMA foreign_keys=ON"));
    migrate();
    // Answers that were streaming when the app ended: keep what was saved, say what happened.
    QSqlQuery q = prepare(db, QStringLiteral("UPDATE messages SET state = 'interrupted' WHERE state = 'streaming'"));
    exec(q, QStringLiteral("recovering interrupted answers"));
    recovered_ = q.numRowsAffected();
    collectGarbage();
}

ConversationStore::~ConversationStore()
{
    {
        QSqlDatabase db = QSqlDatabase::database(connection_, false);
        if (db.isOpen())
            db.close();
    }
    QSqlDatabase::removeDatabase(connection_);
}

QString ConversationStore::databaseFile() const { return dataDir_ + QStringLiteral("/conversations.sqlite"); }
QString ConversationStore::imagesDir() const { return dataDir_ + QStringLiteral("/images"); }
QString ConversationStore::absoluteImagePath(const QString& relative) const { return imagesDir() + QLatin1Char('/') + relative; }

int ConversationStore::schemaVersion() const
{
    QSqlQuery q(QSqlDatabase::database(connection_));
    if (!q.exec(QStringLiteral("PRAGMA user_version")) || !q.next())
        fail(QStringLiteral("reading the schema version"), q.lastError());
    return q.value(0).toInt();
}

void ConversationStore::migrate()
{
    QSqlDatabase db = QSqlDatabase::database(connection_);
    const int version = schemaVersion();
    if (version > kSchemaVersion)
        throw StoreError(QStringLiteral("%1 was written by a newer Tessera (schema %2, this one knows %3); "
                                        "update Tessera or start it with another --data-dir")
                             .arg(databaseFile())
                             .arg(version)
                             .arg(kSchemaVersion));
    for (int v = version; v < kSchemaVersion; ++v) {
        Transaction t(db);
        for (const QString& statement : QString::fromUtf8(kMigrations[v]).split(QLatin1Char(';'), Qt::SkipEmptyParts)) {
            if (!statement.trimmed().isEmpty())
                execSql(db, statement);
        }
        execSql(db, QStringLiteral("PRAGMA user_version = %1").arg(v + 1));
        t.commit();
    }
}

qint64 ConversationStore::createConversation(const QString& title)
{
    QSqlDatabase db = QSqlDatabase::database(connection_);
    QSqlQuery q = prepare(db, QStringLiteral("INSERT INTO conversations (title, created_at, updated_at) VALUES (?, ?, ?)"));
    const qint64 now = nowMs();
    q.addBindValue(tessera::app::text(title));
    q.addBindValue(now);
    q.addBindValue(now);
    exec(q, QStringLiteral("creating a conversation"));
    return q.lastInsertId().toLongLong();
}

void ConversationStore::renameConversation(qint64 id, const QString& title)
{
    QSqlQuery q = prepare(QSqlDatabase::database(connection_), QStringLiteral("UPDATE conversations SET title = ? WHERE id = ?"));
    q.addBindValue(title);
    q.addBindValue(id);
    exec(q, QStringLiteral("renaming a conversation"));
}

void ConversationStore::deleteConversation(qint64 id)
{
    QSqlDatabase db = QSqlDatabase::database(connection_);
    QStringList files;
    {
        Transaction t(db);
        QSqlQuery q = prepare(db, QStringLiteral("SELECT DISTINCT i.file FROM images i JOIN messages m ON m.id = i.message_id "
                                                 "WHERE m.conversation_id = ?"));
        q.addBindValue(id);
        exec(q, QStringLiteral("listing a conversation's images"));
        while (q.next())
            files << q.value(0).toString();
        QSqlQuery d = prepare(db, QStringLiteral("DELETE FROM conversations WHERE id = ?"));
        d.addBindValue(id);
        exec(d, QStringLiteral("deleting a conversation"));
        t.commit();
    }
    removeUnreferenced(files);
}

void ConversationStore::removeUnreferenced(const QStringList& files)
{
    QSqlDatabase db = QSqlDatabase::database(connection_);
    const QString prefix = imagesDir() + QLatin1Char('/');
    for (const QString& file : files) {
        const QString relative = file.startsWith(prefix) ? file.mid(prefix.size()) : file;
        QSqlQuery q = prepare(db, QStringLiteral("SELECT COUNT(*) FROM images WHERE file = ?"));
        q.addBindValue(relative);
        exec(q, QStringLiteral("checking an image's references"));
        if (q.next() && q.value(0).toInt() == 0)
            QFile::remove(absoluteImagePath(relative));
    }
}

std::optional<ConversationSummary> ConversationStore::conversation(qint64 id) const
{
    for (const auto& c : conversations()) {
        if (c.id == id)
            return c;
    }
    return std::nullopt;
}

QList<ConversationSummary> ConversationStore::conversations(const QString& search) const
{
    QSqlDatabase db = QSqlDatabase::database(connection_);
    QString sql = QStringLiteral(
        "SELECT c.id, c.title, c.created_at, c.updated_at,"
        " (SELECT substr(content, 1, 600) FROM messages m WHERE m.conversation_id = c.id ORDER BY position DESC LIMIT 1),"
        " (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id)"
        " FROM conversations c");
    QString pattern;
    if (!search.trimmed().isEmpty()) {
        pattern = search.trimmed();
        pattern.replace(QLatin1Char('\\'), QLatin1String("\\\\"));
        pattern.replace(QLatin1Char('%'), QLatin1String("\\%"));
        pattern.replace(QLatin1Char('_'), QLatin1String("\\_"));
        pattern = QLatin1Char('%') + pattern + QLatin1Char('%');
        sql += QStringLiteral(" WHERE c.title LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM messages m WHERE"
                              " m.conversation_id = c.id AND m.content LIKE ? ESCAPE '\\')");
    }
    sql += QStringLiteral(" ORDER BY c.updated_at DESC, c.id DESC");
    QSqlQuery q = prepare(db, sql);
    if (!pattern.isEmpty()) {
        q.addBindValue(pattern);
        q.addBindValue(pattern);
    }
    exec(q, QStringLiteral("listing conversations"));
    QList<ConversationSummary> out;
    while (q.next()) {
        ConversationSummary c;
        c.id = q.value(0).toLongLong();
        c.title = q.value(1).toString();
        c.created = fromMs(q.value(2).toLongLong());
        c.updated = fromMs(q.value(3).toLongLong());
        c.snippet = q.value(4).toString();
        c.messageCount = q.value(5).toInt();
        out << c;
    }
    return out;
}

QList<Message> ConversationStore::messages(qint64 conversationId) const
{
    QSqlDatabase db = QSqlDatabase::database(connection_);
    QSqlQuery q = prepare(db, QStringLiteral("SELECT id, position, role, content, state, error, stats, created_at FROM messages"
                                             " WHERE conversation_id = ? ORDER BY position"));
    q.addBindValue(conversationId);
    exec(q, QStringLiteral("reading messages"));
    QList<Message> out;
    while (q.next()) {
        Message m;
        m.id = q.value(0).toLongLong();
        m.conversationId = conversationId;
        m.position = q.value(1).toInt();
        m.role = roleFromName(q.value(2).toString());
        m.text = q.value(3).toString();
        m.state = stateFromName(q.value(4).toString());
        m.error = q.value(5).toString();
        m.stats = AnswerStats::fromJson(q.value(6).toString());
        m.created = fromMs(q.value(7).toLongLong());
        out << m;
    }
    QSqlQuery images = prepare(db, QStringLiteral("SELECT i.id, i.message_id, i.file, i.original_name, i.width, i.height FROM images i"
                                                  " JOIN messages m ON m.id = i.message_id WHERE m.conversation_id = ?"
                                                  " ORDER BY i.message_id, i.position"));
    images.addBindValue(conversationId);
    exec(images, QStringLiteral("reading message images"));
    while (images.next()) {
        const qint64 messageId = images.value(1).toLongLong();
        for (Message& m : out) {
            if (m.id == messageId) {
                m.images << StoredImage{images.value(0).toLongLong(), absoluteImagePath(images.value(2).toString()),
                                        images.value(3).toString(), images.value(4).toInt(), images.value(5).toInt()};
                break;
            }
        }
    }
    return out;
}

StoredImage ConversationStore::importImage(const QString& sourcePath) const
{
    QFile in(sourcePath);
    const QString name = QFileInfo(sourcePath).fileName();
    if (!in.open(QIODevice::ReadOnly))
        throw StoreError(QStringLiteral("cannot read %1: %2").arg(sourcePath, in.errorString()));
    if (in.size() > kMaxImageBytes)
        throw StoreError(QStringLiteral("%1 is %2 MB; Tessera takes images up to %3 MB").arg(name).arg(in.size() >> 20).arg(kMaxImageBytes >> 20));
    const QByteArray bytes = in.readAll();
    ImageInfo info;
    try {
        info = probeImageBytes({reinterpret_cast<const std::uint8_t*>(bytes.constData()), static_cast<std::size_t>(bytes.size())},
                               name.toStdString());
    } catch (const tessera::Error& e) {
        throw StoreError(QString::fromStdString(e.what()));
    }
    if (info.format == ImageFormat::Unknown)
        throw StoreError(QStringLiteral("%1 is not an image Tessera can read (JPEG, PNG, WebP, GIF or BMP)").arg(name));

    const QString hash = QString::fromLatin1(QCryptographicHash::hash(bytes, QCryptographicHash::Sha256).toHex());
    const QString relative = hash.left(2) + QLatin1Char('/') + hash + QLatin1Char('.') + extensionFor(info.format);
    const QString target = absoluteImagePath(relative);
    if (!QFileInfo::exists(target)) {
        const QString dir = QFileInfo(target).absolutePath();
        if (!QDir().mkpath(dir))
            throw StoreError(QStringLiteral("cannot create %1").arg(dir));
        const QString temporary = target + QStringLiteral(".tmp-") + QString::number(QCoreApplication::applicationPid());
        QFile out(temporary);
        if (!out.open(QIODevice::WriteOnly | QIODevice::Truncate) || out.write(bytes) != bytes.size() || !out.flush() ||
            ::fsync(out.handle()) != 0) {
            const QString why = out.errorString();
            out.close();
            QFile::remove(temporary);
            throw StoreError(QStringLiteral("cannot store a copy of %1 in %2: %3 (is the disk full?)").arg(name, dir, why));
        }
        out.close();
        if (::rename(QFile::encodeName(temporary).constData(), QFile::encodeName(target).constData()) != 0) {
            QFile::remove(temporary);
            throw StoreError(QStringLiteral("cannot store a copy of %1 in %2").arg(name, dir));
        }
        syncDirectory(dir);
    }
    StoredImage image;
    image.file = target;
    image.originalName = name;
    const bool quarterTurn = info.exifOrientation >= 5 && info.exifOrientation <= 8;
    image.width = quarterTurn ? info.height : info.width;
    image.height = quarterTurn ? info.width : info.height;
    return image;
}

void ConversationStore::touch(qint64 conversationId, qint64 now)
{
    QSqlQuery q = prepare(QSqlDatabase::database(connection_), QStringLiteral("UPDATE conversations SET updated_at = ? WHERE id = ?"));
    q.addBindValue(now);
    q.addBindValue(conversationId);
    exec(q, QStringLiteral("updating a conversation"));
}

Message ConversationStore::addMessage(qint64 conversationId, MessageRole role, const QString& text,
                                      const QList<StoredImage>& images, MessageState state)
{
    QSqlDatabase db = QSqlDatabase::database(connection_);
    Transaction t(db);
    QSqlQuery next = prepare(db, QStringLiteral("SELECT COALESCE(MAX(position) + 1, 0) FROM messages WHERE conversation_id = ?"));
    next.addBindValue(conversationId);
    exec(next, QStringLiteral("numbering a message"));
    next.next();
    Message m;
    m.conversationId = conversationId;
    m.position = next.value(0).toInt();
    m.role = role;
    m.text = text;
    m.state = state;
    const qint64 now = nowMs();
    m.created = fromMs(now);
    QSqlQuery q = prepare(db, QStringLiteral("INSERT INTO messages (conversation_id, position, role, content, state, created_at)"
                                             " VALUES (?, ?, ?, ?, ?, ?)"));
    q.addBindValue(conversationId);
    q.addBindValue(m.position);
    q.addBindValue(roleName(role));
    q.addBindValue(tessera::app::text(text));
    q.addBindValue(stateName(state));
    q.addBindValue(now);
    exec(q, QStringLiteral("saving a message"));
    m.id = q.lastInsertId().toLongLong();
    const QString prefix = imagesDir() + QLatin1Char('/');
    int position = 0;
    for (StoredImage image : images) {
        if (!image.file.startsWith(prefix) || !QFileInfo::exists(image.file))
            throw StoreError(QStringLiteral("%1 is not in the image store; import it first").arg(image.file));
        QSqlQuery qi = prepare(db, QStringLiteral("INSERT INTO images (message_id, position, file, original_name, width, height)"
                                                  " VALUES (?, ?, ?, ?, ?, ?)"));
        qi.addBindValue(m.id);
        qi.addBindValue(position++);
        qi.addBindValue(image.file.mid(prefix.size()));
        qi.addBindValue(tessera::app::text(image.originalName));
        qi.addBindValue(image.width);
        qi.addBindValue(image.height);
        exec(qi, QStringLiteral("saving a message image"));
        image.id = qi.lastInsertId().toLongLong();
        m.images << image;
    }
    touch(conversationId, now);
    t.commit();
    return m;
}

void ConversationStore::updateMessage(qint64 messageId, const QString& text, MessageState state, const QString& error,
                                      const AnswerStats& stats)
{
    QSqlQuery q = prepare(QSqlDatabase::database(connection_),
                          QStringLiteral("UPDATE messages SET content = ?, state = ?, error = ?, stats = ? WHERE id = ?"));
    q.addBindValue(tessera::app::text(text));
    q.addBindValue(stateName(state));
    q.addBindValue(tessera::app::text(error));
    q.addBindValue(stats.toJson());
    q.addBindValue(messageId);
    exec(q, QStringLiteral("saving an answer"));
}

void ConversationStore::deleteMessagesFrom(qint64 conversationId, int position)
{
    QSqlDatabase db = QSqlDatabase::database(connection_);
    Transaction t(db);
    QSqlQuery d = prepare(db, QStringLiteral("DELETE FROM messages WHERE conversation_id = ? AND position >= ?"));
    d.addBindValue(conversationId);
    d.addBindValue(position);
    exec(d, QStringLiteral("removing messages"));
    touch(conversationId, nowMs());
    t.commit();
    // Image files may be about to be referenced again (edit and resend); collectGarbage() runs at
    // the next open, or when the caller asks.
}

int ConversationStore::collectGarbage(int minAgeSeconds)
{
    const QDateTime cutoff = QDateTime::currentDateTime().addSecs(-minAgeSeconds);
    QSqlDatabase db = QSqlDatabase::database(connection_);
    QSet<QString> referenced;
    QSqlQuery q(db);
    if (!q.exec(QStringLiteral("SELECT DISTINCT file FROM images")))
        fail(QStringLiteral("listing stored images"), q.lastError());
    while (q.next())
        referenced.insert(q.value(0).toString());
    int removed = 0;
    const QString prefix = imagesDir() + QLatin1Char('/');
    QDirIterator it(imagesDir(), QDir::Files, QDirIterator::Subdirectories);
    while (it.hasNext()) {
        const QString path = it.next();
        const QString relative = path.mid(prefix.size());
        // Temporary files of a writer that was killed, and images no message refers to.
        if (!referenced.contains(relative) && it.fileInfo().lastModified() <= cutoff && QFile::remove(path))
            ++removed;
    }
    return removed;
}

}  // namespace tessera::app
