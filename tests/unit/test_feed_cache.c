/*
 * test_feed_cache — channels, the ring and subscribers, head batches, the
 * budget and its evictions, with pgfeed.read replaced by fake_db: every read
 * and head batch the cache starts is answered by the test, synchronously and
 * in any order it likes. Nothing else of db runs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_db.h"
#include "feed_cache.h"

static feed_cache *cache;

/*
 * Ends the turn. A load goes out in the turn's head batch first: that is
 * answered with head and oldest, and *i is the read of events it starts (when
 * the cursor is behind the head); false when the head was all there was to
 * read. Otherwise *i is the oldest pending read.
 */
static bool events_read(int64_t head, int64_t oldest, size_t *i)
{
    feed_cache_end_turn(cache);
    assert_true(fake_db_pending_count() > 0);
    *i = 0;
    if (!fake_db_pending(0)->heads_cb)
        return true;
    assert_int_equal(fake_db_pending(0)->n_names, 1);
    size_t before = fake_db_pending_count() - 1;
    fake_db_answer_heads(0, head, oldest);
    *i = before; /* its read, after those pending before the batch */
    return fake_db_pending_count() > before;
}

/* Answers the oldest pending read with head, oldest and the listed events (0 ends the list). */
static void answer_versions(int64_t head, int64_t oldest, const int64_t *versions)
{
    size_t i, n = 0;
    while (versions[n] > 0)
        n++;
    if (events_read(head, oldest, &i))
        fake_db_answer_versions(i, head, oldest, versions, n);
}

/* Answers the oldest pending read with head, oldest and events first..last (0: none). */
static void answer(int64_t head, int64_t oldest, int64_t first, int64_t last)
{
    size_t i;
    if (events_read(head, oldest, &i))
        fake_db_answer_range(i, head, oldest, first, last);
}

#define VERSIONS(...) ((const int64_t[]){__VA_ARGS__, 0})

static void answer_failure(void)
{
    feed_cache_end_turn(cache);
    fake_db_fail(0);
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
    fake_db_reset();
    feed_cache_limits limits = {
        .ring_events = 4, .ring_bytes = 1 << 20, .read_batch = 100, .idle_ms = 60000};
    cache = feed_cache_new(NULL, &limits);
    return 0;
}

static int teardown(void **state)
{
    feed_cache_free(cache);
    assert_int_equal(fake_db_pending_count(), 0); /* every read the test expected was answered */
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
    assert_true(feed_channel_load(ch, 1));        /* one load at a time */
    assert_int_equal(fake_db_pending_count(), 0); /* the head batch goes at the end of the turn */
    feed_cache_end_turn(cache);
    assert_int_equal(fake_db_pending_count(), 1);
    assert_int_equal(fake_db_pending(0)->n_names, 1);
    assert_string_equal(fake_db_pending(0)->names[0], "orders");
    fake_db_answer_heads(0, 3, 1);
    /* events follow the cursor: this channel reads them from it */
    assert_int_equal(fake_db_pending_count(), 1);
    assert_string_equal(fake_db_pending(0)->channel, "orders");
    assert_int_equal(fake_db_pending(0)->after, 1);
    assert_int_equal(fake_db_pending(0)->limit, 100);
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
    fake_db_answer_heads(0, 7, 1); /* the head is all a cursor of "now" needs: no read follows */
    assert_int_equal(fake_db_pending_count(), 0);
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
    assert_int_equal(fake_db_pending_count(), 1);
    assert_int_equal(fake_db_pending(0)->after, 2);
    answer(3, 1, 3, 3);
    /* 4 was announced but not in that read: one more read, from the new head */
    assert_int_equal(fake_db_pending_count(), 1);
    assert_int_equal(fake_db_pending(0)->after, 3);
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
    fake_db_refuse_reads(true);
    assert_false(feed_channel_load(ch, 0));
    assert_int_equal(fake_db_pending_count(), 0);
    fake_db_refuse_reads(false);
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
    assert_int_equal(fake_db_pending_count(), 1);
    assert_string_equal(fake_db_pending(0)->channel, "watched");
    assert_int_equal(fake_db_pending(0)->after, 0);
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
    assert_int_equal(fake_db_pending_count(), 1);
    assert_int_equal(fake_db_pending(0)->after, 4);
    answer(4, 3, 0, 0);
    assert_int_equal(feed_channel_oldest(ch), 3);
    feed_cache_on_pruned(cache, "orders", 2); /* never lowered, and no read */
    assert_int_equal(feed_channel_oldest(ch), 3);
    assert_int_equal(fake_db_pending_count(), 0);
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
    assert_int_equal(fake_db_pending_count(), 0);
}

