/*
 * feed_cache_private — struct feed_cache and struct feed_channel, and what the
 * modules behind feed_cache.h share: feed_cache.c (channels, notifications,
 * subscribers), channel_ring.c (a channel's recent events), channel_loader.c
 * (head batches and the load queue) and cache_budget.c (accounting and
 * eviction). Not for other modules: they see only feed_cache.h.
 */
#ifndef PGFEED_FEED_CACHE_PRIVATE_H
#define PGFEED_FEED_CACHE_PRIVATE_H

#include "feed_cache.h"

#include <json-c/linkhash.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TABLE_MIN_SIZE 64

struct feed_channel {
    feed_cache *cache;
    char *name;
    bool known;         /* head/oldest/ring reflect a read made while LISTENing */
    bool loading;       /* a read for this channel is in flight */
    bool reread;        /* a notification came while loading: read again once it is back */
    bool rebuild;       /* events were deleted or the channel reset: the next read replaces */
    bool read_replaces; /* the read in flight rebuilds the ring rather than extending it */
    int64_t head;
    int64_t oldest;
    int64_t epoch;      /* which incarnation of the channel; 0 while it does not exist */
    int64_t read_after; /* the cursor the read in flight started from */
    /*
     * The newest events in ascending version order, as they exist: versions
     * may have holes. Complete from ring_from: every event with a version in
     * (ring_from, head] is here. Slots ring_start .. ring_start + ring_count
     * (mod ring_cap) are filled; no other slot is ever read. The slots are
     * allocated with the first event and grow up to ring_events, more while
     * --ring-seconds keeps a burst (channel_ring.c).
     */
    feed_event **ring;
    int64_t *ring_ms; /* when each slot's event entered the ring */
    size_t ring_cap;
    size_t ring_start;
    size_t ring_count;
    size_t ring_bytes;
    int64_t ring_from;
    feed_subscriber subscribers; /* sentinel of a circular list */
    size_t n_subscribers;
    int64_t last_used_ms;
    size_t bytes;       /* what the budget counts for this entry (cache_budget_account) */
    int64_t load_after; /* queued or in a head batch: the cursor it was asked from */
    /* On cache->idle while it has no subscriber and no read: eviction candidates,
     * least recently used first. */
    feed_channel *idle_prev, *idle_next;
    bool on_idle;
    feed_channel *queue_next; /* on cache->queue while waiting for a head batch */
};

struct feed_cache {
    db *database;
    feed_cache_limits limits;
    struct lh_table *channels; /* name -> feed_channel */
    uint64_t hits;
    uint64_t misses;
    size_t entry_bytes;   /* sum of every channel's bytes */
    size_t table_deletes; /* since the table was last rebuilt: its tombstones at most */
    size_t n_ringed;      /* channels with ring slots allocated */
    feed_channel *idle_head, *idle_tail;
    feed_channel *queue_head, *queue_tail; /* loads waiting for the next head batch */
    size_t n_queued;
    feed_channel **batch; /* the head batch in flight (its query is batch_query) */
    size_t n_batch;
    db_query *batch_query;
    feed_cache_stats counts; /* the counters of feed_cache_get_stats */
};

/* feed_cache.c: a channel's reads and its subscribers. */
void feed_channel_on_read(void *ctx, const db_read_result *r);
void feed_channel_start_read(feed_channel *ch, int64_t after);
void feed_channel_set_loading(feed_channel *ch, bool loading);
void feed_channel_wake(feed_channel *ch);

/* channel_ring.c: the channel's recent events, within --ring-events/-bytes/-seconds. */
feed_event *channel_ring_at(const feed_channel *ch, size_t i);
/* Empties the ring and frees its slots; it is then complete from `from`. */
void channel_ring_clear(feed_channel *ch, int64_t from);
/* The events after the dropped one stay complete, so ring_from moves to it. */
void channel_ring_drop_oldest(feed_channel *ch);
/* Drops the events below oldest (pruned); the ring is complete from before it, at most the head. */
void channel_ring_drop_below(feed_channel *ch, int64_t oldest);
/* Appends an event newer than every event in the ring (the caller checks). */
void channel_ring_push(feed_channel *ch, int64_t version, const char *json, size_t len);

/* channel_loader.c: sends the turn's head batch (feed_cache_end_turn). */
void channel_loader_send_heads(feed_cache *c);
/* Forgets the batch in flight: its answer will not be heard (feed_cache_free). */
void channel_loader_free(feed_cache *c);

/* cache_budget.c: what every entry costs, and the idle list eviction takes from. */
/* Brings the channel's share of the budget up to date after its ring changed. */
void cache_budget_account(feed_channel *ch);
size_t cache_budget_bytes(const feed_cache *c);
/* Beyond --cache-bytes with no idle channel left to evict. */
bool cache_budget_starved(const feed_cache *c);
/* Keeps the invariant: on the idle list exactly while no subscriber waits and no read runs. */
void cache_budget_update_idle(feed_channel *ch);
/* The channel was used: the most recently used of the idle, if it is idle. */
void cache_budget_touch(feed_channel *ch);
/* The channel leaves the table: it leaves the idle list and the budget too. */
void cache_budget_forget(feed_channel *ch);
/* Evicts idle channels, then empties rings, until the cache is within --cache-bytes. */
void cache_budget_enforce(feed_cache *c);

#endif
