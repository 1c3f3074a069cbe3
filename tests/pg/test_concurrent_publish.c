/*
 * test_concurrent_publish — versions become visible in version order.
 *
 * The property pgfeed exists for: a reader that pages through a channel with
 * pgfeed.read(channel, cursor, limit) and advances its cursor to the last
 * version it got sees every committed event exactly once. With versions from a
 * sequence it would not: version 11 can commit before 10, the reader moves
 * past 10 and never sees it (see DESIGN.md).
 *
 * PUBLISHERS threads, each on its own connection, publish to ONE channel:
 * single autocommitted publishes, autocommitted batches (pgfeed.publish_many,
 * whose versions must come back consecutive), and transactions of several
 * publishes or of one batch with small random sleeps in between (so commits
 * interleave), a share of them rolled back. Meanwhile READERS threads poll and check, on every
 * page, that each version is exactly cursor + 1. At the end every reader must have seen each
 * committed event once and no rolled-back one, and the committed versions must be exactly 1..head.
 *
 * cmocka's assertions may only run on the test's own thread, so the threads
 * record their first error and the main thread asserts.
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
#include <cmocka.h>
#include <json-c/json.h>

#include "pg_test.h"
#include "xalloc.h"

#define PUBLISHERS 8
#define TRANSACTIONS 150 /* per publisher */
#define MAX_PER_TRANSACTION 4
#define MAX_SEQ (TRANSACTIONS * MAX_PER_TRANSACTION)
#define READERS 2

struct publisher {
    int id;
    char *channel;
    pthread_t thread;
    unsigned seed;
    bool committed[MAX_SEQ]; /* by seq, the publisher's count of attempts */
    long long *versions;     /* versions of committed events */
    int nversions;
    long long rolled_back_count;
    char error[512];
};

struct reader {
    int id;
    char *channel;
    pthread_t thread;
    unsigned seed;
    int max_limit;
    unsigned char seen[PUBLISHERS][MAX_SEQ];
    long long cursor;
    long long polls;
    char error[512];
};

static atomic_bool publishers_done;

static void sleep_us(long us)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = us * 1000};
    nanosleep(&ts, NULL);
}

/* Runs one statement; on failure records the error and returns false. */
static bool exec_ok(PGconn *conn, const char *sql, char *error, size_t size)
{
    PGresult *res = PQexec(conn, sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok) {
        snprintf(error, size, "%s: %s", sql, PQerrorMessage(conn));
    }
    PQclear(res);
    return ok;
}

/* Publishes event seq of publisher p; returns its version or -1. */
static long long publish(struct publisher *p, PGconn *conn, int seq)
{
    char data[64], type[16];
    snprintf(data, sizeof data, "{\"p\": %d, \"s\": %d}", p->id, seq);
    snprintf(type, sizeof type, "p%d", p->id);
    const char *params[] = {p->channel, type, data};
    PGresult *res = PQexecParams(conn, "SELECT pgfeed.publish($1, $2, $3::jsonb)", 3, NULL, params,
                                 NULL, NULL, 0);
    long long version = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        version = atoll(PQgetvalue(res, 0, 0));
    } else {
        snprintf(p->error, sizeof p->error, "publish: %s", PQerrorMessage(conn));
    }
    PQclear(res);
    return version;
}

/* Publishes events seq .. seq + count - 1 of publisher p as one batch into
 * versions; returns false (with p->error) unless they are consecutive. */
static bool publish_batch(struct publisher *p, PGconn *conn, int seq, int count,
                          long long *versions)
{
    char type[16], id[16], first[16], last[16];
    snprintf(type, sizeof type, "p%d", p->id);
    snprintf(id, sizeof id, "%d", p->id);
    snprintf(first, sizeof first, "%d", seq);
    snprintf(last, sizeof last, "%d", seq + count - 1);
    const char *params[] = {p->channel, type, id, first, last};
    PGresult *res = PQexecParams(
        conn,
        "SELECT v FROM pgfeed.publish_many($1, $2, (SELECT array_agg(jsonb_build_object("
        "'p', $3::int, 's', s) ORDER BY s) FROM generate_series($4::int, $5::int) s)) v",
        5, NULL, params, NULL, NULL, 0);
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == count;
    if (!ok) {
        snprintf(p->error, sizeof p->error, "publish_many: %s", PQerrorMessage(conn));
    }
    for (int i = 0; ok && i < count; i++) {
        versions[i] = atoll(PQgetvalue(res, i, 0));
        if (i > 0 && versions[i] != versions[i - 1] + 1) {
            snprintf(p->error, sizeof p->error, "publish_many returned %lld after %lld",
                     versions[i], versions[i - 1]);
            ok = false;
        }
    }
    PQclear(res);
    return ok;
}

