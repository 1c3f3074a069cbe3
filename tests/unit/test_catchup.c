/*
 * test_catchup — catch-up reads shared by the clients behind a ring: one
 * pgfeed.read per (channel, cursor range) however many wait, pages kept for
 * --catchup-ms within --catchup-bytes, and every answer the whole answer a
 * read of its own would give. pgfeed.read and the clock are the test's
 * (fake_db): reads are recorded and answered here, in any order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catchup.h"
#include "fake_db.h"

/* Answers the oldest pending read as pgfeed.read would: the events first..last after its cursor. */
static void answer(int64_t head, int64_t oldest, int64_t first, int64_t last)
{
    fake_db_answer_range(0, head, oldest, first, last);
}

/* A client waiting for its page. */
typedef struct client {
    int calls;
    catchup_page *page; /* the reference it was given */
    bool failed;
} client;

static void on_page(void *ctx, catchup_page *page)
{
    client *c = ctx;
    c->calls++;
    c->failed = page == NULL;
    catchup_page_release(c->page);
    c->page = page;
}

static feed_cache *cache;
static catchup *cu;

static void make(size_t max_bytes, int64_t keep_ms)
{
    catchup_free(cu);
    catchup_limits limits = {.max_bytes = max_bytes, .keep_ms = keep_ms};
    cu = catchup_new(NULL, &limits);
}

static int setup(void **state)
{
    fake_db_reset();
    fake_db_set_now_ms(1000000);
    feed_cache_limits limits = {.ring_events = 4,
                                .ring_bytes = 1 << 20,
                                .read_batch = 100,
                                .idle_ms = 60000,
                                .load_queue = 16};
    cache = feed_cache_new(NULL, &limits);
    cu = NULL;
    make(1 << 20, 1000);
    return 0;
}

static int teardown(void **state)
{
    catchup_free(cu);
    feed_cache_free(cache);
    assert_int_equal(fake_db_pending_count(), 0); /* every read the test started was answered */
    return 0;
}

static catchup_wait *wait_for(const char *channel, int64_t cursor, int limit, client *c,
                              bool *joined)
{
    catchup_wait *w =
        catchup_read(cu, feed_cache_channel(cache, channel), cursor, limit, on_page, c, joined);
    assert_non_null(w);
    return w;
}

static void release(client *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        catchup_page_release(c[i].page);
        c[i].page = NULL;
    }
}

static void test_clients_at_one_cursor_share_one_read(void **state)
{
    client c[100] = {0};
    bool joined;
    for (int i = 0; i < 100; i++) {
        wait_for("orders", 500, 100, &c[i], &joined);
        assert_int_equal(joined, i > 0);
    }
    assert_int_equal(fake_db_reads_started(), 1);
    assert_int_equal(fake_db_pending(0)->after, 500);
    assert_int_equal(fake_db_pending(0)->limit, 100);
    answer(5000, 1, 1, 5000);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(c[i].calls, 1);
        assert_ptr_equal(c[i].page, c[0].page); /* one page in memory */
    }
    const catchup_page *p = c[0].page;
    assert_int_equal(p->n_events, 100);
    assert_false(p->complete);
    assert_int_equal(catchup_page_event_after(p, 500)->version, 501);
    assert_int_equal(catchup_page_event_after(p, 550)->version, 551);
    assert_null(catchup_page_event_after(p, 600));
    assert_int_equal(p->refs, 101); /* the cache's and each client's */
    release(c, 100);
}

static void test_a_kept_page_serves_the_next_client_without_a_read(void **state)
{
    client first = {0};
    bool joined;
    wait_for("orders", 500, 100, &first, &joined);
    answer(5000, 1, 1, 5000);
    feed_channel *ch = feed_cache_channel(cache, "orders");
    fake_db_advance_ms(999);
    catchup_page *p = catchup_find(cu, ch, 500, 100);
    assert_ptr_equal(p, first.page);
    catchup_page_release(p);
    /* a smaller answer inside it is whole too; a cursor whose limit runs past it is not */
    p = catchup_find(cu, ch, 550, 50);
    assert_ptr_equal(p, first.page);
    catchup_page_release(p);
    assert_null(catchup_find(cu, ch, 550, 100));
    assert_null(catchup_find(cu, ch, 499, 10)); /* before its cursor */
    assert_null(catchup_find(cu, feed_cache_channel(cache, "other"), 500, 100));
    assert_int_equal(fake_db_reads_started(), 1);
    /* --catchup-ms later it is gone */
    fake_db_advance_ms(2);
    assert_null(catchup_find(cu, ch, 500, 100));
    assert_int_equal(catchup_bytes(cu), 0);
    release(&first, 1);
}

static void test_a_complete_page_serves_up_to_its_head(void **state)
{
    client first = {0};
    bool joined;
    wait_for("orders", 10, 100, &first, &joined);
    answer(40, 1, 1, 35); /* 11..35, and 36..40 do not exist (holes) */
    assert_true(first.page->complete);
    feed_channel *ch = feed_cache_channel(cache, "orders");
    catchup_page *p = catchup_find(cu, ch, 37, 100); /* nothing after 37 up to its head */
    assert_ptr_equal(p, first.page);
    assert_null(catchup_page_event_after(p, 37));
    catchup_page_release(p);
    assert_null(catchup_find(cu, ch, 41, 100)); /* beyond its head: a reset to tell */
    release(&first, 1);
}

