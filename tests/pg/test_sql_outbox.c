/*
 * test_sql_outbox — publishing through the outbox (sql/outbox.sql).
 *
 * ENQUEUERS threads, each on its own connection, run transactions of one to
 * four pgfeed.enqueue calls over two channels with small sleeps between
 * (commits interleave), a share of them rolled back, while two sessions call
 * pgfeed.sequence with a small batch (so one transaction's events are split
 * over batches) and a reader pages through one channel checking that every
 * version it gets is its cursor + 1. At the end every committed event is in
 * pgfeed.event exactly once, each channel holds exactly versions 1..head, a
 * transaction's events of one channel have ascending versions in the order it
 * enqueued them, rolled-back ones are absent, and nothing of these channels
 * is left in the outbox.
 *
 * pgfeed processes of e2e tests running meanwhile call pgfeed.sequence on the
 * same database: that only adds a third sequencing session.
 *
 * Then what pgfeed.enqueue checks, as pgfeed.publish does: EXECUTE
 * (pgfeed_publisher), pgfeed.publish_prefix, the channel name and type with
 * publish's SQLSTATEs and messages; nobody but the owner writes the outbox;
 * and tracked tables with p_via => 'outbox' enqueue without making their
 * writers wait for each other. SET SESSION AUTHORIZATION switches roles
 * because publishing asks the session user.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "pg_test.h"

#define ENQUEUERS 6
#define TRANSACTIONS 120 /* per enqueuer */
#define MAX_PER_TRANSACTION 4
#define SEQUENCERS 2
#define SEQUENCE_BATCH "7"

struct enqueuer {
    int id;
    const char *channels[2];
    pthread_t thread;
    unsigned seed;
    long long committed;
    long long rolled_back;
    char error[512];
};

struct sequencer {
    const char *channels[2];
    pthread_t thread;
    long long moved;
    long long calls;
    char error[512];
};

struct reader {
    const char *channel;
    pthread_t thread;
    long long cursor;
    char error[512];
};

static atomic_bool enqueuers_done;
static atomic_bool sequencers_done;

static void sleep_us(long us)
{
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* One statement, parameters bound; false with the error recorded. */
static bool run(PGconn *conn, const char *sql, int n, const char *const *params, char *error,
                size_t size)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        snprintf(error, size, "%s: %s", sql, PQerrorMessage(conn));
    PQclear(res);
    return ok;
}

/*
 * Event data {"p": enqueuer, "t": transaction, "i": index in it, "c": committed?}:
 * "c" is what the enqueuer decided before it committed or rolled back, so the
 * end check can tell which rows must be there.
 */
static void *enqueuer_main(void *arg)
{
    struct enqueuer *e = arg;
    PGconn *conn = pg_test_thread_connect(e->error, sizeof e->error);
    if (!conn)
        return NULL;
    for (int t = 0; t < TRANSACTIONS && !e->error[0]; t++) {
        int count = 1 + rand_r(&e->seed) % MAX_PER_TRANSACTION;
        bool commit = rand_r(&e->seed) % 5 != 0;
        bool single = count == 1 && rand_r(&e->seed) % 2 == 0; /* autocommit */
        if (!single && !run(conn, "BEGIN", 0, NULL, e->error, sizeof e->error))
            break;
        for (int i = 0; i < count && !e->error[0]; i++) {
            char data[128];
            snprintf(data, sizeof data, "{\"p\": %d, \"t\": %d, \"i\": %d, \"c\": %s}", e->id, t, i,
                     single || commit ? "true" : "false");
            const char *params[] = {e->channels[rand_r(&e->seed) % 2], data};
            run(conn, "SELECT pgfeed.enqueue($1, 'outbox', $2::jsonb)", 2, params, e->error,
                sizeof e->error);
            sleep_us(rand_r(&e->seed) % 1000);
        }
        if (e->error[0])
            break;
        if (single) {
            e->committed++;
            continue;
        }
        if (!run(conn, commit ? "COMMIT" : "ROLLBACK", 0, NULL, e->error, sizeof e->error))
            break;
        if (commit)
            e->committed += count;
        else
            e->rolled_back += count;
    }
    PQfinish(conn);
    return NULL;
}

