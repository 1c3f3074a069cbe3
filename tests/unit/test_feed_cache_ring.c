/*
 * test_feed_cache_ring — the ring sized by time as well as by count
 * (--ring-seconds): a burst stays in memory for that long, within
 * --ring-bytes, and the slots shrink again after it. pgfeed.read and the
 * clock are the test's (fake_db).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "fake_db.h"
#include "feed_cache.h"

static feed_cache *cache;

/* Answers the read in flight with events after its cursor up to head. */
static void answer(int64_t head)
{
    fake_db_answer_range(0, head, 1, fake_db_pending(0)->after + 1, head);
}

static feed_cache *make(size_t ring_bytes, int64_t ring_ms)
{
    fake_db_reset();
    fake_db_set_version_digits(8); /* every event 20 bytes below 10^8 */
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
    assert_int_equal(fake_db_pending_count(), 0); /* every read the test started was answered */
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
    fake_db_load(cache, ch, 0, 0);
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
    fake_db_advance_ms(4000);
    publish(ch, 1);
    assert_true(feed_channel_covers(ch, 0)); /* 4 s old: still kept */
    fake_db_advance_ms(1000);
    publish(ch, 1); /* the burst is 5 s old now: it leaves, down to the 4 kept at least */
    assert_false(feed_channel_covers(ch, 997));
    assert_true(feed_channel_covers(ch, 998));
    assert_int_equal(feed_channel_event_after(ch, 998)->version, 999);
    publish(ch, 2000); /* 999 and 1000 are 5 s old, 1001 is 1 s: only it stays with the burst */
    assert_true(feed_channel_covers(ch, 1000));
    assert_false(feed_channel_covers(ch, 999));
    fake_db_advance_ms(10000);
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