static void *publisher_main(void *arg)
{
    struct publisher *p = arg;
    PGconn *conn = pg_test_thread_connect(p->error, sizeof p->error);
    if (conn == NULL) {
        return NULL;
    }
    p->versions = xcalloc(MAX_SEQ, sizeof *p->versions);
    int seq = 0;
    for (int t = 0; t < TRANSACTIONS && p->error[0] == '\0'; t++) {
        /* 0-2 single, 3 batch, 4-7 committed transaction, 8-9 rolled back. */
        int kind = rand_r(&p->seed) % 10;
        if (kind < 3) {
            long long version = publish(p, conn, seq);
            if (version < 0) {
                break;
            }
            p->committed[seq++] = true;
            p->versions[p->nversions++] = version;
            continue;
        }
        int count = 1 + rand_r(&p->seed) % MAX_PER_TRANSACTION;
        long long versions[MAX_PER_TRANSACTION];
        int first_seq = seq;
        if (kind == 3) {
            if (!publish_batch(p, conn, seq, count, versions)) {
                break;
            }
            for (int i = 0; i < count; i++) {
                p->committed[seq++] = true;
                p->versions[p->nversions++] = versions[i];
            }
            continue;
        }
        if (!exec_ok(conn, "BEGIN", p->error, sizeof p->error)) {
            break;
        }
        if (rand_r(&p->seed) % 3 == 0) {
            if (publish_batch(p, conn, seq, count, versions)) {
                seq += count;
                sleep_us(rand_r(&p->seed) % 1500);
            }
        } else {
            for (int i = 0; i < count; i++) {
                if ((versions[i] = publish(p, conn, seq++)) < 0) {
                    break;
                }
                sleep_us(rand_r(&p->seed) % 1500);
            }
        }
        if (p->error[0] != '\0') {
            break;
        }
        bool commit = kind < 8;
        if (!exec_ok(conn, commit ? "COMMIT" : "ROLLBACK", p->error, sizeof p->error)) {
            break;
        }
        if (commit) {
            for (int i = 0; i < count; i++) {
                p->committed[first_seq + i] = true;
                p->versions[p->nversions++] = versions[i];
            }
        } else {
            p->rolled_back_count += count;
        }
    }
    PQfinish(conn);
    return NULL;
}

/* Checks one event row against the cursor and records its (p, s). */
static bool take_event(struct reader *r, long long head, long long version, const char *event)
{
    if (version != r->cursor + 1) {
        snprintf(r->error, sizeof r->error,
                 "reader %d: after version %lld got %lld (head %lld): a %s", r->id, r->cursor,
                 version, head, version > r->cursor + 1 ? "gap" : "repeat");
        return false;
    }
    if (version > head) {
        snprintf(r->error, sizeof r->error, "reader %d: version %lld above head %lld", r->id,
                 version, head);
        return false;
    }
    json_object *obj = json_tokener_parse(event);
    json_object *data, *pj, *sj, *vj;
    bool ok = obj != NULL && json_object_object_get_ex(obj, "data", &data) &&
              json_object_object_get_ex(obj, "version", &vj) &&
              json_object_get_int64(vj) == version && json_object_object_get_ex(data, "p", &pj) &&
              json_object_object_get_ex(data, "s", &sj);
    if (ok) {
        int p = json_object_get_int(pj), s = json_object_get_int(sj);
        ok = p >= 0 && p < PUBLISHERS && s >= 0 && s < MAX_SEQ;
        if (ok) {
            r->seen[p][s]++;
        }
    }
    json_object_put(obj);
    if (!ok) {
        snprintf(r->error, sizeof r->error, "reader %d: bad event %s", r->id, event);
        return false;
    }
    r->cursor = version;
    return true;
}

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    PGconn *conn = pg_test_thread_connect(r->error, sizeof r->error);
    if (conn == NULL) {
        return NULL;
    }
    long long last_head = 0;
    for (;;) {
        /* Read the flag before polling: once set, a poll that comes back
         * empty has seen everything. */
        bool done = atomic_load(&publishers_done);
        char after[32], limit[16];
        snprintf(after, sizeof after, "%lld", r->cursor);
        snprintf(limit, sizeof limit, "%d", 1 + (int)(rand_r(&r->seed) % r->max_limit));
        const char *params[] = {r->channel, after, limit};
        PGresult *res =
            PQexecParams(conn, "SELECT head, version, event FROM pgfeed.read($1, $2, $3)", 3, NULL,
                         params, NULL, NULL, 0);
        r->polls++;
        if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) < 1) {
            snprintf(r->error, sizeof r->error, "read: %s", PQerrorMessage(conn));
            PQclear(res);
            break;
        }
        long long head = atoll(PQgetvalue(res, 0, 0));
        bool ok = head >= last_head && head >= r->cursor;
        if (!ok) {
            snprintf(r->error, sizeof r->error, "reader %d: head went from %lld to %lld", r->id,
                     last_head, head);
        }
        last_head = head;
        bool empty = PQgetisnull(res, 0, 1);
        for (int row = 0; ok && !empty && row < PQntuples(res); row++) {
            ok = take_event(r, head, atoll(PQgetvalue(res, row, 1)), PQgetvalue(res, row, 2));
        }
        PQclear(res);
        if (!ok || (done && empty)) {
            if (ok && r->cursor != head) {
                snprintf(r->error, sizeof r->error, "reader %d: stopped at %lld, head %lld", r->id,
                         r->cursor, head);
            }
            break;
        }
        if (empty) {
            sleep_us(rand_r(&r->seed) % 1000);
        }
    }
    PQfinish(conn);
    return NULL;
}

