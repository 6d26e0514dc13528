// The conversations database: schema and migrations, CRUD, search, the image store (copy,
// dedupe, delete), recovery of interrupted answers, and durability when the writer is killed.
#include "conversationstore.h"

#include <QCoreApplication>
#include <QCryptographicHash>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QImage>
#include <QImageReader>
#include <QDirIterator>
#include <QThread>
#include <QProcess>
#include <QRandomGenerator>
#include <QSqlDatabase>
#include <QSqlQuery>
#include <QTemporaryDir>
#include <QtTest>

#include <csignal>
#include <cstdio>

using namespace tessera::app;

namespace {

QString testImage(const char* name) { return QStringLiteral(TESSERA_TEST_DATA_DIR "/images/") + QString::fromLatin1(name); }

int countFiles(const QString& dir)
{
    int n = 0;
    QDirIterator it(dir, QDir::Files, QDirIterator::Subdirectories);
    while (it.hasNext()) {
        it.next();
        ++n;
    }
    return n;
}

// The child process of reopenAfterKill: writes conversations as fast as it can, printing each one
// once its transaction has committed, until it is killed.
int runWriter(const QString& dir)
{
    ConversationStore store(dir);
    const QStringList images = {testImage("jpeg_420.jpg"), testImage("pad_40x16.png"), testImage("orient6.jpg")};
    for (int i = 0;; ++i) {
        const qint64 c = store.createConversation(QStringLiteral("conversation %1").arg(i));
        const StoredImage img = store.importImage(images[i % images.size()]);
        store.addMessage(c, MessageRole::User, QStringLiteral("question %1").arg(i), {img});
        const Message a = store.addMessage(c, MessageRole::Assistant, {}, {}, MessageState::Streaming);
        store.updateMessage(a.id, QStringLiteral("answer %1 ").arg(i).repeated(20), MessageState::Complete);
        std::printf("saved %lld %d\n", static_cast<long long>(c), i);
        std::fflush(stdout);
    }
}

}  // namespace

class TestConversationStore : public QObject {
    Q_OBJECT
private slots:
    void createsSchemaWithWal()
    {
        QTemporaryDir dir;
        ConversationStore store(dir.path());
        QCOMPARE(store.schemaVersion(), ConversationStore::kSchemaVersion);
        QVERIFY(QFileInfo::exists(dir.path() + "/conversations.sqlite"));
        QSqlDatabase db = QSqlDatabase::addDatabase("QSQLITE", "probe");
        db.setDatabaseName(store.databaseFile());
        QVERIFY(db.open());
        QSqlQuery q(db);
        QVERIFY(q.exec("PRAGMA journal_mode") && q.next());
        QCOMPARE(q.value(0).toString(), QStringLiteral("wal"));
        db.close();
        db = {};
        QSqlDatabase::removeDatabase("probe");
    }

    void refusesNewerSchema()
    {
        QTemporaryDir dir;
        { ConversationStore store(dir.path()); }
        {
            QSqlDatabase db = QSqlDatabase::addDatabase("QSQLITE", "bump");
            db.setDatabaseName(dir.path() + "/conversations.sqlite");
            QVERIFY(db.open());
            QSqlQuery q(db);
            QVERIFY(q.exec("PRAGMA user_version = 99"));
            db.close();
        }
        QSqlDatabase::removeDatabase("bump");
        try {
            ConversationStore store(dir.path());
            QFAIL("a newer schema must be refused");
        } catch (const StoreError& e) {
            QVERIFY2(e.message().contains("newer Tessera"), qPrintable(e.message()));
        }
    }

    void conversationsAndMessagesRoundTrip()
    {
        QTemporaryDir dir;
        qint64 c = 0;
        {
            ConversationStore store(dir.path());
            c = store.createConversation("Cats");
            const StoredImage img = store.importImage(testImage("jpeg_420.jpg"));
            const Message u = store.addMessage(c, MessageRole::User, "Where is the cat?", {img});
            QCOMPARE(u.position, 0);
            QCOMPARE(u.images.size(), 1);
            QVERIFY(u.images[0].id > 0);
            const Message a = store.addMessage(c, MessageRole::Assistant, {}, {}, MessageState::Streaming);
            QCOMPARE(a.position, 1);
            AnswerStats s;
            s.ttftSeconds = 0.25;
            s.tokensPerSecond = 31.5;
            s.outputTokens = 12;
            s.stopReason = "eos";
            store.updateMessage(a.id, "<|ref|>The cat<|/ref|><|det|>[[1,2,3,4]]<|/det|>", MessageState::Complete, {}, s);
            store.renameConversation(c, "Cat hunt");
        }
        ConversationStore store(dir.path());  // reopened
        const auto list = store.conversations();
        QCOMPARE(list.size(), 1);
        QCOMPARE(list[0].title, QStringLiteral("Cat hunt"));
        QCOMPARE(list[0].messageCount, 2);
        const auto messages = store.messages(c);
        QCOMPARE(messages.size(), 2);
        QCOMPARE(messages[0].role, MessageRole::User);
        QCOMPARE(messages[0].text, QStringLiteral("Where is the cat?"));
        QCOMPARE(messages[0].images.size(), 1);
        QVERIFY(QFileInfo::exists(messages[0].images[0].file));
        QCOMPARE(messages[0].images[0].originalName, QStringLiteral("jpeg_420.jpg"));
        QCOMPARE(messages[1].state, MessageState::Complete);
        QCOMPARE(messages[1].stats.tokensPerSecond, 31.5);
        QCOMPARE(messages[1].stats.stopReason, QStringLiteral("eos"));
        QVERIFY(messages[1].text.contains("<|det|>"));
    }

