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
#include "metrics.h"

typedef struct request request;

/* Every request of the process, by state; owned by the server. */
typedef struct request_registry request_registry;

/* Borrows everything it is given; stats must outlive the registry. */
request_registry *request_registry_new(event_loop *loop, feed_cache *cache, db *database,
                                       const pgfeed_config *cfg, metrics *stats);
/* Closes and frees every request left, then the registry. */
void request_registry_free(request_registry *reg);
/* Requests not yet closed. */
size_t request_registry_active(const request_registry *reg);
/* Long polls and streams not yet answered (what --max-held bounds). */
size_t request_registry_held(const request_registry *reg);
/* True when a stream has more to write this turn: the loop must not sleep. */
bool request_registry_has_ready(const request_registry *reg);

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
