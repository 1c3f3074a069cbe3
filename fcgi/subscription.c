/*
 * subscription — one channel of a request: its cursor and its own history read.
 */
#include "request_private.h"
#include "cursor.h"
#include "xalloc.h"

#include <string.h>

void subscription_history_free(history *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n_events; i++)
        free(h->events[i]);
    free(h->events);
    free(h);
}

void subscription_release_all(request *r)
{
    for (size_t i = 0; i < r->n_subs; i++) {
        subscription *s = &r->subs[i];
        feed_channel_unsubscribe(&s->node);
        db_query_cancel(s->query);
        s->query = NULL;
        subscription_history_free(s->hist);
        s->hist = NULL;
    }
}

static void subscription_on_history(void *ctx, const db_read_result *res)
{
    subscription *s = ctx;
    request *r = s->req;
    s->query = NULL;
    if (!res->ok) {
        /* A stream retries from the sweep; a held poll waits out an outage (its channel
         * is re-read on reconnect) but not reads that fail with the database up. */
        if (r->state == REQ_STREAMING || (r->state == REQ_HELD && !request_reads_failing(r)))
            return;
        request_fail_unavailable(r);
        return;
    }
    history *h = xcalloc(1, sizeof *h);
    h->head = res->head;
    h->oldest = res->oldest;
    h->events = xcalloc(res->n_events ? res->n_events : 1, sizeof *h->events);
    for (size_t i = 0; i < res->n_events; i++) {
        const db_event *e = &res->events[i];
        h->events[h->n_events++] = feed_event_new(e->version, e->json, e->json_len);
    }
    if (s->from_oldest && s->cursor < h->oldest - 1)
        s->cursor = h->oldest - 1;
    subscription_history_free(s->hist);
    s->hist = h;
    request_evaluate(r);
}

/* Reads this subscription's events from its cursor, beyond the cache. */
static bool subscription_read_history(subscription *s)
{
    request *r = s->req;
    /* A stream's page is held until written: keep it small, it reads the next on demand. */
    int limit = r->fr.transport == TRANSPORT_SSE ? SSE_HISTORY_PAGE : r->fr.limit;
    s->query = db_read(r->reg->database, feed_channel_name(s->node.channel), s->cursor, limit,
                       subscription_on_history, s);
    return s->query != NULL;
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
        if (!subscription_read_history(s))
            return -1;
        pending = true;
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
    return src;
}

/* The prepared event after version, or NULL. */
const feed_event *subscription_event_after(const subscription *s, int64_t version)
{
    if (s->hist) {
        for (size_t i = 0; i < s->hist->n_events; i++)
            if (s->hist->events[i]->version > version)
                return s->hist->events[i];
        return NULL;
    }
    if (version >= feed_channel_head(s->node.channel))
        return NULL;
    return feed_channel_event(s->node.channel, version + 1);
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
