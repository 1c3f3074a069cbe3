/*
 * test_sql_security — who may do what to pgfeed's data, and what another
 * role's objects can change.
 *
 *   - search_path: a role with CREATE on a schema early in a caller's
 *     search_path defines look-alikes of the built-ins pgfeed uses (to_json,
 *     to_char, jsonb_build_object, pg_notify, ...); reads, publishes and
 *     tracked writes must not call them (the CVE-2018-1058 pattern).
 *   - least privilege: an application role with privileges only on a
 *     tracked table publishes through the trigger and can do nothing else to pgfeed;
 *     a publisher (pgfeed_publisher) publishes but cannot write the tables,
 *     prune or change retention; a reader reads and nothing more.
 *   - pgfeed.publish_prefix limits the channels a role may publish to, for
 *     pgfeed.publish and for tracked tables.
 *   - deletions other than pruning and resets are announced on pgfeed_reset,
 *     and a reset gives the channel a new epoch that pgfeed.read returns.
 *
 * Roles belong to the cluster, so each test makes its own, with names no
 * other run uses, and drops them at the end. Each test has a connection of
 * its own, so one that fails as another role leaves the next unaffected. SET SESSION AUTHORIZATION
 * (not SET ROLE) switches to them: pgfeed.publish asks the session user.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "db_private.h"
#include "pg_test.h"

/* "sec_<pid>_<tag>": a role, schema or table name, plain identifier characters only. */
static char *name_of(const char *tag)
{
    char *out = malloc(96);
    assert_non_null(out);
    snprintf(out, 96, "sec_%ld_%s", (long)getpid(), tag);
    return out;
}

static void deny(PGconn *c, const char *sql)
{
    pg_test_expect_error(c, "42501", sql, 0, NULL);
}

static long long count_events(PGconn *c, const char *channel)
{
    const char *params[] = {channel};
    return pg_test_number(c, "SELECT count(*) FROM pgfeed.event WHERE channel = $1", 1, params);
}

/* ---- search_path ---------------------------------------------------------- */

static void test_search_path_hijack(void **state)
{
    PGconn *c = *state;
    char *attacker = name_of("attacker");
    char *ch = name_of("hijacked");
    char *table = name_of("hijack_orders");
    pg_test_execf(c, "CREATE ROLE %s NOLOGIN", attacker);
    pg_test_execf(c, "CREATE SCHEMA %s AUTHORIZATION %s", attacker, attacker);
    pg_test_execf(c, "CREATE TABLE %s (id int PRIMARY KEY, note text)", table);
    pg_test_execf(c, "SELECT pgfeed.track('%s', '%s')", table, ch);

    /* The attacker's look-alikes record every call and change what they return. */
    pg_test_execf(c, "SET SESSION AUTHORIZATION %s", attacker);
    pg_test_execf(
        c,
        "CREATE TABLE %1$s.stolen (what text);"
        "CREATE FUNCTION %1$s.to_json(text) RETURNS json LANGUAGE sql SECURITY DEFINER"
        "  AS $$ INSERT INTO %1$s.stolen VALUES ($1); SELECT '\"pwned\"'::json $$;"
        "CREATE FUNCTION %1$s.to_char(timestamp, text) RETURNS text LANGUAGE sql SECURITY DEFINER"
        "  AS $$ INSERT INTO %1$s.stolen VALUES ('to_char'); SELECT 'pwned' $$;"
        "CREATE FUNCTION %1$s.pg_notify(text, text) RETURNS void LANGUAGE sql SECURITY DEFINER"
        "  AS $$ INSERT INTO %1$s.stolen VALUES ($2) $$;"
        "CREATE FUNCTION %1$s.quote_literal(text) RETURNS text LANGUAGE sql SECURITY DEFINER"
        "  AS $$ INSERT INTO %1$s.stolen VALUES ($1); SELECT 'pwned' $$;"
        "CREATE FUNCTION %1$s.jsonb_build_object(text, text, text, jsonb) RETURNS jsonb"
        "  LANGUAGE sql SECURITY DEFINER"
        "  AS $$ INSERT INTO %1$s.stolen VALUES ($4::text); SELECT '{\"pwned\":1}'::jsonb $$;"
        "GRANT USAGE ON SCHEMA %1$s TO PUBLIC;"
        "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA %1$s TO PUBLIC",
        attacker);
    pg_test_exec(c, "RESET SESSION AUTHORIZATION");

    /* The victim puts the attacker's schema first, even before pg_catalog. */
    pg_test_execf(c, "SET search_path = %s, pg_catalog, public", attacker);
    const char *params[] = {ch};
    pg_test_exec_params(c, "SELECT pgfeed.publish($1, 'direct', '{\"secret\":1}')", 1, params);
    pg_test_execf(c, "INSERT INTO public.%s VALUES (1, 'tracked secret')", table);
    pg_test_expect_error(c, "22023", "SELECT pgfeed.publish('bad name', 't', '{}')", 0, NULL);
    PGresult *res = pg_test_query(
        c, "SELECT event FROM pgfeed.read($1, 0, 10) WHERE event IS NOT NULL ORDER BY version", 1,
        params);
    assert_int_equal(PQntuples(res), 2);
    for (int i = 0; i < 2; i++) {
        const char *event = PQgetvalue(res, i, 0);
        assert_null(strstr(event, "pwned"));
        assert_non_null(strstr(event, ch));
        assert_non_null(strstr(event, "\"time\":\"20"));
    }
    assert_non_null(strstr(PQgetvalue(res, 1, 0), "tracked secret"));
    PQclear(res);
    pg_test_exec(c, "RESET search_path");

    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.stolen", attacker);
    assert_int_equal(pg_test_number(c, sql, 0, NULL), 0);

    pg_test_execf(c, "SELECT pgfeed.untrack('%s'); DROP TABLE %s", table, table);
    pg_test_execf(c, "DROP SCHEMA %s CASCADE; DROP ROLE %s", attacker, attacker);
    free(attacker);
    free(ch);
    free(table);
}

