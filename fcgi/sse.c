/*
 * sse — Server-Sent Events streams: head, pump with a per-turn budget, reset, heartbeat, lifetime.
 */
#include "request_private.h"
#include "feed_format.h"
#include "log.h"
#include "xalloc.h"

#include <inttypes.h>
#include <stdlib.h>

/* Writes out what the stream has queued (frames are sent into its connection first). */
static void sse_flush(request *r, int64_t now_ms)
{
    r->last_write_ms = now_ms;
    request_flush(r);
}

static void sse_send(request *r, buf *frames)
{
    if (frames->len == 0)
        return;
    fcgi_conn_send(r->conn, frames->data, frames->len);
    sse_flush(r, clock_now_ms());
}

/* The turn's one-channel event frame is formatted once for every stream (feed_format.h). */
void sse_frame_memo_forget(request_registry *reg)
{
    feed_sse_memo_free(reg->sse_memo);
    reg->sse_memo = NULL;
}

static void sse_begin(request *r)
{
    buf head = BUF_INIT;
    feed_format_sse_head(&head, r->reg->cfg->sse_retry_ms, r->cors.len ? r->cors.data : NULL);
    metrics_count_status(r->reg->stats, 200);
    /* A stream served from memory while the database is away says so at once. */
    if (!db_is_up(r->reg->database))
        feed_format_sse_status(&head, false);
    request_set_state(r, REQ_STREAMING);
    sse_send(r, &head);
    buf_free(&head);
}

void sse_send_status(request *r, bool database_up)
{
    buf frame = BUF_INIT;
    feed_format_sse_status(&frame, database_up);
    sse_send(r, &frame);
    buf_free(&frame);
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
    s->node.reset = false;
    buf id = BUF_INIT;
    sse_id(r, &id);
    feed_format_sse_reset(frames, id.data, feed_channel_name(s->node.channel), src->oldest,
                          src->head, src->ahead ? "reset" : "pruned");
    buf_free(&id);
}

/* Queues one event's frame on the stream's connection. */
static void sse_queue_event(request *r, const feed_event *e, buf *id, buf *scratch)
{
    if (r->n_subs == 1) {
        if (!r->reg->sse_memo)
            r->reg->sse_memo = feed_sse_memo_new();
        const buf *frame = feed_sse_memo_frame(r->reg->sse_memo, e->version, e->json, e->json_len);
        fcgi_conn_send(r->conn, frame->data, frame->len);
        return;
    }
    /* Several channels: the id names every cursor, so the frame is this stream's own. */
    sse_id(r, id);
    buf_reset(scratch);
    feed_format_sse_event(scratch, id->data, NULL, e->json, e->json_len);
    fcgi_conn_send(r->conn, scratch->data, scratch->len);
}

/*
 * Frames what the prepared subscriptions can serve, oldest first, into the
 * stream's connection, stopping at the high-water mark so a slow reader's
 * memory stays bounded (the rest follows when the socket drains: request_on_io
 * pumps again), then writes them at once: a stream that is behind gets all
 * its pending events in one write, one that is not gets its one event
 * without waiting. Returns the bytes queued.
 */
static size_t sse_write_ready(request *r, size_t high_water, int64_t now_ms)
{
    size_t before = fcgi_conn_pending(r->conn);
    buf scratch = BUF_INIT, id = BUF_INIT;
    for (size_t i = 0; i < r->n_subs; i++) {
        subscription *s = &r->subs[i];
        if (s->query || (!s->hist && !feed_channel_covers(s->node.channel, s->cursor)))
            continue;
        subscription_source src = subscription_source_of(s);
        if (src.gone || src.ahead) {
            buf_reset(&scratch);
            sse_reset(r, s, &src, &scratch);
            fcgi_conn_send(r->conn, scratch.data, scratch.len);
        } else {
            const feed_event *e;
            while (fcgi_conn_pending(r->conn) < high_water &&
                   (e = subscription_event_after(s, s->cursor)) != NULL) {
                s->cursor = e->version;
                sse_queue_event(r, e, &id, &scratch);
                r->reg->stats->events_delivered++;
            }
            s->cursor = subscription_caught_up(s, &src, s->cursor);
        }
        if (s->hist && (src.gone || src.ahead || !subscription_event_after(s, s->cursor))) {
            subscription_history_free(s->hist);
            s->hist = NULL;
        }
    }
    buf_free(&scratch);
    buf_free(&id);
    size_t queued = fcgi_conn_pending(r->conn) - before;
    if (queued > 0)
        sse_flush(r, now_ms);
    return queued;
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
    int64_t now_ms = clock_now_ms();
    /* Nothing is written once the authorization has run out, nor while it is re-checked. */
    if (channel_auth_pending(r->auth) || now_ms >= channel_auth_until(r->auth))
        return;
    while (r->state == REQ_STREAMING) {
        int ready = subscription_prepare_all(r);
        /* ids name every channel's cursor, so nothing is written until all are resolved */
        for (size_t i = 0; i < r->n_subs; i++)
            if (r->subs[i].cursor == CURSOR_NOW)
                ready = 0;
        if (ready == 0)
            return;
        size_t n = sse_write_ready(r, high_water, now_ms);
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

void sse_end_auth(request *r, const char *reason)
{
    buf frame = BUF_INIT;
    feed_format_sse_auth(&frame, reason);
    log_info(r->id, "ending a stream: %s", reason);
    sse_send(r, &frame);
    buf_free(&frame);
    if (r->state == REQ_STREAMING)
        sse_end(r);
}

void sse_resume(request *r)
{
    sse_pump(r);
}

/* The header and retry, then whatever the subscriptions can already serve. */
void sse_start(request *r)
{
    sse_begin(r);
    sse_pump(r);
}

/*
 * Ends a stream whose authorization ran out (or re-checks it, delivering
 * nothing meanwhile), past its lifetime or behind for too long; sends heartbeats.
 */
void sse_sweep(request *r, int64_t now_ms)
{
    const pgfeed_config *cfg = r->reg->cfg;
    channel_auth_status auth = CHANNEL_AUTH_PENDING;
    guard_refusal why;
    if (now_ms >= channel_auth_until(r->auth) && !channel_auth_pending(r->auth))
        auth = channel_auth_expire(r->auth, now_ms, &why);
    if (auth == CHANNEL_AUTH_REFUSED) {
        sse_end_auth(r, why.detail);
    } else if (auth == CHANNEL_AUTH_OK) {
        sse_pump(r); /* another request renewed the answers meanwhile */
    } else if (now_ms >= r->deadline_ms) {
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