/* Any role can NOTIFY: a version beyond the head costs one read, which is believed. */
static void test_forged_notification_costs_one_read(void **state)
{
    feed_channel *ch = feed_cache_channel(cache, "orders");
    assert_true(feed_channel_load(ch, 0));
    answer(1, 1, 1, 1);
    feed_cache_on_notify(cache, "orders", 999999);
    assert_int_equal(fake_db_pending_count(), 1);
    answer(1, 1, 0, 0);
    assert_int_equal(feed_channel_head(ch), 1);
    assert_int_equal(fake_db_pending_count(), 0);
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
    assert_int_equal(fake_db_pending_count(), 1);
    assert_int_equal(fake_db_pending(0)->after, 0);
    fake_db_set_epoch(2);
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

/* A cache with these limits instead of setup's (teardown frees it). */
static void use_limits(size_t cache_bytes, size_t load_queue, size_t load_batch)
{
    feed_cache_free(cache);
    feed_cache_limits limits = {.ring_events = 4,
                                .ring_bytes = 1 << 20,
                                .read_batch = 100,
                                .idle_ms = 60000,
                                .cache_bytes = cache_bytes,
                                .load_queue = load_queue,
                                .load_batch = load_batch};
    cache = feed_cache_new(NULL, &limits);
}

static feed_cache_stats stats(void)
{
    feed_cache_stats s;
    feed_cache_get_stats(cache, &s);
    return s;
}

/* Channels that became wanted in one turn cost one statement, whatever their number. */
static void test_loads_of_one_turn_share_one_query(void **state)
{
    waiter w[5];
    const char *names[5] = {"a", "b", "c", "d", "e"};
    for (int i = 0; i < 5; i++) {
        w[i] = (waiter){.node.wake = on_wake};
        feed_channel *ch = feed_cache_channel(cache, names[i]);
        feed_channel_subscribe(ch, &w[i].node);
        assert_true(feed_channel_load(ch, i % 2 ? -1 : 0)); /* "now" or from the oldest */
    }
    assert_int_equal(stats().loads_waiting, 5);
    feed_cache_end_turn(cache);
    assert_int_equal(fake_db_pending_count(), 1);
    assert_int_equal(fake_db_pending(0)->n_names, 5);
    for (int i = 0; i < 5; i++)
        assert_string_equal(fake_db_pending(0)->names[i], names[i]);
    feed_cache_end_turn(cache); /* nothing new: nothing sent */
    assert_int_equal(fake_db_pending_count(), 1);
    fake_db_answer_heads(0, 0, 1); /* none of them exists: known, empty, no read follows */
    assert_int_equal(fake_db_pending_count(), 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(w[i].wakes, 1);
        assert_true(w[i].known_at_wake);
        assert_int_equal(feed_channel_head(w[i].node.channel), 0);
        feed_channel_unsubscribe(&w[i].node);
    }
    feed_cache_stats s = stats();
    assert_int_equal(s.head_queries, 1);
    assert_int_equal(s.head_loads, 5);
    assert_int_equal(s.loads_waiting, 0);
}

/* Only a channel with events after its cursor reads them, on its own, after the batch. */
static void test_only_channels_behind_read_their_events(void **state)
{
    feed_channel *fresh = feed_cache_channel(cache, "fresh");
    feed_channel *behind = feed_cache_channel(cache, "behind");
    feed_channel *level = feed_cache_channel(cache, "level");
    assert_true(feed_channel_load(fresh, -1));
    assert_true(feed_channel_load(behind, 2));
    assert_true(feed_channel_load(level, 4));
    feed_cache_end_turn(cache);
    assert_int_equal(fake_db_pending(0)->n_names, 3);
    db_head heads[3] = {{.channel = "fresh", .head = 5, .oldest = 1, .epoch = 1},
                        {.channel = "behind", .head = 4, .oldest = 1, .epoch = 1},
                        {.channel = "level", .head = 4, .oldest = 1, .epoch = 1}};
    fake_db_answer_each_head(0, heads, 3);
    assert_true(feed_channel_known(fresh));
    assert_true(feed_channel_covers(fresh, 5));
    assert_true(feed_channel_known(level));
    assert_int_equal(feed_channel_head(level), 4);
    assert_false(feed_channel_known(behind));
    assert_int_equal(fake_db_pending_count(), 1);
    assert_string_equal(fake_db_pending(0)->channel, "behind");
    assert_int_equal(fake_db_pending(0)->after, 2);
    answer(4, 1, 3, 4);
    assert_true(feed_channel_covers(behind, 2));
    expect_event(behind, 3);
    expect_event(behind, 4);
}

/* A batch carries at most load_batch channels, and one batch is in flight at a time. */
static void test_batches_are_capped_and_one_at_a_time(void **state)
{
    use_limits(0, 0, 2);
    const char *names[5] = {"a", "b", "c", "d", "e"};
    for (int i = 0; i < 5; i++)
        assert_true(feed_channel_load(feed_cache_channel(cache, names[i]), -1));
    feed_cache_end_turn(cache);
    assert_int_equal(fake_db_pending_count(), 1);
    assert_int_equal(fake_db_pending(0)->n_names, 2);
    feed_cache_end_turn(cache); /* the first is still out */
    assert_int_equal(fake_db_pending_count(), 1);
    fake_db_answer_heads(0, 0, 1);
    feed_cache_end_turn(cache);
    assert_int_equal(fake_db_pending(0)->n_names, 2);
    assert_string_equal(fake_db_pending(0)->names[0], "c");
    fake_db_answer_heads(0, 0, 1);
    feed_cache_end_turn(cache);
    assert_int_equal(fake_db_pending(0)->n_names, 1);
    assert_string_equal(fake_db_pending(0)->names[0], "e");
    fake_db_answer_heads(0, 0, 1);
    assert_int_equal(stats().head_queries, 3);
}

/* Beyond load_queue waiting channels a load is refused, and counted; a failed batch wakes all. */
static void test_a_full_load_queue_refuses(void **state)
{
    use_limits(0, 3, 0);
    waiter w[3];
    for (int i = 0; i < 3; i++) {
        char name[8];
        snprintf(name, sizeof name, "q%d", i);
        w[i] = (waiter){.node.wake = on_wake};
        feed_channel *ch = feed_cache_channel(cache, name);
        feed_channel_subscribe(ch, &w[i].node);
        assert_true(feed_channel_load(ch, 0));
    }
    assert_true(feed_cache_loads_full(cache));
    feed_channel *late = feed_cache_channel(cache, "late");
    assert_false(feed_channel_load(late, 0));
    assert_false(feed_channel_load(late, 0));
    assert_int_equal(stats().load_rejected, 2);
    feed_cache_end_turn(cache);
    assert_true(feed_cache_loads_full(cache)); /* in flight still counts */
    answer_failure();
    for (int i = 0; i < 3; i++) {
        assert_int_equal(w[i].wakes, 1);
        assert_false(w[i].known_at_wake);
        feed_channel_unsubscribe(&w[i].node);
    }
    assert_false(feed_cache_loads_full(cache));
    assert_true(feed_channel_load(late, 0));
    answer(0, 1, 0, 0);
    assert_true(feed_channel_known(late));
}

static feed_channel *known_channel(const char *name)
{
    feed_channel *ch = feed_cache_channel(cache, name);
    assert_true(feed_channel_load(ch, -1));
    answer(0, 1, 0, 0);
    return ch;
}

/*
 * The budget counts every entry (a name's length shows) and evicts the least
 * recently used channels without subscribers; subscribed and loading ones stay.
 */
static void test_budget_evicts_least_recently_used_idle_channels(void **state)
{
    size_t empty = stats().bytes;
    feed_channel *first = known_channel("first");
    size_t one = stats().bytes - empty;
    assert_true(one > 64);
    known_channel("second-with-a-name-longer-than-the-first-one");
    assert_true(stats().bytes - empty > 2 * one);
    /* a budget for the table and about three entries */
    use_limits(empty + 3 * one + one / 2, 0, 0);
    empty = stats().bytes;
    waiter w = {.node.wake = on_wake};
    feed_channel_subscribe(known_channel("held"), &w.node);
    known_channel("old");
    known_channel("recent");
    feed_cache_channel(cache, "old"); /* used again: now more recent than "recent" */
    known_channel("newest");          /* its turn's end evicted "recent" */
    assert_int_equal(stats().evictions, 1);
    feed_channel *loading = feed_cache_channel(cache, "loading");
    assert_true(feed_channel_load(loading, -1));
    /* Over budget again: "old" is the least recently used idle channel now. */
    feed_cache_end_turn(cache);
    feed_cache_stats s = stats();
    assert_true(s.bytes <= empty + 3 * one + one / 2);
    assert_int_equal(s.evictions, 2);
    assert_int_equal(feed_cache_channel_count(cache), 3);
    assert_int_equal(feed_channel_subscriber_count(w.node.channel), 1);
    assert_true(feed_channel_known(w.node.channel));
    /* "loading" survived in its batch; "recent" and "old" were the idle ones */
    fake_db_answer_heads(0, 0, 1);
    assert_true(feed_channel_known(loading));
    feed_channel_unsubscribe(&w.node);
    (void)first;
}

/* Entries come and go: the bytes come back to an empty cache's, the table shrinks again. */
static void test_accounting_returns_to_empty(void **state)
{
    use_limits(1 << 16, 0, 0);
    size_t empty = stats().bytes;
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 200; i++) {
            char name[32];
            snprintf(name, sizeof name, "churn-%d-%d", round, i);
            feed_cache_channel(cache, name);
        }
        feed_cache_end_turn(cache);
        assert_true(stats().bytes <= 1 << 16);
    }
    assert_true(stats().evictions > 9000);
    use_limits(0, 0, 0);
    empty = stats().bytes;
    feed_channel *ch = feed_cache_channel(cache, "events");
    size_t bare = stats().bytes;
    assert_true(feed_channel_load(ch, 0));
    answer(3, 1, 1, 3);
    size_t with_events = stats().bytes;
    assert_true(with_events >= bare + 3 * strlen("{\"version\":1}"));
    feed_cache_on_pruned(cache, "events", 4); /* every event leaves memory */
    answer(3, 4, 0, 0);
    assert_true(stats().bytes < with_events);
    feed_cache_sweep(cache, INT64_MAX / 2);
    assert_int_equal(feed_cache_channel_count(cache), 0);
    assert_int_equal(stats().bytes, empty);
}

