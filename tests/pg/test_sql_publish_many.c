/*
 * test_sql_publish_many — the batch form of publishing.
 *
 * pgfeed.publish_many(channel, type, jsonb[]) gives its events consecutive
 * versions after whatever the channel held, in array order, returns them
 * ascending, and sends one NOTIFY for the whole batch naming the last one. An
 * empty batch publishes and notifies nothing. It checks what pgfeed.publish
 * checks: EXECUTE (pgfeed_publisher only), the publishing prefixes of the
 * session user, the channel name and the type. Deleting a channel deletes its
 * events (migration 0004 replaced the foreign key by that cascade), so it can
 * be re-created and published to from version 1 again.
 *
 * Roles belong to the cluster: the ones made here carry the pid and are
 * dropped at the end. SET SESSION AUTHORIZATION (not SET ROLE) switches to
 * them, because publishing asks the session user.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "pg_test.h"

static const char PUBLISH_MANY[] = "SELECT v FROM pgfeed.publish_many($1, $2, $3::jsonb[]) v";

static void test_consecutive_versions_in_array_order(void **state)
{
    PGconn *c = *state;
    char *ch = pg_test_name("many");
    const char *p1[] = {ch};
    pg_test_exec_params(c, "SELECT pgfeed.publish($1, 'single', '{}')", 1, p1);
    pg_test_exec_params(c, "SELECT pgfeed.publish($1, 'single', '{}')", 1, p1);

    const char *batch[] = {ch, "bulk", "{\"{\\\"n\\\": 1}\",\"{\\\"n\\\": 2}\",NULL,\"[3]\"}"};
    PGresult *res = pg_test_query(c, PUBLISH_MANY, 3, batch);
    assert_int_equal(PQntuples(res), 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(atoll(PQgetvalue(res, i, 0)), 3 + i);
    }
    PQclear(res);

    char *events =
        pg_test_value(c,
                      "SELECT string_agg(version || ' ' || type || ' ' || data::text, '; '"
                      "                  ORDER BY version)"
                      "  FROM pgfeed.event WHERE channel = $1",
                      1, p1);
    assert_string_equal(events, "1 single {}; 2 single {}; 3 bulk {\"n\": 1}; 4 bulk {\"n\": 2}; "
                                "5 bulk {}; 6 bulk [3]");
    free(events);
    /* Times follow versions, as for single publishes. */
    assert_int_equal(pg_test_number(c,
                                    "SELECT count(*) FROM (SELECT time < lag(time) OVER (ORDER BY"
                                    " version) AS back FROM pgfeed.event WHERE channel = $1) t"
                                    " WHERE back",
                                    1, p1),
                     0);
    assert_int_equal(pg_test_number(c, "SELECT head FROM pgfeed.read($1, 0, 0)", 1, p1), 6);

    /* A batch on a new channel creates it and starts at 1. */
    char *fresh = pg_test_name("many-new");
    const char *p2[] = {fresh, "t", "{1,2,3}"};
    res = pg_test_query(c, PUBLISH_MANY, 3, p2);
    assert_int_equal(PQntuples(res), 3);
    assert_string_equal(PQgetvalue(res, 0, 0), "1");
    assert_string_equal(PQgetvalue(res, 2, 0), "3");
    PQclear(res);
    free(fresh);
    free(ch);
}

static void test_one_notification_per_batch(void **state)
{
    PGconn *c = *state;
    PGconn *listener = pg_test_connect();
    pg_test_exec(listener, "LISTEN pgfeed");
    char *ch = pg_test_name("many-notify");
    char payload[256], expected[256];

    const char *batch[] = {ch, "t", "{1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20}"};
    PGresult *res = pg_test_query(c, PUBLISH_MANY, 3, batch);
    assert_int_equal(PQntuples(res), 20);
    PQclear(res);
    assert_true(pg_test_wait_notify(listener, ch, 5000, payload, sizeof payload));
    snprintf(expected, sizeof expected, "20 %s", ch);
    assert_string_equal(payload, expected);
    assert_false(pg_test_wait_notify(listener, ch, 300, payload, sizeof payload));

    /* An empty or NULL batch publishes nothing, creates nothing, says nothing. */
    const char *empty[] = {ch, "t", "{}"}, *null_batch[] = {ch, "t", NULL};
    res = pg_test_query(c, PUBLISH_MANY, 3, empty);
    assert_int_equal(PQntuples(res), 0);
    PQclear(res);
    res = pg_test_query(c, PUBLISH_MANY, 3, null_batch);
    assert_int_equal(PQntuples(res), 0);
    PQclear(res);
    const char *p1[] = {ch};
    assert_int_equal(pg_test_number(c, "SELECT head FROM pgfeed.read($1, 0, 0)", 1, p1), 20);
    assert_false(pg_test_wait_notify(listener, ch, 300, payload, sizeof payload));

    /* Rolled back: no events, no notification, and the versions are reused. */
    pg_test_exec(c, "BEGIN");
    res = pg_test_query(c, PUBLISH_MANY, 3, batch);
    PQclear(res);
    pg_test_exec(c, "ROLLBACK");
    assert_false(pg_test_wait_notify(listener, ch, 300, payload, sizeof payload));
    res = pg_test_query(c, PUBLISH_MANY, 3, empty);
    PQclear(res);
    const char *two[] = {ch, "t", "{1,2}"};
    res = pg_test_query(c, PUBLISH_MANY, 3, two);
    assert_string_equal(PQgetvalue(res, 0, 0), "21");
    PQclear(res);
    assert_true(pg_test_wait_notify(listener, ch, 5000, payload, sizeof payload));
    snprintf(expected, sizeof expected, "22 %s", ch);
    assert_string_equal(payload, expected);

    PQfinish(listener);
    free(ch);
}