/* ---- least privilege -------------------------------------------------------- */

/* Everything a role without pgfeed privileges must be refused. */
static void deny_every_write(PGconn *c)
{
    deny(c, "INSERT INTO pgfeed.event (channel, version, type) VALUES ('x', 1, 't')");
    deny(c, "UPDATE pgfeed.channel SET head = head + 1");
    deny(c, "UPDATE pgfeed.channel SET oldest = head + 1");
    deny(c, "UPDATE pgfeed.channel SET keep_events = 0");
    deny(c, "DELETE FROM pgfeed.event");
    deny(c, "DELETE FROM pgfeed.channel");
    deny(c, "TRUNCATE pgfeed.event");
    deny(c, "UPDATE pgfeed.setting SET keep_events = 0");
    deny(c, "INSERT INTO pgfeed.publish_prefix VALUES ('x', 'y')");
    deny(c, "SELECT nextval('pgfeed.channel_epoch')");
    deny(c, "SELECT pgfeed.append('x', 't', '{}')");
    deny(c, "SELECT pgfeed.ensure_channel('x')");
    deny(c, "SELECT pgfeed.set_retention('x', 0, NULL)");
    deny(c, "SELECT pgfeed.set_default_retention(0, NULL)");
    deny(c, "SELECT pgfeed.prune()");
}

static void test_app_role_publishes_through_trigger_only(void **state)
{
    PGconn *c = *state;
    char *owner = name_of("table_owner");
    char *app = name_of("app");
    char *table = name_of("tracked");
    pg_test_execf(c, "CREATE ROLE %s NOLOGIN IN ROLE pgfeed_publisher; CREATE ROLE %s NOLOGIN",
                  owner, app);
    pg_test_execf(c, "CREATE TABLE public.%s (id int PRIMARY KEY, user_id int)", table);
    pg_test_execf(c, "ALTER TABLE public.%s OWNER TO %s", table, owner);

    /* The table's owner tracks it with nothing but pgfeed_publisher. */
    pg_test_execf(c, "SET SESSION AUTHORIZATION %s", owner);
    pg_test_execf(c, "SELECT pgfeed.track('public.%s', 'sec-%ld-user:{user_id}')", table,
                  (long)getpid());
    pg_test_execf(c, "GRANT SELECT, INSERT, UPDATE, DELETE ON public.%s TO %s", table, app);
    pg_test_exec(c, "RESET SESSION AUTHORIZATION");

    pg_test_execf(c, "SET SESSION AUTHORIZATION %s", app);
    pg_test_execf(c, "INSERT INTO public.%s VALUES (1, 7), (2, 7)", table);
    pg_test_execf(c, "DELETE FROM public.%s WHERE id = 2", table);
    deny(c, "SELECT count(*) FROM pgfeed.event");
    deny(c, "SELECT count(*) FROM pgfeed.channel");
    deny(c, "SELECT * FROM pgfeed.read('x', 0, 1)");
    deny(c, "SELECT pgfeed.publish('x', 't', '{}')");
    deny(c, "SELECT pgfeed.track_trigger()");
    deny_every_write(c);
    pg_test_exec(c, "RESET SESSION AUTHORIZATION");

    char ch[128];
    snprintf(ch, sizeof ch, "sec-%ld-user:7", (long)getpid());
    assert_int_equal(count_events(c, ch), 3);
    const char *params[] = {ch};
    char *types = pg_test_value(c,
                                "SELECT string_agg(type, ',' ORDER BY version) FROM pgfeed.event"
                                " WHERE channel = $1",
                                1, params);
    assert_string_equal(types, "insert,insert,delete");
    free(types);

    pg_test_execf(c, "DROP TABLE public.%s; DROP ROLE %s; DROP ROLE %s", table, app, owner);
    free(owner);
    free(app);
    free(table);
}