static void *sequencer_main(void *arg)
{
    struct sequencer *s = arg;
    PGconn *conn = pg_test_thread_connect(s->error, sizeof s->error);
    if (!conn)
        return NULL;
    while (!s->error[0]) {
        bool done = atomic_load(&enqueuers_done);
        PGresult *res = PQexec(conn, "SELECT pgfeed.sequence(" SEQUENCE_BATCH ")");
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            snprintf(s->error, sizeof s->error, "sequence: %s", PQerrorMessage(conn));
            PQclear(res);
            break;
        }
        long long moved = atoll(PQgetvalue(res, 0, 0));
        PQclear(res);
        s->moved += moved;
        s->calls++;
        /* Other sessions' rows may be queued too: done when none of ours is left. */
        if (done && moved == 0) {
            res = PQexecParams(conn, "SELECT count(*) FROM pgfeed.outbox WHERE channel IN ($1, $2)",
                               2, NULL, s->channels, NULL, NULL, 0);
            bool drained =
                PQresultStatus(res) == PGRES_TUPLES_OK && atoll(PQgetvalue(res, 0, 0)) == 0;
            PQclear(res);
            if (drained)
                break;
        }
        if (moved == 0)
            sleep_us(500);
    }
    PQfinish(conn);
    return NULL;
}

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    PGconn *conn = pg_test_thread_connect(r->error, sizeof r->error);
    if (!conn)
        return NULL;
    for (;;) {
        bool done = atomic_load(&sequencers_done);
        char after[32];
        snprintf(after, sizeof after, "%lld", r->cursor);
        const char *params[] = {r->channel, after};
        PGresult *res = PQexecParams(conn, "SELECT version FROM pgfeed.read($1, $2, 5)", 2, NULL,
                                     params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) < 1) {
            snprintf(r->error, sizeof r->error, "read: %s", PQerrorMessage(conn));
            PQclear(res);
            break;
        }
        bool empty = PQgetisnull(res, 0, 0);
        for (int i = 0; !empty && i < PQntuples(res) && !r->error[0]; i++) {
            long long v = atoll(PQgetvalue(res, i, 0));
            if (v != r->cursor + 1)
                snprintf(r->error, sizeof r->error, "after version %lld came %lld", r->cursor, v);
            r->cursor = v;
        }
        PQclear(res);
        if (r->error[0] || (done && empty))
            break;
        if (empty)
            sleep_us(300);
    }
    PQfinish(conn);
    return NULL;
}

