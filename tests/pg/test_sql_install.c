/*
 * test_sql_install — sql/install.sql is safe to run again and again, and from
 * several sessions at once: nothing changes the second time, concurrent
 * installs into a fresh database produce exactly one install, and a database
 * with a newer schema is refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "pg_test.h"

#define INSTALLERS 4

/*
 * Everything install.sql defines, as one md5: tables, columns with defaults,
 * constraints, indexes, functions with their source, comments, and the rows of
 * pgfeed.setting. With $1 true, object ids are included too, which shows that
 * objects were kept rather than dropped and re-created.
 */
static const char FINGERPRINT_SQL[] =
    "WITH obj(line) AS ("
    " SELECT format('rel %s %s %s %s', c.relname, c.relkind, array_to_string(c.reloptions, ','),"
    "               obj_description(c.oid, 'pg_class')) || CASE WHEN $1 THEN ' ' || c.oid ELSE '' "
    "END"
    "   FROM pg_class c WHERE c.relnamespace = 'pgfeed'::regnamespace"
    " UNION ALL"
    " SELECT format('col %s.%s %s %s %s %s', c.relname, a.attname,"
    "               format_type(a.atttypid, a.atttypmod), a.attnotnull,"
    "               pg_get_expr(d.adbin, d.adrelid), col_description(c.oid, a.attnum))"
    "   FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
    "   LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
    "  WHERE c.relnamespace = 'pgfeed'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped"
    " UNION ALL"
    " SELECT format('con %s %s', conname, pg_get_constraintdef(oid))"
    "        || CASE WHEN $1 THEN ' ' || oid ELSE '' END"
    "   FROM pg_constraint WHERE connamespace = 'pgfeed'::regnamespace"
    " UNION ALL"
    " SELECT format('fn %s %s', pg_get_functiondef(p.oid), obj_description(p.oid, 'pg_proc'))"
    "        || CASE WHEN $1 THEN ' ' || p.oid ELSE '' END"
    "   FROM pg_proc p WHERE p.pronamespace = 'pgfeed'::regnamespace"
    " UNION ALL"
    " SELECT format('ns %s', obj_description('pgfeed'::regnamespace, 'pg_namespace'))"
    " UNION ALL"
    " SELECT format('setting %s %s', keep_events, keep_for) FROM pgfeed.setting"
    " UNION ALL"
    " SELECT format('version %s %s', version, description) FROM pgfeed.schema_version)"
    "SELECT count(*) || ' ' || md5(string_agg(line, E'\\n' ORDER BY line)) FROM obj";

static char *fingerprint(PGconn *c, bool with_oids)
{
    const char *params[] = {with_oids ? "true" : "false"};
    return pg_test_value(c, FINGERPRINT_SQL, 1, params);
}

/* Starts psql on sql/<file> against `database` (NULL: PGDATABASE); returns its pid. */
static pid_t start_psql_file(const char *database, const char *file)
{
    const char *source = getenv("PGFEED_SOURCE_DIR");
    assert_non_null(source);
    char script[4096];
    snprintf(script, sizeof script, "%s/sql/%s", source, file);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (database != NULL) {
            setenv("PGDATABASE", database, 1);
        }
        execlp("psql", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-o", "/dev/null", "-f", script,
               (char *)NULL);
        _exit(127);
    }
    return pid;
}

static pid_t start_install(const char *database)
{
    return start_psql_file(database, "install.sql");
}