static void test_publisher_and_reader_roles(void **state)
{
    PGconn *c = *state;
    char *publisher = name_of("publisher");
    char *reader = name_of("reader");
    char *ch = name_of("roles");
    pg_test_execf(c, "CREATE ROLE %s NOLOGIN IN ROLE pgfeed_publisher", publisher);
    pg_test_execf(c, "CREATE ROLE %s NOLOGIN IN ROLE pgfeed_reader", reader);
    const char *params[] = {ch};

    pg_test_execf(c, "SET SESSION AUTHORIZATION %s", publisher);
    assert_int_equal(pg_test_number(c, "SELECT pgfeed.publish($1, 't', '{}')", 1, params), 1);
    deny(c, "SELECT count(*) FROM pgfeed.event");
    deny_every_write(c);
    pg_test_exec(c, "RESET SESSION AUTHORIZATION");

    pg_test_execf(c, "SET SESSION AUTHORIZATION %s", reader);
    assert_int_equal(pg_test_number(c, "SELECT max(head) FROM pgfeed.read($1, 0, 10)", 1, params),
                     1);
    /* The head batch of channels nobody asked about before, exactly as pgfeed sends it:
     * a row per name (head, oldest, epoch), an absent channel as 0, 1, 0. */
    char names[256];
    snprintf(names, sizeof names, "{\"absent-%ld\",\"%s\"}", (long)getpid(), ch);
    const char *batch[] = {names};
    char sql[1024];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM (%s) b", db_query_sql[QUERY_READ_HEADS]);
    assert_int_equal(pg_test_number(c, sql, 1, batch), 2);
    snprintf(sql, sizeof sql,
             "SELECT string_agg(head || '/' || oldest || '/' || (epoch > 0), ',' ORDER BY head)"
             " FROM (%s) b",
             db_query_sql[QUERY_READ_HEADS]);
    char *heads = pg_test_value(c, sql, 1, batch);
    assert_string_equal(heads, "0/1/false,1/1/true");
    free(heads);
    deny(c, "SELECT pgfeed.publish('x', 't', '{}')");
    deny(c, "SELECT * FROM pgfeed.setting");
    deny_every_write(c);
    pg_test_exec(c, "RESET SESSION AUTHORIZATION");

    pg_test_execf(c, "DROP ROLE %s; DROP ROLE %s", publisher, reader);
    free(publisher);
    free(reader);
    free(ch);
}

static void test_publish_prefixes(void **state)
{
    PGconn *c = *state;
    char *publisher = name_of("prefixed");
    char *owner = name_of("prefix_owner");
    char *table = name_of("prefix_table");
    char allowed[128], other[128];
    snprintf(allowed, sizeof allowed, "sec-%ld-allowed:1", (long)getpid());
    snprintf(other, sizeof other, "sec-%ld-other", (long)getpid());
    pg_test_execf(c, "CREATE ROLE %s NOLOGIN IN ROLE pgfeed_publisher", publisher);
    pg_test_execf(c, "CREATE ROLE %s NOLOGIN IN ROLE pgfeed_publisher", owner);
    pg_test_execf(c, "CREATE TABLE public.%s (id int PRIMARY KEY, ch text)", table);
    pg_test_execf(c, "ALTER TABLE public.%s OWNER TO %s", table, owner);
    pg_test_execf(c, "SET SESSION AUTHORIZATION %s", owner);
    pg_test_execf(c, "SELECT pgfeed.track('public.%s', '{ch}')", table);
    pg_test_exec(c, "RESET SESSION AUTHORIZATION");
    /* Superusers (this test's own role, and the other tests') are exempt. */
    pg_test_execf(c,
                  "INSERT INTO pgfeed.publish_prefix VALUES ('%s', 'sec-%ld-allowed:'),"
                  " ('%s', 'sec-%ld-allowed:')",
                  publisher, (long)getpid(), owner, (long)getpid());

    const char *ok[] = {allowed}, *refused[] = {other};
    pg_test_execf(c, "SET SESSION AUTHORIZATION %s", publisher);
    assert_int_equal(pg_test_number(c, "SELECT pgfeed.publish($1, 't', '{}')", 1, ok), 1);
    pg_test_expect_error(c, "42501", "SELECT pgfeed.publish($1, 't', '{}')", 1, refused);
    pg_test_exec(c, "RESET SESSION AUTHORIZATION");

    /* A tracked table publishes under its owner's prefixes, whoever writes it. */
    pg_test_execf(c, "INSERT INTO public.%s VALUES (1, '%s')", table, allowed);
    char sql[512];
    snprintf(sql, sizeof sql, "INSERT INTO public.%s VALUES (2, '%s')", table, other);
    pg_test_expect_error(c, "42501", sql, 0, NULL);
    assert_int_equal(count_events(c, allowed), 2);
    assert_int_equal(count_events(c, other), 0);

    pg_test_execf(c, "DELETE FROM pgfeed.publish_prefix WHERE role IN ('%s', '%s')", publisher,
                  owner);
    pg_test_execf(c, "DROP TABLE public.%s; DROP ROLE %s; DROP ROLE %s", table, publisher, owner);
    free(publisher);
    free(owner);
    free(table);
}

