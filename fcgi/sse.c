/*
 * sse — Server-Sent Events streams: head, pump with a per-turn budget, reset, heartbeat, lifetime.
 */
#include "request_private.h"
#include "feed_format.h"
#include "log.h"
#include "xalloc.h"

#include <inttypes.h>
#include <stdlib.h>

static void sse_send(request *r, buf *frames)
{
    if (frames->len == 0)
        return;
    fcgi_conn_send(r->conn, frames->data, frames->len);
    r->last_write_ms = clock_now_ms();
    request_flush(r);
}

static void sse_begin(request *r)
{
    buf head = BUF_INIT;
    feed_format_sse_head(&head, r->reg->cfg->sse_retry_ms);
    metrics_count_status(r->reg->stats, 200);
    request_set_state(r, REQ_STREAMING);
    sse_send(r, &head);
    buf_free(&head);
}

/* Runs once per event per stream: no allocation for the usual handful of channels. */
static void sse_id(request *r, buf *id)
{
    int64_t small[16];
    int64_t *versions = r->n_subs <= 16 ? small : xcalloc(r->n_subs, sizeof *versions);
    for (size_t i = 0; i < r->n_subs; i++)
        versions[i] = r->subs[i].cursor;
    buf_reset(id);
    subscription_format_cursor(r, versions, id);
    if (versions != small)
        free(versions);
}

/* Tells the client its cursor is gone and moves it to the head, so it resyncs once. */
static void sse_reset(request *r, subscription *s, const subscription_source *src, buf *frames)
{
    s->cursor = src->head;
    buf id = BUF_INIT;
    sse_id(r, &id);
    feed_format_sse_reset(frames, id.data, feed_channel_name(s->node.channel), src->oldest,
                          src->head, src->ahead ? "reset" : "pruned");
    buf_free(&id);
}

/*
 * Writes every event the stream's subscriptions can serve, oldest first,
 * stopping at the high-water mark so a slow reader's memory stays bounded; the
 * rest follows when the socket drains (request_on_io pumps again).
 */
/* Frames what the prepared subscriptions can serve, up to the high-water mark; returns bytes. */
static size_t sse_write_ready(request *r, size_t high_water)
{
    buf frames = BUF_INIT, id = BUF_INIT;
    for (size_t i = 0; i < r->n_subs; i++) {
        subscription *s = &r->subs[i];
        if (s->query || (!s->hist && !feed_channel_covers(s->node.channel, s->cursor)))
            continue;
        subscription_source src = subscription_source_of(s);
        if (src.gone || src.ahead) {
            sse_reset(r, s, &src, &frames);
        } else {
            const feed_event *e;
            while (fcgi_conn_pending(r->conn) + frames.len < high_water &&
                   (e = subscription_event_after(s, s->cursor)) != NULL) {
                s->cursor = e->version;
                sse_id(r, &id);
                feed_format_sse_event(&frames, id.data, NULL, e->json, e->json_len);
                r->reg->stats->events_delivered++;
            }
        }
        if (s->hist && (src.gone || src.ahead || !subscription_event_after(s, s->cursor))) {
            subscription_history_free(s->hist);
            s->hist = NULL;
        }
    }
    size_t written = frames.len;
    sse_send(r, &frames);
    buf_free(&frames);
    buf_free(&id);
    return written;
}

/* True when some subscription has events it has not written yet. */
static bool sse_behind(const request *r)
{
    for (size_t i = 0; i < r->n_subs; i++) {
        const subscription *s = &r->subs[i];
        if (s->query)
            continue;
        if (s->hist ? subscription_event_after(s, s->cursor) != NULL
                    : feed_channel_known(s->node.channel) &&
                          s->cursor < feed_channel_head(s->node.channel))
            return true;
    }
    return false;
}

/*
 * Writes every event the stream's subscriptions can serve, oldest first. Two
 * bounds keep one stream from costing others: output queued beyond the
 * high-water mark waits for the socket to drain (request_on_io pumps again;
 * history pages are dropped meanwhile, so a stalled reader holds no more than
 * its queue), and at most a high-water mark's worth is written per loop turn
 * (the rest is scheduled for the end of the turn, Redis-style).
 */
void sse_pump(request *r)
{
    size_t high_water = (size_t)r->reg->cfg->max_buffered / 2;
    size_t written = 0;
    while (r->state == REQ_STREAMING) {
        int ready = subscription_prepare_all(r);
        /* ids name every channel's cursor, so nothing is written until all are resolved */
        for (size_t i = 0; i < r->n_subs; i++)
            if (r->subs[i].cursor == CURSOR_NOW)
                ready = 0;
        if (ready == 0)
            return;
        size_t n = sse_write_ready(r, high_water);
        if (r->state != REQ_STREAMING)
            return;
        if (fcgi_conn_pending(r->conn) >= high_water) {
            if (!r->backlogged_since_ms)
                r->backlogged_since_ms = clock_now_ms();
            for (size_t i = 0; i < r->n_subs; i++) {
                subscription_history_free(r->subs[i].hist);
                r->subs[i].hist = NULL;
            }
            return;
        }
        if (n == 0 || !sse_behind(r)) {
            /* Starts the read that serves the rest; the sweep retries one that cannot start. */
            if (sse_behind(r) && subscription_prepare_all(r) < 0)
                log_debug(r->id, "stream waits for the database");
            return;
        }
        written += n;
        if (written >= high_water) {
            request_schedule(r);
            return;
        }
    }
}

void sse_end(request *r)
{
    fcgi_conn_end(r->conn);
    request_set_state(r, REQ_FLUSHING);
    request_flush(r);
}

/* The header and retry, then whatever the subscriptions can already serve. */
void sse_start(request *r)
{
    sse_begin(r);
    sse_pump(r);
}

/* Ends a stream past its lifetime or behind for too long; sends heartbeats. */
void sse_sweep(request *r, int64_t now_ms)
{
    const pgfeed_config *cfg = r->reg->cfg;
    if (now_ms >= r->deadline_ms) {
        sse_end(r);
    } else if (r->backlogged_since_ms &&
               now_ms - r->backlogged_since_ms > (int64_t)cfg->heartbeat * 1000) {
        /* The reader has not taken a high-water mark's worth of events for a whole
         * heartbeat interval: end the stream, it resumes from its last id. */
        r->reg->stats->slow_streams_ended++;
        log_info(r->id, "ending a stream whose reader fell behind");
        request_close(r);
    } else if (now_ms - r->last_write_ms >= (int64_t)cfg->heartbeat * 1000 &&
               fcgi_conn_pending(r->conn) == 0) {
        buf hb = BUF_INIT;
        feed_format_sse_comment(&hb, "hb");
        sse_send(r, &hb);
        buf_free(&hb);
    }
    if (r->state != REQ_STREAMING || r->backlogged_since_ms)
        return;
    /* A read refused while the database was down or failing is retried here, each
     * tick, and db's backoff decides whether a query goes out. */
    for (size_t i = 0; i < r->n_subs; i++) {
        if (subscription_needs_read(&r->subs[i])) {
            sse_pump(r);
            return;
        }
    }
}
