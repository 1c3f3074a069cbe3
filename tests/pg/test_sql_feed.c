/*
 * test_sql_feed — pgfeed.publish and pgfeed.read, the contract the responder
 * relies on: versions 1, 2, 3 per channel; read always returns the head row;
 * paging by cursor and limit; each event one line of JSON; bad names and
 * types rejected with SQLSTATE 22023.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "pg_test.h"

#define READ_SQL "SELECT head, oldest, version, event FROM pgfeed.read($1, $2, $3)"

static long long publish(PGconn *conn, const char *channel, const char *type, const char *data)
{
    const char *params[] = {channel, type, data};
    return pg_test_number(conn, "SELECT pgfeed.publish($1, $2, $3::jsonb)", 3, params);
}

static PGresult *read_feed(PGconn *conn, const char *channel, const char *after, const char *limit)
{
    const char *params[] = {channel, after, limit};
    return pg_test_query(conn, READ_SQL, 3, params);
}

/* Checks that res is the single head-only row. */
static void assert_head_row(PGresult *res, long long head, long long oldest)
{
    assert_int_equal(PQntuples(res), 1);
    assert_int_equal(atoll(PQgetvalue(res, 0, 0)), head);
    assert_int_equal(atoll(PQgetvalue(res, 0, 1)), oldest);
    assert_true(PQgetisnull(res, 0, 2));
    assert_true(PQgetisnull(res, 0, 3));
}

/* Checks that res holds events first..last, each row carrying head and oldest. */
static void assert_events(PGresult *res, long long first, long long last, long long head)
{
    assert_int_equal(PQntuples(res), last - first + 1);
    for (int row = 0; row < PQntuples(res); row++) {
        assert_int_equal(atoll(PQgetvalue(res, row, 0)), head);
        assert_int_equal(atoll(PQgetvalue(res, row, 1)), 1);
        assert_int_equal(atoll(PQgetvalue(res, row, 2)), first + row);
        assert_false(PQgetisnull(res, row, 3));
    }
}

static void test_publish_counts_per_channel(void **state)
{
    PGconn *conn = *state;
    char *a = pg_test_name("feed-a");
    char *b = pg_test_name("feed-b");
    assert_int_equal(publish(conn, a, "t", "{}"), 1);
    assert_int_equal(publish(conn, a, "t", "{}"), 2);
    assert_int_equal(publish(conn, b, "t", "{}"), 1);
    assert_int_equal(publish(conn, a, "t", "{}"), 3);
    assert_int_equal(publish(conn, b, "t", "{}"), 2);
    free(a);
    free(b);
}

static void test_publish_rollback_reuses_version(void **state)
{
    PGconn *conn = *state;
    char *ch = pg_test_name("feed-rollback");
    assert_int_equal(publish(conn, ch, "t", "{}"), 1);
    pg_test_exec(conn, "BEGIN");
    assert_int_equal(publish(conn, ch, "t", "{}"), 2);
    pg_test_exec(conn, "ROLLBACK");
    assert_int_equal(publish(conn, ch, "t", "{}"), 2);
    free(ch);
}

static void test_read_unknown_channel(void **state)
{
    PGconn *conn = *state;
    char *ch = pg_test_name("feed-unknown");
    PGresult *res = read_feed(conn, ch, "0", "100");
    assert_head_row(res, 0, 1);
    PQclear(res);

    /* Reading must not create the channel. */
    const char *params[] = {ch};
    assert_int_equal(
        pg_test_number(conn, "SELECT count(*) FROM pgfeed.channel WHERE name = $1", 1, params), 0);
    free(ch);
}

static void test_read_pages(void **state)
{
    PGconn *conn = *state;
    char *ch = pg_test_name("feed-pages");
    for (int i = 1; i <= 5; i++) {
        assert_int_equal(publish(conn, ch, "t", "{}"), i);
    }
    PGresult *res = read_feed(conn, ch, "0", "2");
    assert_events(res, 1, 2, 5);
    PQclear(res);
    res = read_feed(conn, ch, "2", "2");
    assert_events(res, 3, 4, 5);
    PQclear(res);
    res = read_feed(conn, ch, "4", "2");
    assert_events(res, 5, 5, 5);
    PQclear(res);
    res = read_feed(conn, ch, "5", "2");
    assert_head_row(res, 5, 1);
    PQclear(res);
    /* A cursor beyond head (say, from a reset database) still gets the head. */
    res = read_feed(conn, ch, "99", "10");
    assert_head_row(res, 5, 1);
    PQclear(res);
    /* Limit 0 asks for the head only. */
    res = read_feed(conn, ch, "0", "0");
    assert_head_row(res, 5, 1);
    PQclear(res);
    /* NULL cursor reads from the start, NULL limit reads everything. */
    res = read_feed(conn, ch, NULL, NULL);
    assert_events(res, 1, 5, 5);
    PQclear(res);
    free(ch);
}

static void test_read_negative_limit_rejected(void **state)
{
    PGconn *conn = *state;
    const char *params[] = {"orders", "0", "-1"};
    pg_test_expect_error(conn, "2201W", READ_SQL, 3, params);
}

static const char *json_string(json_object *obj, const char *key)
{
    json_object *value;
    assert_true(json_object_object_get_ex(obj, key, &value));
    assert_true(json_object_is_type(value, json_type_string));
    return json_object_get_string(value);
}

