/*
 * test_sql_track — pgfeed.track and pgfeed.untrack on a real table.
 *
 * The table's channel template is 'user:{user_id}', so rows publish to
 * per-user channels; the test checks each event's type and data and where it
 * went, including a row that moves from one user to another.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pg_test.h"
#include "xalloc.h"

static PGconn *conn;
static char *user_a; /* user:<n> channels of this run */
static char *user_b;
static long long uid_a;
static long long uid_b;

static int setup(void **state)
{
    conn = pg_test_connect();
    /* Ids of this run, so reruns against the same database start fresh channels. */
    uid_a = pg_test_number(conn,
                           "SELECT coalesce(max(substr(name, 6)::bigint), 0) + 1 FROM "
                           "pgfeed.channel WHERE name ~ '^user:[0-9]+$'",
                           0, NULL);
    uid_b = uid_a + 1;
    char name[64];
    snprintf(name, sizeof name, "user:%lld", uid_a);
    user_a = xstrdup(name);
    snprintf(name, sizeof name, "user:%lld", uid_b);
    user_b = xstrdup(name);

    pg_test_exec(conn,
                 "DROP TABLE IF EXISTS track_orders; DROP SCHEMA IF EXISTS track_app CASCADE");
    pg_test_exec(conn, "CREATE TABLE track_orders (id int PRIMARY KEY, user_id bigint, note text)");
    return 0;
}

static int teardown(void **state)
{
    pg_test_exec(conn,
                 "DROP TABLE IF EXISTS track_orders; DROP SCHEMA IF EXISTS track_app CASCADE");
    PQfinish(conn);
    free(user_a);
    free(user_b);
    return 0;
}

static void exec_uid(const char *sql, long long uid)
{
    char text[32];
    snprintf(text, sizeof text, "%lld", uid);
    const char *params[] = {text};
    pg_test_exec_params(conn, sql, 1, params);
}

static long long head_of(const char *channel)
{
    const char *params[] = {channel};
    return pg_test_number(conn, "SELECT head FROM pgfeed.read($1, 0, 0)", 1, params);
}

/* Asserts that event `version` of `channel` has this type and data. */
static void expect_event(const char *channel, long long version, const char *type, const char *data)
{
    char v[32];
    snprintf(v, sizeof v, "%lld", version);
    const char *params[] = {channel, v};
    PGresult *res = pg_test_query(
        conn, "SELECT type, data::text FROM pgfeed.event WHERE channel = $1 AND version = $2", 2,
        params);
    assert_int_equal(PQntuples(res), 1);
    assert_string_equal(PQgetvalue(res, 0, 0), type);
    assert_string_equal(PQgetvalue(res, 0, 1), data);
    PQclear(res);
}

static long long trigger_count(const char *table)
{
    const char *params[] = {table};
    return pg_test_number(conn,
                          "SELECT count(*) FROM pg_trigger WHERE tgrelid = $1::regclass "
                          "AND tgname = 'pgfeed_track'",
                          1, params);
}

static void test_track_rejects_bad_templates(void **state)
{
    const char *missing[] = {"track_orders", "user:{userid}"};
    pg_test_expect_error(conn, "42703", "SELECT pgfeed.track($1, $2)", 2, missing);
    const char *const invalid[] = {"user/{user_id}", "user:{user_id", "user:{}",
                                   "_{user_id}",     "{user_id}}",    ""};
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        const char *params[] = {"track_orders", invalid[i]};
        pg_test_expect_error(conn, "22023", "SELECT pgfeed.track($1, $2)", 2, params);
    }
    const char *view[] = {"pg_stat_activity", "x"};
    pg_test_expect_error(conn, "42809", "SELECT pgfeed.track($1, $2)", 2, view);
    assert_int_equal(trigger_count("track_orders"), 0);
}

