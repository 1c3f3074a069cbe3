/*
 * test_sql_prune — retention: pgfeed.set_retention, pgfeed.prune and the
 * `oldest` they leave behind, which is what tells a client its cursor is gone
 * (cursor < oldest - 1).
 *
 * Only this file sets retention, and its tests run one after another, so the
 * counts prune() returns are exact.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "pg_test.h"

static void set_retention(PGconn *conn, const char *channel, const char *keep_events,
                          const char *keep_for)
{
    const char *params[] = {channel, keep_events, keep_for};
    pg_test_exec_params(conn, "SELECT pgfeed.set_retention($1, $2::int, $3::interval)", 3, params);
}

static void publish_n(PGconn *conn, const char *channel, int n)
{
    const char *params[] = {channel};
    for (int i = 0; i < n; i++) {
        pg_test_exec_params(conn, "SELECT pgfeed.publish($1, 't')", 1, params);
    }
}

static long long prune(PGconn *conn)
{
    return pg_test_number(conn, "SELECT pgfeed.prune()", 0, NULL);
}

/* Asserts head and oldest, and that exactly versions oldest..head remain. */
static void expect_state(PGconn *conn, const char *channel, long long head, long long oldest)
{
    const char *params[] = {channel};
    PGresult *res = pg_test_query(
        conn, "SELECT head, oldest, version FROM pgfeed.read($1, 0, NULL)", 1, params);
    long long retained = head - oldest + 1;
    assert_int_equal(PQntuples(res), retained > 0 ? retained : 1);
    for (int row = 0; row < PQntuples(res); row++) {
        assert_int_equal(atoll(PQgetvalue(res, row, 0)), head);
        assert_int_equal(atoll(PQgetvalue(res, row, 1)), oldest);
        if (retained > 0) {
            assert_int_equal(atoll(PQgetvalue(res, row, 2)), oldest + row);
        } else {
            assert_true(PQgetisnull(res, row, 2));
        }
    }
    PQclear(res);
}

/* Ages the events up to `version` by two hours. */
static void backdate(PGconn *conn, const char *channel, const char *version)
{
    const char *params[] = {channel, version};
    pg_test_exec_params(conn,
                        "UPDATE pgfeed.event SET time = time - interval '2 hours' "
                        "WHERE channel = $1 AND version <= $2::bigint",
                        2, params);
}

static void test_prune_by_count(void **state)
{
    PGconn *conn = *state;
    char *ch = pg_test_name("prune-count");
    /* Events of earlier runs or of other files must not count in what follows. */
    prune(conn);
    set_retention(conn, ch, "3", NULL);
    publish_n(conn, ch, 10);
    assert_int_equal(prune(conn), 7);
    expect_state(conn, ch, 10, 8);
    assert_int_equal(prune(conn), 0);

    publish_n(conn, ch, 1);
    assert_int_equal(prune(conn), 1);
    expect_state(conn, ch, 11, 9);
    free(ch);
}

static void test_prune_everything(void **state)
{
    PGconn *conn = *state;
    char *ch = pg_test_name("prune-all");
    set_retention(conn, ch, "0", NULL);
    publish_n(conn, ch, 4);
    assert_int_equal(prune(conn), 4);
    /* Nothing retained: oldest is head + 1, and versions go on from head. */
    expect_state(conn, ch, 4, 5);
    publish_n(conn, ch, 1);
    expect_state(conn, ch, 5, 5);
    assert_int_equal(prune(conn), 1);
    expect_state(conn, ch, 5, 6);
    free(ch);
}

static void test_prune_by_age(void **state)
{
    PGconn *conn = *state;
    char *ch = pg_test_name("prune-age");
    set_retention(conn, ch, NULL, "1 hour");
    publish_n(conn, ch, 5);
    backdate(conn, ch, "3");
    assert_int_equal(prune(conn), 3);
    expect_state(conn, ch, 5, 4);
    backdate(conn, ch, "5");
    assert_int_equal(prune(conn), 2);
    expect_state(conn, ch, 5, 6);
    free(ch);
}

static void test_prune_count_and_age(void **state)
{
    PGconn *conn = *state;
    char *ch = pg_test_name("prune-both");
    set_retention(conn, ch, "4", "1 hour");
    publish_n(conn, ch, 6);
    backdate(conn, ch, "1");
    /* The count limit is stricter: only 3..6 stay. */
    assert_int_equal(prune(conn), 2);
    expect_state(conn, ch, 6, 3);
    /* Now the age limit is: 3..4 are old. */
    backdate(conn, ch, "4");
    assert_int_equal(prune(conn), 2);
    expect_state(conn, ch, 6, 5);
    free(ch);
}

