/*
 * subscription — one channel of a request: its cursor and, behind the ring,
 * its catch-up page (shared with every client at that cursor: catchup.h).
 */
#include "request_private.h"
#include "cursor.h"
#include "xalloc.h"

#include <string.h>

void subscription_history_free(history *h)
{
    catchup_page_release(h);
}

void subscription_release_all(request *r)
{
    for (size_t i = 0; i < r->n_subs; i++) {
        subscription *s = &r->subs[i];
        feed_channel_unsubscribe(&s->node);
        catchup_cancel(s->query);
        s->query = NULL;
        subscription_history_free(s->hist);
        s->hist = NULL;
    }
}

/* Takes a page (a reference) as the subscription's history. */
static void subscription_take_page(subscription *s, history *h)
{
    if (s->from_oldest && s->cursor < h->oldest - 1)
        s->cursor = h->oldest - 1;
    subscription_history_free(s->hist);
    s->hist = h;
}

static void subscription_on_history(void *ctx, catchup_page *page)
{
    subscription *s = ctx;
    request *r = s->req;
    s->query = NULL;
    if (!page) {
        /* A stream retries from the sweep; a held poll waits out an outage (its channel
         * is re-read on reconnect) but not reads that fail with the database up. */
        if (r->state == REQ_STREAMING || (r->state == REQ_HELD && !request_reads_failing(r)))
            return;
        request_fail_unavailable(r);
        return;
    }
    subscription_take_page(s, page);
    request_evaluate(r);
}

/* A stream's page is held until written: keep it small, it reads the next on demand. */
static int subscription_read_limit(const subscription *s)
{
    return s->req->fr.transport == TRANSPORT_SSE ? SSE_HISTORY_PAGE : s->req->fr.limit;
}

/*
 * Gets this subscription's events from its cursor, beyond the ring: from a
 * page kept for an earlier client at this cursor (1), or from a read it
 * shares with whoever else needs the same range (0); -1 when the database
 * cannot be asked.
 */
static int subscription_read_history(subscription *s)
{
    request *r = s->req;
    feed_channel *ch = s->node.channel;
    int limit = subscription_read_limit(s);
    catchup_page *page = catchup_find(r->reg->catchup, ch, s->cursor, limit);
    if (page) {
        r->reg->stats->catchup_hits++;
        subscription_take_page(s, page);
        return 1;
    }
    bool joined = false;
    s->query =
        catchup_read(r->reg->catchup, ch, s->cursor, limit, subscription_on_history, s, &joined);
    if (!s->query)
        return -1;
    if (joined)
        r->reg->stats->catchup_joined++;
    else
        r->reg->stats->catchup_reads++;
    return 0;
}

static void subscription_on_wake(feed_subscriber *node)
{
    subscription *s = (subscription *)node;
    request *r = s->req;
    if (r->state == REQ_HELD) {
        /* What an earlier read said may be stale now: look again from the cache. */
        for (size_t i = 0; i < r->n_subs; i++) {
            subscription_history_free(r->subs[i].hist);
            r->subs[i].hist = NULL;
        }
    }
    request_evaluate(r);
}

int subscription_prepare_all(request *r)
{
    bool pending = false;
    for (size_t i = 0; i < r->n_subs; i++) {
        subscription *s = &r->subs[i];
        if (s->query) {
            pending = true;
            continue;
        }
        if (s->hist)
            continue;
        feed_channel *ch = s->node.channel;
        if (!feed_channel_known(ch)) {
            if (!feed_channel_load(ch, s->cursor))
                return -1;
            pending = true;
            continue;
        }
        if (s->cursor == CURSOR_NOW)
            s->cursor = feed_channel_head(ch);
        if (s->from_oldest && s->cursor < feed_channel_oldest(ch) - 1)
            s->cursor = feed_channel_oldest(ch) - 1;
        if (feed_channel_covers(ch, s->cursor)) {
            feed_cache_count_hit(ch);
            continue;
        }
        int read = subscription_read_history(s);
        if (read < 0)
            return -1;
        pending |= read == 0;
    }
    return pending ? 0 : 1;
}

subscription_source subscription_source_of(const subscription *s)
{
    subscription_source src;
    if (s->hist) {
        src.head = s->hist->head;
        src.oldest = s->hist->oldest;
        src.gone = s->cursor < src.oldest - 1;
        src.ahead = s->cursor > src.head;
    } else {
        src.head = feed_channel_head(s->node.channel);
        src.oldest = feed_channel_oldest(s->node.channel);
        src.gone = src.ahead = false; /* the cache covers the cursor */
    }
    src.ahead |= s->node.reset; /* the cursor counted the channel's previous incarnation */
    return src;
}

/* The prepared event after version, or NULL. */
const feed_event *subscription_event_after(const subscription *s, int64_t version)
{
    if (s->hist)
        return catchup_page_event_after(s->hist, version);
    return feed_channel_event_after(s->node.channel, version);
}

int64_t subscription_caught_up(const subscription *s, const subscription_source *src,
                               int64_t cursor)
{
    bool complete = s->hist ? s->hist->complete : true;
    return complete && cursor < src->head && !subscription_event_after(s, cursor) ? src->head
                                                                                  : cursor;
}

void subscription_format_cursor(request *r, const int64_t *versions, buf *out)
{
    cursor_format(out, r->n_subs, (const char *const *)r->fr.channels, versions);
}

/* One subscription per channel of the request, each on its channel's list. */
void subscription_init_all(request *r)
{
    feed_request *fr = &r->fr;
    r->subs = xcalloc(fr->n_channels, sizeof *r->subs);
    r->n_subs = fr->n_channels;
    for (size_t i = 0; i < fr->n_channels; i++) {
        subscription *s = &r->subs[i];
        s->req = r;
        s->cursor = fr->cursors[i];
        if (s->cursor == CURSOR_OLDEST) {
            s->cursor = 0;
            s->from_oldest = true;
        }
        s->node.wake = subscription_on_wake;
        feed_channel_subscribe(feed_cache_channel(r->reg->cache, fr->channels[i]), &s->node);
    }
}

/* True when the subscription waits for a read nobody has started (one refused by the backoff). */
bool subscription_needs_read(const subscription *s)
{
    return !s->query && !s->hist && !feed_channel_covers(s->node.channel, s->cursor);
}
