/*
 * request — parsing, answering, holding and streaming one request (see request.h).
 */
#include "request.h"
#include "cursor.h"
#include "feed_format.h"
#include "feed_request.h"
#include "log.h"
#include "problem.h"
#include "xalloc.h"

#include <inttypes.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * The life of a request. Every request not yet closed is on the registry's
 * active list; the state says what else holds it.
 */
typedef enum request_state {
    /* Needs the database first (a channel load, its own history read, a publish
     * or a ping). A feed request's subscriptions are already on their channels'
     * lists, so a channel load finishing wakes it. */
    REQ_WAITING_DB,
    /* A long poll with nothing new: subscriptions wait on their channels' lists
     * until one moves or the sweep finds the deadline passed. */
    REQ_HELD,
    /* SSE: the header is out; subscriptions on their channels' lists; events and
     * heartbeats are written until the lifetime ends. */
    REQ_STREAMING,
    /* Answered: no subscriptions; queued output drains as the server takes it. */
    REQ_FLUSHING,
    /* Everything written and our side shut; the server's remaining input is read
     * and dropped until it closes (or LINGER_MS), so it never sees a broken pipe. */
    REQ_LINGERING,
    /* On the registry's closed list, freed by request_reap at the end of the turn. */
    REQ_CLOSED,
} request_state;

/* Events of one channel read for one request, beyond what the cache holds. */
typedef struct history {
    int64_t head;
    int64_t oldest;
    size_t n_events;
    feed_event **events;
} history;

typedef struct subscription {
    feed_subscriber node; /* first: the cache hands it back to sub_on_wake */
    request *req;
    int64_t cursor;   /* the last version the client has (CURSOR_NOW until resolved) */
    bool from_oldest; /* no cursor given: start at the oldest retained, whatever it is */
    db_query *query;  /* this subscription's history read, while in flight */
    history *hist;
} subscription;

struct request {
    unsigned long id;
    request_registry *reg;
    request_state state;
    fcgi_conn *conn;
    event_watch watch;
    feed_request fr;
    subscription *subs;
    size_t n_subs;
    db_query *query; /* ping or publish in flight */
    bool held_counted;
    bool watched;                /* false for CGI output to a file, which epoll cannot watch */
    int64_t deadline_ms;         /* long poll: answer by; SSE: end of the stream */
    int64_t last_write_ms;       /* SSE heartbeats */
    int64_t backlogged_since_ms; /* SSE: output above the high-water mark since */
    request *prev, *next;        /* on reg->active, then reg->closed */
    bool on_ready_list;          /* a stream with more to write, pumped at the end of the turn */
    request *ready_next;
};

static void request_evaluate(request *r);

#define LINGER_MS 2000
#define SSE_HISTORY_PAGE 100

/* ---- lifetime ---------------------------------------------------------- */

static void list_remove(request **head, request *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        *head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

static void list_push(request **head, request *r)
{
    r->prev = NULL;
    r->next = *head;
    if (*head)
        (*head)->prev = r;
    *head = r;
}

static void history_free(history *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n_events; i++)
        free(h->events[i]);
    free(h->events);
    free(h);
}

static void request_release_subscriptions(request *r)
{
    for (size_t i = 0; i < r->n_subs; i++) {
        subscription *s = &r->subs[i];
        feed_channel_unsubscribe(&s->node);
        db_query_cancel(s->query);
        s->query = NULL;
        history_free(s->hist);
        s->hist = NULL;
    }
}

/* A long poll or stream stops counting against --max-held once it is answered. */
static void request_unhold(request *r)
{
    if (r->held_counted)
        r->reg->stats->held_now--;
    r->held_counted = false;
}

/* The one way out: detaches the request from everything that could call it back. */
static void request_close(request *r)
{
    if (r->state == REQ_CLOSED)
        return;
    request_registry *reg = r->reg;
    request_release_subscriptions(r);
    db_query_cancel(r->query);
    r->query = NULL;
    if (r->watched)
        event_loop_unwatch(reg->loop, &r->watch);
    fcgi_conn_close(r->conn);
    r->conn = NULL;
    request_unhold(r);
    r->state = REQ_CLOSED;
    list_remove(&reg->active, r);
    reg->n_active--;
    list_push(&reg->closed, r);
}

