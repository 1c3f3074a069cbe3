/*
 * test_sequencer — who runs pgfeed.sequence and when: the lock's state
 * machine, the batch-again decision and the backoff, with db's calls, its
 * session count and the clock played by the test (-Wl,--wrap): each
 * statement the sequencer queues is recorded here and answered by the test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "sequencer.h"

db_query *__wrap_db_call(db *d, const char *sql, int n_params, const char *const *params,
                         db_call_cb cb, void *ctx);
bool __wrap_db_is_up(const db *d);
uint64_t __wrap_db_sessions(const db *d);
int64_t __wrap_clock_now_ms(void);
void __wrap_db_query_cancel(db_query *q);

static struct {
    bool up;
    uint64_t sessions;
    int64_t now;
    int calls;   /* statements queued */
    bool refuse; /* db_call returns NULL (the database went down meanwhile) */
    const char *sql;
    char param[32];
    db_call_cb cb;
    void *ctx;
    bool pending;
    int cancelled;
} fake;
static int handle; /* what db_call hands out: never dereferenced */

db_query *__wrap_db_call(db *d, const char *sql, int n_params, const char *const *params,
                         db_call_cb cb, void *ctx)
{
    (void)d;
    if (fake.refuse)
        return NULL;
    assert_false(fake.pending); /* one statement of the sequencer's at a time */
    fake.calls++;
    fake.sql = sql;
    fake.param[0] = '\0';
    if (n_params > 0)
        strncpy(fake.param, params[0], sizeof fake.param - 1);
    fake.cb = cb;
    fake.ctx = ctx;
    fake.pending = true;
    return (db_query *)&handle;
}

bool __wrap_db_is_up(const db *d)
{
    (void)d;
    return fake.up;
}

uint64_t __wrap_db_sessions(const db *d)
{
    (void)d;
    return fake.sessions;
}

int64_t __wrap_clock_now_ms(void)
{
    return fake.now;
}

void __wrap_db_query_cancel(db_query *q)
{
    if (q)
        fake.cancelled++;
}

static db *const DB = (db *)&handle;

static int reset(void **state)
{
    (void)state;
    memset(&fake, 0, sizeof fake);
    fake.up = true;
    fake.sessions = 1;
    fake.now = 1000;
    return 0;
}

static void answer(const char *value)
{
    assert_true(fake.pending);
    fake.pending = false;
    db_call_result r = {.ok = true, .value = value};
    fake.cb(fake.ctx, &r);
}

static void answer_failure(const char *sqlstate)
{
    assert_true(fake.pending);
    fake.pending = false;
    db_call_result r = {.ok = false, .error = "boom", .sqlstate = sqlstate};
    fake.cb(fake.ctx, &r);
}

static bool asked(const char *needle)
{
    return fake.pending && strstr(fake.sql, needle) != NULL;
}

/* Ticks at now, and expects it then asks for the lock; answers got. */
static void take_lock(sequencer *s, bool got)
{
    sequencer_tick(s, fake.now);
    assert_true(asked("pg_try_advisory_lock(1885824613, 4)"));
    answer(got ? "t" : "f");
}

static void test_off_never_asks(void **state)
{
    (void)state;
    sequencer *s = sequencer_new(DB, 0, 1000);
    for (int i = 0; i < 10; i++) {
        sequencer_tick(s, fake.now += 1000);
    }
    assert_int_equal(fake.calls, 0);
    assert_false(sequencer_holds(s));
    assert_int_equal(sequencer_timeout_ms(s, fake.now), -1);
    sequencer_free(s);
}

static void test_holder_runs_batches_on_its_interval(void **state)
{
    (void)state;
    sequencer *s = sequencer_new(DB, 10, 1000);
    take_lock(s, true);
    assert_true(sequencer_holds(s));
    /* The first batch at once, with the batch size bound. */
    assert_int_equal(sequencer_timeout_ms(s, fake.now), 0);
    sequencer_tick(s, fake.now);
    assert_true(asked("pgfeed.sequence($1::int)"));
    assert_string_equal(fake.param, "1000");
    assert_int_equal(sequencer_timeout_ms(s, fake.now), -1); /* in flight: the answer wakes us */
    sequencer_tick(s, fake.now);                             /* nothing twice */
    answer("3");
    assert_int_equal(sequencer_moved(s), 3);
    /* Fewer than a batch: the next one after the interval, not before. */
    assert_int_equal(sequencer_timeout_ms(s, fake.now), 10);
    sequencer_tick(s, fake.now + 9);
    assert_false(fake.pending);
    sequencer_tick(s, fake.now += 10);
    assert_true(asked("pgfeed.sequence"));
    answer("0");
    assert_int_equal(sequencer_moved(s), 3);
    assert_int_equal(sequencer_timeout_ms(s, fake.now), 10);
    sequencer_free(s);
}

static void test_full_batch_runs_again_at_once(void **state)
{
    (void)state;
    sequencer *s = sequencer_new(DB, 10, 100);
    take_lock(s, true);
    for (int i = 0; i < 3; i++) {
        sequencer_tick(s, fake.now);
        assert_true(asked("pgfeed.sequence"));
        answer("100");
        assert_int_equal(sequencer_timeout_ms(s, fake.now), 0);
    }
    sequencer_tick(s, fake.now);
    answer("42");
    assert_int_equal(sequencer_moved(s), 342);
    assert_int_equal(sequencer_timeout_ms(s, fake.now), 10);
    sequencer_free(s);
}

