/*
 * fake_db — the reads of db and the clock, replaced for the cmocka tests that
 * link with -Wl,--wrap (see fake_db.h): what the code under test starts is
 * kept on a list, oldest first, until the test answers it.
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
#include "xalloc.h"

static fake_db_read pending[16];
static size_t n_pending;
static size_t n_started;
static bool refuse;
static int64_t epoch = 1;
static int64_t now_ms;
static int version_digits;
static char dummy_query; /* every handle: the code under test never looks inside */

db_query *__wrap_db_read(db *d, const char *channel, int64_t after, int limit, db_read_cb cb,
                         void *ctx);
db_query *__wrap_db_read_heads(db *d, const char *const *channels, size_t n, db_heads_cb cb,
                               void *ctx);
bool __wrap_db_can_read(const db *d);
int64_t __wrap_clock_now_ms(void);

void fake_db_reset(void)
{
    n_pending = n_started = 0;
    refuse = false;
    epoch = 1;
    now_ms = 0;
    version_digits = 0;
}

static fake_db_read *pending_add(void)
{
    assert_true(n_pending < sizeof pending / sizeof *pending);
    fake_db_read *r = &pending[n_pending++];
    memset(r, 0, sizeof *r);
    return r;
}

db_query *__wrap_db_read(db *d, const char *channel, int64_t after, int limit, db_read_cb cb,
                         void *ctx)
{
    if (refuse)
        return NULL;
    fake_db_read *r = pending_add();
    snprintf(r->channel, sizeof r->channel, "%s", channel);
    r->after = after;
    r->limit = limit;
    r->cb = cb;
    r->ctx = ctx;
    n_started++;
    return (db_query *)&dummy_query;
}

db_query *__wrap_db_read_heads(db *d, const char *const *channels, size_t n, db_heads_cb cb,
                               void *ctx)
{
    if (refuse)
        return NULL;
    assert_true(n > 0 && n <= FAKE_DB_NAMES);
    fake_db_read *r = pending_add();
    r->heads_cb = cb;
    r->ctx = ctx;
    r->n_names = n;
    for (size_t i = 0; i < n; i++)
        snprintf(r->names[i], sizeof r->names[i], "%s", channels[i]);
    return (db_query *)&dummy_query;
}

bool __wrap_db_can_read(const db *d)
{
    return !refuse;
}

int64_t __wrap_clock_now_ms(void)
{
    return now_ms;
}

size_t fake_db_pending_count(void)
{
    return n_pending;
}

const fake_db_read *fake_db_pending(size_t i)
{
    assert_true(i < n_pending);
    return &pending[i];
}

size_t fake_db_reads_started(void)
{
    return n_started;
}

void fake_db_refuse_reads(bool refuse_them)
{
    refuse = refuse_them;
}

void fake_db_set_epoch(int64_t e)
{
    epoch = e;
}

void fake_db_set_now_ms(int64_t ms)
{
    now_ms = ms;
}

void fake_db_advance_ms(int64_t ms)
{
    now_ms += ms;
}

void fake_db_set_version_digits(int digits)
{
    version_digits = digits;
}

/* Takes pending entry i off the list before its callback runs: the callback may start more. */
static fake_db_read take(size_t i)
{
    assert_true(i < n_pending);
    fake_db_read r = pending[i];
    memmove(pending + i, pending + i + 1, (n_pending - i - 1) * sizeof *pending);
    n_pending--;
    return r;
}

static fake_db_read take_read(size_t i)
{
    fake_db_read r = take(i);
    assert_non_null(r.cb);
    return r;
}

static fake_db_read take_heads(size_t i)
{
    fake_db_read r = take(i);
    assert_non_null(r.heads_cb);
    return r;
}

static void answer_read(const fake_db_read *r, int64_t head, int64_t oldest, const db_event *events,
                        size_t n)
{
    db_read_result res = {.ok = true,
                          .head = head,
                          .oldest = oldest,
                          .epoch = epoch,
                          .complete = n < (size_t)r->limit,
                          .n_events = n,
                          .events = events};
    r->cb(r->ctx, &res);
}

void fake_db_answer_events(size_t i, int64_t head, int64_t oldest, const db_event *events, size_t n)
{
    fake_db_read r = take_read(i);
    answer_read(&r, head, oldest, events, n);
}

void fake_db_answer_versions(size_t i, int64_t head, int64_t oldest, const int64_t *versions,
                             size_t n)
{
    fake_db_read r = take_read(i);
    size_t cap = r.limit > 0 ? (size_t)r.limit : 1;
    db_event *events = xcalloc(cap, sizeof *events);
    char(*texts)[40] = xcalloc(cap, sizeof *texts);
    size_t kept = 0;
    for (size_t k = 0; k < n && kept < (size_t)r.limit; k++) {
        if (versions[k] <= r.after)
            continue;
        snprintf(texts[kept], sizeof texts[kept], "{\"version\":%0*lld}", version_digits,
                 (long long)versions[k]);
        events[kept] = (db_event){
            .version = versions[k], .json = texts[kept], .json_len = strlen(texts[kept])};
        kept++;
    }
    answer_read(&r, head, oldest, events, kept);
    free(events);
    free(texts);
}

void fake_db_answer_range(size_t i, int64_t head, int64_t oldest, int64_t first, int64_t last)
{
    const fake_db_read *r = fake_db_pending(i);
    /* only what the read can return: after its cursor, at most its limit */
    if (first <= r->after)
        first = r->after + 1;
    if (first < 1)
        first = 1;
    size_t n = last >= first ? (size_t)(last - first + 1) : 0;
    if (r->limit >= 0 && n > (size_t)r->limit)
        n = (size_t)r->limit;
    int64_t *versions = xcalloc(n ? n : 1, sizeof *versions);
    for (size_t k = 0; k < n; k++)
        versions[k] = first + (int64_t)k;
    fake_db_answer_versions(i, head, oldest, versions, n);
    free(versions);
}

static void answer_heads(const fake_db_read *r, const db_head *heads, size_t n)
{
    assert_int_equal(n, r->n_names);
    for (size_t k = 0; k < n; k++)
        assert_string_equal(heads[k].channel, r->names[k]);
    db_heads_result res = {.ok = true, .n_heads = n, .heads = heads};
    r->heads_cb(r->ctx, &res);
}

void fake_db_answer_each_head(size_t i, const db_head *heads, size_t n)
{
    fake_db_read r = take_heads(i);
    answer_heads(&r, heads, n);
}

void fake_db_answer_heads(size_t i, int64_t head, int64_t oldest)
{
    fake_db_read r = take_heads(i);
    db_head heads[FAKE_DB_NAMES];
    for (size_t k = 0; k < r.n_names; k++)
        heads[k] = (db_head){.channel = r.names[k], .head = head, .oldest = oldest, .epoch = epoch};
    answer_heads(&r, heads, r.n_names);
}

void fake_db_fail(size_t i)
{
    fake_db_read r = take(i);
    if (r.heads_cb) {
        db_heads_result res = {.ok = false, .error = "permission denied"};
        r.heads_cb(r.ctx, &res);
        return;
    }
    db_read_result res = {.ok = false, .error = "permission denied"};
    r.cb(r.ctx, &res);
}

void fake_db_load(feed_cache *c, feed_channel *ch, int64_t after, int64_t head)
{
    assert_true(feed_channel_load(ch, after));
    feed_cache_end_turn(c);
    assert_int_equal(fake_db_pending_count(), 1);
    assert_int_equal(fake_db_pending(0)->n_names, 1);
    fake_db_answer_heads(0, head, 1);
}