static void test_concurrent_enqueue_and_sequence(void **state)
{
    PGconn *c = *state;
    char *a = pg_test_name("outbox-a"), *b = pg_test_name("outbox-b");
    static struct enqueuer enqueuers[ENQUEUERS];
    static struct sequencer sequencers[SEQUENCERS];
    static struct reader reader;
    unsigned seed = (unsigned)time(NULL);
    print_message("channels %s %s, seed %u\n", a, b, seed);
    atomic_store(&enqueuers_done, false);
    atomic_store(&sequencers_done, false);

    reader = (struct reader){.channel = a};
    assert_int_equal(pthread_create(&reader.thread, NULL, reader_main, &reader), 0);
    for (int i = 0; i < SEQUENCERS; i++) {
        sequencers[i] = (struct sequencer){.channels = {a, b}};
        assert_int_equal(
            pthread_create(&sequencers[i].thread, NULL, sequencer_main, &sequencers[i]), 0);
    }
    for (int i = 0; i < ENQUEUERS; i++) {
        enqueuers[i] = (struct enqueuer){.id = i, .channels = {a, b}, .seed = seed + i};
        assert_int_equal(pthread_create(&enqueuers[i].thread, NULL, enqueuer_main, &enqueuers[i]),
                         0);
    }
    for (int i = 0; i < ENQUEUERS; i++)
        pthread_join(enqueuers[i].thread, NULL);
    atomic_store(&enqueuers_done, true);
    for (int i = 0; i < SEQUENCERS; i++)
        pthread_join(sequencers[i].thread, NULL);
    atomic_store(&sequencers_done, true);
    pthread_join(reader.thread, NULL);

    long long committed = 0, rolled_back = 0;
    for (int i = 0; i < ENQUEUERS; i++) {
        if (enqueuers[i].error[0])
            fail_msg("enqueuer %d: %s", i, enqueuers[i].error);
        committed += enqueuers[i].committed;
        rolled_back += enqueuers[i].rolled_back;
    }
    for (int i = 0; i < SEQUENCERS; i++) {
        if (sequencers[i].error[0])
            fail_msg("sequencer %d: %s", i, sequencers[i].error);
        print_message("sequencer %d: %lld moved in %lld calls\n", i, sequencers[i].moved,
                      sequencers[i].calls);
    }
    if (reader.error[0])
        fail_msg("reader: %s", reader.error);
    print_message("%lld committed, %lld rolled back\n", committed, rolled_back);
    assert_true(rolled_back > 0);

    const char *both[] = {a, b};
    /* Nothing of ours waits (an e2e pgfeed may have sequenced some of it: that is fine). */
    assert_int_equal(
        pg_test_number(c, "SELECT count(*) FROM pgfeed.outbox WHERE channel IN ($1, $2)", 2, both),
        0);
    assert_int_equal(
        pg_test_number(c, "SELECT count(*) FROM pgfeed.event WHERE channel IN ($1, $2)", 2, both),
        committed);
    /* No rolled-back event; each committed one once. */
    assert_int_equal(pg_test_number(c,
                                    "SELECT count(*) FROM pgfeed.event WHERE channel IN ($1, $2)"
                                    " AND NOT (data->>'c')::boolean",
                                    2, both),
                     0);
    assert_int_equal(pg_test_number(c,
                                    "SELECT count(*) FROM (SELECT data->'p', data->'t', data->'i'"
                                    " FROM pgfeed.event WHERE channel IN ($1, $2)"
                                    " GROUP BY 1, 2, 3 HAVING count(*) > 1) d",
                                    2, both),
                     0);
    /* Versions exactly 1..head per channel; the reader got to the head of a. */
    assert_int_equal(pg_test_number(c,
                                    "SELECT count(*) FROM pgfeed.channel ch WHERE name IN ($1, $2)"
                                    " AND (head <> (SELECT count(*) FROM pgfeed.event e"
                                    "               WHERE e.channel = ch.name)"
                                    "   OR head <> (SELECT max(version) FROM pgfeed.event e"
                                    "               WHERE e.channel = ch.name))",
                                    2, both),
                     0);
    const char *pa[] = {a};
    assert_int_equal(pg_test_number(c, "SELECT head FROM pgfeed.read($1, 0, 0)", 1, pa),
                     reader.cursor);
    /* A transaction's events of one channel: versions ascend with the enqueue order. */
    assert_int_equal(
        pg_test_number(
            c,
            "SELECT count(*) FROM (SELECT (data->>'i')::int - lag((data->>'i')::int)"
            "   OVER (PARTITION BY channel, data->'p', data->'t' ORDER BY version) AS step"
            " FROM pgfeed.event WHERE channel IN ($1, $2)) s WHERE step <= 0",
            2, both),
        0);
    /* Times follow versions. */
    assert_int_equal(pg_test_number(c,
                                    "SELECT count(*) FROM (SELECT time < lag(time) OVER"
                                    " (PARTITION BY channel ORDER BY version) AS back"
                                    " FROM pgfeed.event WHERE channel IN ($1, $2)) t WHERE back",
                                    2, both),
                     0);
    free(a);
    free(b);
}

/* One sequence batch: one NOTIFY per channel naming its last version; a rolled-back batch leaves
 * its rows queued; an empty outbox moves nothing; a bad batch size is refused. */
static void test_sequence_batch(void **state)
{
    PGconn *c = *state;
    PGconn *listener = pg_test_connect();
    pg_test_exec(listener, "LISTEN pgfeed");
    char *ch = pg_test_name("outbox-batch");
    const char *p[] = {ch};
    /* Our own lock on the sequencer: an e2e pgfeed cannot take these rows meanwhile. */
    pg_test_exec(c, "BEGIN; SELECT pg_advisory_xact_lock(1885824613, 3)");
    pg_test_exec_params(c,
                        "SELECT pgfeed.enqueue($1, 't', jsonb_build_object('n', g))"
                        " FROM generate_series(1, 5) g",
                        1, p);
    pg_test_exec(c, "SAVEPOINT s");
    assert_int_equal(pg_test_number(c, "SELECT pgfeed.sequence(1000)", 0, NULL) >= 5, 1);
    pg_test_exec(c, "ROLLBACK TO SAVEPOINT s");
    assert_int_equal(
        pg_test_number(c, "SELECT count(*) FROM pgfeed.outbox WHERE channel = $1", 1, p), 5);
    pg_test_exec(c, "COMMIT");
    char payload[256], expected[256];
    assert_false(pg_test_wait_notify(listener, ch, 300, payload, sizeof payload));

    pg_test_exec(c, "SELECT pgfeed.sequence(100000)");
    assert_true(pg_test_wait_notify(listener, ch, 5000, payload, sizeof payload));
    snprintf(expected, sizeof expected, "5 %s", ch);
    assert_string_equal(payload, expected);
    assert_false(pg_test_wait_notify(listener, ch, 300, payload, sizeof payload));
    char *data =
        pg_test_value(c,
                      "SELECT string_agg(version || ':' || (data->>'n'), ' ' ORDER BY version)"
                      " FROM pgfeed.event WHERE channel = $1",
                      1, p);
    assert_string_equal(data, "1:1 2:2 3:3 4:4 5:5");
    free(data);

    pg_test_expect_error(c, "22023", "SELECT pgfeed.sequence(0)", 0, NULL);
    pg_test_expect_error(c, "22023", "SELECT pgfeed.sequence(NULL)", 0, NULL);
    pg_test_expect_error(c, "22023", "SELECT pgfeed.sequence(100001)", 0, NULL);
    PQfinish(listener);
    free(ch);
}

