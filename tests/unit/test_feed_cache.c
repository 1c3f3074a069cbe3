/*
 * test_feed_cache — channels, the ring and subscribers, head batches, the
 * budget and its evictions, with pgfeed.read replaced: the test links with
 * -Wl,--wrap=db_read (and db_read_heads, db_can_read), so every read and
 * head batch the cache starts is recorded here and answered by the test,
 * synchronously and in any order it likes. Nothing else of db runs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "feed_cache.h"

/* The reads and head batches the cache started and not yet answered. */
typedef struct pending_read {
    char channel[64];
    int64_t after;
    int limit;
    db_read_cb cb;
    void *ctx;
    /* a head batch: its channels, in the order asked */
    db_heads_cb heads_cb;
    size_t n_names;
    char names[16][64];
} pending_read;

static pending_read reads[8];
static size_t n_reads;
static bool refuse_reads; /* db_read returns NULL, as when the database is down */
static int64_t epoch;     /* the channel incarnation answers report */
static char dummy_query;

db_query *__wrap_db_read(db *d, const char *channel, int64_t after, int limit, db_read_cb cb,
                         void *ctx);
db_query *__wrap_db_read(db *d, const char *channel, int64_t after, int limit, db_read_cb cb,
                         void *ctx)
{
    (void)d;
    if (refuse_reads)
        return NULL;
    assert_true(n_reads < sizeof reads / sizeof *reads);
    pending_read *r = &reads[n_reads++];
    snprintf(r->channel, sizeof r->channel, "%s", channel);
    r->after = after;
    r->limit = limit;
    r->cb = cb;
    r->ctx = ctx;
    r->heads_cb = NULL;
    return (db_query *)&dummy_query;
}

db_query *__wrap_db_read_heads(db *d, const char *const *channels, size_t n, db_heads_cb cb,
                               void *ctx);
db_query *__wrap_db_read_heads(db *d, const char *const *channels, size_t n, db_heads_cb cb,
                               void *ctx)
{
    (void)d;
    if (refuse_reads)
        return NULL;
    assert_true(n_reads < sizeof reads / sizeof *reads);
    assert_true(n > 0 && n <= 16);
    pending_read *r = &reads[n_reads++];
    memset(r, 0, sizeof *r);
    r->heads_cb = cb;
    r->ctx = ctx;
    r->n_names = n;
    for (size_t i = 0; i < n; i++)
        snprintf(r->names[i], sizeof r->names[i], "%s", channels[i]);
    return (db_query *)&dummy_query;
}

bool __wrap_db_can_read(const db *d);
bool __wrap_db_can_read(const db *d)
{
    (void)d;
    return !refuse_reads;
}

static pending_read pop_read(size_t i)
{
    assert_true(i < n_reads);
    pending_read r = reads[i];
    memmove(reads + i, reads + i + 1, (n_reads - i - 1) * sizeof *reads);
    n_reads--;
    return r;
}

/* Answers the oldest pending head batch: every channel of it has this head and oldest. */
static void answer_heads(int64_t head, int64_t oldest)
{
    assert_true(n_reads > 0 && reads[0].heads_cb);
    pending_read r = pop_read(0);
    db_head heads[16];
    for (size_t i = 0; i < r.n_names; i++)
        heads[i] = (db_head){.channel = r.names[i], .head = head, .oldest = oldest, .epoch = epoch};
    db_heads_result res = {.ok = true, .n_heads = r.n_names, .heads = heads};
    r.heads_cb(r.ctx, &res);
}

static feed_cache *cache;

/*
 * Answers the oldest pending read with head, oldest and the listed events (0
 * ends the list). A load first goes out in the turn's head batch: that is
 * answered with the same head, and the read of events it starts (when the
 * cursor is behind the head) is the one answered with the events.
 */
static void answer_versions(int64_t head, int64_t oldest, const int64_t *versions)
{
    feed_cache_end_turn(cache);
    assert_true(n_reads > 0);
    if (reads[0].heads_cb) {
        assert_int_equal(reads[0].n_names, 1);
        size_t before = n_reads - 1;
        answer_heads(head, oldest);
        if (n_reads == before)
            return;                                        /* the head was all there was to read */
        memmove(reads + 1, reads, before * sizeof *reads); /* its read first */
        reads[0] = reads[before];
    }
    pending_read r = pop_read(0);
    db_event events[16];
    char texts[16][32];
    size_t n = 0;
    for (; versions[n] > 0; n++) {
        assert_true(n < 16);
        int64_t v = versions[n];
        snprintf(texts[n], sizeof texts[n], "{\"version\":%lld}", (long long)v);
        events[n] = (db_event){.version = v, .json = texts[n], .json_len = strlen(texts[n])};
    }
    db_read_result res = {.ok = true,
                          .head = head,
                          .oldest = oldest,
                          .epoch = epoch,
                          .complete = n < (size_t)r.limit,
                          .n_events = n,
                          .events = events};
    r.cb(r.ctx, &res);
}