static void test_others_retry_the_lock(void **state)
{
    (void)state;
    sequencer *s = sequencer_new(DB, 10, 1000);
    take_lock(s, false);
    assert_false(sequencer_holds(s));
    assert_int_equal(sequencer_timeout_ms(s, fake.now), SEQUENCER_RETRY_MS);
    sequencer_tick(s, fake.now + SEQUENCER_RETRY_MS - 1);
    assert_false(fake.pending);
    fake.now += SEQUENCER_RETRY_MS;
    /* A failed try (the statement refused) is retried just the same. */
    sequencer_tick(s, fake.now);
    answer_failure("42501");
    assert_false(sequencer_holds(s));
    fake.now += SEQUENCER_RETRY_MS;
    take_lock(s, true); /* the holder went away */
    assert_true(sequencer_holds(s));
    sequencer_free(s);
}

static void test_lost_session_loses_the_lock(void **state)
{
    (void)state;
    sequencer *s = sequencer_new(DB, 10, 1000);
    take_lock(s, true);
    /* Down: no lock, nothing sent, and no zero timeout that would spin the loop. */
    fake.up = false;
    assert_false(sequencer_holds(s));
    assert_int_equal(sequencer_timeout_ms(s, fake.now), -1);
    sequencer_tick(s, fake.now);
    assert_false(fake.pending);
    sequencer_tick(s, fake.now += 500);
    assert_false(fake.pending);
    /* Reconnected: a new session, so the lock is tried again at once. */
    fake.up = true;
    fake.sessions = 2;
    take_lock(s, true);
    assert_true(sequencer_holds(s));

    /* A reconnect between two ticks (never seen down) is a lost lock too. */
    fake.sessions = 3;
    assert_false(sequencer_holds(s));
    sequencer_tick(s, fake.now);
    assert_false(fake.pending); /* no batch on a session without the lock */
    take_lock(s, false);
    assert_false(sequencer_holds(s));

    /* A batch in flight when the connection breaks: its failure finds the session gone. */
    fake.now += SEQUENCER_RETRY_MS;
    take_lock(s, true);
    sequencer_tick(s, fake.now);
    assert_true(asked("pgfeed.sequence"));
    fake.up = false;
    fake.sessions = 4;
    answer_failure(NULL);
    assert_false(sequencer_holds(s));
    fake.up = true;
    take_lock(s, true);
    assert_true(sequencer_holds(s));
    sequencer_free(s);
}

static void test_failing_batches_back_off(void **state)
{
    (void)state;
    sequencer *s = sequencer_new(DB, 10, 1000);
    take_lock(s, true);
    for (int i = 0; i < 8; i++) {
        sequencer_tick(s, fake.now);
        assert_true(asked("pgfeed.sequence"));
        answer_failure(i % 2 ? "55P03" : "42883");
        int64_t wait = sequencer_timeout_ms(s, fake.now);
        /* Jittered within [step/2, step]; the steps double from 100 ms to the cap. */
        assert_true(wait >= 50 && wait <= SEQUENCER_BACKOFF_MAX_MS);
        if (i >= 6)
            assert_true(wait >= SEQUENCER_BACKOFF_MAX_MS / 2);
        assert_true(sequencer_holds(s)); /* a failed call keeps the lock */
        fake.now += wait;
    }
    /* One success and the interval is back. */
    sequencer_tick(s, fake.now);
    answer("1");
    assert_int_equal(sequencer_timeout_ms(s, fake.now), 10);
    sequencer_tick(s, fake.now += 10);
    answer_failure("55P03");
    assert_true(sequencer_timeout_ms(s, fake.now) <= 100);
    sequencer_free(s);
}

/* db_call refusing (the database went down since the check) leaves no zero timeout. */
static void test_refused_call_waits(void **state)
{
    (void)state;
    sequencer *s = sequencer_new(DB, 10, 1000);
    fake.refuse = true;
    sequencer_tick(s, fake.now);
    assert_int_equal(fake.calls, 0);
    assert_true(sequencer_timeout_ms(s, fake.now) > 0);
    fake.refuse = false;
    fake.now += SEQUENCER_RETRY_MS;
    take_lock(s, true);
    fake.refuse = true;
    sequencer_tick(s, fake.now);
    assert_int_equal(sequencer_timeout_ms(s, fake.now), 10);
    sequencer_free(s);
}

static void test_free_cancels_what_is_in_flight(void **state)
{
    (void)state;
    sequencer *s = sequencer_new(DB, 10, 1000);
    sequencer_tick(s, fake.now);
    assert_true(fake.pending);
    sequencer_free(s);
    assert_int_equal(fake.cancelled, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_off_never_asks, reset),
        cmocka_unit_test_setup(test_holder_runs_batches_on_its_interval, reset),
        cmocka_unit_test_setup(test_full_batch_runs_again_at_once, reset),
        cmocka_unit_test_setup(test_others_retry_the_lock, reset),
        cmocka_unit_test_setup(test_lost_session_loses_the_lock, reset),
        cmocka_unit_test_setup(test_failing_batches_back_off, reset),
        cmocka_unit_test_setup(test_refused_call_waits, reset),
        cmocka_unit_test_setup(test_free_cancels_what_is_in_flight, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