/* psql's exit status: 0 success, 3 an error in the script. */
static int finish_install(pid_t pid)
{
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static int install(const char *database)
{
    return finish_install(start_install(database));
}

static void test_install_twice_changes_nothing(void **state)
{
    PGconn *conn = *state;
    char *before = fingerprint(conn, true);
    char *version = pg_test_value(conn, "SELECT max(version) FROM pgfeed.schema_version", 0, NULL);
    assert_int_equal(install(NULL), 0);
    assert_int_equal(install(NULL), 0);
    char *after = fingerprint(conn, true);
    assert_string_equal(after, before);
    char *version_after =
        pg_test_value(conn, "SELECT max(version) FROM pgfeed.schema_version", 0, NULL);
    assert_string_equal(version_after, version);
    free(before);
    free(after);
    free(version);
    free(version_after);
}

static void test_everything_commented(void **state)
{
    PGconn *conn = *state;
    char *missing =
        pg_test_value(conn,
                      "SELECT string_agg(what, ', ') FROM ("
                      " SELECT p.oid::regprocedure::text FROM pg_proc p"
                      "  WHERE p.pronamespace = 'pgfeed'::regnamespace AND obj_description(p.oid, "
                      "'pg_proc') IS NULL"
                      " UNION ALL"
                      " SELECT c.oid::regclass::text FROM pg_class c"
                      "  WHERE c.relnamespace = 'pgfeed'::regnamespace AND c.relkind = 'r'"
                      "    AND obj_description(c.oid, 'pg_class') IS NULL) s(what)",
                      0, NULL);
    if (missing != NULL) {
        fail_msg("objects without COMMENT ON: %s", missing);
    }
}

static PGconn *connect_to(const char *database)
{
    char conninfo[256];
    snprintf(conninfo, sizeof conninfo, "dbname=%s", database);
    PGconn *c = PQconnectdb(conninfo);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    return c;
}

static void recreate_database(PGconn *conn, const char *database)
{
    char sql[256];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS \"%s\"", database);
    pg_test_exec(conn, sql);
    snprintf(sql, sizeof sql, "CREATE DATABASE \"%s\"", database);
    pg_test_exec(conn, sql);
}

static void drop_database(PGconn *conn, const char *database)
{
    char sql[256];
    snprintf(sql, sizeof sql, "DROP DATABASE \"%s\"", database);
    pg_test_exec(conn, sql);
}

static void test_concurrent_installs(void **state)
{
    PGconn *conn = *state;
    char *database = pg_test_name("pgfeed_install_race");
    recreate_database(conn, database);

    pid_t pids[INSTALLERS];
    for (int i = 0; i < INSTALLERS; i++) {
        pids[i] = start_install(database);
    }
    for (int i = 0; i < INSTALLERS; i++) {
        assert_int_equal(finish_install(pids[i]), 0);
    }

    PGconn *fresh = connect_to(database);
    assert_int_equal(pg_test_number(fresh,
                                    "SELECT count(*) - count(DISTINCT version) "
                                    "FROM pgfeed.schema_version",
                                    0, NULL),
                     0);
    char *expected = fingerprint(conn, false);
    char *got = fingerprint(fresh, false);
    /* schema_version rows match too: the same migrations, each applied once. */
    assert_string_equal(got, expected);
    free(expected);
    free(got);
    PQfinish(fresh);
    drop_database(conn, database);
    free(database);
}

static void test_newer_schema_refused(void **state)
{
    PGconn *conn = *state;
    char *database = pg_test_name("pgfeed_install_newer");
    recreate_database(conn, database);
    assert_int_equal(install(database), 0);

    PGconn *db = connect_to(database);
    pg_test_exec(db, "INSERT INTO pgfeed.schema_version (version, description) "
                     "VALUES (9999, 'from the future')");
    pg_test_exec(db, "COMMENT ON FUNCTION pgfeed.prune() IS 'newer'");
    assert_int_equal(install(database), 3);
    /* The refused install changed nothing. */
    char *comment =
        pg_test_value(db, "SELECT obj_description('pgfeed.prune()'::regprocedure)", 0, NULL);
    assert_string_equal(comment, "newer");
    free(comment);
    PQfinish(db);
    drop_database(conn, database);
    free(database);
}

/* An upgraded database ends as a fresh install would (only the migrations'
 * installed_at may differ, and the fingerprint leaves times out); then it goes. */
static void finish_upgrade(PGconn *conn, PGconn *db, char *database)
{
    char *expected = fingerprint(conn, false);
    char *got = fingerprint(db, false);
    assert_string_equal(got, expected);
    free(expected);
    free(got);
    PQfinish(db);
    drop_database(conn, database);
    free(database);
}

/* A database installed before migration 0004 (schema version 3: events had a
 * foreign key to their channel, channels five CHECK constraints) upgrades in
 * place: the key goes, the checks become one and a trigger, the events stay,
 * and the result is what a fresh install makes. */