    void imagesAreCopiedDedupedAndUpright()
    {
        QTemporaryDir dir;
        QTemporaryDir originals;
        const QString original = originals.path() + "/photo.jpg";
        QVERIFY(QFile::copy(testImage("orient6.jpg"), original));
        ConversationStore store(dir.path());
        const StoredImage a = store.importImage(original);
        const StoredImage b = store.importImage(original);
        QCOMPARE(a.file, b.file);                      // content-addressed
        QVERIFY(a.file.startsWith(store.imagesDir()));
        QVERIFY(QFile::remove(original));              // a moved original does not matter
        QVERIFY(QFileInfo::exists(a.file));
        // EXIF orientation 6 turns the stored width and height round.
        QImageReader reader(testImage("orient6.jpg"));
        reader.setAutoTransform(false);
        const QSize stored = reader.size();
        QCOMPARE(a.width, stored.height());
        QCOMPARE(a.height, stored.width());
    }

    void rejectsNonImages()
    {
        QTemporaryDir dir;
        ConversationStore store(dir.path());
        const QString text = dir.path() + "/notes.png";
        QFile f(text);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("this is not a PNG at all");
        f.close();
        try {
            store.importImage(text);
            QFAIL("a text file must be refused");
        } catch (const StoreError& e) {
            QVERIFY2(e.message().contains("notes.png"), qPrintable(e.message()));
        }
        try {
            store.importImage(dir.path() + "/missing.jpg");
            QFAIL("a missing file must be refused");
        } catch (const StoreError& e) {
            QVERIFY(e.message().contains("missing.jpg"));
        }
    }

    void deleteRemovesOnlyUnsharedImages()
    {
        QTemporaryDir dir;
        ConversationStore store(dir.path());
        const StoredImage shared = store.importImage(testImage("jpeg_420.jpg"));
        const StoredImage own = store.importImage(testImage("pad_40x16.png"));
        const qint64 c1 = store.createConversation("one");
        const qint64 c2 = store.createConversation("two");
        store.addMessage(c1, MessageRole::User, "a", {shared, own});
        store.addMessage(c2, MessageRole::User, "b", {shared});
        store.deleteConversation(c1);
        QVERIFY(!QFileInfo::exists(own.file));
        QVERIFY(QFileInfo::exists(shared.file));
        QCOMPARE(store.messages(c1).size(), 0);
        store.deleteConversation(c2);
        QVERIFY(!QFileInfo::exists(shared.file));
        QCOMPARE(countFiles(store.imagesDir()), 0);
        QCOMPARE(store.conversations().size(), 0);
    }

    void searchMatchesTitlesAndMessages()
    {
        QTemporaryDir dir;
        ConversationStore store(dir.path());
        const qint64 a = store.createConversation("Giraffes at the zoo");
        const qint64 b = store.createConversation("Quarterly chart");
        store.addMessage(b, MessageRole::User, "Explain the revenue curve", {});
        QThread::msleep(3);  // updated_at has millisecond resolution
        store.addMessage(a, MessageRole::User, "100% sure_underscore", {});
        QCOMPARE(store.conversations("giraffe").size(), 1);
        QCOMPARE(store.conversations("REVENUE").first().id, b);
        QCOMPARE(store.conversations("100%").first().id, a);     // LIKE wildcards are literal
        QCOMPARE(store.conversations("G_raffes").size(), 0);       // _ is not a wildcard either
        QCOMPARE(store.conversations("e_u").size(), 1);
        QCOMPARE(store.conversations("").size(), 2);
        QCOMPARE(store.conversations().first().id, a);           // most recently updated first
    }

    void deleteMessagesFromTruncates()
    {
        QTemporaryDir dir;
        ConversationStore store(dir.path());
        const qint64 c = store.createConversation("t");
        for (int i = 0; i < 4; ++i)
            store.addMessage(c, i % 2 ? MessageRole::Assistant : MessageRole::User, QString::number(i), {});
        store.deleteMessagesFrom(c, 2);
        QCOMPARE(store.messages(c).size(), 2);
        const Message next = store.addMessage(c, MessageRole::User, "again", {});
        QCOMPARE(next.position, 2);
    }

