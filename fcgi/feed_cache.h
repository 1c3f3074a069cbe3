/*
 * feed_cache — what this process knows about each channel it serves.
 *
 * For every channel a client asked about: the head and oldest version and a
 * ring of the most recent events (as the JSON PostgreSQL built), plus the list
 * of subscribers (held long polls and SSE streams) waiting for it to move.
 *
 * A channel is *known* once a read done while LISTEN was in place told us its
 * head; from then on every NOTIFY for it triggers exactly one read of the new
 * events, which all its subscribers share. So polls and wake-ups of hot
 * channels never touch PostgreSQL, and one publish costs one query per
 * process however many clients wait. When the database connection drops,
 * every channel becomes unknown again (notifications may have been missed);
 * on reconnect, channels with subscribers are re-read and woken if they moved.
 *
 * Nothing the database holds or another role sends is assumed. A NOTIFY is
 * only a hint to read (any role can send one with any version); the read is
 * the truth, and a hint below what it shows is forgotten. Versions may have
 * holes (a head moved by hand, an event row deleted), so the ring is a sorted
 * list of the events that exist, never indexed by version. A channel deleted
 * and re-created, or reset, shows as a new epoch (or a head that went back):
 * its ring is rebuilt and its subscribers are marked reset, so they answer
 * as for a gone cursor.
 *
 * Memory and queries are bounded whatever clients ask for. A channel nobody
 * knew is loaded by a head batch: every channel that became wanted in one
 * loop turn is read in one statement (pgfeed.read(name, NULL, 0) over a
 * text[]), one batch in flight at a time, and only a channel with events
 * after its first cursor costs a read of its own. At most load_queue
 * channels wait for a batch; beyond that feed_channel_load refuses (the
 * request answers 503 "busy"). Every entry is accounted (its struct, name,
 * ring slots and events, the table's share), and at the end of each turn the
 * cache evicts the least recently used channels without subscribers until it
 * is within cache_bytes; when only channels with subscribers are left, their
 * rings are emptied (they keep their head: a waiting subscriber needs
 * nothing more, one behind reads its own history). Freeing happens only
 * there, at the end of a turn, never under a caller's feet.
 */
#ifndef PGFEED_FEED_CACHE_H
#define PGFEED_FEED_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"

typedef struct feed_cache feed_cache;
typedef struct feed_channel feed_channel;

typedef struct feed_event {
    int64_t version;
    size_t json_len;
    char json[]; /* NUL-terminated */
} feed_event;

/* A copy of len bytes of json (NUL added) at version; the caller frees it with free(). */
feed_event *feed_event_new(int64_t version, const char *json, size_t len);

/*
 * Embedded in whatever waits on a channel. wake runs when the channel became
 * known, moved, or failed to load (then feed_channel_known is false).
 */
typedef struct feed_subscriber {
    struct feed_subscriber *prev, *next;
    feed_channel *channel;
    void (*wake)(struct feed_subscriber *s);
    /* Set by the cache when the channel was reset (re-created, head moved back)
     * after this subscriber joined: its cursor counts another incarnation. The
     * subscriber clears it once it has told its client. */
    bool reset;
} feed_subscriber;

typedef struct feed_cache_limits {
    size_t ring_events; /* recent events kept per channel */
    size_t ring_bytes;  /* and at most this many bytes of them */
    int64_t ring_ms;    /* beyond ring_events, events younger than this stay (within ring_bytes) */
    int read_batch;     /* events per catch-up query */
    int64_t idle_ms;    /* a channel nobody used for this long is forgotten */
    size_t cache_bytes; /* budget of every entry together (0: none) */
    size_t load_queue;  /* channels waiting for their head at most (0: no bound) */
    size_t load_batch;  /* channels per head query (0: 1000) */
} feed_cache_limits;

/* What /_metrics shows of the cache. */
typedef struct feed_cache_stats {
    size_t channels;
    size_t bytes;           /* accounted now (entries, ring events, the table) */
    size_t loads_waiting;   /* channels queued for a head batch or in the one in flight */
    uint64_t evictions;     /* channels without subscribers dropped for the budget */
    uint64_t ring_trims;    /* rings of subscribed channels emptied for the budget */
    uint64_t head_loads;    /* channels loaded through head batches */
    uint64_t head_queries;  /* head batches sent */
    uint64_t load_rejected; /* loads refused because load_queue channels were waiting */
} feed_cache_stats;

feed_cache *feed_cache_new(db *d, const feed_cache_limits *limits);
void feed_cache_free(feed_cache *c);

/* Finds or creates the channel's entry (creating queries nothing). */
feed_channel *feed_cache_channel(feed_cache *c, const char *name);

/* Database events, forwarded by the server. */
void feed_cache_on_notify(feed_cache *c, const char *name, int64_t version);
/* pgfeed.prune() raised the channel's oldest: its pruned events leave memory. */
void feed_cache_on_pruned(feed_cache *c, const char *name, int64_t oldest);
/* Events were deleted or the channel reset ("*": every channel): re-read it from scratch. */
void feed_cache_on_reset(feed_cache *c, const char *name);
void feed_cache_on_db_up(feed_cache *c);
void feed_cache_on_db_down(feed_cache *c);
/* Forgets idle channels; call now and then. */
void feed_cache_sweep(feed_cache *c, int64_t now_ms);
/*
 * Call once at the end of every loop turn: sends the head batch of the
 * channels that became wanted (unless one is in flight), then evicts down to
 * cache_bytes. The only place the cache frees channels besides the sweep.
 */
void feed_cache_end_turn(feed_cache *c);
/* True while load_queue channels wait: a new load is refused (503, busy). */
bool feed_cache_loads_full(const feed_cache *c);
void feed_cache_get_stats(const feed_cache *c, feed_cache_stats *out);
size_t feed_cache_channel_count(const feed_cache *c);
uint64_t feed_cache_hits(const feed_cache *c);
uint64_t feed_cache_misses(const feed_cache *c);

const char *feed_channel_name(const feed_channel *ch);
bool feed_channel_known(const feed_channel *ch);
/*
 * Makes the channel known if it is not and no load is under way: queues it
 * for the turn's head batch, then, when events follow after_hint (a
 * subscriber's cursor), reads them so they arrive with the head. Returns false
 * when nothing was started: the database is down (or reads back off), or
 * load_queue channels are waiting already (feed_cache_loads_full); while the
 * database is connecting the load waits.
 */
bool feed_channel_load(feed_channel *ch, int64_t after_hint);
int64_t feed_channel_head(const feed_channel *ch);
int64_t feed_channel_oldest(const feed_channel *ch);
/* True when every event after cursor up to the head is in memory. */
bool feed_channel_covers(const feed_channel *ch, int64_t cursor);
/* Counts a read answered from memory (pgfeed_cache_hits_total). */
void feed_cache_count_hit(feed_channel *ch);
/*
 * The first event after cursor, which must be covered; NULL when there is
 * none up to the head (the head may have no event behind it: a cursor may
 * then move to the head without an event).
 */
const feed_event *feed_channel_event_after(const feed_channel *ch, int64_t cursor);

void feed_channel_subscribe(feed_channel *ch, feed_subscriber *s);
/* Safe to call on a subscriber that is not subscribed. */
void feed_channel_unsubscribe(feed_subscriber *s);
size_t feed_channel_subscriber_count(const feed_channel *ch);

#endif