void request_reap(request_registry *reg)
{
    request_run_ready(reg); /* drops closed requests from the ready list */
    while (reg->closed) {
        request *r = reg->closed;
        list_remove(&reg->closed, r);
        feed_request_free(&r->fr);
        free(r->subs);
        free(r);
    }
}

/* ---- output ------------------------------------------------------------ */

/* Writes what the socket takes; watches for writability only while output is queued. */
static void request_flush(request *r)
{
    int rc = fcgi_conn_flush(r->conn);
    if (rc < 0) {
        log_debug(r->id, "server connection broke while writing");
        request_close(r);
        return;
    }
    if (rc == 1) {
        r->backlogged_since_ms = 0;
        if (r->state == REQ_FLUSHING) {
            if (!r->watched || !fcgi_conn_shutdown_output(r->conn)) {
                request_close(r);
                return;
            }
            r->state = REQ_LINGERING;
            r->deadline_ms = clock_now_ms() + LINGER_MS;
            if (event_loop_modify(r->reg->loop, &r->watch, EPOLLIN | EPOLLRDHUP) < 0)
                request_close(r);
            return;
        }
    }
    if (r->watched) {
        uint32_t want = fcgi_conn_hangup_events(r->conn) | (rc == 0 ? EPOLLOUT : 0);
        if (event_loop_modify(r->reg->loop, &r->watch, want) < 0)
            request_close(r);
    }
}

/* The answer is complete: it drains within --drain-timeout or the client is closed. */
static void request_start_flushing(request *r)
{
    r->state = REQ_FLUSHING;
    r->deadline_ms = clock_now_ms() + (int64_t)r->reg->cfg->drain_timeout * 1000;
    request_flush(r);
}

/* Sends a complete answer: the single path every final status goes through. */
static void request_respond(request *r, int status, const char *content_type,
                            const char *extra_headers, const char *body, size_t body_len)
{
    request_release_subscriptions(r);
    buf head = BUF_INIT;
    feed_format_head(&head, status, content_type);
    if (extra_headers)
        buf_append_str(&head, extra_headers);
    feed_format_end_head(&head);
    fcgi_conn_send(r->conn, head.data, head.len);
    buf_free(&head);
    if (body && r->fr.method != METHOD_HEAD)
        fcgi_conn_send(r->conn, body, body_len);
    fcgi_conn_end(r->conn);
    metrics_count_status(r->reg->stats, status);
    log_debug(r->id, "answered %d", status);
    request_unhold(r);
    request_start_flushing(r);
}

/* Answers with a problem+json body; extra members and allow may be NULL. */
static void request_fail_allow(request *r, int status, const char *detail, json_object *extra,
                               const char *allow)
{
    buf body = BUF_INIT;
    problem_body(&body, status, detail, extra);
    buf headers = BUF_INIT;
    if (status == 503) {
        int64_t ms = db_retry_after_ms(r->reg->database, clock_now_ms());
        buf_printf(&headers, "Retry-After: %" PRId64 "\r\n", ms / 1000 + 1);
    } else if (allow) {
        buf_printf(&headers, "Allow: %s\r\n", allow);
    }
    /* A database outage answers every request 503: the outage itself is logged once, by db. */
    log_msg(status == 503 ? LOG_DEBUG : (status >= 500 ? LOG_WARN : LOG_DEBUG), r->id, "%d: %s",
            status, detail);
    request_respond(r, status, "application/problem+json", headers.data, body.data, body.len);
    buf_free(&body);
    buf_free(&headers);
}

static void request_fail(request *r, int status, const char *detail, json_object *extra)
{
    request_fail_allow(r, status, detail, extra, NULL);
}

static void request_fail_unavailable(request *r)
{
    request_fail(r, 503, "the database is unreachable; retry shortly", NULL);
}

/* ---- subscriptions and history reads ------------------------------------- */