static void test_track_insert_update_delete(void **state)
{
    pg_test_exec(conn, "SELECT pgfeed.track('track_orders', 'user:{user_id}')");
    /* Tracking again replaces the trigger rather than adding one. */
    pg_test_exec(conn, "SELECT pgfeed.track('track_orders', 'user:{user_id}')");
    assert_int_equal(trigger_count("track_orders"), 1);

    exec_uid("INSERT INTO track_orders VALUES (1, $1, 'a')", uid_a);
    char data[512];
    snprintf(data, sizeof data,
             "{\"new\": {\"id\": 1, \"note\": \"a\", \"user_id\": %lld}, \"table\": "
             "\"track_orders\"}",
             uid_a);
    expect_event(user_a, 1, "insert", data);

    pg_test_exec(conn, "UPDATE track_orders SET note = 'b' WHERE id = 1");
    snprintf(data, sizeof data,
             "{\"new\": {\"id\": 1, \"note\": \"b\", \"user_id\": %lld}, \"old\": {\"id\": 1, "
             "\"note\": \"a\", \"user_id\": %lld}, \"table\": \"track_orders\"}",
             uid_a, uid_a);
    expect_event(user_a, 2, "update", data);

    /* An update that changes nothing publishes nothing. */
    pg_test_exec(conn, "UPDATE track_orders SET note = note WHERE id = 1");
    assert_int_equal(head_of(user_a), 2);

    /* Moving the row: it leaves user_a's feed and enters user_b's. */
    exec_uid("UPDATE track_orders SET user_id = $1 WHERE id = 1", uid_b);
    snprintf(data, sizeof data,
             "{\"old\": {\"id\": 1, \"note\": \"b\", \"user_id\": %lld}, \"table\": "
             "\"track_orders\"}",
             uid_a);
    expect_event(user_a, 3, "delete", data);
    snprintf(data, sizeof data,
             "{\"new\": {\"id\": 1, \"note\": \"b\", \"user_id\": %lld}, \"table\": "
             "\"track_orders\"}",
             uid_b);
    expect_event(user_b, 1, "insert", data);

    pg_test_exec(conn, "DELETE FROM track_orders WHERE id = 1");
    snprintf(data, sizeof data,
             "{\"old\": {\"id\": 1, \"note\": \"b\", \"user_id\": %lld}, \"table\": "
             "\"track_orders\"}",
             uid_b);
    expect_event(user_b, 2, "delete", data);
    assert_int_equal(head_of(user_a), 3);
    assert_int_equal(head_of(user_b), 2);
}

static void test_track_null_column_and_rollback(void **state)
{
    long long channels = pg_test_number(
        conn, "SELECT count(*) FROM pgfeed.channel WHERE name LIKE 'user:%'", 0, NULL);
    /* A row without a user belongs to no channel. */
    pg_test_exec(conn, "INSERT INTO track_orders VALUES (2, NULL, 'nobody')");
    pg_test_exec(conn, "DELETE FROM track_orders WHERE id = 2");
    assert_int_equal(pg_test_number(conn,
                                    "SELECT count(*) FROM pgfeed.channel WHERE name LIKE 'user:%'",
                                    0, NULL),
                     channels);

    /* The application's rollback takes its events along. */
    pg_test_exec(conn, "BEGIN");
    exec_uid("INSERT INTO track_orders VALUES (3, $1, 'gone')", uid_a);
    assert_int_equal(head_of(user_a), 4);
    pg_test_exec(conn, "ROLLBACK");
    assert_int_equal(head_of(user_a), 3);
}

static void test_track_invalid_rendered_name(void **state)
{
    pg_test_exec(conn, "SELECT pgfeed.track('track_orders', 'note:{note}')");
    pg_test_expect_error(conn, "22023", "INSERT INTO track_orders VALUES (4, 1, 'has space')", 0,
                         NULL);
    /* A valid value works, and the retrack replaced the template. */
    char *note = pg_test_name("fine");
    char channel[160];
    snprintf(channel, sizeof channel, "note:%s", note);
    const char *params[] = {note};
    pg_test_exec_params(conn, "INSERT INTO track_orders VALUES (4, 1, $1)", 1, params);
    assert_int_equal(head_of(channel), 1);
    free(note);
    assert_int_equal(trigger_count("track_orders"), 1);
    pg_test_exec(conn, "DELETE FROM track_orders");
}

static void test_track_other_schema_and_constant_channel(void **state)
{
    char *ch = pg_test_name("track-const");
    pg_test_exec(conn, "CREATE SCHEMA track_app; "
                       "CREATE TABLE track_app.item (id int PRIMARY KEY, label text)");
    const char *params[] = {ch};
    pg_test_exec_params(conn, "SELECT pgfeed.track('track_app.item', $1)", 1, params);
    pg_test_exec(conn, "INSERT INTO track_app.item VALUES (1, 'x')");
    expect_event(ch, 1, "insert",
                 "{\"new\": {\"id\": 1, \"label\": \"x\"}, \"table\": \"track_app.item\"}");
    pg_test_exec(conn, "UPDATE track_app.item SET label = 'y'");
    expect_event(ch, 2, "update",
                 "{\"new\": {\"id\": 1, \"label\": \"y\"}, \"old\": {\"id\": 1, \"label\": "
                 "\"x\"}, \"table\": \"track_app.item\"}");
    free(ch);
}

static void test_untrack(void **state)
{
    pg_test_exec(conn, "SELECT pgfeed.track('track_orders', 'user:{user_id}')");
    pg_test_exec(conn, "SELECT pgfeed.untrack('track_orders')");
    assert_int_equal(trigger_count("track_orders"), 0);
    exec_uid("INSERT INTO track_orders VALUES (5, $1, 'quiet')", uid_a);
    assert_int_equal(head_of(user_a), 3);
    /* Untracking an untracked table is fine. */
    pg_test_exec(conn, "SELECT pgfeed.untrack('track_orders')");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_track_rejects_bad_templates),
        cmocka_unit_test(test_track_insert_update_delete),
        cmocka_unit_test(test_track_null_column_and_rollback),
        cmocka_unit_test(test_track_invalid_rendered_name),
        cmocka_unit_test(test_track_other_schema_and_constant_channel),
        cmocka_unit_test(test_untrack),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
