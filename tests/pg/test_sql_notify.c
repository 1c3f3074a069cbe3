/*
 * test_sql_notify — the NOTIFY that wakes long polls and SSE streams.
 *
 * pgfeed.publish sends NOTIFY pgfeed '<version> <channel>'. PostgreSQL
 * delivers it when the publishing transaction commits and drops it when it
 * rolls back, so a woken responder always finds the event it was told about.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "pg_test.h"

static PGconn *listener;
static PGconn *publisher;

static int setup(void **state)
{
    listener = pg_test_connect();
    publisher = pg_test_connect();
    pg_test_exec(listener, "LISTEN pgfeed");
    return 0;
}

static int teardown(void **state)
{
    PQfinish(listener);
    PQfinish(publisher);
    return 0;
}

static void publish(const char *channel, long long expected_version)
{
    const char *params[] = {channel};
    assert_int_equal(pg_test_number(publisher, "SELECT pgfeed.publish($1, 't')", 1, params),
                     expected_version);
}

static void expect_payload(const char *channel, long long version)
{
    char payload[256], expected[256];
    snprintf(expected, sizeof expected, "%lld %s", version, channel);
    assert_true(pg_test_wait_notify(listener, channel, 5000, payload, sizeof payload));
    assert_string_equal(payload, expected);
}

static void test_notify_on_commit_only(void **state)
{
    char payload[256];
    char *ch = pg_test_name("notify-commit");
    pg_test_exec(publisher, "BEGIN");
    publish(ch, 1);
    assert_false(pg_test_wait_notify(listener, ch, 300, payload, sizeof payload));
    pg_test_exec(publisher, "COMMIT");
    expect_payload(ch, 1);
    free(ch);
}

static void test_no_notify_on_rollback(void **state)
{
    char payload[256];
    char *ch = pg_test_name("notify-rollback");
    pg_test_exec(publisher, "BEGIN");
    publish(ch, 1);
    publish(ch, 2);
    pg_test_exec(publisher, "ROLLBACK");
    assert_false(pg_test_wait_notify(listener, ch, 500, payload, sizeof payload));

    /* The rolled-back versions are taken again, and announced this time. */
    publish(ch, 1);
    expect_payload(ch, 1);
    free(ch);
}

static void test_one_notify_per_event_in_order(void **state)
{
    char payload[256];
    char *ch = pg_test_name("notify-many");
    pg_test_exec(publisher, "BEGIN");
    for (int v = 1; v <= 3; v++) {
        publish(ch, v);
    }
    pg_test_exec(publisher, "COMMIT");
    for (int v = 1; v <= 3; v++) {
        expect_payload(ch, v);
    }
    assert_false(pg_test_wait_notify(listener, ch, 200, payload, sizeof payload));
    free(ch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notify_on_commit_only),
        cmocka_unit_test(test_no_notify_on_rollback),
        cmocka_unit_test(test_one_notify_per_event_in_order),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
