/*
 * request — a request's life: start, answer, flush, linger, sweep, shut down, reap (see request.h).
 */
#include "request_private.h"
#include "log.h"
#include "problem.h"
#include "feed_format.h"
#include "xalloc.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The one way out: detaches the request from everything that could call it back. */
void request_close(request *r)
{
    if (r->state == REQ_CLOSED)
        return;
    subscription_release_all(r);
    db_query_cancel(r->query);
    r->query = NULL;
    channel_auth_free(r->auth); /* no pgfeed.authorize answer may call back */
    r->auth = NULL;
    fcgi_conn_close(r->conn); /* which also ends r's watch on it */
    r->conn = NULL;
    request_set_state(r, REQ_CLOSED);
}

/* ---- output ------------------------------------------------------------ */

/* Writes what the socket takes; watches for writability only while output is queued. */
void request_flush(request *r)
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
            request_set_state(r, REQ_LINGERING);
            r->deadline_ms = clock_now_ms() + LINGER_MS;
            if (fcgi_conn_watch_events(r->conn, EPOLLIN | EPOLLRDHUP) < 0)
                request_close(r);
            return;
        }
    }
    if (r->watched) {
        uint32_t want = fcgi_conn_hangup_events(r->conn) | (rc == 0 ? EPOLLOUT : 0);
        if (fcgi_conn_watch_events(r->conn, want) < 0)
            request_close(r);
    }
}

/* Sends a complete answer: the single path every final status goes through. */
void request_respond(request *r, int status, const char *content_type, const char *extra_headers,
                     const char *body, size_t body_len)
{
    request_respond_cache(r, status, content_type, NULL, extra_headers, body, body_len);
}

void request_respond_cache(request *r, int status, const char *content_type,
                           const char *cache_control, const char *extra_headers, const char *body,
                           size_t body_len)
{
    subscription_release_all(r);
    buf *head = &r->reg->head;
    buf_reset(head);
    feed_format_head_cache(head, status, content_type, cache_control);
    if (extra_headers)
        buf_append_str(head, extra_headers);
    if (r->cors.len)
        buf_append(head, r->cors.data, r->cors.len);
    feed_format_end_head(head);
    fcgi_conn_send(r->conn, head->data, head->len);
    if (body && r->fr.method != METHOD_HEAD)
        fcgi_conn_send(r->conn, body, body_len);
    fcgi_conn_end(r->conn);
    metrics_count_status(r->reg->stats, status);
    log_debug(r->id, "answered %d", status);
    request_set_state(r, REQ_FLUSHING);
    request_flush(r);
}

/* Answers with a problem+json body, logged at level; extra members and allow may be NULL. */
static void request_problem(request *r, int status, const char *detail, json_object *extra,
                            const char *allow, log_level level)
{
    buf body = BUF_INIT;
    problem_body(&body, status, detail, extra);
    buf headers = BUF_INIT;
    if (status == 503) {
        int64_t ms = db_retry_after_ms(r->reg->database, clock_now_ms());
        feed_format_retry_after(&headers, ms / 1000 + 1);
        if (!db_is_up(r->reg->database))
            feed_format_database_down(&headers);
    } else if (allow) {
        feed_format_header(&headers, "Allow", allow);
    }
    log_msg(level, r->id, "%d: %s", status, detail);
    request_respond(r, status, "application/problem+json", headers.data, body.data, body.len);
    buf_free(&body);
    buf_free(&headers);
}

void request_fail_allow(request *r, int status, const char *detail, json_object *extra,
                        const char *allow)
{
    request_problem(r, status, detail, extra, allow, status >= 500 ? LOG_WARN : LOG_DEBUG);
}

void request_fail(request *r, int status, const char *detail, json_object *extra)
{
    request_fail_allow(r, status, detail, extra, NULL);
}

/*
 * A feed's channel could not be loaded with the database up and reading:
 * --load-queue channels were waiting for their heads already (a flood of
 * names), or the load was still waiting when the wait ended. pgfeed is busy,
 * not the database unreachable: a type of its own says so, and no
 * Pgfeed-Database header. A head batch takes milliseconds: retry in a second.
 */
static void request_fail_busy(request *r)
{
    buf body = BUF_INIT, headers = BUF_INIT;
    problem_body_typed(&body, 503, PROBLEM_TYPE_BUSY, "Busy loading channels",
                       "this process is busy loading channel heads (more are waiting than "
                       "--load-queue allows, or this one did not load in time); retry shortly",
                       NULL);
    feed_format_retry_after(&headers, 1);
    log_debug(r->id, "503: busy loading channels");
    request_respond(r, 503, "application/problem+json", headers.data, body.data, body.len);
    buf_free(&body);
    buf_free(&headers);
}

/*
 * The database could not be asked: it is down, or its reads fail. Either is
 * logged once by db (per outage, per cause), not once per request.
 */
