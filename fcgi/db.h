/*
 * db — pgfeed's one PostgreSQL connection per process.
 *
 * The connection LISTENs for feed notifications and runs every query the
 * process needs, one at a time from a FIFO, without ever blocking the event
 * loop (libpq's non-blocking API). When it breaks, queued queries fail, the
 * owner hears db_down, and the connection is retried with capped exponential
 * backoff; after each (re)connect LISTEN is issued before anything else and the
 * owner hears db_up, so it can re-read whatever may have moved meanwhile.
 */
#ifndef PGFEED_DB_H
#define PGFEED_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event_loop.h"

typedef struct db db;
typedef struct db_query db_query;

typedef struct db_event {
    int64_t version;
    const char *json; /* {"channel","version","type","data","time"}, no newlines */
    size_t json_len;
} db_event;

/* What pgfeed.read() returned; pointers live until the callback returns. */
typedef struct db_read_result {
    bool ok;
    const char *error; /* when !ok */
    int64_t head;
    int64_t oldest;
    size_t n_events;
    const db_event *events;
} db_read_result;

typedef struct db_publish_result {
    bool ok;
    bool client_error; /* the input was refused (bad type or data), not the database */
    const char *error;
    int64_t version;
} db_publish_result;

typedef struct db_callbacks {
    void *ctx;
    void (*up)(void *ctx);   /* LISTEN is in place: re-read what may have moved */
    void (*down)(void *ctx); /* queued queries failed; notifications may be lost */
    void (*notify)(void *ctx, const char *channel, int64_t version);
    void (*pruned)(void *ctx, const char *channel, int64_t oldest);
} db_callbacks;

/* conninfo may be NULL or "": libpq's PG* environment and service files apply. */
db *db_new(event_loop *loop, const char *conninfo, const db_callbacks *callbacks);
void db_free(db *d);
/* Starts connecting (again, if down and the backoff has passed). Call every turn. */
void db_tick(db *d, int64_t now_ms);
bool db_is_up(const db *d);
/* Milliseconds until the next reconnect attempt, for Retry-After; 0 when up. */
int64_t db_retry_after_ms(const db *d, int64_t now_ms);
uint64_t db_queries_sent(const db *d);
size_t db_queue_length(const db *d);

typedef void (*db_read_cb)(void *ctx, const db_read_result *result);
typedef void (*db_publish_cb)(void *ctx, const db_publish_result *result);
typedef void (*db_ping_cb)(void *ctx, bool ok);

/*
 * Queues pgfeed.read(channel, after, limit). The returned handle stays valid
 * until the callback has run; db_query_cancel stops the callback from running.
 * When the database is down the callback runs before this returns, with ok false.
 */
db_query *db_read(db *d, const char *channel, int64_t after, int limit, db_read_cb cb, void *ctx);
db_query *db_publish(db *d, const char *channel, const char *type, const char *data_json,
                     db_publish_cb cb, void *ctx);
db_query *db_ping(db *d, db_ping_cb cb, void *ctx);
/* Runs pgfeed.prune(); the result is only logged. */
void db_prune(db *d);
/*
 * Queues SELECT pg_notification_queue_usage() (one at a time); the answer is
 * kept for db_notify_queue_usage. A listener that stops reading anywhere in
 * the cluster fills the queue, and a full queue fails every transaction that
 * sends NOTIFY, the application's writes to tracked tables included.
 */
void db_check_notify_queue(db *d);
/* The last value read, 0..1 (0 before the first check). */
double db_notify_queue_usage(const db *d);
void db_query_cancel(db_query *q);

#endif