static int compare_versions(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static void test_concurrent_publishers_one_channel(void **state)
{
    char *channel = pg_test_name("concurrent");
    static struct publisher publishers[PUBLISHERS];
    static struct reader readers[READERS];
    unsigned seed = (unsigned)time(NULL);
    print_message("channel %s, seed %u\n", channel, seed);

    atomic_store(&publishers_done, false);
    for (int i = 0; i < READERS; i++) {
        readers[i] = (struct reader){
            .id = i, .channel = channel, .seed = seed + 100 + i, .max_limit = i == 0 ? 3 : 50};
        assert_int_equal(pthread_create(&readers[i].thread, NULL, reader_main, &readers[i]), 0);
    }
    for (int i = 0; i < PUBLISHERS; i++) {
        publishers[i] = (struct publisher){.id = i, .channel = channel, .seed = seed + i};
        assert_int_equal(
            pthread_create(&publishers[i].thread, NULL, publisher_main, &publishers[i]), 0);
    }
    for (int i = 0; i < PUBLISHERS; i++) {
        pthread_join(publishers[i].thread, NULL);
    }
    atomic_store(&publishers_done, true);
    for (int i = 0; i < READERS; i++) {
        pthread_join(readers[i].thread, NULL);
    }

    long long committed = 0, rolled_back = 0;
    for (int i = 0; i < PUBLISHERS; i++) {
        if (publishers[i].error[0] != '\0') {
            fail_msg("publisher %d: %s", i, publishers[i].error);
        }
        committed += publishers[i].nversions;
        rolled_back += publishers[i].rolled_back_count;
    }
    print_message("%lld events committed, %lld rolled back\n", committed, rolled_back);
    assert_true(rolled_back > 0);

    for (int i = 0; i < READERS; i++) {
        struct reader *r = &readers[i];
        if (r->error[0] != '\0') {
            fail_msg("%s", r->error);
        }
        print_message("reader %d: %lld polls\n", i, r->polls);
        assert_int_equal(r->cursor, committed);
        for (int p = 0; p < PUBLISHERS; p++) {
            for (int s = 0; s < MAX_SEQ; s++) {
                if (r->seen[p][s] != (publishers[p].committed[s] ? 1 : 0)) {
                    fail_msg("reader %d saw event p%d/s%d %d times, committed: %d", i, p, s,
                             r->seen[p][s], publishers[p].committed[s]);
                }
            }
        }
    }

    /* The committed versions are exactly 1..committed. */
    long long *all = xcalloc((size_t)committed, sizeof *all);
    size_t n = 0;
    for (int i = 0; i < PUBLISHERS; i++) {
        memcpy(all + n, publishers[i].versions, publishers[i].nversions * sizeof *all);
        n += publishers[i].nversions;
        free(publishers[i].versions);
    }
    qsort(all, n, sizeof *all, compare_versions);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(all[i], (long long)i + 1);
    }
    free(all);

    PGconn *conn = pg_test_connect();
    const char *params[] = {channel};
    assert_int_equal(pg_test_number(conn, "SELECT head FROM pgfeed.read($1, 0, 0)", 1, params),
                     committed);
    PQfinish(conn);
    free(channel);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_publishers_one_channel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