/* Answers the oldest pending read with head, oldest and events first..last. */
static void answer(int64_t head, int64_t oldest, int64_t first, int64_t last)
{
    int64_t versions[17] = {0};
    for (int64_t v = first, i = 0; v <= last && first > 0; v++, i++)
        versions[i] = v;
    answer_versions(head, oldest, versions);
}

#define VERSIONS(...) ((const int64_t[]){__VA_ARGS__, 0})

static void answer_failure(void)
{
    feed_cache_end_turn(cache);
    pending_read r = pop_read(0);
    if (r.heads_cb) {
        db_heads_result res = {.ok = false, .error = "permission denied"};
        r.heads_cb(r.ctx, &res);
        return;
    }
    db_read_result res = {.ok = false, .error = "permission denied"};
    r.cb(r.ctx, &res);
}

typedef struct waiter {
    feed_subscriber node; /* first, as the cache hands the node back */
    int wakes;
    bool known_at_wake;
} waiter;

static void on_wake(feed_subscriber *s)
{
    waiter *w = (waiter *)s;
    w->wakes++;
    w->known_at_wake = feed_channel_known(s->channel);
}

static int setup(void **state)
{
    n_reads = 0;
    refuse_reads = false;
    epoch = 1;
    feed_cache_limits limits = {
        .ring_events = 4, .ring_bytes = 1 << 20, .read_batch = 100, .idle_ms = 60000};
    cache = feed_cache_new(NULL, &limits);
    return 0;
}

static int teardown(void **state)
{
    feed_cache_free(cache);
    assert_int_equal(n_reads, 0); /* every read the test expected was answered */
    return 0;
}

static void expect_event(const feed_channel *ch, int64_t version)
{
    char want[32];
    snprintf(want, sizeof want, "{\"version\":%lld}", (long long)version);
    const feed_event *e = feed_channel_event_after(ch, version - 1);
    assert_non_null(e);
    assert_int_equal(e->version, version);
    assert_string_equal(e->json, want);
    assert_int_equal(e->json_len, strlen(want));
}

static void test_first_load_reads_from_the_cursor_and_wakes(void **state)
{
    feed_channel *ch = feed_cache_channel(cache, "orders");
    waiter w = {.node.wake = on_wake};
    feed_channel_subscribe(ch, &w.node);
    assert_false(feed_channel_known(ch));
    assert_true(feed_channel_load(ch, 1));
    assert_true(feed_channel_load(ch, 1)); /* one load at a time */
    assert_int_equal(n_reads, 0);          /* the head batch goes at the end of the turn */
    feed_cache_end_turn(cache);
    assert_int_equal(n_reads, 1);
    assert_int_equal(reads[0].n_names, 1);
    assert_string_equal(reads[0].names[0], "orders");
    answer_heads(3, 1);
    /* events follow the cursor: this channel reads them from it */
    assert_int_equal(n_reads, 1);
    assert_string_equal(reads[0].channel, "orders");
    assert_int_equal(reads[0].after, 1);
    assert_int_equal(reads[0].limit, 100);
    assert_false(feed_channel_known(ch));
    assert_int_equal(w.wakes, 0);
    answer(3, 1, 2, 3);
    assert_true(feed_channel_known(ch));
    assert_int_equal(feed_channel_head(ch), 3);
    assert_int_equal(feed_channel_oldest(ch), 1);
    assert_true(feed_channel_covers(ch, 1));
    assert_true(feed_channel_covers(ch, 3));
    assert_false(feed_channel_covers(ch, 0)); /* event 1 was not read */
    assert_false(feed_channel_covers(ch, 4));
    expect_event(ch, 2);
    expect_event(ch, 3);
    assert_int_equal(w.wakes, 1);
    assert_true(w.known_at_wake);
    assert_int_equal(feed_cache_misses(cache), 2); /* its head, then its events */
    feed_channel_unsubscribe(&w.node);
    feed_channel_unsubscribe(&w.node); /* twice is fine */
    assert_int_equal(feed_channel_subscriber_count(ch), 0);
}