static void sub_on_history(void *ctx, const db_read_result *res)
{
    subscription *s = ctx;
    request *r = s->req;
    s->query = NULL;
    if (!res->ok) {
        if (r->state == REQ_STREAMING || r->state == REQ_HELD)
            return; /* the channel is re-read and wakes us when the database is back */
        request_fail_unavailable(r);
        return;
    }
    history *h = xcalloc(1, sizeof *h);
    h->head = res->head;
    h->oldest = res->oldest;
    h->events = xcalloc(res->n_events ? res->n_events : 1, sizeof *h->events);
    for (size_t i = 0; i < res->n_events; i++) {
        const db_event *e = &res->events[i];
        feed_event *copy = xmalloc(sizeof *copy + e->json_len + 1);
        copy->version = e->version;
        copy->json_len = e->json_len;
        memcpy(copy->json, e->json, e->json_len);
        copy->json[e->json_len] = '\0';
        h->events[h->n_events++] = copy;
    }
    if (s->from_oldest && s->cursor < h->oldest - 1)
        s->cursor = h->oldest - 1;
    history_free(s->hist);
    s->hist = h;
    request_evaluate(r);
}

/* Reads this subscription's events from its cursor, beyond the cache. */
static bool sub_read_history(subscription *s)
{
    request *r = s->req;
    /* A stream's page is held until written: keep it small, it reads the next on demand. */
    int limit = r->fr.transport == TRANSPORT_SSE ? SSE_HISTORY_PAGE : r->fr.limit;
    s->query = db_read(r->reg->database, feed_channel_name(s->node.channel), s->cursor, limit,
                       sub_on_history, s);
    return s->query != NULL;
}

static void sub_on_wake(feed_subscriber *node)
{
    subscription *s = (subscription *)node;
    request *r = s->req;
    if (r->state == REQ_HELD) {
        /* What an earlier read said may be stale now: look again from the cache. */
        for (size_t i = 0; i < r->n_subs; i++) {
            history_free(r->subs[i].hist);
            r->subs[i].hist = NULL;
        }
    }
    request_evaluate(r);
}

/*
 * Makes every subscription ready to be answered from memory or from its own
 * history. Returns 1 when all are, 0 when reads are under way, -1 when the
 * database is needed and down (the caller decides what that means).
 */
static int subs_prepare(request *r)
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
        if (!sub_read_history(s))
            return -1;
        pending = true;
    }
    return pending ? 0 : 1;
}

/* Where a subscription's events come from once prepared. */
typedef struct sub_source {
    int64_t head;
    int64_t oldest;
    bool gone;  /* the cursor is older than what is retained */
    bool ahead; /* the cursor is newer than the head: the feed was reset */
} sub_source;

