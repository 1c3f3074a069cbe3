/*
 * test_subscription — where a subscription's events come from (the cache or
 * its own history), gone and reset cursors, and when it still needs a read.
 * pgfeed.read and the head batch are fake_db's, so channels load from the test.
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
#include "request_private.h"
#include "xalloc.h"

static feed_cache *cache;

static int setup(void **state)
{
    fake_db_reset();
    feed_cache_limits limits = {
        .ring_events = 3, .ring_bytes = 1 << 20, .read_batch = 100, .idle_ms = 60000};
    cache = feed_cache_new(NULL, &limits);
    return 0;
}

static int teardown(void **state)
{
    feed_cache_free(cache);
    return 0;
}

/* A channel whose cache holds head..head-2 (ring_events 3), oldest retained 1. */
static feed_channel *loaded(const char *name, int64_t head)
{
    feed_channel *ch = feed_cache_channel(cache, name);
    /* Read from just before those events, as pgfeed.read would return them: the turn's
     * head batch says where the head is; the read of its events follows. */
    fake_db_load(cache, ch, head - 3, head);
    fake_db_answer_range(0, head, 1, head - 2, head);
    return ch;
}

static history *history_of(int64_t head, int64_t oldest, int64_t first, int64_t last)
{
    history *h = catchup_page_new(first - 1, head, oldest);
    h->events = xcalloc(8, sizeof *h->events);
    for (int64_t v = first; v <= last; v++)
        h->events[h->n_events++] = feed_event_new(v, "{}", 2);
    return h;
}

static void test_cache_serves_a_covered_cursor(void **state)
{
    subscription s = {.node.channel = loaded("orders", 10), .cursor = 8};
    subscription_source src = subscription_source_of(&s);
    assert_int_equal(src.head, 10);
    assert_int_equal(src.oldest, 1);
    assert_false(src.gone);
    assert_false(src.ahead);
    assert_false(subscription_needs_read(&s));
    assert_int_equal(subscription_event_after(&s, 8)->version, 9);
    assert_int_equal(subscription_event_after(&s, 9)->version, 10);
    assert_null(subscription_event_after(&s, 10));
}

static void test_a_cursor_behind_the_ring_needs_its_own_read(void **state)
{
    subscription s = {.node.channel = loaded("orders", 10), .cursor = 5};
    assert_true(subscription_needs_read(&s));
    s.hist = history_of(10, 1, 6, 8); /* a page of its own history */
    assert_false(subscription_needs_read(&s));
    assert_int_equal(subscription_event_after(&s, 5)->version, 6);
    assert_int_equal(subscription_event_after(&s, 7)->version, 8);
    assert_null(subscription_event_after(&s, 8)); /* the rest is the next page */
    subscription_history_free(s.hist);
    subscription_history_free(NULL);
}

static void test_pruned_and_reset_cursors(void **state)
{
    subscription s = {.node.channel = loaded("orders", 10), .cursor = 2};
    s.hist = history_of(10, 5, 5, 7); /* events up to 4 were pruned */
    subscription_source src = subscription_source_of(&s);
    assert_true(src.gone);
    assert_false(src.ahead);
    assert_int_equal(src.oldest, 5);
    s.cursor = 4; /* exactly at the edge: 5 is retained, nothing is lost */
    assert_false(subscription_source_of(&s).gone);
    subscription_history_free(s.hist);

    s.hist = history_of(3, 1, 0, -1); /* the feed was reset below the cursor */
    s.cursor = 9;
    src = subscription_source_of(&s);
    assert_true(src.ahead);
    assert_false(src.gone);
    assert_int_equal(src.head, 3);
    subscription_history_free(s.hist);
}

static void test_an_unknown_channel_needs_a_read(void **state)
{
    subscription s = {.node.channel = feed_cache_channel(cache, "fresh"), .cursor = 0};
    assert_true(subscription_needs_read(&s));
    char in_flight;
    s.query = (catchup_wait *)&in_flight; /* a read in flight */
    assert_false(subscription_needs_read(&s));
}

int main(void)
{
#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        TEST(test_cache_serves_a_covered_cursor),
        TEST(test_a_cursor_behind_the_ring_needs_its_own_read),
        TEST(test_pruned_and_reset_cursors),
        TEST(test_an_unknown_channel_needs_a_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