static void test_cursor_now_reads_only_the_head(void **state)
{
    feed_channel *ch = feed_cache_channel(cache, "orders");
    assert_true(feed_channel_load(ch, -1));
    feed_cache_end_turn(cache);
    answer_heads(7, 1); /* the head is all a cursor of "now" needs: no read follows */
    assert_int_equal(n_reads, 0);
    assert_true(feed_channel_known(ch));
    assert_int_equal(feed_channel_head(ch), 7);
    assert_true(feed_channel_covers(ch, 7));
    assert_false(feed_channel_covers(ch, 6));
}

static void test_notify_reads_once_and_appends(void **state)
{
    feed_channel *ch = feed_cache_channel(cache, "orders");
    waiter w = {.node.wake = on_wake};
    feed_channel_subscribe(ch, &w.node);
    assert_true(feed_channel_load(ch, 0));
    answer(2, 1, 1, 2);
    feed_cache_on_notify(cache, "orders", 3);
    feed_cache_on_notify(cache, "orders", 4); /* while the first read is in flight */
    feed_cache_on_notify(cache, "nobody", 9); /* a channel nobody asked about: no read */
    assert_int_equal(n_reads, 1);
    assert_int_equal(reads[0].after, 2);
    answer(3, 1, 3, 3);
    /* 4 was announced but not in that read: one more read, from the new head */
    assert_int_equal(n_reads, 1);
    assert_int_equal(reads[0].after, 3);
    answer(4, 1, 4, 4);
    assert_int_equal(feed_channel_head(ch), 4);
    assert_true(feed_channel_covers(ch, 0));
    for (int64_t v = 1; v <= 4; v++)
        expect_event(ch, v);
    assert_int_equal(w.wakes, 3);
    feed_channel_unsubscribe(&w.node);
}

static void test_ring_keeps_the_newest(void **state)
{
    feed_channel *ch = feed_cache_channel(cache, "orders");
    assert_true(feed_channel_load(ch, 0));
    answer(6, 1, 1, 6); /* ring_events is 4: 3..6 stay */
    assert_false(feed_channel_covers(ch, 1));
    assert_true(feed_channel_covers(ch, 2));
    for (int64_t v = 3; v <= 6; v++)
        expect_event(ch, v);
}

static void test_failed_read_leaves_the_channel_unknown(void **state)
{
    feed_channel *ch = feed_cache_channel(cache, "orders");
    waiter w = {.node.wake = on_wake};
    feed_channel_subscribe(ch, &w.node);
    assert_true(feed_channel_load(ch, 0));
    answer_failure();
    assert_false(feed_channel_known(ch));
    assert_int_equal(w.wakes, 1);
    assert_false(w.known_at_wake);
    /* A read refused (database down, or reads backing off) starts nothing. */
    refuse_reads = true;
    assert_false(feed_channel_load(ch, 0));
    assert_int_equal(n_reads, 0);
    refuse_reads = false;
    assert_true(feed_channel_load(ch, 0));
    answer(1, 1, 1, 1);
    assert_true(feed_channel_known(ch));
    feed_channel_unsubscribe(&w.node);
}

static void test_reconnect_rereads_what_has_subscribers(void **state)
{
    feed_channel *watched = feed_cache_channel(cache, "watched");
    feed_channel *idle = feed_cache_channel(cache, "idle");
    waiter w = {.node.wake = on_wake};
    feed_channel_subscribe(watched, &w.node);
    assert_true(feed_channel_load(watched, 0));
    answer(2, 1, 1, 2);
    assert_true(feed_channel_load(idle, 0));
    answer(1, 1, 1, 1);
    assert_int_equal(feed_cache_channel_count(cache), 2);

    feed_cache_on_db_down(cache);
    assert_false(feed_channel_known(watched));
    assert_false(feed_channel_covers(watched, 2));
    feed_cache_on_db_up(cache);
    /* The idle channel is forgotten; the watched one is rebuilt from what its ring
     * covered (deletions and resets may have gone unnoticed meanwhile). */
    assert_int_equal(feed_cache_channel_count(cache), 1);
    assert_int_equal(n_reads, 1);
    assert_string_equal(reads[0].channel, "watched");
    assert_int_equal(reads[0].after, 0);
    answer(3, 1, 1, 3);
    assert_true(feed_channel_known(watched));
    assert_true(feed_channel_covers(watched, 0));
    for (int64_t v = 1; v <= 3; v++)
        expect_event(watched, v);
    feed_channel_unsubscribe(&w.node);
}