static void test_upgrade_from_schema_3(void **state)
{
    PGconn *conn = *state;
    char *database = pg_test_name("pgfeed_install_upgrade");
    recreate_database(conn, database);
    assert_int_equal(install(database), 0);
    PGconn *db = connect_to(database);
    /* Back to what a version-3 install looked like. */
    pg_test_exec(db, "ALTER TABLE pgfeed.event ADD CONSTRAINT event_channel_fkey"
                     " FOREIGN KEY (channel) REFERENCES pgfeed.channel (name);"
                     "ALTER TABLE pgfeed.channel DROP CONSTRAINT channel_head_valid,"
                     " ADD CONSTRAINT channel_name_valid"
                     "  CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$'),"
                     " ADD CONSTRAINT channel_head_check CHECK (head >= 0),"
                     " ADD CONSTRAINT channel_keep_events_check CHECK (keep_events >= 0),"
                     " ADD CONSTRAINT channel_keep_for_check CHECK (keep_for > interval '0'),"
                     " ADD CONSTRAINT channel_oldest_valid CHECK (oldest BETWEEN 1 AND head + 1);"
                     "ALTER TABLE pgfeed.event DROP CONSTRAINT event_valid,"
                     " ADD CONSTRAINT event_version_check CHECK (version >= 1),"
                     " ADD CONSTRAINT event_type_check CHECK (type <> '' AND length(type) <= 128);"
                     "DROP TRIGGER pgfeed_channel_check ON pgfeed.channel;"
                     "DELETE FROM pgfeed.schema_version WHERE version = 4;"
                     "COMMENT ON TABLE pgfeed.event IS 'One published event.'");
    pg_test_exec(db, "SELECT pgfeed.publish('old', 't', '{}'), pgfeed.publish('old', 't', '{}')");

    assert_int_equal(install(database), 0);
    assert_int_equal(pg_test_number(db,
                                    "SELECT count(*) FROM pg_constraint"
                                    " WHERE conrelid = 'pgfeed.event'::regclass AND contype = 'f'",
                                    0, NULL),
                     0);
    assert_int_equal(pg_test_number(db, "SELECT max(version) FROM pgfeed.schema_version", 0, NULL),
                     5);
    assert_int_equal(pg_test_number(db, "SELECT pgfeed.publish('old', 't', '{}')", 0, NULL), 3);
    assert_int_equal(
        pg_test_number(db, "SELECT count(*) FROM pgfeed.event WHERE channel = 'old'", 0, NULL), 3);
    pg_test_exec(db, "DELETE FROM pgfeed.event WHERE channel = 'old'");
    finish_upgrade(conn, db, database);
}

/* A database of schema version 4 (before the outbox: no pgfeed.outbox, enqueue or
 * sequence, pgfeed.track without p_via) upgrades in place, keeps its events and a
 * table tracked then, and ends as a fresh install. */
static void test_upgrade_from_schema_4(void **state)
{
    PGconn *conn = *state;
    char *database = pg_test_name("pgfeed_install_upgrade4");
    recreate_database(conn, database);
    assert_int_equal(install(database), 0);
    PGconn *db = connect_to(database);
    pg_test_exec(db,
                 "DROP FUNCTION pgfeed.enqueue(text, text, jsonb);"
                 "DROP FUNCTION pgfeed.sequence(integer);"
                 "DROP FUNCTION pgfeed.track(regclass, text, text);"
                 "CREATE FUNCTION pgfeed.track(p_table regclass, p_channel_template text)"
                 " RETURNS void LANGUAGE sql AS 'SELECT NULL::void';"
                 "DROP TABLE pgfeed.outbox;"
                 "DELETE FROM pgfeed.schema_version WHERE version = 5;"
                 "CREATE TABLE public.tracked (id int PRIMARY KEY);"
                 "CREATE TRIGGER pgfeed_track AFTER INSERT OR UPDATE OR DELETE ON public.tracked"
                 " FOR EACH ROW EXECUTE FUNCTION pgfeed.track_trigger('old4')");
    pg_test_exec(db,
                 "SELECT pgfeed.publish('old4', 't', '{}'); INSERT INTO public.tracked VALUES (1)");

    assert_int_equal(install(database), 0);
    assert_int_equal(pg_test_number(db, "SELECT max(version) FROM pgfeed.schema_version", 0, NULL),
                     5);
    pg_test_exec(db, "INSERT INTO public.tracked VALUES (2);"
                     "SELECT pgfeed.enqueue('old4', 't', '{}');"
                     "SELECT pgfeed.sequence(10)");
    assert_int_equal(pg_test_number(db, "SELECT head FROM pgfeed.read('old4', 0, 0)", 0, NULL), 4);
    pg_test_exec(db, "DROP TABLE public.tracked; DELETE FROM pgfeed.channel");
    finish_upgrade(conn, db, database);
}

