/*
 * db_result — a finished statement's callback, and failed reads remembered and classified.
 */
#include "db_private.h"
#include "log.h"
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void db_result_fail(db_query *q, const char *error)
{
    if (q->cancelled)
        return;
    switch (q->kind) {
    case QUERY_READ: {
        db_read_result r = {.ok = false, .error = error};
        q->cb.read(q->ctx, &r);
        break;
    }
    case QUERY_READ_HEADS: {
        db_heads_result r = {.ok = false, .error = error};
        q->cb.heads(q->ctx, &r);
        break;
    }
    case QUERY_PUBLISH: {
        db_publish_result r = {.ok = false, .error = error};
        q->cb.publish(q->ctx, &r);
        break;
    }
    case QUERY_PING:
        q->cb.ping(q->ctx, false);
        break;
    case QUERY_AUTHORIZE:
        q->cb.authorize(q->ctx, false, false);
        break;
    case QUERY_CALL: {
        db_call_result r = {.ok = false, .error = error};
        q->cb.call(q->ctx, &r);
        break;
    }
    case QUERY_LISTEN:
    case QUERY_PRUNE:
    case QUERY_QUEUE_USAGE:
        break;
    }
}

void db_read_error_clear(db *d)
{
    free(d->read_error);
    d->read_error = NULL;
    backoff_reset(&d->read_backoff);
}

static void result_read(db_query *q, PGresult *res)
{
    int rows = PQntuples(res);
    db_read_result r = {.ok = true};
    db_event *events = xcalloc((size_t)rows, sizeof *events);
    if (rows > 0) {
        r.head = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        r.oldest = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        r.epoch = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
    }
    for (int i = 0; i < rows; i++) {
        if (PQgetisnull(res, i, 2))
            continue;
        db_event *e = &events[r.n_events++];
        e->version = strtoll(PQgetvalue(res, i, 2), NULL, 10);
        e->json = PQgetvalue(res, i, 3);
        e->json_len = (size_t)PQgetlength(res, i, 3);
    }
    r.complete = r.n_events < (size_t)q->limit;
    r.events = events;
    q->cb.read(q->ctx, &r);
    free(events);
}

static void result_heads(db_query *q, PGresult *res)
{
    int rows = PQntuples(res);
    db_head *heads = xcalloc(rows ? (size_t)rows : 1, sizeof *heads);
    for (int i = 0; i < rows; i++)
        heads[i] = (db_head){.channel = PQgetvalue(res, i, 0),
                             .head = strtoll(PQgetvalue(res, i, 1), NULL, 10),
                             .oldest = strtoll(PQgetvalue(res, i, 2), NULL, 10),
                             .epoch = strtoll(PQgetvalue(res, i, 3), NULL, 10)};
    db_heads_result r = {.ok = true, .n_heads = (size_t)rows, .heads = heads};
    q->cb.heads(q->ctx, &r);
    free(heads);
}

/*
 * 500 when retrying cannot help because the statement itself is wrong (a data
 * exception, a syntax error, an internal error); 503 for what an operator or
 * time fixes (privileges, a schema not installed yet, timeouts, resources).
 */
static int read_error_status(const char *sqlstate)
{
    if (sqlstate && (strncmp(sqlstate, "22", 2) == 0 || strcmp(sqlstate, "42601") == 0 ||
                     strncmp(sqlstate, "XX", 2) == 0))
        return 500;
    return 503;
}

/* A read failed with the connection up: remember why, log a new cause once, back off. */
static void read_failed(db *d, PGresult *res)
{
    const char *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    char cause[512];
    snprintf(cause, sizeof cause, "the feed cannot be read: pgfeed.read failed: %s (SQLSTATE %s)",
             message ? message : "unknown error", sqlstate ? sqlstate : "none");
    int64_t delay = backoff_next(&d->read_backoff);
    if (!d->read_error || strcmp(d->read_error, cause) != 0) {
        log_warn(0, "%s; reads retry with backoff until it works", cause);
        free(d->read_error);
        d->read_error = xstrdup(cause);
    }
    d->read_error_status = read_error_status(sqlstate);
    d->read_retry_at_ms = clock_now_ms() + delay;
}