static sub_source sub_source_of(const subscription *s)
{
    sub_source src;
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
static const feed_event *sub_event_after(const subscription *s, int64_t version)
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

static void request_format_cursor(request *r, const int64_t *versions, buf *out)
{
    cursor_format(out, r->n_subs, (const char *const *)r->fr.channels, versions);
}

/* ---- polls and long polls ------------------------------------------------ */

static void poll_fail_gone(request *r, const subscription *s, const sub_source *src)
{
    json_object *extra = json_object_new_object();
    json_object_object_add(extra, "channel",
                           json_object_new_string(feed_channel_name(s->node.channel)));
    json_object_object_add(extra, "oldest", json_object_new_int64(src->oldest));
    json_object_object_add(extra, "head", json_object_new_int64(src->head));
    json_object_object_add(extra, "cursor", json_object_new_int64(s->cursor));
    char detail[256];
    if (src->ahead)
        snprintf(detail, sizeof detail,
                 "cursor %" PRId64 " of channel \"%s\" is beyond its head %" PRId64
                 " (the feed was reset): reload and continue from the head",
                 s->cursor, feed_channel_name(s->node.channel), src->head);
    else
        snprintf(detail, sizeof detail,
                 "events after %" PRId64
                 " of channel \"%s\" were pruned (oldest retained is %" PRId64
                 "): reload and continue from the head",
                 s->cursor, feed_channel_name(s->node.channel), src->oldest);
    request_fail(r, 410, detail, extra);
    json_object_put(extra);
}

/*
 * Answers a poll from prepared subscriptions, or holds a long poll that has
 * nothing new. timed_out: the wait is over, answer even when empty.
 */
static void poll_answer(request *r, bool timed_out)
{
    size_t n = r->n_subs;
    feed_view *views = xcalloc(n, sizeof *views);
    int64_t *next = xcalloc(n, sizeof *next);
    const char **texts = NULL;
    size_t *lens = NULL;
    size_t total = 0, used = 0, bytes = 0;
    for (size_t i = 0; i < n; i++) {
        sub_source src = sub_source_of(&r->subs[i]);
        if (src.gone || src.ahead) {
            poll_fail_gone(r, &r->subs[i], &src);
            goto cleanup;
        }
        int64_t available = src.head - r->subs[i].cursor;
        total += (size_t)(available < r->fr.limit ? (available > 0 ? available : 0) : r->fr.limit);
    }
    if (total == 0 && r->fr.transport == TRANSPORT_LONG_POLL && !timed_out &&
        !r->reg->shutting_down) {
        r->state = REQ_HELD;
        goto cleanup;
    }
    texts = xcalloc(total ? total : 1, sizeof *texts);
    lens = xcalloc(total ? total : 1, sizeof *lens);
    for (size_t i = 0; i < n; i++) {
        subscription *s = &r->subs[i];
        sub_source src = sub_source_of(s);
        views[i] = (feed_view){.channel = feed_channel_name(s->node.channel),
                               .head = src.head,
                               .oldest = src.oldest,
                               .events = texts + used,
                               .event_lens = lens + used};
        next[i] = s->cursor;
        const feed_event *e;
        /* --max-answer-bytes bounds the answer as limit bounds its count; the first event
         * always goes, so one larger than the budget is delivered alone (more: true). */
        while (views[i].n_events < (size_t)r->fr.limit && used < total &&
               (e = sub_event_after(s, next[i])) != NULL &&
               (used == 0 || bytes + e->json_len <= (size_t)r->reg->cfg->max_answer_bytes)) {
            bytes += e->json_len;
            texts[used] = e->json;
            lens[used] = e->json_len;
            used++;
            views[i].n_events++;
            next[i] = e->version;
        }
        views[i].more = next[i] < src.head;
    }
    buf cursor = BUF_INIT;
    request_format_cursor(r, next, &cursor);
    buf headers = BUF_INIT;
    buf_printf(&headers, "ETag: \"%s\"\r\n", cursor.data);
    if (used == 0 && r->fr.if_none_match && strcmp(r->fr.if_none_match, cursor.data) == 0) {
        request_respond(r, 304, NULL, headers.data, NULL, 0);
    } else {
        buf body = BUF_INIT;
        feed_format_poll_body(&body, views, n, r->fr.n_channels > 1, cursor.data);
        r->reg->stats->events_delivered += used;
        request_respond(r, 200, "application/json", headers.data, body.data, body.len);
        buf_free(&body);
    }
    buf_free(&headers);
    buf_free(&cursor);
cleanup:
    free(views);
    free(next);
    free(texts);
    free(lens);
}

static void poll_evaluate(request *r)
{
    int ready = subs_prepare(r);
    if (ready < 0) {
        if (r->state == REQ_HELD)
            return; /* keep holding: the database comes back, or the wait ends */
        request_fail_unavailable(r);
        return;
    }
    if (ready == 0) {
        if (r->state != REQ_HELD)
            r->state = REQ_WAITING_DB;
        return;
    }
    poll_answer(r, false);
}

/* The wait is over: answer with what is known, which may be nothing. */
static void poll_time_out(request *r)
{
    for (size_t i = 0; i < r->n_subs; i++) {
        subscription *s = &r->subs[i];
        bool usable = s->hist || (feed_channel_known(s->node.channel) && s->cursor != CURSOR_NOW &&
                                  feed_channel_covers(s->node.channel, s->cursor));
        if (!usable) {
            if (s->cursor == CURSOR_NOW) {
                request_fail_unavailable(r);
                return;
            }
            /* Nothing trustworthy is known: answer "nothing new" at the client's own cursor. */
            db_query_cancel(s->query);
            s->query = NULL;
            history *h = xcalloc(1, sizeof *h);
            h->head = s->cursor;
            h->oldest = feed_channel_oldest(s->node.channel); /* the last one known */
            history_free(s->hist);
            s->hist = h;
        }
    }
    poll_answer(r, true);
}

/* ---- Server-Sent Events -------------------------------------------------- */

static void stream_send(request *r, buf *frames)
{
    if (frames->len == 0)
        return;
    fcgi_conn_send(r->conn, frames->data, frames->len);
    r->last_write_ms = clock_now_ms();
    request_flush(r);
}

static void stream_begin(request *r)
{
    buf head = BUF_INIT;
    feed_format_head(&head, 200, "text/event-stream");
    /* nginx buffers FastCGI answers unless told otherwise, per response. */
    feed_format_header(&head, "X-Accel-Buffering", "no");
    feed_format_end_head(&head);
    feed_format_sse_retry(&head, r->reg->cfg->sse_retry_ms);
    metrics_count_status(r->reg->stats, 200);
    r->state = REQ_STREAMING;
    stream_send(r, &head);
    buf_free(&head);
}

/* Runs once per event per stream: no allocation for the usual handful of channels. */
static void stream_id(request *r, buf *id)
{
    int64_t small[16];
    int64_t *versions = r->n_subs <= 16 ? small : xcalloc(r->n_subs, sizeof *versions);
    for (size_t i = 0; i < r->n_subs; i++)
        versions[i] = r->subs[i].cursor;
    buf_reset(id);
    request_format_cursor(r, versions, id);
    if (versions != small)
        free(versions);
}

/* Tells the client its cursor is gone and moves it to the head, so it resyncs once. */
static void stream_reset(request *r, subscription *s, const sub_source *src, buf *frames)
{
    s->cursor = src->head;
    buf id = BUF_INIT, data = BUF_INIT;
    stream_id(r, &id);
    buf_printf(&data,
               "{\"channel\":\"%s\",\"oldest\":%" PRId64 ",\"head\":%" PRId64 ",\"reason\":\"%s\"}",
               feed_channel_name(s->node.channel), src->oldest, src->head,
               src->ahead ? "reset" : "pruned");
    feed_format_sse_event(frames, id.data, "reset", data.data, data.len);
    buf_free(&id);
    buf_free(&data);
}

/*
 * Writes every event the stream's subscriptions can serve, oldest first,
 * stopping at the high-water mark so a slow reader's memory stays bounded; the
 * rest follows when the socket drains (request_on_io pumps again).
 */
/* Frames what the prepared subscriptions can serve, up to the high-water mark; returns bytes. */
static size_t stream_write_ready(request *r, size_t high_water)
{
    buf frames = BUF_INIT, id = BUF_INIT;
    for (size_t i = 0; i < r->n_subs; i++) {
        subscription *s = &r->subs[i];
        if (s->query || (!s->hist && !feed_channel_covers(s->node.channel, s->cursor)))
            continue;
        sub_source src = sub_source_of(s);
        if (src.gone || src.ahead) {
            stream_reset(r, s, &src, &frames);
        } else {
            const feed_event *e;
            while (fcgi_conn_pending(r->conn) + frames.len < high_water &&
                   (e = sub_event_after(s, s->cursor)) != NULL) {
                s->cursor = e->version;
                stream_id(r, &id);
                feed_format_sse_event(&frames, id.data, NULL, e->json, e->json_len);
                r->reg->stats->events_delivered++;
            }
        }
        if (s->hist && (src.gone || src.ahead || !sub_event_after(s, s->cursor))) {
            history_free(s->hist);
            s->hist = NULL;
        }
    }
    size_t written = frames.len;
    stream_send(r, &frames);
    buf_free(&frames);
    buf_free(&id);
    return written;
}

/* True when some subscription has events it has not written yet. */
static bool stream_behind(const request *r)
{
    for (size_t i = 0; i < r->n_subs; i++) {
        const subscription *s = &r->subs[i];
        if (s->query)
            continue;
        if (s->hist ? sub_event_after(s, s->cursor) != NULL
                    : feed_channel_known(s->node.channel) &&
                          s->cursor < feed_channel_head(s->node.channel))
            return true;
    }
    return false;
}

/* Pumps this stream again at the end of the loop turn, after others had theirs. */
static void stream_schedule(request *r)
{
    if (r->on_ready_list)
        return;
    r->on_ready_list = true;
    r->ready_next = r->reg->ready;
    r->reg->ready = r;
}

/*
 * Writes every event the stream's subscriptions can serve, oldest first. Two
 * bounds keep one stream from costing others: output queued beyond the
 * high-water mark waits for the socket to drain (request_on_io pumps again;
 * history pages are dropped meanwhile, so a stalled reader holds no more than
 * its queue), and at most a high-water mark's worth is written per loop turn
 * (the rest is scheduled for the end of the turn, Redis-style).
 */
static void stream_pump(request *r)
{
    size_t high_water = (size_t)r->reg->cfg->max_buffered / 2;
    size_t written = 0;
    while (r->state == REQ_STREAMING) {
        int ready = subs_prepare(r);
        /* ids name every channel's cursor, so nothing is written until all are resolved */
        for (size_t i = 0; i < r->n_subs; i++)
            if (r->subs[i].cursor == CURSOR_NOW)
                ready = 0;
        if (ready == 0)
            return;
        size_t n = stream_write_ready(r, high_water);
        if (r->state != REQ_STREAMING)
            return;
        if (fcgi_conn_pending(r->conn) >= high_water) {
            if (!r->backlogged_since_ms)
                r->backlogged_since_ms = clock_now_ms();
            for (size_t i = 0; i < r->n_subs; i++) {
                history_free(r->subs[i].hist);
                r->subs[i].hist = NULL;
            }
            return;
        }
        if (n == 0 || !stream_behind(r)) {
            if (stream_behind(r))
                subs_prepare(r); /* starts the history read that serves the rest */
            return;
        }
        written += n;
        if (written >= high_water) {
            stream_schedule(r);
            return;
        }
    }
}

void request_run_ready(request_registry *reg)
{
    request *r = reg->ready;
    reg->ready = NULL;
    while (r) {
        request *next = r->ready_next;
        r->on_ready_list = false;
        r->ready_next = NULL;
        if (r->state == REQ_STREAMING)
            stream_pump(r);
        r = next;
    }
}

static void stream_end(request *r)
{
    request_unhold(r);
    fcgi_conn_end(r->conn);
    request_start_flushing(r);
}

/* ---- dispatch -------------------------------------------------------------- */

static void request_evaluate(request *r)
{
    switch (r->state) {
    case REQ_WAITING_DB:
    case REQ_HELD:
        if (r->fr.transport == TRANSPORT_SSE)
            return; /* streams start at once and never wait here */
        poll_evaluate(r);
        break;
    case REQ_STREAMING:
        stream_pump(r);
        break;
    case REQ_FLUSHING:
    case REQ_LINGERING:
    case REQ_CLOSED:
        break;
    }
}

static void request_on_io(void *data, uint32_t events)
{
    request *r = data;
    if (r->state == REQ_CLOSED)
        return;
    if (events & EPOLLOUT) {
        request_flush(r);
        if (r->state == REQ_STREAMING && fcgi_conn_pending(r->conn) == 0)
            stream_pump(r);
    }
    if (r->state == REQ_LINGERING) {
        if (fcgi_conn_peer_closed(r->conn) || (events & (EPOLLHUP | EPOLLERR)))
            request_close(r);
        return;
    }
    if (r->state != REQ_CLOSED && (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) &&
        fcgi_conn_peer_closed(r->conn)) {
        if (r->state != REQ_FLUSHING) {
            r->reg->stats->departed_clients++;
            log_debug(r->id, "server closed the request before it was answered");
        }
        request_close(r);
    }
}

static void health_on_ping(void *ctx, bool ok)
{
    request *r = ctx;
    r->query = NULL;
    if (!ok) {
        request_fail_unavailable(r);
        return;
    }
    const char *body = "{\"status\":\"ok\",\"database\":\"up\"}";
    request_respond(r, 200, "application/json", NULL, body, strlen(body));
}

static void publish_on_result(void *ctx, const db_publish_result *res)
{
    request *r = ctx;
    r->query = NULL;
    if (!res->ok) {
        if (res->client_error)
            request_fail(r, 400, res->error ? res->error : "the event was refused", NULL);
        else
            request_fail_unavailable(r);
        return;
    }
    buf body = BUF_INIT;
    buf_printf(&body, "{\"channel\":\"%s\",\"version\":%" PRId64 "}", r->fr.channels[0],
               res->version);
    request_respond(r, 201, "application/json", NULL, body.data, body.len);
    buf_free(&body);
}

/* Checks a POST and starts pgfeed.publish(); runs while the params are still there. */
static void publish_start(request *r)
{
    const pgfeed_config *cfg = r->reg->cfg;
    if (cfg->publish_token && *cfg->publish_token) {
        const char *auth = fcgi_conn_param(r->conn, "HTTP_AUTHORIZATION");
        size_t token_len = strlen(cfg->publish_token);
        if (!auth || strncasecmp(auth, "Bearer ", 7) != 0 || strlen(auth + 7) != token_len ||
            memcmp(auth + 7, cfg->publish_token, token_len) != 0) {
            request_fail(r, 403, "publishing needs Authorization: Bearer <publish token>", NULL);
            return;
        }
    }
    const char *content_type = fcgi_conn_param(r->conn, "CONTENT_TYPE");
    if (!content_type || strncasecmp(content_type, "application/json", 16) != 0) {
        request_fail(r, 415, "POST a JSON body with Content-Type: application/json", NULL);
        return;
    }
    size_t len;
    bool too_large;
    const char *text = fcgi_conn_body(r->conn, &len, &too_large);
    if (too_large) {
        request_fail(r, 413, "the body is larger than the configured --max-body", NULL);
        return;
    }
    json_tokener *tok = json_tokener_new();
    json_object *doc = json_tokener_parse_ex(tok, text, (int)len);
    bool complete = json_tokener_get_error(tok) == json_tokener_success &&
                    json_tokener_get_parse_end(tok) == len;
    json_tokener_free(tok);
    json_object *type = NULL, *data = NULL;
    if (!complete || !json_object_is_type(doc, json_type_object) ||
        !json_object_object_get_ex(doc, "type", &type) ||
        !json_object_is_type(type, json_type_string)) {
        json_object_put(doc);
        request_fail(r, 400, "the body must be a JSON object {\"type\": string, \"data\": any}",
                     NULL);
        return;
    }
    json_object_object_get_ex(doc, "data", &data);
    const char *data_json =
        data ? json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN) : "{}";
    r->state = REQ_WAITING_DB;
    r->query = db_publish(r->reg->database, r->fr.channels[0], json_object_get_string(type),
                          data_json, publish_on_result, r);
    json_object_put(doc);
    if (!r->query)
        request_fail_unavailable(r);
}