void request_fail_unavailable(request *r)
{
    int status;
    const char *detail;
    json_object *extra = NULL;
    if (!db_read_failure(r->reg->database, &status, &detail) && r->n_subs > 0 &&
        db_is_up(r->reg->database)) {
        request_fail_busy(r);
        return;
    }
    if (!db_read_failure(r->reg->database, &status, &detail)) {
        status = 503;
        detail = "the database is unreachable; retry shortly";
        /* What pgfeed.js reads to show "degraded" rather than "offline". */
        extra = json_object_new_object();
        json_object_object_add(extra, "database", json_object_new_string("down"));
    }
    request_problem(r, status, detail, extra, NULL, LOG_DEBUG);
    json_object_put(extra);
}

void request_refuse(request *r, const guard_refusal *why)
{
    if (why->status == 503) {
        request_problem(r, 503, why->detail, NULL, NULL, LOG_DEBUG);
        return;
    }
    buf body = BUF_INIT, headers = BUF_INIT;
    /* A 403 names its channel, so a client can drop that one and keep the rest. */
    json_object *extra = NULL;
    if (why->channel[0]) {
        extra = json_object_new_object();
        json_object_object_add(extra, "channel", json_object_new_string(why->channel));
    }
    problem_body(&body, why->status, why->detail, extra);
    json_object_put(extra);
    guard_refusal_headers(why, &headers);
    log_debug(r->id, "%d: %s", why->status, why->detail);
    request_respond(r, why->status, "application/problem+json", headers.data, body.data, body.len);
    buf_free(&body);
    buf_free(&headers);
}

bool request_reads_failing(const request *r)
{
    int status;
    const char *detail;
    return db_read_failure(r->reg->database, &status, &detail);
}

/* ---- dispatch -------------------------------------------------------------- */