/* ---- resets ---------------------------------------------------------------- */

static void expect_reset(PGconn *listener, const char *ch, const char *epoch)
{
    char payload[256], expected[256];
    assert_true(
        pg_test_wait_notify_on(listener, "pgfeed_reset", ch, 5000, payload, sizeof payload));
    snprintf(expected, sizeof expected, "%s %s", epoch, ch);
    assert_string_equal(payload, expected);
}

static void test_resets_are_announced_and_change_the_epoch(void **state)
{
    PGconn *c = *state;
    PGconn *listener = pg_test_connect();
    pg_test_exec(listener, "LISTEN pgfeed_reset");
    char *ch = name_of("reset");
    const char *params[] = {ch};
    char payload[256];
    pg_test_exec_params(c, "SELECT pgfeed.publish($1, 't', '{}') FROM generate_series(1, 4)", 1,
                        params);
    char *epoch = pg_test_value(c, "SELECT max(epoch) FROM pgfeed.read($1, 0, 1)", 1, params);
    assert_true(strtoll(epoch, NULL, 10) > 0);

    /* Pruning is announced on pgfeed_pruned, not as a reset. */
    pg_test_exec_params(c, "SELECT pgfeed.set_retention($1, 2, NULL)", 1, params);
    pg_test_exec(c, "SELECT pgfeed.prune()");
    assert_false(
        pg_test_wait_notify_on(listener, "pgfeed_reset", ch, 300, payload, sizeof payload));

    /* An event deleted by hand is. */
    pg_test_exec_params(c, "DELETE FROM pgfeed.event WHERE channel = $1 AND version = 3", 1,
                        params);
    expect_reset(listener, ch, epoch);

    /* A head moved back is a new incarnation. */
    pg_test_exec(c, "BEGIN");
    pg_test_exec_params(c, "DELETE FROM pgfeed.event WHERE channel = $1", 1, params);
    pg_test_exec_params(c, "UPDATE pgfeed.channel SET head = 0, oldest = 1 WHERE name = $1", 1,
                        params);
    pg_test_exec(c, "COMMIT");
    char *epoch2 = pg_test_value(c, "SELECT max(epoch) FROM pgfeed.read($1, 0, 1)", 1, params);
    assert_true(strtoll(epoch2, NULL, 10) > strtoll(epoch, NULL, 10));
    expect_reset(listener, ch, epoch);  /* the event deletions */
    expect_reset(listener, ch, epoch2); /* the head moved back */

    /* A channel deleted is epoch 0, and re-created a new one. */
    pg_test_exec_params(c, "DELETE FROM pgfeed.channel WHERE name = $1", 1, params);
    expect_reset(listener, ch, "0");
    assert_int_equal(pg_test_number(c, "SELECT max(epoch) FROM pgfeed.read($1, 0, 1)", 1, params),
                     0);
    pg_test_exec_params(c, "SELECT pgfeed.publish($1, 't', '{}')", 1, params);
    assert_true(pg_test_number(c, "SELECT max(epoch) FROM pgfeed.read($1, 0, 1)", 1, params) >
                strtoll(epoch2, NULL, 10));

    free(epoch);
    free(epoch2);
    free(ch);
    PQfinish(listener);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_search_path_hijack, pg_test_setup, pg_test_teardown),
        cmocka_unit_test_setup_teardown(test_app_role_publishes_through_trigger_only, pg_test_setup,
                                        pg_test_teardown),
        cmocka_unit_test_setup_teardown(test_publisher_and_reader_roles, pg_test_setup,
                                        pg_test_teardown),
        cmocka_unit_test_setup_teardown(test_publish_prefixes, pg_test_setup, pg_test_teardown),
        cmocka_unit_test_setup_teardown(test_resets_are_announced_and_change_the_epoch,
                                        pg_test_setup, pg_test_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