static void metrics_answer(request *r)
{
    request_registry *reg = r->reg;
    metrics_snapshot snap = {.db_up = db_is_up(reg->database),
                             .db_queries = db_queries_sent(reg->database),
                             .db_queue = db_queue_length(reg->database),
                             .channels_cached = feed_cache_channel_count(reg->cache),
                             .cache_hits = feed_cache_hits(reg->cache),
                             .cache_misses = feed_cache_misses(reg->cache)};
    buf body = BUF_INIT;
    metrics_render(reg->stats, &snap, &body);
    request_respond(r, 200, "text/plain; version=0.0.4", NULL, body.data, body.len);
    buf_free(&body);
}

static const char *conn_param(void *ctx, const char *name)
{
    return fcgi_conn_param(ctx, name);
}

static void feed_start(request *r)
{
    request_registry *reg = r->reg;
    feed_request *fr = &r->fr;
    if (fr->transport != TRANSPORT_POLL) {
        if (reg->stats->held_now >= (size_t)reg->cfg->max_held) {
            reg->stats->held_rejected++;
            request_fail(r, 503, "this process holds as many requests as it is configured to",
                         NULL);
            return;
        }
        reg->stats->held_now++;
        r->held_counted = true;
    }
    int64_t now = clock_now_ms();
    r->deadline_ms = now + (fr->transport == TRANSPORT_SSE ? (int64_t)reg->cfg->sse_lifetime
                                                           : (int64_t)fr->wait) *
                               1000;
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
        s->node.wake = sub_on_wake;
        feed_channel_subscribe(feed_cache_channel(reg->cache, fr->channels[i]), &s->node);
    }
    if (fr->transport == TRANSPORT_SSE) {
        stream_begin(r);
        stream_pump(r);
    } else {
        r->state = REQ_WAITING_DB;
        poll_evaluate(r);
    }
}

