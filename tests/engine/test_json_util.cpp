#include "core/error.h"
#include "core/json_util.h"

#include <QtTest>

using tessera::Error;
using tessera::JsonReader;

class TestJsonUtil : public QObject {
    Q_OBJECT
private slots:
    void readsTypedFields()
    {
        auto j = nlohmann::json::parse(R"({"a": 3, "b": 2.5, "c": "x", "d": null, "e": true, "f": 4.0})");
        JsonReader r(j, "cfg.json");
        QCOMPARE(r.integer("a"), 3);
        QCOMPARE(r.integer("f"), 4);
        QCOMPARE(r.number("b"), 2.5);
        QCOMPARE(r.string("c"), std::string("x"));
        QCOMPARE(r.integerOrNull("d", 7), 7);
        QCOMPARE(r.boolean("e", false), true);
        QCOMPARE(r.integer("zz", 11), 11);
    }
    void errorsNameTheField()
    {
        auto j = nlohmann::json::parse(R"({"a": "3", "b": 2.5})");
        JsonReader r(j, "cfg.json");
        try {
            r.integer("a");
            QFAIL("expected an error");
        } catch (const Error& e) {
            QVERIFY(std::string(e.what()).find("cfg.json: field \"a\"") != std::string::npos);
        }
        QVERIFY_THROWS_EXCEPTION(Error, r.integer("b"));
        QVERIFY_THROWS_EXCEPTION(Error, r.integer("missing"));
        QVERIFY_THROWS_EXCEPTION(Error, tessera::parseJsonText("{\"a\": ", "broken.json"));
    }
};

QTEST_GUILESS_MAIN(TestJsonUtil)
#include "test_json_util.moc"