static void test_bad_input_refused(void **state)
{
    PGconn *c = *state;
    char *ch = pg_test_name("many-bad");
    const char *bad_type[] = {ch, "a\nb", "{1}"}, *no_type[] = {ch, "", "{1}"};
    const char *bad_name[] = {"_private", "t", "{1}"}, *null_name[] = {NULL, "t", "{1}"};
    pg_test_expect_error(c, "22023", PUBLISH_MANY, 3, bad_type);
    pg_test_expect_error(c, "22023", PUBLISH_MANY, 3, no_type);
    pg_test_expect_error(c, "22023", PUBLISH_MANY, 3, bad_name);
    pg_test_expect_error(c, "22023", PUBLISH_MANY, 3, null_name);
    const char *p1[] = {ch};
    assert_int_equal(
        pg_test_number(c, "SELECT count(*) FROM pgfeed.channel WHERE name = $1", 1, p1), 0);
    free(ch);
}

static void test_who_may_publish_many(void **state)
{
    PGconn *c = *state;
    char outsider[64], publisher[64], sql[512];
    snprintf(outsider, sizeof outsider, "many_%ld_outsider", (long)getpid());
    snprintf(publisher, sizeof publisher, "many_%ld_publisher", (long)getpid());
    snprintf(sql, sizeof sql,
             "CREATE ROLE %s NOLOGIN; CREATE ROLE %s NOLOGIN IN ROLE pgfeed_publisher", outsider,
             publisher);
    pg_test_exec(c, sql);
    char allowed[96], other[96];
    snprintf(allowed, sizeof allowed, "many-%ld-allowed:1", (long)getpid());
    snprintf(other, sizeof other, "many-%ld-other", (long)getpid());
    const char *ok[] = {allowed, "t", "{1,2}"}, *refused[] = {other, "t", "{1,2}"};

    /* Without pgfeed_publisher: no EXECUTE, whatever the rules. */
    snprintf(sql, sizeof sql, "SET SESSION AUTHORIZATION %s", outsider);
    pg_test_exec(c, sql);
    pg_test_expect_error(c, "42501", PUBLISH_MANY, 3, ok);
    pg_test_expect_error(c, "42501", "SELECT pgfeed.append_many('x', 't', '{1}')", 0, NULL);
    pg_test_exec(c, "RESET SESSION AUTHORIZATION");

    /* With it, and prefix rules in place: only its own prefixes. */
    snprintf(sql, sizeof sql,
             "INSERT INTO pgfeed.publish_prefix VALUES ('%s', 'many-%ld-allowed:')", publisher,
             (long)getpid());
    pg_test_exec(c, sql);
    snprintf(sql, sizeof sql, "SET SESSION AUTHORIZATION %s", publisher);
    pg_test_exec(c, sql);
    PGresult *res = pg_test_query(c, PUBLISH_MANY, 3, ok);
    assert_int_equal(PQntuples(res), 2);
    PQclear(res);
    pg_test_expect_error(c, "42501", PUBLISH_MANY, 3, refused);
    /* SET ROLE does not widen what the session may publish to. */
    pg_test_exec(c, "RESET SESSION AUTHORIZATION");
    snprintf(sql, sizeof sql, "SET SESSION AUTHORIZATION %s; SET ROLE pgfeed_publisher", publisher);
    pg_test_exec(c, sql);
    pg_test_expect_error(c, "42501", PUBLISH_MANY, 3, refused);
    pg_test_exec(c, "RESET ROLE; RESET SESSION AUTHORIZATION");

    const char *p_other[] = {other};
    assert_int_equal(
        pg_test_number(c, "SELECT count(*) FROM pgfeed.event WHERE channel = $1", 1, p_other), 0);
    snprintf(sql, sizeof sql,
             "DELETE FROM pgfeed.publish_prefix WHERE role = '%s'; DROP ROLE %s; DROP ROLE %s",
             publisher, outsider, publisher);
    pg_test_exec(c, sql);
}

static void test_deleted_channel_takes_its_events(void **state)
{
    PGconn *c = *state;
    char *ch = pg_test_name("many-deleted");
    const char *batch[] = {ch, "t", "{1,2,3}"};
    PQclear(pg_test_query(c, PUBLISH_MANY, 3, batch));
    const char *p1[] = {ch};
    pg_test_exec_params(c, "DELETE FROM pgfeed.channel WHERE name = $1", 1, p1);
    assert_int_equal(
        pg_test_number(c, "SELECT count(*) FROM pgfeed.event WHERE channel = $1", 1, p1), 0);
    assert_int_equal(pg_test_number(c, "SELECT pgfeed.publish($1, 't', '{}')", 1, p1), 1);
    free(ch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_consecutive_versions_in_array_order),
        cmocka_unit_test(test_one_notification_per_batch),
        cmocka_unit_test(test_bad_input_refused),
        cmocka_unit_test(test_who_may_publish_many),
        cmocka_unit_test(test_deleted_channel_takes_its_events),
    };
    return cmocka_run_group_tests(tests, pg_test_setup, pg_test_teardown);
}