void request_start(request_registry *reg, fcgi_conn *conn)
{
    const pgfeed_config *cfg = reg->cfg;
    request *r = xcalloc(1, sizeof *r);
    r->id = ++reg->next_id;
    r->reg = reg;
    r->conn = conn;
    r->state = REQ_WAITING_DB;
    list_push(&reg->active, r);
    reg->n_active++;
    r->watch = (event_watch){.fd = fcgi_conn_fd(conn), .handler = request_on_io, .data = r};
    /* The server closing the connection is how a departed client shows. */
    r->watched = event_loop_watch(reg->loop, &r->watch, fcgi_conn_hangup_events(conn)) == 0;

    feed_limits limits = {.max_query_length = (size_t)cfg->max_query,
                          .max_channels = (size_t)cfg->max_channels,
                          .default_limit = cfg->default_limit,
                          .max_limit = cfg->max_limit,
                          .max_wait = cfg->max_wait,
                          .publish_enabled = cfg->publish};
    feed_error err;
    if (feed_request_parse(conn_param, conn, &limits, &r->fr, &err) < 0) {
        fcgi_conn_drop_params(conn);
        request_fail_allow(r, err.status, err.detail, NULL, err.allow);
        return;
    }
    if (reg->shutting_down) {
        fcgi_conn_drop_params(conn);
        request_fail(r, 503, "pgfeed is shutting down", NULL);
        return;
    }
    metrics *m = reg->stats;
    if (r->fr.route != ROUTE_FEED || r->fr.method == METHOD_POST)
        m->requests_other++;
    else if (r->fr.transport == TRANSPORT_SSE)
        m->requests_sse++;
    else if (r->fr.transport == TRANSPORT_LONG_POLL)
        m->requests_long_poll++;
    else
        m->requests_poll++;

    if (r->fr.route == ROUTE_FEED && r->fr.method == METHOD_POST) {
        publish_start(r);
        if (r->conn)
            fcgi_conn_drop_params(r->conn);
        return;
    }
    fcgi_conn_drop_params(conn);
    switch (r->fr.route) {
    case ROUTE_HEALTH:
        r->query = db_ping(reg->database, health_on_ping, r);
        if (!r->query)
            request_fail_unavailable(r);
        break;
    case ROUTE_METRICS:
        metrics_answer(r);
        break;
    case ROUTE_FEED:
        feed_start(r);
        break;
    }
}