void db_result_deliver(db *d, db_query *q, PGresult *res)
{
    ExecStatusType status = PQresultStatus(res);
    bool ok = status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK;
    if (!ok) {
        if (q->kind == QUERY_READ || q->kind == QUERY_READ_HEADS) {
            read_failed(d, res); /* before the callback, which may read again */
            db_result_fail(q, d->read_error);
            q->cancelled = true;
            return;
        }
        if (q->kind == QUERY_CALL) {
            if (!q->cancelled) {
                db_call_result r = {.ok = false,
                                    .error = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY),
                                    .sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE)};
                if (!r.error)
                    r.error = "query failed";
                q->cb.call(q->ctx, &r);
            }
            q->cancelled = true;
            return;
        }
        /* Class 22 is the client's input refused (a bad event type or data), 42501 a channel
         * pgfeed.publish_prefix keeps from this role: the client's trouble, not pgfeed's. */
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        bool publish = q->kind == QUERY_PUBLISH;
        bool forbidden = publish && state && strcmp(state, "42501") == 0;
        bool client_error = publish && state && strncmp(state, "22", 2) == 0;
        log_msg(client_error || forbidden ? LOG_DEBUG : LOG_WARN, 0, "query failed: %s",
                PQresultErrorMessage(res));
        if (publish && !q->cancelled) {
            db_publish_result r = {.ok = false,
                                   .client_error = client_error,
                                   .forbidden = forbidden,
                                   .error = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)};
            q->cb.publish(q->ctx, &r);
            q->cancelled = true; /* answered */
        } else {
            db_result_fail(q, "database query failed");
            q->cancelled = true;
        }
        return;
    }
    if (q->kind == QUERY_LISTEN) {
        if (d->state != DB_UP) /* LISTEN is three statements: one session */
            d->sessions++;
        d->state = DB_UP;
        backoff_reset(&d->reconnect);
        /* Every CGI request connects: only reconnections are worth a line at info. */
        log_msg(d->ever_up ? LOG_INFO : LOG_DEBUG, 0, "database connected; listening on \"%s\"",
                NOTIFY_CHANNEL);
        d->ever_up = true;
        return;
    }
    if (q->cancelled)
        return;
    switch (q->kind) {
    case QUERY_READ:
    case QUERY_READ_HEADS:
        if (d->read_error) {
            log_info(0, "pgfeed.read works again");
            db_read_error_clear(d);
        }
        if (q->kind == QUERY_READ)
            result_read(q, res);
        else
            result_heads(q, res);
        break;
    case QUERY_PUBLISH: {
        db_publish_result r = {.ok = true, .version = strtoll(PQgetvalue(res, 0, 0), NULL, 10)};
        q->cb.publish(q->ctx, &r);
        break;
    }
    case QUERY_PING:
        q->cb.ping(q->ctx, true);
        break;
    case QUERY_AUTHORIZE:
        q->cb.authorize(q->ctx, true, PQntuples(res) == 1 && !strcmp(PQgetvalue(res, 0, 0), "t"));
        break;
    case QUERY_PRUNE:
        log_info(0, "pruned %s events", PQntuples(res) ? PQgetvalue(res, 0, 0) : "0");
        break;
    case QUERY_QUEUE_USAGE:
        d->notify_queue_usage = PQntuples(res) ? strtod(PQgetvalue(res, 0, 0), NULL) : 0;
        break;
    case QUERY_CALL: {
        bool has = PQntuples(res) > 0 && PQnfields(res) > 0 && !PQgetisnull(res, 0, 0);
        db_call_result r = {.ok = true, .value = has ? PQgetvalue(res, 0, 0) : NULL};
        q->cb.call(q->ctx, &r);
        break;
    }
    case QUERY_LISTEN:
        break;
    }
    q->cancelled = true; /* a statement yields one result we act on */
}

bool db_read_failure(const db *d, int *status, const char **detail)
{
    if (d->state != DB_UP || !d->read_error)
        return false;
    *status = d->read_error_status;
    *detail = d->read_error;
    return true;
}