/* The default pgfeed.authorize denies; the application's own survives every re-install;
 * the example in sql/authorize.sql does what its comment says. */
static void test_authorize_belongs_to_the_application(void **state)
{
    PGconn *conn = *state;
    char *database = pg_test_name("pgfeed_install_authorize");
    recreate_database(conn, database);
    assert_int_equal(install(database), 0);
    PGconn *db = connect_to(database);
    char *v = pg_test_value(db, "SELECT pgfeed.authorize('alice', 'user:alice')::text", 0, NULL);
    assert_string_equal(v, "false");
    free(v);

    pg_test_exec(db, "CREATE OR REPLACE FUNCTION pgfeed.authorize(principal text, channel text) "
                     "RETURNS boolean LANGUAGE sql AS $$ SELECT principal = 'alice' $$");
    assert_int_equal(install(database), 0);
    v = pg_test_value(db, "SELECT pgfeed.authorize('alice', 'x')::text", 0, NULL);
    assert_string_equal(v, "true");
    free(v);

    pg_test_exec(db, "CREATE TABLE public.team_member (team_id text, username text, "
                     "PRIMARY KEY (team_id, username));"
                     "INSERT INTO public.team_member VALUES ('7', 'alice')");
    assert_int_equal(finish_install(start_psql_file(database, "authorize.sql")), 0);
    const char *cases[][3] = {
        {"alice", "team:7", "true"},   {"alice", "team:7:chat", "true"},
        {"alice", "team:77", "false"}, {"bob", "team:7", "false"},
        {"alice", "team:8", "false"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *params[] = {cases[i][0], cases[i][1]};
        v = pg_test_value(db, "SELECT pgfeed.authorize($1, $2)::text", 2, params);
        assert_string_equal(v, cases[i][2]);
        free(v);
    }
    PQfinish(db);
    drop_database(conn, database);
    free(database);
}

/*
 * TRUNCATE of the channels takes their events with it, and the events queued
 * in the outbox, as the foreign key of
 * schema version 3 once made it (it refused TRUNCATE pgfeed.channel alone):
 * a channel re-created after it publishes from version 1 again instead of
 * colliding with its predecessor's versions. In a database of its own, since
 * TRUNCATE locks out every publisher of the shared one.
 */
static void test_truncated_channels_take_their_events(void **state)
{
    PGconn *conn = *state;
    char *database = pg_test_name("pgfeed_install_truncate");
    recreate_database(conn, database);
    assert_int_equal(install(database), 0);
    PGconn *db = connect_to(database);
    pg_test_exec(db, "SELECT pgfeed.publish('orders', 't', '{}') FROM generate_series(1, 3)");
    /* Queued for the channels being truncated: it goes with them (sql/reset.sql says why). */
    pg_test_exec(db, "SELECT pgfeed.enqueue('orders', 'queued', '{}')");
    pg_test_exec(db, "TRUNCATE pgfeed.channel");
    assert_int_equal(pg_test_number(db, "SELECT count(*) FROM pgfeed.event", 0, NULL), 0);
    assert_int_equal(pg_test_number(db, "SELECT count(*) FROM pgfeed.outbox", 0, NULL), 0);
    assert_int_equal(pg_test_number(db, "SELECT pgfeed.publish('orders', 't', '{}')", 0, NULL), 1);
    assert_int_equal(pg_test_number(db, "SELECT pgfeed.sequence(10)", 0, NULL), 0);
    PQfinish(db);
    drop_database(conn, database);
    free(database);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_install_twice_changes_nothing),
        cmocka_unit_test(test_everything_commented),
        cmocka_unit_test(test_concurrent_installs),
        cmocka_unit_test(test_newer_schema_refused),
        cmocka_unit_test(test_authorize_belongs_to_the_application),
        cmocka_unit_test(test_upgrade_from_schema_3),
        cmocka_unit_test(test_upgrade_from_schema_4),
        cmocka_unit_test(test_truncated_channels_take_their_events),
    };
    return cmocka_run_group_tests(tests, pg_test_setup, pg_test_teardown);
}