void request_sweep(request_registry *reg, int64_t now_ms)
{
    const pgfeed_config *cfg = reg->cfg;
    request *r = reg->active;
    while (r) {
        request *next = r->next;
        if (r->state == REQ_HELD || (r->state == REQ_WAITING_DB && r->fr.route == ROUTE_FEED &&
                                     r->fr.transport == TRANSPORT_LONG_POLL)) {
            if (now_ms >= r->deadline_ms)
                poll_time_out(r);
        } else if (r->state == REQ_LINGERING) {
            if (now_ms >= r->deadline_ms)
                request_close(r);
        } else if (r->state == REQ_FLUSHING) {
            if (now_ms >= r->deadline_ms) {
                /* Not reading its answer: what it holds queued is ours to free. */
                reg->stats->undrained_closed++;
                log_info(r->id,
                         "closing a client that did not read its answer within "
                         "--drain-timeout (%zu bytes left)",
                         fcgi_conn_pending(r->conn));
                request_close(r);
            }
        } else if (r->state == REQ_STREAMING) {
            if (now_ms >= r->deadline_ms) {
                stream_end(r);
            } else if (r->backlogged_since_ms &&
                       now_ms - r->backlogged_since_ms > (int64_t)cfg->heartbeat * 1000) {
                /* The reader has not taken a high-water mark's worth of events for a whole
                 * heartbeat interval: end the stream, it resumes from its last id. */
                reg->stats->slow_streams_ended++;
                log_info(r->id, "ending a stream whose reader fell behind");
                request_close(r);
            } else if (now_ms - r->last_write_ms >= (int64_t)cfg->heartbeat * 1000 &&
                       fcgi_conn_pending(r->conn) == 0) {
                buf hb = BUF_INIT;
                feed_format_sse_comment(&hb, "hb");
                stream_send(r, &hb);
                buf_free(&hb);
            }
        }
        r = next;
    }
}

void request_shutdown(request_registry *reg)
{
    reg->shutting_down = true;
    request *r = reg->active;
    while (r) {
        request *next = r->next;
        if (r->state == REQ_HELD || (r->state == REQ_WAITING_DB && r->fr.route == ROUTE_FEED &&
                                     r->fr.transport == TRANSPORT_LONG_POLL))
            poll_time_out(r);
        else if (r->state == REQ_STREAMING)
            stream_end(r);
        r = next;
    }
}