void request_evaluate(request *r)
{
    switch (r->state) {
    case REQ_STARTING:
        break; /* its start decides where it goes */
    case REQ_AUTHORIZING:
        break; /* channel_auth's answer decides */
    case REQ_WAITING_DB:
    case REQ_HELD:
        if (r->fr.transport == TRANSPORT_SSE)
            return; /* streams start at once and never wait here */
        feed_poll_evaluate(r);
        break;
    case REQ_STREAMING:
        sse_pump(r);
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
            sse_pump(r);
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

static const char *conn_param(void *ctx, const char *name)
{
    return fcgi_conn_param(ctx, name);
}

static void feed_start(request *r)
{
    request_registry *reg = r->reg;
    feed_request *fr = &r->fr;
    if (fr->transport != TRANSPORT_POLL) {
        if (reg->n_held >= (size_t)reg->cfg->max_held) {
            reg->stats->held_rejected++;
            request_fail(r, 503, "this process holds as many requests as it is configured to",
                         NULL);
            return;
        }
    }
    int64_t now = clock_now_ms();
    r->deadline_ms = now + (fr->transport == TRANSPORT_SSE ? (int64_t)reg->cfg->sse_lifetime
                                                           : (int64_t)fr->wait) *
                               1000;
    /* A long poll is answered (as a timeout) when its authorization runs out. */
    if (fr->transport == TRANSPORT_LONG_POLL && channel_auth_until(r->auth) < r->deadline_ms)
        r->deadline_ms = channel_auth_until(r->auth);
    subscription_init_all(r);
    if (fr->transport == TRANSPORT_SSE) {
        sse_start(r);
    } else {
        request_set_state(r, REQ_WAITING_DB);
        feed_poll_evaluate(r);
    }
}

/* channel_auth's answer: at the start (REQ_AUTHORIZING) or on a stream's re-check. */
static void request_on_auth(void *ctx, const guard_refusal *why)
{
    request *r = ctx;
    if (r->state == REQ_AUTHORIZING) {
        if (why)
            request_refuse(r, why);
        else
            feed_start(r);
    } else if (r->state == REQ_STREAMING) {
        if (why)
            sse_end_auth(r, why->detail);
        else
            sse_resume(r);
    }
}

/* Every channel of the request, checked before anything is subscribed. */
static void feed_authorize(request *r)
{
    guard_refusal why;
    switch (channel_auth_start(r->reg->guard, r->reg->database, &r->who,
                               (const char *const *)r->fr.channels, r->fr.n_channels,
                               clock_now_ms(), request_on_auth, r, &r->auth, &why)) {
    case CHANNEL_AUTH_OK:
        feed_start(r);
        break;
    case CHANNEL_AUTH_REFUSED:
        request_refuse(r, &why);
        break;
    case CHANNEL_AUTH_PENDING:
        request_set_state(r, REQ_AUTHORIZING);
        break;
    }
}

/* A CORS preflight, answered before parsing (feed_request knows no OPTIONS). */
static bool request_preflight(request *r)
{
    const char *method = fcgi_conn_param(r->conn, "REQUEST_METHOD");
    if (!method || strcmp(method, "OPTIONS") != 0)
        return false;
    buf headers = BUF_INIT;
    guard_refusal why;
    int status = guard_preflight(r->reg->guard, conn_param, r->conn, &headers, &why);
    fcgi_conn_drop_params(r->conn);
    if (status == 204)
        request_respond(r, 204, NULL, headers.data, NULL, 0);
    else
        request_refuse(r, &why);
    buf_free(&headers);
    return true;
}

/* Whether --cors-origin '*' may cover the answer: every channel is open to anyone. */
static bool request_all_public(const request *r)
{
    if (r->fr.route != ROUTE_FEED || r->fr.n_channels == 0)
        return false;
    for (size_t i = 0; i < r->fr.n_channels; i++)
        if (!guard_channel_public(r->reg->guard, r->fr.channels[i]))
            return false;
    return true;
}

void request_start(request_registry *reg, fcgi_conn *conn)
{
    const pgfeed_config *cfg = reg->cfg;
    request *r = xcalloc(1, sizeof *r);
    r->id = ++reg->next_id;
    r->reg = reg;
    r->conn = conn;
    request_set_state(r, REQ_STARTING);
    /* The server closing the connection is how a departed client shows. */
    r->watched =
        fcgi_conn_watch(conn, reg->loop, request_on_io, r, fcgi_conn_hangup_events(conn)) == 0;

    feed_limits limits = {.max_query_length = (size_t)cfg->max_query,
                          .max_channels = (size_t)cfg->max_channels,
                          .default_limit = cfg->default_limit,
                          .max_limit = cfg->max_limit,
                          .max_wait = cfg->max_wait,
                          .publish_enabled = cfg->publish};
    if (request_preflight(r))
        return;
    feed_error err;
    if (feed_request_parse(conn_param, conn, &limits, &r->fr, &err) < 0) {
        guard_cors_headers(reg->guard, conn_param, conn, false, &r->cors);
        fcgi_conn_drop_params(conn);
        request_fail_allow(r, err.status, err.detail, NULL, err.allow);
        return;
    }
    /* Who asks is decided while the params are here; so are the CORS headers. */
    guard_cors_headers(reg->guard, conn_param, conn, request_all_public(r), &r->cors);
    guard_refusal why;
    if (guard_identify(reg->guard, conn_param, conn, clock_now_ms(), clock_wall_s(), &r->who,
                       &why) < 0 ||
        ((r->fr.route == ROUTE_HEALTH || r->fr.route == ROUTE_METRICS) &&
         !guard_admin(reg->guard, conn_param, conn, &r->who, &why))) {
        fcgi_conn_drop_params(conn);
        request_refuse(r, &why);
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
        admin_health_start(r);
        break;
    case ROUTE_METRICS:
        admin_metrics_answer(r);
        break;
    case ROUTE_FEED:
        feed_authorize(r);
        break;
    }
}

/* A long poll still waiting for the database counts its wait from the start too. */
static bool request_is_long_poll(const request *r)
{
    return r->fr.route == ROUTE_FEED && r->fr.method != METHOD_POST &&
           r->fr.transport == TRANSPORT_LONG_POLL;
}

/*
 * Each list is walked with its next link taken first: handling a request moves
 * it to another state's list, never touches another request.
 */
void request_sweep(request_registry *reg, int64_t now_ms)
{
    request *r, *next;
    for (r = reg->held.head; r; r = next) {
        next = r->next;
        if (now_ms >= r->deadline_ms)
            feed_poll_time_out(r);
    }
    for (r = reg->waiting_db.head; r; r = next) {
        next = r->next;
        if (request_is_long_poll(r) && now_ms >= r->deadline_ms)
            feed_poll_time_out(r);
    }
    for (r = reg->lingering.head; r; r = next) {
        next = r->next;
        if (now_ms >= r->deadline_ms)
            request_close(r);
    }
    for (r = reg->flushing.head; r; r = next) {
        next = r->next;
        if (now_ms >= r->deadline_ms) {
            /* Not reading its answer: what it holds queued is ours to free. */
            reg->stats->undrained_closed++;
            log_info(r->id,
                     "closing a client that did not read its answer within --drain-timeout "
                     "(%zu bytes left)",
                     fcgi_conn_pending(r->conn));
            request_close(r);
        }
    }
    for (r = reg->streaming.head; r; r = next) {
        next = r->next;
        sse_sweep(r, now_ms);
    }
}

void request_on_database(request_registry *reg, bool up)
{
    request *r, *next;
    for (r = reg->streaming.head; r; r = next) {
        next = r->next; /* a failed write closes r, which moves it to another list */
        sse_send_status(r, up);
    }
}

void request_shutdown(request_registry *reg)
{
    reg->shutting_down = true;
    request *r, *next;
    for (r = reg->held.head; r; r = next) {
        next = r->next;
        feed_poll_time_out(r);
    }
    for (r = reg->waiting_db.head; r; r = next) {
        next = r->next;
        if (request_is_long_poll(r))
            feed_poll_time_out(r);
    }
    for (r = reg->streaming.head; r; r = next) {
        next = r->next;
        sse_end(r);
    }
}
