/*
 * catchup — the reads of clients behind a channel's ring, shared.
 *
 * A client whose cursor the ring no longer covers needs its events from
 * PostgreSQL. When many fall behind together (a burst of publishes while they
 * re-poll), they sit on a few cursors: the clients that got one answer ask
 * the same next cursor. So a catch-up read is one pgfeed.read per (channel,
 * cursor range), however many clients need it:
 *  - a request for a range an in-flight read is expected to cover joins it
 *    and gets the same page when it comes back;
 *  - a finished page is kept for --catchup-ms (bounded by --catchup-bytes,
 *    oldest first out) and serves the next client at a cursor it covers.
 * A page is only handed out when it holds the whole answer a read of its own
 * would have given at the page's moment: limit events after the cursor, or
 * every event up to the page's head (while the ring knows no newer head). It carries the head and
 * oldest it was read with, so an answer from it is exact (gapless, `more` true when the head was
 * further), as if the client had asked up to --catchup-ms earlier. A page whose channel has since
 * been seen pruned above its oldest, or with a head below the one it had when the read started (a
 * reset), is not handed out.
 *
 * Pages are reference-counted: the cache holds one reference, each
 * subscription answering from it another, so a page read for 1,000 clients
 * is in memory once.
 */
#ifndef PGFEED_CATCHUP_H
#define PGFEED_CATCHUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "feed_cache.h"

typedef struct catchup catchup;
typedef struct catchup_wait catchup_wait;

/* Events of one channel read from `after`, beyond what the ring holds. */
typedef struct catchup_page {
    size_t refs;
    int64_t after; /* the cursor it was read from */
    int64_t head;
    int64_t oldest;
    bool complete; /* every event up to head is here (versions may have holes) */
    size_t n_events;
    feed_event **events; /* ascending versions, all above `after` */
    size_t bytes;        /* what it costs in memory, for --catchup-bytes */
} catchup_page;

typedef struct catchup_limits {
    size_t max_bytes; /* pages kept after their read, in bytes (0: none kept) */
    int64_t keep_ms;  /* how long a page serves later clients */
} catchup_limits;

catchup *catchup_new(db *d, const catchup_limits *limits);
/* Cancels the reads in flight (their waiters never hear back) and frees the kept pages. */
void catchup_free(catchup *c);

/* An empty page (no events) with one reference, for the caller to fill or release. */
catchup_page *catchup_page_new(int64_t after, int64_t head, int64_t oldest);
/* Drops one reference; the last frees the page. p may be NULL. */
void catchup_page_release(catchup_page *p);
/* The first event above version, or NULL (binary search). */
const feed_event *catchup_page_event_after(const catchup_page *p, int64_t version);

/*
 * A kept page that holds cursor's whole answer of `limit` events, with a
 * reference for the caller; NULL when there is none.
 */
catchup_page *catchup_find(catchup *c, const feed_channel *ch, int64_t cursor, int limit);

/*
 * Called once with a page that holds cursor's whole answer (a reference for
 * the callee), or with NULL when the read failed. Never from inside
 * catchup_read.
 */
typedef void (*catchup_cb)(void *ctx, catchup_page *page);

/*
 * Gets cursor's page: joins a read in flight expected to cover it, or starts
 * one. Returns the wait (valid until its callback starts or catchup_cancel),
 * or NULL when the database cannot be asked (db_read refused); *joined says
 * whether no new read was needed.
 */
catchup_wait *catchup_read(catchup *c, const feed_channel *ch, int64_t cursor, int limit,
                           catchup_cb cb, void *ctx, bool *joined)
    __attribute__((warn_unused_result));
/* The callback will not run; w may be NULL. The read goes on for the others and the cache. */
void catchup_cancel(catchup_wait *w);

/* Bytes of pages kept now (the bound is limits.max_bytes). */
size_t catchup_bytes(const catchup *c);

#endif