static void test_pruned_events_leave_memory(void **state)
{
    feed_channel *ch = feed_cache_channel(cache, "orders");
    assert_true(feed_channel_load(ch, 0));
    answer(4, 1, 1, 4);
    feed_cache_on_pruned(cache, "orders", 3);
    assert_false(feed_channel_covers(ch, 1));
    assert_true(feed_channel_covers(ch, 2));
    expect_event(ch, 3);
    /* The notification is a hint: the oldest clients are told comes from a read. */
    assert_int_equal(n_reads, 1);
    assert_int_equal(reads[0].after, 4);
    answer(4, 3, 0, 0);
    assert_int_equal(feed_channel_oldest(ch), 3);
    feed_cache_on_pruned(cache, "orders", 2); /* never lowered, and no read */
    assert_int_equal(feed_channel_oldest(ch), 3);
    assert_int_equal(n_reads, 0);
}

/* Versions with holes (a head moved by hand, an event deleted): the ring holds what exists. */
static void test_holes_are_served_as_the_events_that_exist(void **state)
{
    feed_channel *ch = feed_cache_channel(cache, "orders");
    assert_true(feed_channel_load(ch, 0));
    answer(4, 1, 1, 4);
    feed_cache_on_notify(cache, "orders", 8);
    answer_versions(8, 1, VERSIONS(6, 8));
    assert_int_equal(feed_channel_head(ch), 8);
    for (int64_t cursor = 4; cursor <= 7; cursor++)
        assert_true(feed_channel_covers(ch, cursor));
    assert_int_equal(feed_channel_event_after(ch, 4)->version, 6);
    assert_int_equal(feed_channel_event_after(ch, 5)->version, 6);
    assert_int_equal(feed_channel_event_after(ch, 6)->version, 8);
    assert_int_equal(feed_channel_event_after(ch, 7)->version, 8);
    assert_null(feed_channel_event_after(ch, 8));
    /* A head with no event behind it is complete, not "more to come": no read. */
    feed_cache_on_notify(cache, "orders", 10);
    answer_versions(10, 1, VERSIONS(9));
    assert_int_equal(feed_channel_head(ch), 10);
    assert_true(feed_channel_covers(ch, 9));
    assert_null(feed_channel_event_after(ch, 9));
    assert_int_equal(n_reads, 0);
}

/* Any role can NOTIFY: a version beyond the head costs one read, which is believed. */
static void test_forged_notification_costs_one_read(void **state)
{
    feed_channel *ch = feed_cache_channel(cache, "orders");
    assert_true(feed_channel_load(ch, 0));
    answer(1, 1, 1, 1);
    feed_cache_on_notify(cache, "orders", 999999);
    assert_int_equal(n_reads, 1);
    answer(1, 1, 0, 0);
    assert_int_equal(feed_channel_head(ch), 1);
    assert_int_equal(n_reads, 0);
}

/* A new epoch (re-created or reset channel) rebuilds the ring and marks subscribers reset. */
static void test_reset_marks_subscribers(void **state)
{
    feed_channel *ch = feed_cache_channel(cache, "orders");
    waiter w = {.node.wake = on_wake};
    feed_channel_subscribe(ch, &w.node);
    assert_true(feed_channel_load(ch, 0));
    answer(3, 1, 1, 3);
    assert_false(w.node.reset);
    feed_cache_on_reset(cache, "orders");
    assert_int_equal(n_reads, 1);
    assert_int_equal(reads[0].after, 0);
    epoch = 2;
    answer(1, 1, 1, 1);
    assert_true(w.node.reset);
    assert_int_equal(feed_channel_head(ch), 1);
    assert_true(feed_channel_covers(ch, 0));
    assert_null(feed_channel_event_after(ch, 1));
    /* A deletion within one incarnation only rebuilds the ring. */
    w.node.reset = false;
    feed_cache_on_reset(cache, "*");
    answer(1, 1, 0, 0);
    assert_false(w.node.reset);
    assert_null(feed_channel_event_after(ch, 0));
    feed_channel_unsubscribe(&w.node);
}

static void test_feed_event_new_copies(void **state)
{
    char text[] = "{\"a\":1}xyz";
    feed_event *e = feed_event_new(42, text, 7);
    text[0] = '!';
    assert_int_equal(e->version, 42);
    assert_int_equal(e->json_len, 7);
    assert_string_equal(e->json, "{\"a\":1}");
    free(e);
}

int main(void)
{
#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        TEST(test_first_load_reads_from_the_cursor_and_wakes),
        TEST(test_cursor_now_reads_only_the_head),
        TEST(test_notify_reads_once_and_appends),
        TEST(test_ring_keeps_the_newest),
        TEST(test_failed_read_leaves_the_channel_unknown),
        TEST(test_reconnect_rereads_what_has_subscribers),
        TEST(test_pruned_events_leave_memory),
        TEST(test_feed_event_new_copies),
        TEST(test_holes_are_served_as_the_events_that_exist),
        TEST(test_forged_notification_costs_one_read),
        TEST(test_reset_marks_subscribers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