/* A page that reached its head says "nothing more" only while the ring knows no newer head. */
static void test_a_complete_page_stops_serving_short_answers_once_the_head_moved(void **state)
{
    feed_channel *ch = feed_cache_channel(cache, "orders");
    fake_db_load(cache, ch, 4980, 4990);
    answer(4990, 1, 4981, 4990);
    client a = {0};
    bool joined;
    wait_for("orders", 4900, 200, &a, &joined);
    answer(5000, 1, 1, 5000); /* 4901..5000: complete, ahead of the ring */
    catchup_page *p = catchup_find(cu, ch, 4950, 200);
    assert_ptr_equal(p, a.page);
    catchup_page_release(p);
    feed_cache_on_notify(cache, "orders", 5010);
    answer(5010, 1, 4991, 5010); /* the ring knows 5010 now */
    assert_null(catchup_find(cu, ch, 4950, 200));
    p = catchup_find(cu, ch, 4900, 50); /* a full answer is still whole */
    assert_ptr_equal(p, a.page);
    catchup_page_release(p);
    release(&a, 1);
}

static void test_a_read_in_flight_covering_the_range_is_joined(void **state)
{
    client a = {0}, b = {0}, c = {0};
    bool joined;
    wait_for("orders", 100, 1000, &a, &joined);
    wait_for("orders", 300, 100, &b, &joined); /* 301..400 lie within 101..1100 */
    assert_true(joined);
    wait_for("orders", 1050, 100, &c, &joined); /* 1051..1150 do not */
    assert_false(joined);
    assert_int_equal(fake_db_reads_started(), 2);
    answer(5000, 1, 1, 5000);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    assert_ptr_equal(a.page, b.page);
    assert_int_equal(catchup_page_event_after(b.page, 300)->version, 301);
    assert_int_equal(c.calls, 0);
    answer(5000, 1, 1, 5000);
    assert_int_equal(c.calls, 1);
    assert_int_equal(catchup_page_event_after(c.page, 1050)->version, 1051);
    release(&a, 1), release(&b, 1), release(&c, 1);
}

static void test_a_joined_read_that_does_not_serve_reads_again(void **state)
{
    client a = {0}, b = {0};
    bool joined;
    wait_for("orders", 100, 1000, &a, &joined);
    wait_for("orders", 300, 100, &b, &joined);
    assert_true(joined);
    answer(250, 1, 1, 250); /* the head is below b's cursor: its page says nothing about it */
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 0);
    assert_int_equal(fake_db_pending_count(), 1);
    assert_int_equal(fake_db_pending(0)->after, 300); /* its own cursor now */
    answer(250, 1, 1, 250);
    assert_int_equal(b.calls, 1); /* its own read answers it, whatever it says */
    assert_int_equal(b.page->head, 250);
    assert_int_equal(b.page->n_events, 0);
    release(&a, 1), release(&b, 1);
}

static void test_a_failed_read_fails_every_waiter_and_keeps_nothing(void **state)
{
    client a = {0}, b = {0};
    bool joined;
    wait_for("orders", 100, 100, &a, &joined);
    wait_for("orders", 100, 100, &b, &joined);
    fake_db_fail(0);
    assert_true(a.failed && b.failed);
    assert_int_equal(a.calls + b.calls, 2);
    assert_null(catchup_find(cu, feed_cache_channel(cache, "orders"), 100, 100));
    fake_db_refuse_reads(true);
    assert_null(
        catchup_read(cu, feed_cache_channel(cache, "orders"), 100, 100, on_page, &a, &joined));
}

static void test_a_cancelled_wait_hears_nothing(void **state)
{
    client a = {0}, b = {0};
    bool joined;
    catchup_wait *w = wait_for("orders", 100, 100, &a, &joined);
    wait_for("orders", 100, 100, &b, &joined);
    catchup_cancel(w);
    catchup_cancel(NULL);
    answer(5000, 1, 1, 5000);
    assert_int_equal(a.calls, 0);
    assert_int_equal(b.calls, 1);
    release(&b, 1);
    /* a cancelled read still serves the cache */
    w = wait_for("orders", 700, 100, &a, &joined);
    catchup_cancel(w);
    answer(5000, 1, 1, 5000);
    catchup_page *p = catchup_find(cu, feed_cache_channel(cache, "orders"), 700, 100);
    assert_non_null(p);
    catchup_page_release(p);
}