/* The message and SQLSTATE a statement fails with, as "SQLSTATE message". */
static char *failure(PGconn *c, const char *sql, int n, const char *const *params)
{
    PGresult *res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
    char *out = malloc(1024);
    assert_non_null(out);
    snprintf(out, 1024, "%s %s", PQresultErrorField(res, PG_DIAG_SQLSTATE),
             PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
    PQclear(res);
    return out;
}

static void test_bad_input_as_publish(void **state)
{
    PGconn *c = *state;
    char long_type[140];
    memset(long_type, 'x', 129);
    long_type[129] = '\0';
    const char *cases[][2] = {
        {"_private", "t"}, {NULL, "t"},  {"", "t"},         {"has space", "t"}, {"ok", "a\nb"},
        {"ok", ""},        {"ok", NULL}, {"ok", long_type}, {"_bad", "a\nb"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *params[] = {cases[i][0], cases[i][1]};
        char *published = failure(c, "SELECT pgfeed.publish($1, $2, '{}')", 2, params);
        char *enqueued = failure(c, "SELECT pgfeed.enqueue($1, $2, '{}')", 2, params);
        assert_string_equal(enqueued, published);
        assert_memory_equal(enqueued, "22023 ", 6);
        free(published);
        free(enqueued);
    }
    /* Nothing reached the outbox. */
    assert_int_equal(pg_test_number(c,
                                    "SELECT count(*) FROM pgfeed.outbox WHERE channel IN"
                                    " ('_private', '', 'has space', '_bad')"
                                    " OR (channel = 'ok' AND type IN ('a\nb', ''))",
                                    0, NULL),
                     0);
}

static void test_who_may_enqueue(void **state)
{
    PGconn *c = *state;
    long pid = (long)getpid();
    pg_test_execf(
        c,
        "CREATE ROLE ob_%1$ld_outsider NOLOGIN; CREATE ROLE ob_%1$ld_publisher NOLOGIN IN ROLE "
        "pgfeed_publisher; CREATE ROLE ob_%1$ld_reader NOLOGIN IN ROLE pgfeed_reader",
        pid);
    char allowed[96], other[96];
    snprintf(allowed, sizeof allowed, "ob-%ld-allowed:1", pid);
    snprintf(other, sizeof other, "ob-%ld-other", pid);
    const char *ok[] = {allowed}, *refused[] = {other};
    static const char ENQUEUE[] = "SELECT pgfeed.enqueue($1, 't', '{}')";
    static const char INSERT[] =
        "INSERT INTO pgfeed.outbox (channel, type, data) VALUES ($1, 't', '{}')";

    /* Without pgfeed_publisher: no EXECUTE; no sequence either. */
    pg_test_execf(c, "SET SESSION AUTHORIZATION ob_%ld_outsider", pid);
    pg_test_expect_error(c, "42501", ENQUEUE, 1, ok);
    pg_test_expect_error(c, "42501", "SELECT pgfeed.sequence(1)", 0, NULL);
    pg_test_exec(c, "RESET SESSION AUTHORIZATION");

    /* The responder's role sequences but cannot write the outbox itself. */
    pg_test_execf(c, "SET SESSION AUTHORIZATION ob_%ld_reader", pid);
    pg_test_expect_error(c, "42501", INSERT, 1, ok);
    pg_test_expect_error(c, "42501", ENQUEUE, 1, ok);
    pg_test_exec(c, "SELECT pgfeed.sequence(1)");
    pg_test_exec(c, "RESET SESSION AUTHORIZATION");

    /* A publisher enqueues through the function only, within its prefixes. */
    pg_test_execf(
        c, "INSERT INTO pgfeed.publish_prefix VALUES ('ob_%1$ld_publisher', 'ob-%1$ld-allowed:')",
        pid);
    pg_test_execf(c, "SET SESSION AUTHORIZATION ob_%ld_publisher", pid);
    pg_test_exec_params(c, ENQUEUE, 1, ok);
    pg_test_expect_error(c, "42501", ENQUEUE, 1, refused);
    pg_test_expect_error(c, "42501", INSERT, 1, ok);
    pg_test_expect_error(c, "42501", "DELETE FROM pgfeed.outbox", 0, NULL);
    pg_test_exec(c, "RESET SESSION AUTHORIZATION");
    pg_test_execf(c, "SET SESSION AUTHORIZATION ob_%ld_publisher; SET ROLE pgfeed_publisher", pid);
    pg_test_expect_error(c, "42501", ENQUEUE, 1, refused);
    pg_test_exec(c, "RESET ROLE; RESET SESSION AUTHORIZATION");

    assert_int_equal(
        pg_test_number(c, "SELECT count(*) FROM pgfeed.outbox WHERE channel = $1", 1, refused), 0);
    pg_test_execf(
        c,
        "DELETE FROM pgfeed.publish_prefix WHERE role = 'ob_%1$ld_publisher';"
        "DROP ROLE ob_%1$ld_outsider; DROP ROLE ob_%1$ld_publisher; DROP ROLE ob_%1$ld_reader",
        pid);
}

/*
 * A table tracked with p_via => 'outbox': a writer whose transaction is still
 * open does not make the next writer of the same channel wait (with publish
 * it would, on the channel row), and after both commit the sequencer gives
 * their rows versions in commit-visible order.
 */
static void test_track_via_outbox(void **state)
{
    PGconn *c = *state;
    char table[64];
    snprintf(table, sizeof table, "ob_%ld_orders", (long)getpid());
    char *ch = pg_test_name("outbox-track");
    pg_test_execf(c, "CREATE TABLE public.%s (id int PRIMARY KEY, note text)", table);
    pg_test_expect_error(c, "22023", "SELECT pgfeed.track('pg_class', 'x', 'sideways')", 0, NULL);
    pg_test_execf(c, "SELECT pgfeed.track('public.%s', '%s', p_via => 'outbox')", table, ch);

    PGconn *first = pg_test_connect();
    pg_test_execf(first, "BEGIN; INSERT INTO public.%s VALUES (1, 'first')", table);
    /* Would block behind `first` with p_via => 'publish'; a statement_timeout says so. */
    pg_test_execf(
        c,
        "SET statement_timeout = '3s'; INSERT INTO public.%s VALUES (2, 'second');"
        "UPDATE public.%s SET note = 'second, changed' WHERE id = 2; RESET statement_timeout",
        table, table);
    /* Only what is committed is sequenced: the second writer's rows, first. */
    pg_test_exec(c, "SELECT pgfeed.sequence(1000)");
    pg_test_exec(first, "COMMIT");
    PQfinish(first);
    pg_test_execf(c, "DELETE FROM public.%s WHERE id = 1", table);
    pg_test_exec(c, "SELECT pgfeed.sequence(1000)");

    const char *p[] = {ch};
    char *events = pg_test_value(c,
                                 "SELECT string_agg(version || ' ' || type || ' ' ||"
                                 " coalesce(data->'new'->>'note', data->'old'->>'note'), '; '"
                                 " ORDER BY version) FROM pgfeed.event WHERE channel = $1",
                                 1, p);
    assert_string_equal(events, "1 insert second; 2 update second, changed; 3 insert first; "
                                "4 delete first");
    free(events);
    /* The trigger says where it goes; tracking again with the default publishes again. */
    pg_test_execf(c, "SELECT pgfeed.track('public.%s', '%s')", table, ch);
    pg_test_execf(c, "INSERT INTO public.%s VALUES (3, 'published')", table);
    assert_int_equal(pg_test_number(c, "SELECT head FROM pgfeed.read($1, 0, 0)", 1, p), 5);
    pg_test_execf(c, "DROP TABLE public.%s", table);
    free(ch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_enqueue_and_sequence),
        cmocka_unit_test(test_sequence_batch),
        cmocka_unit_test(test_bad_input_as_publish),
        cmocka_unit_test(test_who_may_enqueue),
        cmocka_unit_test(test_track_via_outbox),
    };
    return cmocka_run_group_tests(tests, pg_test_setup, pg_test_teardown);
}
