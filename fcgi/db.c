/*
 * db — the process's PostgreSQL connection: LISTEN plus a FIFO of queries,
 * all non-blocking (see db.h).
 */
#include "db_private.h"
#include "buf.h"
#include "log.h"
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STARTUP_CHECK_TIMEOUT_S "5" /* db_check_startup's connect_timeout */

const char *const db_query_sql[] = {
    [QUERY_LISTEN] =
        "LISTEN " NOTIFY_CHANNEL "; LISTEN " NOTIFY_PRUNED_CHANNEL "; LISTEN " NOTIFY_RESET_CHANNEL,
    [QUERY_READ] = "SELECT head, oldest, version, event, epoch"
                   " FROM pgfeed.read($1, $2::bigint, $3::int)",
    /* pgfeed.read with limit 0 returns one row per channel, events left out: the same
     * function, rights and snapshot rules as a read, for many names in one statement. */
    [QUERY_READ_HEADS] = "SELECT n.name, r.head, r.oldest, r.epoch"
                         " FROM unnest($1::text[]) WITH ORDINALITY AS n(name, i)"
                         " CROSS JOIN LATERAL pgfeed.read(n.name, NULL, 0) AS r ORDER BY n.i",
    [QUERY_PUBLISH] = "SELECT pgfeed.publish($1, $2, $3::jsonb)",
    [QUERY_PING] = "SELECT 1",
    [QUERY_PRUNE] = "SELECT pgfeed.prune()",
    /* NULL from the application's function is a no. */
    [QUERY_AUTHORIZE] = "SELECT coalesce(pgfeed.authorize($1, $2), false)",
    /* How full PostgreSQL's NOTIFY queue is (0..1): a listener somewhere not reading. */
    [QUERY_QUEUE_USAGE] = "SELECT pg_notification_queue_usage()",
};

static void db_on_io(void *data, uint32_t events);

