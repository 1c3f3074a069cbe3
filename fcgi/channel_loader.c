/*
 * channel_loader — head batches and the bounded load queue (see feed_cache.h).
 * Apart from feed_cache.c because loading a channel nobody knew is its own
 * job with its own bounds: the channels that became wanted in one loop turn
 * wait on the load queue (at most load_queue of them, beyond that a load is
 * refused), and at the turn's end at most load_batch of them are read in one
 * statement, one batch in flight at a time. Only a channel with events after
 * its first cursor then costs a read of its own (feed_cache.c's).
 */
#include "feed_cache_private.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

bool feed_cache_loads_full(const feed_cache *c)
{
    return c->limits.load_queue && c->n_queued + c->n_batch >= c->limits.load_queue;
}

bool feed_channel_load(feed_channel *ch, int64_t after_hint)
{
    feed_cache *c = ch->cache;
    if (ch->known || ch->loading)
        return true;
    if (!db_can_read(c->database))
        return false;
    if (feed_cache_loads_full(c)) {
        c->counts.load_rejected++;
        return false;
    }
    /* A cursor of "now" only needs the head; otherwise the events from the cursor follow. */
    ch->load_after = after_hint >= 0 ? after_hint : INT64_MAX / 2;
    ch->queue_next = NULL;
    if (c->queue_tail)
        c->queue_tail->queue_next = ch;
    else
        c->queue_head = ch;
    c->queue_tail = ch;
    c->n_queued++;
    c->counts.head_loads++;
    c->misses++;
    feed_channel_set_loading(ch, true);
    return true;
}

/*
 * The head batch's answer for one channel. With nothing after the cursor it
 * asked from, the head is all there is to know: it is applied as a read that
 * returned no event. Otherwise that channel alone reads its events from the
 * cursor (what a load did before batching), and its subscribers wait for it.
 */
static void channel_loader_on_head(feed_channel *ch, const db_head *h)
{
    if (h->head <= ch->load_after) {
        db_read_result r = {
            .ok = true, .head = h->head, .oldest = h->oldest, .epoch = h->epoch, .complete = true};
        ch->read_after = ch->load_after;
        ch->read_replaces = true;
        feed_channel_on_read(ch, &r); /* ends the load */
        return;
    }
    ch->loading = false; /* the read takes the load over (it is not idle meanwhile) */
    feed_channel_start_read(ch, ch->load_after);
    if (!ch->loading) {
        feed_channel_set_loading(ch, false);
        ch->known = false;
        feed_channel_wake(ch);
    }
}

/* The batch in flight is over: its channels are heard one by one, in the order asked. */
static void channel_loader_on_heads(void *ctx, const db_heads_result *r)
{
    feed_cache *c = ctx;
    feed_channel **batch = c->batch;
    size_t n = c->n_batch;
    c->batch = NULL;
    c->n_batch = 0;
    c->batch_query = NULL;
    for (size_t i = 0; i < n; i++) {
        feed_channel *ch = batch[i];
        if (r->ok && i < r->n_heads && strcmp(r->heads[i].channel, ch->name) == 0) {
            channel_loader_on_head(ch, &r->heads[i]);
            continue;
        }
        feed_channel_set_loading(ch, false);
        ch->known = false;
        feed_channel_wake(ch);
    }
    free(batch);
}

/* Sends the channels waiting for their head, at most load_batch of them, unless a batch runs. */
void channel_loader_send_heads(feed_cache *c)
{
    if (c->batch_query || c->n_queued == 0)
        return;
    size_t n = c->n_queued < c->limits.load_batch ? c->n_queued : c->limits.load_batch;
    c->batch = xcalloc(n, sizeof *c->batch);
    const char **names = xcalloc(n, sizeof *names);
    for (size_t i = 0; i < n; i++) {
        feed_channel *ch = c->queue_head;
        c->queue_head = ch->queue_next;
        ch->queue_next = NULL;
        c->batch[i] = ch;
        names[i] = ch->name;
    }
    if (!c->queue_head)
        c->queue_tail = NULL;
    c->n_queued -= n;
    c->n_batch = n;
    c->batch_query = db_read_heads(c->database, names, n, channel_loader_on_heads, c);
    free(names);
    if (c->batch_query) {
        c->counts.head_queries++;
        return;
    }
    db_heads_result refused = {.ok = false, .error = "database unavailable"};
    channel_loader_on_heads(c, &refused);
}

void channel_loader_free(feed_cache *c)
{
    db_query_cancel(c->batch_query);
    free(c->batch);
}