    void streamingAnswersBecomeInterrupted()
    {
        QTemporaryDir dir;
        qint64 c = 0;
        {
            ConversationStore store(dir.path());
            c = store.createConversation("t");
            store.addMessage(c, MessageRole::User, "q", {});
            const Message a = store.addMessage(c, MessageRole::Assistant, {}, {}, MessageState::Streaming);
            store.updateMessage(a.id, "half an ans", MessageState::Streaming);
        }
        ConversationStore store(dir.path());
        QCOMPARE(store.recoveredAtOpen(), 1);
        const auto m = store.messages(c);
        QCOMPARE(m[1].state, MessageState::Interrupted);
        QCOMPARE(m[1].text, QStringLiteral("half an ans"));
    }

    void garbageCollectionRemovesOrphans()
    {
        QTemporaryDir dir;
        ConversationStore store(dir.path());
        const StoredImage kept = store.importImage(testImage("jpeg_420.jpg"));
        store.addMessage(store.createConversation("t"), MessageRole::User, "x", {kept});
        const StoredImage orphan = store.importImage(testImage("pad_40x16.png"));  // never referenced
        QFile tmp(store.imagesDir() + "/ab/leftover.jpg.tmp-1234");
        QDir().mkpath(store.imagesDir() + "/ab");
        QVERIFY(tmp.open(QIODevice::WriteOnly));
        tmp.close();
        QCOMPARE(store.collectGarbage(3600), 0);  // too recent: another instance may be mid-send
        QCOMPARE(store.collectGarbage(0), 2);
        QVERIFY(QFileInfo::exists(kept.file));
        QVERIFY(!QFileInfo::exists(orphan.file));
    }

    // A writer killed with SIGKILL at random moments: everything it reported as saved is there,
    // the database is intact, and every image a message names exists with the right content.
    void reopenAfterKill()
    {
        QTemporaryDir dir;
        auto* rng = QRandomGenerator::global();
        int totalSaved = 0;
        for (int round = 0; round < 4; ++round) {
            QProcess writer;
            writer.setProgram(QCoreApplication::applicationFilePath());
            writer.setArguments({"--store-writer", dir.path()});
            writer.setProcessChannelMode(QProcess::ForwardedErrorChannel);
            writer.start();
            QVERIFY(writer.waitForStarted());
            QList<qint64> saved;
            QByteArray pending;
            const int target = 3 + static_cast<int>(rng->bounded(8));
            QElapsedTimer clock;
            clock.start();
            while (saved.size() < target && clock.elapsed() < 60000) {
                writer.waitForReadyRead(1000);
                pending += writer.readAllStandardOutput();
                while (pending.contains('\n')) {
                    const qsizetype nl = pending.indexOf('\n');
                    const QList<QByteArray> parts = pending.left(nl).split(' ');
                    pending.remove(0, nl + 1);
                    if (parts.size() == 3 && parts[0] == "saved")
                        saved << parts[1].toLongLong();
                }
            }
            QVERIFY2(saved.size() >= target, "the writer did not report its saves");
            // Kill it in the middle of whatever it is writing now.
            QThread::usleep(rng->bounded(3000));
            ::kill(static_cast<pid_t>(writer.processId()), SIGKILL);
            QVERIFY(writer.waitForFinished(10000));
            pending += writer.readAllStandardOutput();
            for (const QByteArray& line : pending.split('\n')) {
                const QList<QByteArray> parts = line.split(' ');
                if (parts.size() == 3 && parts[0] == "saved")
                    saved << parts[1].toLongLong();
            }
            totalSaved += saved.size();

            ConversationStore store(dir.path());
            {
                QSqlDatabase db = QSqlDatabase::addDatabase("QSQLITE", "integrity");
                db.setDatabaseName(store.databaseFile());
                QVERIFY(db.open());
                QSqlQuery q(db);
                QVERIFY(q.exec("PRAGMA integrity_check") && q.next());
                QCOMPARE(q.value(0).toString(), QStringLiteral("ok"));
                db.close();
            }
            QSqlDatabase::removeDatabase("integrity");
            for (qint64 id : saved) {
                const auto messages = store.messages(id);
                QCOMPARE(messages.size(), 2);
                QCOMPARE(messages[1].state, MessageState::Complete);
                QVERIFY(messages[1].text.startsWith("answer "));
            }
            for (const auto& c : store.conversations()) {
                for (const Message& m : store.messages(c.id)) {
                    for (const StoredImage& img : m.images) {
                        QFile f(img.file);
                        QVERIFY2(f.open(QIODevice::ReadOnly), qPrintable(img.file));
                        const QString hash = QString::fromLatin1(QCryptographicHash::hash(f.readAll(), QCryptographicHash::Sha256).toHex());
                        QVERIFY2(QFileInfo(img.file).completeBaseName() == hash, "a stored image is damaged");
                    }
                }
            }
            store.collectGarbage(0);  // leftovers of the killed import
        }
        QVERIFY(totalSaved >= 12);
    }
};

int main(int argc, char** argv)
{
    QCoreApplication app(argc, argv);
    if (argc == 3 && qstrcmp(argv[1], "--store-writer") == 0)
        return runWriter(QString::fromLocal8Bit(argv[2]));
    TestConversationStore test;
    return QTest::qExec(&test, argc, argv);
}

#include "test_conversation_store.moc"
