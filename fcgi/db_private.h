/*
 * db_private — struct db and what db.c and db_result.c share (not for other modules).
 */
#ifndef PGFEED_DB_PRIVATE_H
#define PGFEED_DB_PRIVATE_H

#include "backoff.h"
#include "db.h"

#include <libpq-fe.h>

#define NOTIFY_CHANNEL "pgfeed"               /* "<version> <channel>" per publish */
#define NOTIFY_PRUNED_CHANNEL "pgfeed_pruned" /* "<new oldest> <channel>" per prune */
#define NOTIFY_RESET_CHANNEL "pgfeed_reset"   /* "<epoch> <channel>" per deletion or reset */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define CONNECT_TIMEOUT_MS 10000
/* A statement this slow means a hung connection (pgfeed's statements are index lookups). */
#define QUERY_TIMEOUT_MS 30000

typedef enum db_state {
    DB_DOWN,       /* no connection; the next attempt is at retry_at_ms */
    DB_CONNECTING, /* PQconnectPoll in progress; the fd is watched for what it asked */
    DB_LISTENING,  /* connected; LISTEN is in flight and queries wait behind it */
    DB_UP,         /* LISTEN done: queries run from the FIFO, notifications flow */
} db_state;

typedef enum query_kind {
    QUERY_LISTEN,
    QUERY_READ,
    QUERY_READ_HEADS,
    QUERY_PUBLISH,
    QUERY_PING,
    QUERY_PRUNE,
    QUERY_AUTHORIZE,
    QUERY_QUEUE_USAGE,
    QUERY_CALL /* db_call: the statement is the query's own (sql) */
} query_kind;

/* Each kind's statement (tests/pg runs them as the roles pgfeed connects as). */
extern const char *const db_query_sql[];

struct db_query {
    query_kind kind;
    const char *sql; /* QUERY_CALL's statement, the caller's */
    db_query *next;
    int n_params;
    char *params[3];
    int limit; /* a read's */
    union {
        db_read_cb read;
        db_heads_cb heads;
        db_publish_cb publish;
        db_ping_cb ping;
        db_authorize_cb authorize;
        db_call_cb call;
    } cb;
    void *ctx;
    bool cancelled;
};

struct db {
    event_loop *loop;
    char *conninfo;
    db_callbacks callbacks;
    PGconn *conn;
    db_state state;
    event_watch watch;
    int64_t connect_deadline_ms;
    int64_t retry_at_ms;
    backoff reconnect;
    /* pgfeed.read failing while the connection is up (schema missing, SELECT
     * revoked, a statement timeout): the cause, and when reads may try again.
     * Until then db_read queues nothing, so no request re-queries per turn. */
    char *read_error; /* NULL while reads work */
    int read_error_status;
    int64_t read_retry_at_ms;
    backoff read_backoff;
    db_query *queue_head; /* queue_head is in flight when in_flight */
    db_query *queue_tail;
    size_t queue_length;
    bool in_flight;
    /* A send that failed inside a caller's db_read() & co.: handled by the next
     * db_tick, so no callback (the caller's own among them) runs before that
     * call returns, and no query it returns is already freed. */
    char *send_error;
    int64_t sent_at_ms;
    uint64_t queries_sent;
    uint64_t sessions; /* connections that reached DB_UP */
    bool ever_up;
    double notify_queue_usage;  /* last pg_notification_queue_usage() */
    bool queue_usage_in_flight; /* one check queued at a time */
};

/* db_result.c */
/* Runs q's callback as a failure (unless cancelled); error is passed to it as is. */
void db_result_fail(db_query *q, const char *error);
/* Runs q's callback with res (each statement yields one result that is acted on). */
void db_result_deliver(db *d, db_query *q, PGresult *res);
/* Reads work again, or a new connection will find out: forget the failure. */
void db_read_error_clear(db *d);

#endif