/* Only subscribed channels left over budget: their rings go, their heads stay. */
static void test_subscribed_rings_are_trimmed_under_pressure(void **state)
{
    waiter w[2] = {{.node.wake = on_wake}, {.node.wake = on_wake}};
    feed_channel *a = feed_cache_channel(cache, "ring-a");
    feed_channel_subscribe(a, &w[0].node);
    assert_true(feed_channel_load(a, 0));
    answer(3, 1, 1, 3);
    size_t full = stats().bytes;
    feed_channel_unsubscribe(&w[0].node);
    use_limits(full, 0, 0); /* room for about one channel with its events */
    a = feed_cache_channel(cache, "ring-a");
    feed_channel_subscribe(a, &w[0].node);
    assert_true(feed_channel_load(a, 0));
    answer(3, 1, 1, 3);
    feed_channel *b = feed_cache_channel(cache, "ring-b");
    feed_channel_subscribe(b, &w[1].node);
    assert_true(feed_channel_load(b, -1));
    answer(9, 1, 0, 0); /* the turn that sent its head batch ended over budget */
    feed_cache_end_turn(cache);
    feed_cache_stats s = stats();
    assert_int_equal(s.evictions, 0);
    assert_int_equal(s.ring_trims, 1);
    assert_true(feed_channel_covers(a, 3)); /* a subscriber at the head loses nothing */
    assert_false(feed_channel_covers(a, 2));
    assert_null(feed_channel_event_after(a, 3));
    /* Still over budget and nothing to evict: a new event is not cached either. */
    feed_cache_on_notify(cache, "ring-b", 10);
    answer(10, 1, 10, 10);
    assert_int_equal(feed_channel_head(b), 10);
    assert_false(feed_channel_covers(b, 9));
    feed_channel_unsubscribe(&w[0].node);
    feed_channel_unsubscribe(&w[1].node);
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
        TEST(test_loads_of_one_turn_share_one_query),
        TEST(test_only_channels_behind_read_their_events),
        TEST(test_batches_are_capped_and_one_at_a_time),
        TEST(test_a_full_load_queue_refuses),
        TEST(test_budget_evicts_least_recently_used_idle_channels),
        TEST(test_accounting_returns_to_empty),
        TEST(test_subscribed_rings_are_trimmed_under_pressure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