static void test_kept_pages_stay_within_their_bytes(void **state)
{
    make(12000, 1000); /* a page of 100 small events is about 5 KB here */
    client c[4] = {0};
    bool joined;
    for (int i = 0; i < 4; i++) {
        wait_for("orders", 100 * (i + 1), 100, &c[i], &joined);
        answer(5000, 1, 1, 5000);
        assert_true(catchup_bytes(cu) <= 12000);
        fake_db_advance_ms(1);
    }
    feed_channel *ch = feed_cache_channel(cache, "orders");
    assert_null(catchup_find(cu, ch, 100, 100)); /* the oldest left first */
    catchup_page *p = catchup_find(cu, ch, 400, 100);
    assert_ptr_equal(p, c[3].page);
    catchup_page_release(p);
    release(c, 4); /* pages handed out outlive their eviction */
    make(0, 1000); /* none kept, reads still joined */
    wait_for("orders", 100, 100, &c[0], &joined);
    wait_for("orders", 100, 100, &c[1], &joined);
    assert_true(joined);
    answer(5000, 1, 1, 5000);
    assert_ptr_equal(c[0].page, c[1].page);
    assert_int_equal(catchup_bytes(cu), 0);
    assert_null(catchup_find(cu, ch, 100, 100));
    release(c, 2);
}

/*
 * A page may be ahead of the ring (its read saw newer commits) and still
 * serves; once the channel's own reads show it pruned past the page's oldest,
 * or reset below the head it had when the read started, the page must not answer.
 */
static void test_a_page_the_channel_contradicts_is_not_served(void **state)
{
    feed_channel *ch = feed_cache_channel(cache, "orders");
    fake_db_load(cache, ch, 4980, 4990);
    answer(4990, 1, 4981, 4990); /* the ring's head is 4990 */
    client a = {0}, b = {0};
    bool joined;
    wait_for("orders", 100, 100, &a, &joined);
    answer(5000, 1, 1, 5000); /* the page saw 5000 already */
    catchup_page *p = catchup_find(cu, ch, 100, 100);
    assert_ptr_equal(p, a.page);
    catchup_page_release(p);
    feed_cache_on_notify(cache, "orders", 5000);
    answer(5000, 150, 4991, 5000); /* the ring's next read: pruned up to 149 since */
    assert_int_equal(feed_channel_oldest(ch), 150);
    assert_null(catchup_find(cu, ch, 100, 100));

    wait_for("orders", 300, 100, &b, &joined);
    answer(5000, 150, 1, 5000);
    p = catchup_find(cu, ch, 300, 100);
    assert_ptr_equal(p, b.page);
    catchup_page_release(p);
    feed_cache_on_reset(cache, "orders");
    answer(50, 1, 1, 50); /* the channel was reset: its head went back */
    assert_null(catchup_find(cu, ch, 300, 100));
    release(&a, 1), release(&b, 1);
}

static void test_pages_hold_only_ascending_versions_after_their_cursor(void **state)
{
    client a = {0};
    bool joined;
    wait_for("orders", 10, 100, &a, &joined);
    db_event ev[4] = {{.version = 9, .json = "{}", .json_len = 2},
                      {.version = 12, .json = "{}", .json_len = 2},
                      {.version = 11, .json = "{}", .json_len = 2},
                      {.version = 15, .json = "{}", .json_len = 2}};
    fake_db_answer_events(0, 15, 1, ev, 4);
    assert_int_equal(a.page->n_events, 2);
    assert_int_equal(catchup_page_event_after(a.page, 10)->version, 12);
    assert_int_equal(catchup_page_event_after(a.page, 12)->version, 15);
    release(&a, 1);
}

/* A waiter's callback may start the next read at once (a stream or poll moving on). */
static client chained;
static void on_page_then_read(void *ctx, catchup_page *page)
{
    on_page(ctx, page);
    bool joined;
    catchup_wait *w =
        catchup_read(cu, feed_cache_channel(cache, "orders"), 200, 100, on_page, &chained, &joined);
    assert_non_null(w);
}

static void test_a_callback_may_read_again(void **state)
{
    client a = {0}, b = {0};
    bool joined;
    memset(&chained, 0, sizeof chained);
    assert_non_null(catchup_read(cu, feed_cache_channel(cache, "orders"), 100, 100,
                                 on_page_then_read, &a, &joined));
    wait_for("orders", 100, 100, &b, &joined);
    answer(5000, 1, 1, 5000);
    assert_int_equal(a.calls + b.calls, 2);
    assert_int_equal(fake_db_pending_count(), 1);
    answer(5000, 1, 1, 5000);
    assert_int_equal(chained.calls, 1);
    release(&a, 1), release(&b, 1), release(&chained, 1);
}

int main(void)
{
#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        TEST(test_clients_at_one_cursor_share_one_read),
        TEST(test_a_kept_page_serves_the_next_client_without_a_read),
        TEST(test_a_complete_page_serves_up_to_its_head),
        TEST(test_a_complete_page_stops_serving_short_answers_once_the_head_moved),
        TEST(test_a_read_in_flight_covering_the_range_is_joined),
        TEST(test_a_joined_read_that_does_not_serve_reads_again),
        TEST(test_a_failed_read_fails_every_waiter_and_keeps_nothing),
        TEST(test_a_cancelled_wait_hears_nothing),
        TEST(test_kept_pages_stay_within_their_bytes),
        TEST(test_a_page_the_channel_contradicts_is_not_served),
        TEST(test_pages_hold_only_ascending_versions_after_their_cursor),
        TEST(test_a_callback_may_read_again),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