static void test_read_event_json(void **state)
{
    PGconn *conn = *state;
    char *ch = pg_test_name("feed-json");
    const char *data =
        "{\"text\": \"line one\\nline two\\r\\nend \\u00e9 \\\"q\\\"\", \"n\": [1, 2]}";
    assert_int_equal(publish(conn, ch, "created", data), 1);

    PGresult *res = read_feed(conn, ch, "0", "10");
    assert_int_equal(PQntuples(res), 1);
    const char *event = PQgetvalue(res, 0, 3);
    /* It travels as one SSE data: line. */
    assert_null(strchr(event, '\n'));
    assert_null(strchr(event, '\r'));

    json_object *obj = json_tokener_parse(event);
    assert_non_null(obj);
    assert_int_equal(json_object_object_length(obj), 5);
    assert_string_equal(json_string(obj, "channel"), ch);
    assert_string_equal(json_string(obj, "type"), "created");

    json_object *version;
    assert_true(json_object_object_get_ex(obj, "version", &version));
    assert_true(json_object_is_type(version, json_type_int));
    assert_int_equal(json_object_get_int64(version), 1);

    json_object *got_data, *text, *n;
    assert_true(json_object_object_get_ex(obj, "data", &got_data));
    assert_true(json_object_object_get_ex(got_data, "text", &text));
    assert_string_equal(json_object_get_string(text), "line one\nline two\r\nend \xc3\xa9 \"q\"");
    assert_true(json_object_object_get_ex(got_data, "n", &n));
    assert_int_equal(json_object_array_length(n), 2);

    regex_t iso;
    assert_int_equal(regcomp(&iso,
                             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}Z$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    assert_int_equal(regexec(&iso, json_string(obj, "time"), 0, NULL, 0), 0);
    regfree(&iso);

    json_object_put(obj);
    PQclear(res);
    free(ch);
}

/* SQL NULL data is stored as {}, JSON null as null. */
static void test_publish_null_data(void **state)
{
    PGconn *conn = *state;
    char *ch = pg_test_name("feed-null");
    assert_int_equal(publish(conn, ch, "t", NULL), 1);
    assert_int_equal(publish(conn, ch, "t", "null"), 2);
    assert_int_equal(publish(conn, ch, "t", "[1,\"a\"]"), 3);
    const char *params[] = {ch};
    PGresult *res = pg_test_query(
        conn, "SELECT data::text FROM pgfeed.event WHERE channel = $1 ORDER BY version", 1, params);
    assert_int_equal(PQntuples(res), 3);
    assert_string_equal(PQgetvalue(res, 0, 0), "{}");
    assert_string_equal(PQgetvalue(res, 1, 0), "null");
    assert_string_equal(PQgetvalue(res, 2, 0), "[1, \"a\"]");
    PQclear(res);
    /* The default argument. */
    assert_int_equal(pg_test_number(conn, "SELECT pgfeed.publish($1, 't')", 1, params), 4);
    free(ch);
}

static void test_invalid_channel_rejected(void **state)
{
    PGconn *conn = *state;
    const char *const bad[] = {"",       "_health", "-x",   "a/b", "a b", "a\nb", "caf\xc3\xa9",
                               "{user}", "a%2F",    "x\"y", NULL};
    char long_name[130];
    memset(long_name, 'a', 129);
    long_name[129] = '\0';

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *params[] = {bad[i]};
        pg_test_expect_error(conn, "22023", "SELECT pgfeed.publish($1, 't')", 1, params);
    }
    const char *params[] = {long_name};
    pg_test_expect_error(conn, "22023", "SELECT pgfeed.publish($1, 't')", 1, params);

    /* 128 characters and every allowed character are fine. */
    long_name[128] = '\0';
    assert_int_equal(publish(conn, long_name, "t", "{}") >= 1, 1);
    assert_int_equal(publish(conn, "Az09_.:-x", "t", "{}") >= 1, 1);
}

static void test_invalid_type_rejected(void **state)
{
    PGconn *conn = *state;
    char *ch = pg_test_name("feed-type");
    char long_type[130];
    memset(long_type, 't', 129);
    long_type[129] = '\0';
    const char *const bad[] = {"", NULL, "a\nb", "tab\there", long_type};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *params[] = {ch, bad[i]};
        pg_test_expect_error(conn, "22023", "SELECT pgfeed.publish($1, $2)", 2, params);
    }
    long_type[128] = '\0';
    assert_int_equal(publish(conn, ch, long_type, "{}"), 1);
    assert_int_equal(publish(conn, ch, "order.created:v2 with spaces", "{}"), 2);
    free(ch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_counts_per_channel),
        cmocka_unit_test(test_publish_rollback_reuses_version),
        cmocka_unit_test(test_read_unknown_channel),
        cmocka_unit_test(test_read_pages),
        cmocka_unit_test(test_read_negative_limit_rejected),
        cmocka_unit_test(test_read_event_json),
        cmocka_unit_test(test_publish_null_data),
        cmocka_unit_test(test_invalid_channel_rejected),
        cmocka_unit_test(test_invalid_type_rejected),
    };
    return cmocka_run_group_tests(tests, pg_test_setup, pg_test_teardown);
}
