/*
 * test_feed_cache_ring — the ring sized by time as well as by count
 * (--ring-seconds): a burst stays in memory for that long, within
 * --ring-bytes, and the slots shrink again after it. pgfeed.read and the
 * clock are the test's (-Wl,--wrap=db_read,--wrap=clock_now_ms).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "feed_cache.h"

static db_read_cb last_cb;
static void *last_ctx;
static int64_t last_after;
static int64_t now_ms;
static char dummy_query;

db_query *__wrap_db_read(db *d, const char *channel, int64_t after, int limit, db_read_cb cb,
                         void *ctx);
db_query *__wrap_db_read(db *d, const char *channel, int64_t after, int limit, db_read_cb cb,
                         void *ctx)
{
    (void)d, (void)channel, (void)limit;
    last_cb = cb;
    last_ctx = ctx;
    last_after = after;
    return (db_query *)&dummy_query;
}

int64_t __wrap_clock_now_ms(void);
int64_t __wrap_clock_now_ms(void)
{
    return now_ms;
}

/* Answers the read in flight with events after its cursor up to head (each 20 bytes below 10^8). */
static void answer(int64_t head)
{
    static db_event events[2048];
    static char texts[2048][40];
    size_t n = 0;
    for (int64_t v = last_after + 1; v <= head; v++, n++) {
        snprintf(texts[n], sizeof texts[n], "{\"version\":%08lld}", (long long)v);
        events[n] = (db_event){.version = v, .json = texts[n], .json_len = strlen(texts[n])};
    }
    db_read_result res = {.ok = true,
                          .head = head,
                          .oldest = 1,
                          .epoch = 1,
                          .complete = true,
                          .n_events = n,
                          .events = events};
    db_read_cb cb = last_cb;
    last_cb = NULL;
    cb(last_ctx, &res);
}

static feed_cache *cache;

/* The turn's head batch (one channel in these tests): answered by load(). */
static db_heads_cb heads_cb;
static void *heads_ctx;
static char heads_name[64];

db_query *__wrap_db_read_heads(db *d, const char *const *channels, size_t n, db_heads_cb cb,
                               void *ctx);
db_query *__wrap_db_read_heads(db *d, const char *const *channels, size_t n, db_heads_cb cb,
                               void *ctx)
{
    (void)d;
    assert_int_equal(n, 1);
    snprintf(heads_name, sizeof heads_name, "%s", channels[0]);
    heads_cb = cb;
    heads_ctx = ctx;
    return (db_query *)&dummy_query;
}

bool __wrap_db_can_read(const db *d);
bool __wrap_db_can_read(const db *d)
{
    (void)d;
    return true;
}

/* Loads ch as a poll from cursor after would: its head batch says head, then a read of
 * the events after the cursor follows (when it is behind the head) for the test to answer. */
static void load(feed_channel *ch, int64_t after, int64_t head)
{
    assert_true(feed_channel_load(ch, after));
    feed_cache_end_turn(cache);
    assert_non_null(heads_cb);
    db_head h = {.channel = heads_name, .head = head, .oldest = 1, .epoch = 1};
    db_heads_result res = {.ok = true, .n_heads = 1, .heads = &h};
    db_heads_cb cb = heads_cb;
    heads_cb = NULL;
    cb(heads_ctx, &res);
}

static feed_cache *make(size_t ring_bytes, int64_t ring_ms)
{
    feed_cache_limits limits = {.ring_events = 4,
                                .ring_bytes = ring_bytes,
                                .ring_ms = ring_ms,
                                .read_batch = 2000,
                                .idle_ms = 60000,
                                .load_queue = 16};
    return cache = feed_cache_new(NULL, &limits);
}

static int teardown(void **state)
{
    feed_cache_free(cache);
    return 0;
}

/* Publishes one event at a time, as NOTIFY + read would bring them. */
static void publish(feed_channel *ch, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        feed_cache_on_notify(cache, feed_channel_name(ch), feed_channel_head(ch) + 1);
        answer(feed_channel_head(ch) + 1);
    }
}

static feed_channel *known(void)
{
    feed_channel *ch = feed_cache_channel(cache, "burst");
    load(ch, 0, 0);
    return ch;
}

static void test_without_seconds_the_count_bounds_the_ring(void **state)
{
    make(1 << 20, 0);
    feed_channel *ch = known();
    publish(ch, 100);
    assert_true(feed_channel_covers(ch, 96));
    assert_false(feed_channel_covers(ch, 95));
}

static void test_a_burst_stays_for_its_seconds(void **state)
{
    make(1 << 20, 5000);
    feed_channel *ch = known();
    publish(ch, 1000); /* in one instant: all of it is younger than 5 s */
    assert_true(feed_channel_covers(ch, 0));
    for (int64_t v = 1; v <= 1000; v += 111)
        assert_int_equal(feed_channel_event_after(ch, v - 1)->version, v);
    now_ms += 4000;
    publish(ch, 1);
    assert_true(feed_channel_covers(ch, 0)); /* 4 s old: still kept */
    now_ms += 1000;
    publish(ch, 1); /* the burst is 5 s old now: it leaves, down to the 4 kept at least */
    assert_false(feed_channel_covers(ch, 997));
    assert_true(feed_channel_covers(ch, 998));
    assert_int_equal(feed_channel_event_after(ch, 998)->version, 999);
    publish(ch, 2000); /* 999 and 1000 are 5 s old, 1001 is 1 s: only it stays with the burst */
    assert_true(feed_channel_covers(ch, 1000));
    assert_false(feed_channel_covers(ch, 999));
    now_ms += 10000;
    publish(ch, 10); /* the old burst leaves for the young ten (the slots shrink) */
    assert_true(feed_channel_covers(ch, feed_channel_head(ch) - 10));
    assert_false(feed_channel_covers(ch, feed_channel_head(ch) - 11));
}

static void test_the_bytes_still_bound_a_burst(void **state)
{
    make(20 * 100, 60000); /* 100 events of 20 bytes */
    feed_channel *ch = known();
    publish(ch, 1000);
    assert_true(feed_channel_covers(ch, 900));
    assert_false(feed_channel_covers(ch, 899));
}

int main(void)
{
#define TEST(f) cmocka_unit_test_teardown(f, teardown)
    const struct CMUnitTest tests[] = {
        TEST(test_without_seconds_the_count_bounds_the_ring),
        TEST(test_a_burst_stays_for_its_seconds),
        TEST(test_the_bytes_still_bound_a_burst),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
