/*
 * request — one HTTP request's life, from accept to the last byte written.
 *
 * A request is parsed (feed_request), then answered at once, held until its
 * channels move (long poll), or streamed (SSE). Held and streaming requests
 * cost no thread and no database connection: each subscribes to its channels
 * in the feed_cache and is woken when they move. All requests of the process
 * live in a request_registry, which the server sweeps for deadlines and
 * heartbeats and reaps at a safe point of each loop turn.
 */
#ifndef PGFEED_REQUEST_H
#define PGFEED_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "db.h"
#include "event_loop.h"
#include "fcgi_io.h"
#include "feed_cache.h"
#include "guard.h"
#include "metrics.h"

typedef struct request request;

/* What every request needs from the process; owned by the server. */
typedef struct request_registry {
    event_loop *loop;
    feed_cache *cache;
    db *database;
    const pgfeed_config *cfg;
    metrics *stats;
    guard *guard;    /* issue 10: who may read, publish, see the admin routes */
    request *active; /* every request not yet closed */
    request *closed; /* closed this turn; freed by request_reap */
    request *ready;  /* streams with more to write this turn (request_run_ready) */
    size_t n_active;
    unsigned long next_id;
    bool shutting_down;
} request_registry;

/* Takes over conn: parses it and answers, holds or streams it. */
void request_start(request_registry *reg, fcgi_conn *conn);
/* Answers long polls whose wait ran out, sends heartbeats, ends streams past their lifetime. */
void request_sweep(request_registry *reg, int64_t now_ms);
/* Pumps the streams that stopped at their per-turn budget with more to write. */
void request_run_ready(request_registry *reg);
/* Frees requests closed during this turn (none of their events can fire any more). */
void request_reap(request_registry *reg);
/* SIGTERM: answers held long polls as timeouts and ends streams; new requests get 503. */
void request_shutdown(request_registry *reg);

#endif
