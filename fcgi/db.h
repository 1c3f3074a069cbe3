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

/* What pgfeed.read() returned; every pointer (error, events and their json)
 * is db's and lives only until the callback returns: copy what you keep. */
typedef struct db_read_result {
    bool ok;
    const char *error; /* when !ok */
    int64_t head;
    int64_t oldest;
    int64_t epoch; /* the channel's incarnation (0: it does not exist); changes on a reset */
    bool complete; /* fewer events than the limit: every event up to head is here */
    size_t n_events;
    const db_event *events;
} db_read_result;

/* One channel of a pgfeed.read(channel, NULL, 0) batch: its head, without events. */
typedef struct db_head {
    const char *channel; /* db's, like every pointer of a result */
    int64_t head;
    int64_t oldest;
    int64_t epoch;
} db_head;

typedef struct db_heads_result {
    bool ok;
    const char *error; /* when !ok */
    size_t n_heads;    /* one per channel asked, in the order asked */
    const db_head *heads;
} db_heads_result;

typedef struct db_publish_result {
    bool ok;
    bool client_error; /* the input was refused (bad type or data), not the database */
    bool forbidden;    /* this role may not publish to the channel (pgfeed.publish_prefix) */
    const char *error;
    int64_t version;
} db_publish_result;

/* What a db_call statement returned; pointers are db's, valid during the callback. */
typedef struct db_call_result {
    bool ok;
    const char *value;    /* when ok: first column of the first row; NULL for none or SQL NULL */
    const char *error;    /* when !ok: the server's message, or why nothing was asked */
    const char *sqlstate; /* when !ok: the server's SQLSTATE; NULL if it never answered */
} db_call_result;

typedef struct db_callbacks {
    void *ctx;
    void (*up)(void *ctx);   /* LISTEN is in place: re-read what may have moved */
    void (*down)(void *ctx); /* queued queries failed; notifications may be lost */
    void (*notify)(void *ctx, const char *channel, int64_t version);
    void (*pruned)(void *ctx, const char *channel, int64_t oldest);
    /* events were deleted other than by pruning, or the channel reset ("*": all) */
    void (*reset)(void *ctx, const char *channel);
} db_callbacks;

/* conninfo may be NULL or "": libpq's PG* environment and service files apply. */
db *db_new(event_loop *loop, const char *conninfo, const db_callbacks *callbacks);
void db_free(db *d);
/* Starts connecting (again, if down and the backoff has passed). Call every turn. */
void db_tick(db *d, int64_t now_ms);
bool db_is_up(const db *d);
/* Milliseconds until the next reconnect (or, while reads fail, the next read), for
 * Retry-After; 0 when up and reading. */
int64_t db_retry_after_ms(const db *d, int64_t now_ms);
/*
 * True while pgfeed.read fails with the connection up; *status is 503 (an
 * operator or time can fix it) or 500 (retrying cannot help) and *detail names
 * the cause (db's, valid until the next read). Reads then wait for a backoff
 * like reconnects do, and db_read returns NULL until it has passed.
 */
bool db_read_failure(const db *d, int *status, const char **detail)
    __attribute__((warn_unused_result));
uint64_t db_queries_sent(const db *d);
size_t db_queue_length(const db *d);

typedef void (*db_read_cb)(void *ctx, const db_read_result *result);
typedef void (*db_heads_cb)(void *ctx, const db_heads_result *result);
typedef void (*db_publish_cb)(void *ctx, const db_publish_result *result);
typedef void (*db_ping_cb)(void *ctx, bool ok);
/* ok false: the database could not answer; allowed is then false too. */
typedef void (*db_authorize_cb)(void *ctx, bool ok, bool allowed);

/*
 * Queues pgfeed.read(channel, after, limit); channel is copied. Returns NULL
 * when nothing was queued — the database is down, or reads are failing and
 * their backoff has not passed (db_read_failure says why) — and then the
 * callback never runs. Otherwise the callback runs exactly once, later, from
 * the event loop, unless cancelled.
 *
 * A db_query handle belongs to db: never free it. It is valid until its
 * callback has started or db_query_cancel was called, whichever is first;
 * after that the caller must forget it (db frees it when the statement is done).
 */
db_query *db_read(db *d, const char *channel, int64_t after, int limit, db_read_cb cb, void *ctx);
/*
 * Queues one statement that reads the head, oldest and epoch of n channels
 * (pgfeed.read(name, NULL, 0) for each, names bound as one text[]; copied):
 * how channels nobody asked about before are loaded, many per query. NULL,
 * callback and handle as for db_read.
 */
db_query *db_read_heads(db *d, const char *const *channels, size_t n, db_heads_cb cb, void *ctx);
/* True when db_read would queue a read now (not down, not backing off after failed reads). */
bool db_can_read(const db *d);
/* Like db_read (strings copied, NULL when down, same handle lifetime). */
db_query *db_publish(db *d, const char *channel, const char *type, const char *data_json,
                     db_publish_cb cb, void *ctx);
db_query *db_ping(db *d, db_ping_cb cb, void *ctx);
/* Asks pgfeed.authorize(principal, channel) (--authorize-sql); NULL is a no. */
db_query *db_authorize(db *d, const char *principal, const char *channel, db_authorize_cb cb,
                       void *ctx);
typedef void (*db_call_cb)(void *ctx, const db_call_result *result);
/*
 * Queues one statement of the caller's (sql is not copied: a string literal)
 * with n_params (at most 3) text parameters, bound, never spliced (copied).
 * For jobs whose statement only they know (fcgi/sequencer.c). NULL, callback
 * and handle as for db_read; a failure logs nothing here: the caller knows
 * which ones matter. They are not counted in db_queries_sent either (the
 * feed's statements, which tests and benchmarks count per publish): the
 * caller counts its own.
 */
db_query *db_call(db *d, const char *sql, int n_params, const char *const *params, db_call_cb cb,
                  void *ctx);
/*
 * How many sessions reached LISTEN since db_new: it changes whenever the
 * connection was replaced, so whoever holds session state on the server (an
 * advisory lock) can tell that it is gone.
 */
uint64_t db_sessions(const db *d);
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
/* The callback will not run; q may be NULL. The caller must forget q. */
void db_query_cancel(db_query *q);

/*
 * Connects once, blocking (at most 5 s), before the process serves: returns -1
 * after logging libpq's message when conninfo is invalid or the server refuses
 * the connection (authentication, unknown role or database); 0 when it works
 * or when no server answers (that is retried like any outage).
 */
int db_check_startup(const char *conninfo) __attribute__((warn_unused_result));

#endif