db *db_new(event_loop *loop, const char *conninfo, const db_callbacks *callbacks)
{
    db *d = xcalloc(1, sizeof *d);
    d->loop = loop;
    d->conninfo = xstrdup(conninfo ? conninfo : "");
    d->callbacks = *callbacks;
    d->state = DB_DOWN;
    d->watch.fd = -1;
    d->watch.handler = db_on_io;
    d->watch.data = d;
    backoff_init(&d->reconnect, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
    backoff_init(&d->read_backoff, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
    return d;
}

static void query_free(db_query *q)
{
    for (int i = 0; i < q->n_params; i++)
        free(q->params[i]);
    free(q);
}

static void unwatch(db *d)
{
    if (d->watch.fd >= 0)
        event_loop_unwatch(d->loop, &d->watch);
    d->watch.fd = -1;
}

/*
 * Called whenever the connection is lost or could not be made: every queued
 * query fails (its caller answers 503 or retries later), the owner hears that
 * notifications may have been missed, and a reconnect is scheduled.
 */
static void db_connection_lost(db *d, const char *why)
{
    bool was_up = d->state == DB_UP;
    int64_t delay = backoff_next(&d->reconnect);
    log_warn(0, "database connection %s: %s; retrying in %lld ms",
             d->state == DB_CONNECTING ? "failed" : "lost", why, (long long)delay);
    free(d->send_error);
    d->send_error = NULL;
    unwatch(d);
    if (d->conn)
        PQfinish(d->conn);
    d->conn = NULL;
    d->state = DB_DOWN;
    d->in_flight = false;
    d->queue_usage_in_flight = false;
    d->retry_at_ms = clock_now_ms() + delay;
    db_read_error_clear(d); /* a new connection reads at once */

    db_query *q = d->queue_head;
    d->queue_head = d->queue_tail = NULL;
    d->queue_length = 0;
    while (q) {
        db_query *next = q->next;
        db_result_fail(q, "database unavailable");
        query_free(q);
        q = next;
    }
    if (was_up && d->callbacks.down)
        d->callbacks.down(d->callbacks.ctx);
}

static void db_watch_for(db *d, uint32_t events)
{
    int fd = PQsocket(d->conn);
    if (fd != d->watch.fd) {
        unwatch(d);
        d->watch.fd = fd;
        if (fd >= 0 && event_loop_watch(d->loop, &d->watch, events) < 0)
            d->watch.fd = -1;
        return;
    }
    if (event_loop_modify(d->loop, &d->watch, events) < 0)
        log_warn(0, "cannot change database fd events");
}

static void enqueue(db *d, db_query *q, bool front)
{
    if (front) {
        q->next = d->queue_head;
        d->queue_head = q;
        if (!d->queue_tail)
            d->queue_tail = q;
    } else {
        if (d->queue_tail)
            d->queue_tail->next = q;
        else
            d->queue_head = q;
        d->queue_tail = q;
    }
    d->queue_length++;
}

static void db_send_failed(db *d)
{
    if (!d->send_error)
        d->send_error = xstrdup(PQerrorMessage(d->conn));
}

static void db_send_next(db *d)
{
    if (d->in_flight || !d->queue_head || d->state == DB_DOWN || d->state == DB_CONNECTING ||
        d->send_error)
        return;
    db_query *q = d->queue_head;
    if (d->state == DB_LISTENING && q->kind != QUERY_LISTEN)
        return;
    /* LISTEN is two statements, which only the simple protocol takes. */
    const char *sql = q->kind == QUERY_CALL ? q->sql : db_query_sql[q->kind];
    int sent = q->kind == QUERY_LISTEN
                   ? PQsendQuery(d->conn, sql)
                   : PQsendQueryParams(d->conn, sql, q->n_params, NULL,
                                       (const char *const *)q->params, NULL, NULL, 0);
    if (!sent) {
        db_send_failed(d);
        return;
    }
    d->in_flight = true;
    d->sent_at_ms = clock_now_ms();
    d->queries_sent += q->kind != QUERY_CALL; /* db_call's callers count their own */
    int flushed = PQflush(d->conn);
    if (flushed < 0)
        db_send_failed(d);
    else
        db_watch_for(d, EPOLLIN | (flushed ? EPOLLOUT : 0));
}

static void drain_notifications(db *d)
{
    PGnotify *n;
    while ((n = PQnotifies(d->conn)) != NULL) {
        /* Payloads: "<number> <channel>", written by pgfeed.publish() and pgfeed.prune(). */
        char *space = strchr(n->extra, ' ');
        int64_t number = strtoll(n->extra, NULL, 10);
        bool pruned = strcmp(n->relname, NOTIFY_PRUNED_CHANNEL) == 0;
        bool reset = strcmp(n->relname, NOTIFY_RESET_CHANNEL) == 0;
        if (space && reset && d->callbacks.reset) {
            d->callbacks.reset(d->callbacks.ctx, space + 1);
        } else if (space && pruned && d->callbacks.pruned) {
            d->callbacks.pruned(d->callbacks.ctx, space + 1, number);
        } else if (space && !pruned && !reset && d->callbacks.notify) {
            d->callbacks.notify(d->callbacks.ctx, space + 1, number);
        } else {
            log_warn(0, "ignoring malformed notification payload \"%.64s\"", n->extra);
        }
        PQfreemem(n);
    }
}

static void db_read_results(db *d)
{
    if (!PQconsumeInput(d->conn)) {
        db_connection_lost(d, PQerrorMessage(d->conn));
        return;
    }
    while (d->in_flight && !PQisBusy(d->conn)) {
        PGresult *res = PQgetResult(d->conn);
        if (!res) {
            db_query *q = d->queue_head;
            d->queue_head = q->next;
            if (!d->queue_head)
                d->queue_tail = NULL;
            d->queue_length--;
            d->in_flight = false;
            bool was_listen = q->kind == QUERY_LISTEN;
            if (q->kind == QUERY_QUEUE_USAGE)
                d->queue_usage_in_flight = false;
            query_free(q);
            /* Every statement runs on its own (autocommit). A connection left inside a
             * transaction would keep holding LISTEN without reading the NOTIFY queue
             * (notifications reach a listener only between transactions) while the
             * queue fills for every publisher of the database: drop it instead. */
            PGTransactionStatusType tx = PQtransactionStatus(d->conn);
            if (tx == PQTRANS_INTRANS || tx == PQTRANS_INERROR) {
                db_connection_lost(d, "a statement left the connection inside a transaction");
                return;
            }
            if (was_listen && d->state == DB_UP && d->callbacks.up)
                d->callbacks.up(d->callbacks.ctx);
            if (d->state == DB_DOWN)
                return;
            db_send_next(d);
            continue;
        }
        db_result_deliver(d, d->queue_head, res);
        PQclear(res);
        if (d->state == DB_DOWN)
            return;
    }
    /* Notifications are delivered between results too; after results keeps order intuitive. */
    drain_notifications(d);
    if (PQstatus(d->conn) == CONNECTION_BAD)
        db_connection_lost(d, PQerrorMessage(d->conn));
}

static void db_start_listen(db *d)
{
    d->state = DB_LISTENING;
    PQsetnonblocking(d->conn, 1);
    db_query *q = xcalloc(1, sizeof *q);
    q->kind = QUERY_LISTEN;
    enqueue(d, q, true);
    db_send_next(d);
}

static void db_continue_connect(db *d)
{
    switch (PQconnectPoll(d->conn)) {
    case PGRES_POLLING_READING:
        db_watch_for(d, EPOLLIN);
        break;
    case PGRES_POLLING_WRITING:
        db_watch_for(d, EPOLLOUT);
        break;
    case PGRES_POLLING_OK:
        db_start_listen(d);
        break;
    default:
        db_connection_lost(d, PQerrorMessage(d->conn));
        break;
    }
}

static void db_on_io(void *data, uint32_t events)
{
    db *d = data;
    if (d->state == DB_CONNECTING) {
        db_continue_connect(d);
        return;
    }
    if (d->state == DB_DOWN)
        return;
    if (events & EPOLLOUT) {
        int flushed = PQflush(d->conn);
        if (flushed < 0) {
            db_connection_lost(d, PQerrorMessage(d->conn));
            return;
        }
        db_watch_for(d, EPOLLIN | (flushed ? EPOLLOUT : 0));
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        db_read_results(d);
}

/* Server notices (and libpq's own messages) go through our log, with its prefix. */
static void db_on_notice(void *arg, const char *message)
{
    (void)arg;
    size_t len = strlen(message);
    while (len > 0 && message[len - 1] == '\n')
        len--;
    log_info(0, "postgresql: %.*s", (int)len, message);
}

void db_tick(db *d, int64_t now_ms)
{
    if (d->send_error) {
        char *why = d->send_error;
        d->send_error = NULL;
        db_connection_lost(d, why);
        free(why);
        return;
    }
    if (d->state == DB_CONNECTING && now_ms > d->connect_deadline_ms) {
        db_connection_lost(d, "timed out");
        return;
    }
    if (d->in_flight && now_ms - d->sent_at_ms > QUERY_TIMEOUT_MS) {
        db_connection_lost(d, "a statement got no answer in time");
        return;
    }
    if (d->state != DB_DOWN || now_ms < d->retry_at_ms)
        return;
    d->conn = PQconnectStart(d->conninfo);
    if (!d->conn || PQstatus(d->conn) == CONNECTION_BAD) {
        d->state = DB_CONNECTING;
        db_connection_lost(d, d->conn ? PQerrorMessage(d->conn) : "out of memory");
        return;
    }
    PQsetNoticeProcessor(d->conn, db_on_notice, NULL);
    d->state = DB_CONNECTING;
    d->connect_deadline_ms = now_ms + CONNECT_TIMEOUT_MS;
    db_continue_connect(d);
}

bool db_is_up(const db *d)
{
    return d->state == DB_UP;
}

int64_t db_retry_after_ms(const db *d, int64_t now_ms)
{
    if (d->state == DB_UP && d->read_error)
        return d->read_retry_at_ms > now_ms ? d->read_retry_at_ms - now_ms : BACKOFF_MIN_MS;
    if (d->state == DB_UP)
        return 0;
    if (d->state != DB_DOWN || d->retry_at_ms <= now_ms)
        return BACKOFF_MIN_MS;
    return d->retry_at_ms - now_ms;
}

uint64_t db_queries_sent(const db *d)
{
    return d->queries_sent;
}

size_t db_queue_length(const db *d)
{
    return d->queue_length;
}

/* sql: QUERY_CALL's statement (NULL for the others), in place before the query can be sent. */
static db_query *db_submit_sql(db *d, query_kind kind, const char *sql, int n_params, char **params,
                               void *ctx)
{
    if (d->state != DB_UP && d->state != DB_LISTENING && d->state != DB_CONNECTING) {
        for (int i = 0; i < n_params; i++)
            free(params[i]);
        return NULL;
    }
    db_query *q = xcalloc(1, sizeof *q);
    q->kind = kind;
    q->sql = sql;
    q->n_params = n_params;
    for (int i = 0; i < n_params; i++)
        q->params[i] = params[i];
    q->ctx = ctx;
    enqueue(d, q, false);
    db_send_next(d);
    return q;
}

static db_query *db_submit(db *d, query_kind kind, int n_params, char **params, void *ctx)
{
    return db_submit_sql(d, kind, NULL, n_params, params, ctx);
}

static char *format_int(int64_t value)
{
    char text[32];
    snprintf(text, sizeof text, "%lld", (long long)value);
    return xstrdup(text);
}

bool db_can_read(const db *d)
{
    if (d->read_error && clock_now_ms() < d->read_retry_at_ms)
        return false;
    return d->state != DB_DOWN;
}

db_query *db_read(db *d, const char *channel, int64_t after, int limit, db_read_cb cb, void *ctx)
{
    if (!db_can_read(d))
        return NULL;
    char *params[3] = {xstrdup(channel), format_int(after), format_int(limit)};
    db_query *q = db_submit(d, QUERY_READ, 3, params, ctx);
    if (q) {
        q->cb.read = cb;
        q->limit = limit;
    }
    return q;
}

/*
 * A text[] literal of the names, each quoted with '"' and '\\' escaped: it is
 * bound as a parameter like any other value, never spliced into SQL.
 */
static char *format_text_array(const char *const *items, size_t n)
{
    buf out = BUF_INIT;
    buf_append_str(&out, "{");
    for (size_t i = 0; i < n; i++) {
        buf_append_str(&out, i ? ",\"" : "\"");
        for (const char *p = items[i]; *p; p++) {
            if (*p == '"' || *p == '\\')
                buf_append(&out, "\\", 1);
            buf_append(&out, p, 1);
        }
        buf_append_str(&out, "\"");
    }
    buf_append_str(&out, "}");
    return out.data; /* buf's storage, malloc'ed: the query frees it */
}

db_query *db_read_heads(db *d, const char *const *channels, size_t n, db_heads_cb cb, void *ctx)
{
    if (!db_can_read(d) || n == 0)
        return NULL;
    char *params[1] = {format_text_array(channels, n)};
    db_query *q = db_submit(d, QUERY_READ_HEADS, 1, params, ctx);
    if (q)
        q->cb.heads = cb;
    return q;
}

db_query *db_publish(db *d, const char *channel, const char *type, const char *data_json,
                     db_publish_cb cb, void *ctx)
{
    char *params[3] = {xstrdup(channel), xstrdup(type), xstrdup(data_json)};
    db_query *q = db_submit(d, QUERY_PUBLISH, 3, params, ctx);
    if (q)
        q->cb.publish = cb;
    return q;
}

db_query *db_ping(db *d, db_ping_cb cb, void *ctx)
{
    db_query *q = db_submit(d, QUERY_PING, 0, NULL, ctx);
    if (q)
        q->cb.ping = cb;
    return q;
}

db_query *db_authorize(db *d, const char *principal, const char *channel, db_authorize_cb cb,
                       void *ctx)
{
    char *params[2] = {xstrdup(principal), xstrdup(channel)};
    db_query *q = db_submit(d, QUERY_AUTHORIZE, 2, params, ctx);
    if (q)
        q->cb.authorize = cb;
    return q;
}

db_query *db_call(db *d, const char *sql, int n_params, const char *const *params, db_call_cb cb,
                  void *ctx)
{
    char *copies[3];
    if (n_params < 0 || n_params > 3)
        return NULL;
    for (int i = 0; i < n_params; i++)
        copies[i] = params[i] ? xstrdup(params[i]) : NULL;
    db_query *q = db_submit_sql(d, QUERY_CALL, sql, n_params, copies, ctx);
    if (q)
        q->cb.call = cb;
    return q;
}

uint64_t db_sessions(const db *d)
{
    return d->sessions;
}

void db_prune(db *d)
{
    if (d->state == DB_UP)
        db_submit(d, QUERY_PRUNE, 0, NULL, NULL);
}

void db_check_notify_queue(db *d)
{
    if (d->state != DB_UP || d->queue_usage_in_flight)
        return;
    d->queue_usage_in_flight = db_submit(d, QUERY_QUEUE_USAGE, 0, NULL, NULL) != NULL;
}

double db_notify_queue_usage(const db *d)
{
    return d->notify_queue_usage;
}

void db_query_cancel(db_query *q)
{
    if (q)
        q->cancelled = true;
}

void db_free(db *d)
{
    if (!d)
        return;
    unwatch(d);
    if (d->conn)
        PQfinish(d->conn);
    db_query *q = d->queue_head;
    while (q) {
        db_query *next = q->next;
        query_free(q);
        q = next;
    }
    free(d->send_error);
    free(d->read_error);
    free(d->conninfo);
    free(d);
}

/*
 * The one blocking connection pgfeed makes, before serving: a conninfo that
 * cannot work (a typo, refused authentication, an unknown role or database)
 * stops the process with libpq's own words instead of answering 503 forever.
 * PQping tells "the server answered and refused us" (fatal) from "nobody
 * answered" (a restart in progress: the event loop retries, as always).
 */
int db_check_startup(const char *conninfo)
{
    int rc = 0;
    char *parse_error = NULL;
    PQconninfoOption *parsed = NULL;
    PGconn *conn = NULL;
    bool given = conninfo && *conninfo;
    if (given && !(parsed = PQconninfoParse(conninfo, &parse_error))) {
        log_error(0, "--db: %s", parse_error ? parse_error : "out of memory");
        rc = -1;
        goto cleanup;
    }
    /* Later entries win: a connect_timeout in the conninfo or PGCONNECT_TIMEOUT overrides ours. */
    const char *keys[] = {"connect_timeout", "dbname", NULL};
    const char *values[] = {getenv("PGCONNECT_TIMEOUT") ? NULL : STARTUP_CHECK_TIMEOUT_S,
                            given ? conninfo : NULL, NULL};
    conn = PQconnectdbParams(keys, values, 1);
    if (PQstatus(conn) == CONNECTION_OK)
        goto cleanup;
    switch (PQpingParams(keys, values, 1)) {
    case PQPING_OK:
    case PQPING_NO_ATTEMPT:
        log_error(0, "cannot use the database: %s", PQerrorMessage(conn));
        rc = -1;
        break;
    default:
        log_warn(0, "database not reachable yet, retrying: %s", PQerrorMessage(conn));
        break;
    }
cleanup:
    PQfinish(conn);
    PQconninfoFree(parsed);
    PQfreemem(parse_error);
    return rc;
}