static void test_no_limit_keeps_everything(void **state)
{
    PGconn *conn = *state;
    char *ch = pg_test_name("prune-none");
    set_retention(conn, ch, NULL, NULL);
    publish_n(conn, ch, 3);
    backdate(conn, ch, "3");
    assert_int_equal(prune(conn), 0);
    expect_state(conn, ch, 3, 1);
    free(ch);
}

static void test_default_retention(void **state)
{
    PGconn *conn = *state;
    char *ch = pg_test_name("prune-default");
    const char *params[] = {ch};
    /* Rolled back, so concurrent tests never see the changed default. */
    pg_test_exec(conn, "BEGIN");
    pg_test_exec(conn, "SELECT pgfeed.set_default_retention(2, '1 day')");
    pg_test_exec_params(conn, "SELECT pgfeed.publish($1, 't')", 1, params);
    char *policy = pg_test_value(
        conn, "SELECT keep_events || ' ' || keep_for FROM pgfeed.channel WHERE name = $1", 1,
        params);
    assert_string_equal(policy, "2 1 day");
    free(policy);
    pg_test_exec(conn, "ROLLBACK");

    /* The installed default: the last 10000 events, no age limit. */
    pg_test_exec_params(conn, "SELECT pgfeed.publish($1, 't')", 1, params);
    policy = pg_test_value(conn,
                           "SELECT keep_events || ' ' || coalesce(keep_for::text, 'null') FROM "
                           "pgfeed.channel WHERE name = $1",
                           1, params);
    assert_string_equal(policy, "10000 null");
    free(policy);
    free(ch);
}

static void test_bad_retention_rejected(void **state)
{
    PGconn *conn = *state;
    const char *const bad[][2] = {{"-1", NULL}, {NULL, "-1 hour"}, {NULL, "0"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *params[] = {"prune-bad", bad[i][0], bad[i][1]};
        pg_test_expect_error(conn, "22023",
                             "SELECT pgfeed.set_retention($1, $2::int, $3::interval)", 3, params);
        pg_test_expect_error(conn, "22023",
                             "SELECT pgfeed.set_default_retention($1::int, $2::interval)", 2,
                             params + 1);
    }
    const char *params[] = {"_bad", "1", NULL};
    pg_test_expect_error(conn, "22023", "SELECT pgfeed.set_retention($1, $2::int, $3::interval)", 3,
                         params);
}

/*
 * A publisher holding the channel's row lock: prune deletes without waiting,
 * then waits for that transaction before it raises oldest, and the event
 * published meanwhile survives.
 */
static void test_prune_with_publisher_in_flight(void **state)
{
    PGconn *conn = *state;
    char *ch = pg_test_name("prune-busy");
    set_retention(conn, ch, "2", NULL);
    publish_n(conn, ch, 5);

    PGconn *publisher = pg_test_connect();
    const char *params[] = {ch};
    pg_test_exec(publisher, "BEGIN");
    pg_test_exec_params(publisher, "SELECT pgfeed.publish($1, 't')", 1, params);

    assert_int_equal(PQsendQuery(conn, "SELECT pgfeed.prune()"), 1);
    struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
    poll(&pfd, 1, 300);
    assert_int_equal(PQconsumeInput(conn), 1);
    assert_int_equal(PQisBusy(conn), 1); /* waiting for the publisher */

    pg_test_exec(publisher, "COMMIT");
    PGresult *res = PQgetResult(conn);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "3");
    PQclear(res);
    assert_null(PQgetResult(conn));
    PQfinish(publisher);

    /* Pruned against head 5 (keeping 4..5), plus the event published meanwhile. */
    expect_state(conn, ch, 6, 4);
    free(ch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prune_by_count),
        cmocka_unit_test(test_prune_everything),
        cmocka_unit_test(test_prune_by_age),
        cmocka_unit_test(test_prune_count_and_age),
        cmocka_unit_test(test_no_limit_keeps_everything),
        cmocka_unit_test(test_default_retention),
        cmocka_unit_test(test_bad_retention_rejected),
        cmocka_unit_test(test_prune_with_publisher_in_flight),
    };
    return cmocka_run_group_tests(tests, pg_test_setup, pg_test_teardown);
}
