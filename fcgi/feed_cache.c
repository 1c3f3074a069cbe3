/*
 * feed_cache — per-channel head, recent events and subscribers (see feed_cache.h).
 */
#include "feed_cache.h"
#include "event_loop.h"
#include "log.h"
#include "xalloc.h"

#include <json-c/linkhash.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LOAD_BATCH_DEFAULT 1000
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
     * --ring-seconds keeps a burst (ring_trim).
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
    size_t bytes;       /* what the budget counts for this entry (channel_cost) */
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

/*
 * What an allocation of n bytes takes from glibc's heap: its 8-byte header,
 * rounded to 16, at least 32. The budget counts this, not n, so that it
 * tracks RSS rather than the sizes asked for.
 */
static size_t alloc_cost(size_t n)
{
    size_t chunk = (n + 8 + 15) & ~(size_t)15;
    return chunk < 32 ? 32 : chunk;
}

/* An event in the ring: its struct, JSON and NUL, rounded up as alloc_cost would. */
#define EVENT_OVERHEAD (sizeof(feed_event) + 1 + 8 + 15)

static size_t channel_cost(const feed_channel *ch)
{
    return alloc_cost(sizeof *ch) + alloc_cost(strlen(ch->name) + 1) +
           (ch->ring_cap ? alloc_cost(ch->ring_cap * sizeof *ch->ring) +
                               alloc_cost(ch->ring_cap * sizeof *ch->ring_ms)
                         : 0) +
           ch->ring_bytes + ch->ring_count * EVENT_OVERHEAD;
}

/* Brings the channel's share of the budget up to date after its ring changed. */
static void channel_account(feed_channel *ch)
{
    size_t now = channel_cost(ch);
    ch->cache->entry_bytes = ch->cache->entry_bytes - ch->bytes + now;
    ch->bytes = now;
}

static size_t cache_bytes(const feed_cache *c)
{
    return c->entry_bytes + (size_t)c->channels->size * sizeof(struct lh_entry);
}

/* Appends to the idle list: the most recently used of its channels. */
static void idle_append(feed_channel *ch)
{
    feed_cache *c = ch->cache;
    ch->idle_prev = c->idle_tail;
    ch->idle_next = NULL;
    if (c->idle_tail)
        c->idle_tail->idle_next = ch;
    else
        c->idle_head = ch;
    c->idle_tail = ch;
    ch->on_idle = true;
}

static void idle_unlink(feed_channel *ch)
{
    feed_cache *c = ch->cache;
    if (ch->idle_prev)
        ch->idle_prev->idle_next = ch->idle_next;
    else
        c->idle_head = ch->idle_next;
    if (ch->idle_next)
        ch->idle_next->idle_prev = ch->idle_prev;
    else
        c->idle_tail = ch->idle_prev;
    ch->idle_prev = ch->idle_next = NULL;
    ch->on_idle = false;
}

/* Keeps the invariant: on the idle list exactly while no subscriber waits and no read runs. */
static void channel_update_idle(feed_channel *ch)
{
    bool idle = ch->n_subscribers == 0 && !ch->loading;
    if (idle && !ch->on_idle)
        idle_append(ch);
    else if (!idle && ch->on_idle)
        idle_unlink(ch);
}

static void channel_set_loading(feed_channel *ch, bool loading)
{
    ch->loading = loading;
    channel_update_idle(ch);
}

static void channel_free(feed_channel *ch);

static void channel_entry_free(struct lh_entry *e)
{
    channel_free((feed_channel *)lh_entry_v(e));
}

feed_cache *feed_cache_new(db *d, const feed_cache_limits *limits)
{
    feed_cache *c = xcalloc(1, sizeof *c);
    c->database = d;
    c->limits = *limits;
    if (c->limits.ring_events < 1)
        c->limits.ring_events = 1;
    if (c->limits.load_queue == 0)
        c->limits.load_queue = SIZE_MAX;
    if (c->limits.load_batch == 0)
        c->limits.load_batch = LOAD_BATCH_DEFAULT;
    c->channels = lh_kchar_table_new(TABLE_MIN_SIZE, channel_entry_free);
    return c;
}

void feed_cache_free(feed_cache *c)
{
    if (!c)
        return;
    db_query_cancel(c->batch_query);
    lh_table_free(c->channels);
    free(c->batch);
    free(c);
}

feed_event *feed_event_new(int64_t version, const char *json, size_t len)
{
    feed_event *e = xmalloc(sizeof *e + len + 1);
    e->version = version;
    e->json_len = len;
    memcpy(e->json, json, len);
    e->json[len] = '\0';
    return e;
}

static feed_event *ring_at(const feed_channel *ch, size_t i)
{
    return ch->ring[(ch->ring_start + i) % ch->ring_cap];
}

/* Empties the ring and frees its slots; it is then complete from `from`. */
static void ring_clear(feed_channel *ch, int64_t from)
{
    for (size_t i = 0; i < ch->ring_count; i++)
        free(ring_at(ch, i));
    if (ch->ring_cap)
        ch->cache->n_ringed--;
    free(ch->ring);
    free(ch->ring_ms);
    ch->ring = NULL;
    ch->ring_ms = NULL;
    ch->ring_cap = 0;
    ch->ring_start = 0;
    ch->ring_count = 0;
    ch->ring_bytes = 0;
    ch->ring_from = from;
    channel_account(ch);
}

/* The events after the dropped one stay complete, so ring_from moves to it. */
static void ring_drop_oldest(feed_channel *ch)
{
    feed_event *e = ring_at(ch, 0);
    ch->ring_from = e->version;
    ch->ring_bytes -= e->json_len;
    free(e);
    ch->ring_start = (ch->ring_start + 1) % ch->ring_cap;
    ch->ring_count--;
    channel_account(ch);
}

/* Moves the ring's events into arrays of cap slots (cap >= ring_count), oldest at slot 0. */
static void ring_resize(feed_channel *ch, size_t cap)
{
    feed_event **ring = xcalloc(cap, sizeof *ring);
    int64_t *ring_ms = xcalloc(cap, sizeof *ring_ms);
    for (size_t i = 0; i < ch->ring_count; i++) {
        size_t slot = (ch->ring_start + i) % ch->ring_cap;
        ring[i] = ch->ring[slot];
        ring_ms[i] = ch->ring_ms[slot];
    }
    if (!ch->ring_cap)
        ch->cache->n_ringed++;
    free(ch->ring);
    free(ch->ring_ms);
    ch->ring = ring;
    ch->ring_ms = ring_ms;
    ch->ring_cap = cap;
    ch->ring_start = 0;
}

/*
 * Makes room for an event of len bytes. --ring-bytes is the hard bound: the
 * oldest events leave until the new one fits. --ring-events is the count kept
 * at least; beyond it an event leaves once it is older than --ring-seconds
 * (with 0, at once). So a burst of publishes stays in memory for
 * --ring-seconds, and the clients re-polling through it are answered from
 * the ring instead of each reading PostgreSQL; the slots grow for it and
 * shrink again when the burst is gone.
 */
static void ring_trim(feed_channel *ch, size_t len, int64_t now_ms)
{
    const feed_cache_limits *lim = &ch->cache->limits;
    while (ch->ring_count > 0 && (ch->ring_bytes + len > lim->ring_bytes ||
                                  (ch->ring_count >= lim->ring_events &&
                                   now_ms - ch->ring_ms[ch->ring_start] >= lim->ring_ms)))
        ring_drop_oldest(ch);
    if (ch->ring_count == ch->ring_cap) {
        size_t cap = ch->ring_cap ? ch->ring_cap * 2 : 2;
        if (cap > lim->ring_events && ch->ring_count < lim->ring_events)
            cap = lim->ring_events;
        ring_resize(ch, cap);
    } else if (ch->ring_cap > lim->ring_events && ch->ring_count < ch->ring_cap / 4)
        ring_resize(ch, ch->ring_cap / 2 > lim->ring_events ? ch->ring_cap / 2 : lim->ring_events);
}

/* Appends an event newer than every event in the ring (the caller checks). */
static void ring_push(feed_channel *ch, int64_t version, const char *json, size_t len)
{
    const feed_cache_limits *lim = &ch->cache->limits;
    /* Beyond the cache budget with nothing left to evict, a channel that has no
     * ring does not start one: the turn's end would only trim it again. */
    bool starved = ch->ring_cap == 0 && ch->cache->limits.cache_bytes && !ch->cache->idle_head &&
                   cache_bytes(ch->cache) > ch->cache->limits.cache_bytes;
    /* An event larger than the whole ring would hold the channel beyond --ring-bytes.
     * Either way its readers read it from the database (an oversized one alone);
     * the ring is complete again from after it. */
    if (len > lim->ring_bytes || starved) {
        ring_clear(ch, version);
        return;
    }
    int64_t now_ms = clock_now_ms();
    ring_trim(ch, len, now_ms);
    size_t slot = (ch->ring_start + ch->ring_count) % ch->ring_cap;
    ch->ring[slot] = feed_event_new(version, json, len);
    ch->ring_ms[slot] = now_ms;
    ch->ring_count++;
    ch->ring_bytes += len;
    channel_account(ch);
}

feed_channel *feed_cache_channel(feed_cache *c, const char *name)
{
    void *found = NULL;
    if (lh_table_lookup_ex(c->channels, name, &found)) {
        feed_channel *ch = found;
        ch->last_used_ms = clock_now_ms();
        if (ch->on_idle) { /* used again: the most recently used of the idle now */
            idle_unlink(ch);
            idle_append(ch);
        }
        return ch;
    }
    feed_channel *ch = xcalloc(1, sizeof *ch);
    ch->cache = c;
    ch->name = xstrdup(name);
    ch->oldest = 1;
    ch->subscribers.prev = ch->subscribers.next = &ch->subscribers;
    ch->last_used_ms = clock_now_ms();
    lh_table_insert(c->channels, ch->name, ch);
    channel_account(ch);
    channel_update_idle(ch);
    return ch;
}

static void channel_free(feed_channel *ch)
{
    feed_cache *c = ch->cache;
    ring_clear(ch, 0);
    if (ch->on_idle)
        idle_unlink(ch);
    c->entry_bytes -= ch->bytes;
    c->table_deletes++;
    free(ch->name);
    free(ch);
}

/* Pruned events leave memory too, so every process answers a pruned cursor alike. */
static void channel_drop_pruned(feed_channel *ch)
{
    while (ch->ring_count > 0 && ring_at(ch, 0)->version < ch->oldest)
        ring_drop_oldest(ch);
    if (ch->ring_from < ch->oldest - 1)
        ch->ring_from = ch->oldest - 1;
}

/* Tells every subscriber the channel changed; a woken one may unsubscribe itself. */
static void channel_wake(feed_channel *ch)
{
    feed_subscriber *s = ch->subscribers.next;
    while (s != &ch->subscribers) {
        feed_subscriber *next = s->next;
        s->wake(s);
        s = next;
    }
}

/* Marks every subscriber reset: its cursor belongs to the channel's previous incarnation. */
static void channel_mark_reset(feed_channel *ch)
{
    for (feed_subscriber *s = ch->subscribers.next; s != &ch->subscribers; s = s->next)
        s->reset = true;
}

static void channel_start_read(feed_channel *ch, int64_t after);

/*
 * A read finished. It is the truth about the channel: head, oldest and epoch
 * are taken as they are, whatever notifications announced. A read that
 * continues the ring (same incarnation, from our head, nothing deleted since)
 * appends; any other replaces the ring with what it returned. A page that
 * filled the batch may end before the head: an append serves what arrived
 * and reads the rest next; a replacement keeps nothing (subscribers read
 * their own history). Otherwise the read saw every event up to the head, so
 * a head with no event behind it is complete, not "more to come".
 */
static void channel_on_read(void *ctx, const db_read_result *r)
{
    feed_channel *ch = ctx;
    channel_set_loading(ch, false);
    if (!r->ok) {
        ch->known = false;
        channel_wake(ch);
        return;
    }
    int64_t after = ch->read_after;
    int64_t last = r->n_events ? r->events[r->n_events - 1].version : after;
    bool whole = r->complete || last >= r->head;
    /* A channel that existed and now is another one (or none), or whose head went back. */
    bool reset = ch->epoch != 0 && (r->epoch != ch->epoch || r->head < ch->head);
    bool appends = ch->known && !ch->read_replaces && !reset && after == ch->head;
    if (reset)
        channel_mark_reset(ch);
    if (!appends)
        ring_clear(ch, after < r->head ? after : r->head);
    if (appends || whole) {
        for (size_t i = 0; i < r->n_events; i++) {
            const db_event *e = &r->events[i];
            /* Out of range or out of order would break the ring's ordering: skip it. */
            if (e->version <= ch->ring_from || e->version > r->head ||
                (ch->ring_count && e->version <= ring_at(ch, ch->ring_count - 1)->version))
                continue;
            ring_push(ch, e->version, e->json, e->json_len);
        }
        ch->head = whole ? r->head : last;
        if (!whole)
            ch->reread = true; /* the next page follows */
    } else {
        ring_clear(ch, r->head);
        ch->head = r->head;
    }
    ch->oldest = r->oldest;
    ch->epoch = r->epoch;
    channel_drop_pruned(ch);
    ch->known = true;
    if (ch->reread || ch->rebuild) {
        ch->reread = false;
        channel_start_read(ch, ch->head);
    }
    channel_wake(ch);
}

static void channel_start_read(feed_channel *ch, int64_t after)
{
    feed_cache *c = ch->cache;
    if (ch->loading)
        return;
    /* A rebuild re-reads what the ring covered, so it stays as useful as it was. */
    if (ch->rebuild && after > ch->ring_from)
        after = ch->ring_from;
    if (after < 0)
        after = 0;
    int limit = c->limits.read_batch;
    db_query *q = db_read(c->database, ch->name, after, limit, channel_on_read, ch);
    if (q) {
        channel_set_loading(ch, true);
        ch->read_after = after;
        ch->read_replaces = ch->rebuild || !ch->known;
        ch->rebuild = false;
        c->misses++;
    }
}

bool feed_cache_loads_full(const feed_cache *c)
{
    return c->limits.load_queue && c->n_queued + c->n_batch >= c->limits.load_queue;
}

bool feed_channel_load(feed_channel *ch, int64_t after_hint)
{
    feed_cache *c = ch->cache;
    if (ch->known || ch->loading)
        return true;
    if (!db_can_read(c->database))
        return false;
    if (feed_cache_loads_full(c)) {
        c->counts.load_rejected++;
        return false;
    }
    /* A cursor of "now" only needs the head; otherwise the events from the cursor follow. */
    ch->load_after = after_hint >= 0 ? after_hint : INT64_MAX / 2;
    ch->queue_next = NULL;
    if (c->queue_tail)
        c->queue_tail->queue_next = ch;
    else
        c->queue_head = ch;
    c->queue_tail = ch;
    c->n_queued++;
    c->counts.head_loads++;
    c->misses++;
    channel_set_loading(ch, true);
    return true;
}

/*
 * The head batch's answer for one channel. With nothing after the cursor it
 * asked from, the head is all there is to know: it is applied as a read that
 * returned no event. Otherwise that channel alone reads its events from the
 * cursor (what a load did before batching), and its subscribers wait for it.
 */
static void channel_on_head(feed_channel *ch, const db_head *h)
{
    if (h->head <= ch->load_after) {
        db_read_result r = {
            .ok = true, .head = h->head, .oldest = h->oldest, .epoch = h->epoch, .complete = true};
        ch->read_after = ch->load_after;
        ch->read_replaces = true;
        channel_on_read(ch, &r); /* ends the load */
        return;
    }
    ch->loading = false; /* the read takes the load over (it is not idle meanwhile) */
    channel_start_read(ch, ch->load_after);
    if (!ch->loading) {
        channel_set_loading(ch, false);
        ch->known = false;
        channel_wake(ch);
    }
}

/* The batch in flight is over: its channels are heard one by one, in the order asked. */
static void cache_on_heads(void *ctx, const db_heads_result *r)
{
    feed_cache *c = ctx;
    feed_channel **batch = c->batch;
    size_t n = c->n_batch;
    c->batch = NULL;
    c->n_batch = 0;
    c->batch_query = NULL;
    for (size_t i = 0; i < n; i++) {
        feed_channel *ch = batch[i];
        if (r->ok && i < r->n_heads && strcmp(r->heads[i].channel, ch->name) == 0) {
            channel_on_head(ch, &r->heads[i]);
            continue;
        }
        channel_set_loading(ch, false);
        ch->known = false;
        channel_wake(ch);
    }
    free(batch);
}

/* Sends the channels waiting for their head, at most load_batch of them, unless a batch runs. */
static void cache_send_heads(feed_cache *c)
{
    if (c->batch_query || c->n_queued == 0)
        return;
    size_t n = c->n_queued < c->limits.load_batch ? c->n_queued : c->limits.load_batch;
    c->batch = xcalloc(n, sizeof *c->batch);
    const char **names = xcalloc(n, sizeof *names);
    for (size_t i = 0; i < n; i++) {
        feed_channel *ch = c->queue_head;
        c->queue_head = ch->queue_next;
        ch->queue_next = NULL;
        c->batch[i] = ch;
        names[i] = ch->name;
    }
    if (!c->queue_head)
        c->queue_tail = NULL;
    c->n_queued -= n;
    c->n_batch = n;
    c->batch_query = db_read_heads(c->database, names, n, cache_on_heads, c);
    free(names);
    if (c->batch_query) {
        c->counts.head_queries++;
        return;
    }
    db_heads_result refused = {.ok = false, .error = "database unavailable"};
    cache_on_heads(c, &refused);
}

static feed_channel *channel_lookup(feed_cache *c, const char *name)
{
    void *found = NULL;
    return lh_table_lookup_ex(c->channels, name, &found) ? found : NULL;
}

/*
 * Only a hint: the version is not believed, it only says a read may find
 * something. Each notification costs at most one read, whatever it claims.
 */
void feed_cache_on_notify(feed_cache *c, const char *name, int64_t version)
{
    feed_channel *ch = channel_lookup(c, name);
    if (!ch || version <= ch->head)
        return; /* nobody here cares, or we already have it */
    if (ch->loading)
        ch->reread = true; /* the read in flight may predate this commit */
    else if (ch->known)
        channel_start_read(ch, ch->head);
}

void feed_cache_on_reset(feed_cache *c, const char *name)
{
    if (strcmp(name, "*") == 0) {
        struct lh_entry *e;
        lh_foreach(c->channels, e)
        {
            feed_cache_on_reset(c, (const char *)lh_entry_k(e));
        }
        return;
    }
    feed_channel *ch = channel_lookup(c, name);
    if (!ch || (!ch->known && !ch->loading))
        return;         /* the next load reads it afresh anyway */
    ch->rebuild = true; /* a read in flight may predate the change: the next one rebuilds */
    if (!ch->loading)
        channel_start_read(ch, ch->ring_from);
}

/*
 * A hint too: the events below the announced oldest leave memory at once (so
 * every process answers a pruned cursor alike), which only ever costs reads;
 * the oldest that clients are told comes from the read this starts.
 */
void feed_cache_on_pruned(feed_cache *c, const char *name, int64_t oldest)
{
    feed_channel *ch = channel_lookup(c, name);
    if (!ch || !ch->known || oldest <= ch->oldest)
        return;
    while (ch->ring_count > 0 && ring_at(ch, 0)->version < oldest)
        ring_drop_oldest(ch);
    if (ch->ring_from < oldest - 1)
        ch->ring_from = oldest - 1 < ch->head ? oldest - 1 : ch->head;
    if (ch->loading)
        ch->reread = true;
    else
        channel_start_read(ch, ch->head);
}

void feed_cache_on_db_up(feed_cache *c)
{
    struct lh_entry *e, *tmp;
    lh_foreach_safe(c->channels, e, tmp)
    {
        feed_channel *ch = (feed_channel *)lh_entry_v(e);
        if (ch->n_subscribers == 0 && !ch->loading) {
            lh_table_delete_entry(c->channels, e);
            continue;
        }
        /* Resets and deletions may have gone unnoticed: rebuild the ring from the database. */
        ch->rebuild = true;
        channel_start_read(ch, ch->ring_from);
    }
}

void feed_cache_on_db_down(feed_cache *c)
{
    struct lh_entry *e;
    lh_foreach(c->channels, e)
    {
        feed_channel *ch = (feed_channel *)lh_entry_v(e);
        ch->known = false;
    }
}

/*
 * Without a rebuild now and then, json-c's table would fill with the
 * tombstones of deleted entries (it only rebuilds when it grows), and every
 * lookup of a new name would walk them; it would also keep the size of its
 * largest day. Rebuilt at twice the live entries (never above its load
 * factor, so the rebuild cannot grow it behind our back).
 */
static void cache_rebuild_table(feed_cache *c)
{
    struct lh_table *t = c->channels;
    int want = t->count * 2 + 1;
    if (want < TABLE_MIN_SIZE)
        want = TABLE_MIN_SIZE;
    if (c->table_deletes < (size_t)t->size / 4 && want >= t->size / 4)
        return;
    if (lh_table_resize(t, want) == 0)
        c->table_deletes = 0;
}

/* Drops the least recently used idle channel; false when none is left. */
static bool cache_evict_one(feed_cache *c)
{
    feed_channel *ch = c->idle_head;
    if (!ch)
        return false;
    lh_table_delete(c->channels, ch->name);
    c->counts.evictions++;
    return true;
}

/*
 * Only subscribed (or loading) channels are left and the budget is still
 * exceeded: their rings go, oldest entries of the table first. A channel
 * keeps its head, so a subscriber at the head (a held poll, a live stream)
 * loses nothing; one behind reads its own history from the database.
 */
static void cache_trim_rings(feed_cache *c, size_t budget)
{
    struct lh_entry *e;
    lh_foreach(c->channels, e)
    {
        if (cache_bytes(c) <= budget || c->n_ringed == 0)
            return;
        feed_channel *ch = (feed_channel *)lh_entry_v(e);
        if (ch->ring_cap == 0)
            continue;
        ring_clear(ch, ch->head);
        c->counts.ring_trims++;
    }
}

void feed_cache_end_turn(feed_cache *c)
{
    cache_send_heads(c);
    size_t budget = c->limits.cache_bytes;
    if (budget == 0)
        return;
    while (cache_bytes(c) > budget && cache_evict_one(c))
        ;
    cache_rebuild_table(c);
    if (cache_bytes(c) > budget)
        cache_trim_rings(c, budget);
}

void feed_cache_get_stats(const feed_cache *c, feed_cache_stats *out)
{
    *out = c->counts;
    out->channels = (size_t)c->channels->count;
    out->bytes = cache_bytes(c);
    out->loads_waiting = c->n_queued + c->n_batch;
}

void feed_cache_sweep(feed_cache *c, int64_t now_ms)
{
    struct lh_entry *e, *tmp;
    lh_foreach_safe(c->channels, e, tmp)
    {
        feed_channel *ch = (feed_channel *)lh_entry_v(e);
        if (ch->n_subscribers == 0 && !ch->loading && now_ms - ch->last_used_ms > c->limits.idle_ms)
            lh_table_delete_entry(c->channels, e);
    }
}

size_t feed_cache_channel_count(const feed_cache *c)
{
    return (size_t)c->channels->count;
}

uint64_t feed_cache_hits(const feed_cache *c)
{
    return c->hits;
}

uint64_t feed_cache_misses(const feed_cache *c)
{
    return c->misses;
}

const char *feed_channel_name(const feed_channel *ch)
{
    return ch->name;
}

bool feed_channel_known(const feed_channel *ch)
{
    return ch->known;
}

int64_t feed_channel_head(const feed_channel *ch)
{
    return ch->head;
}

int64_t feed_channel_oldest(const feed_channel *ch)
{
    return ch->oldest;
}

bool feed_channel_covers(const feed_channel *ch, int64_t cursor)
{
    return ch->known && cursor >= ch->ring_from && cursor <= ch->head;
}

void feed_cache_count_hit(feed_channel *ch)
{
    ch->cache->hits++;
}

const feed_event *feed_channel_event_after(const feed_channel *ch, int64_t cursor)
{
    /* Binary search: the first slot whose version is above cursor. */
    size_t lo = 0, hi = ch->ring_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ring_at(ch, mid)->version <= cursor)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < ch->ring_count ? ring_at(ch, lo) : NULL;
}

void feed_channel_subscribe(feed_channel *ch, feed_subscriber *s)
{
    s->channel = ch;
    s->reset = false;
    s->prev = ch->subscribers.prev;
    s->next = &ch->subscribers;
    ch->subscribers.prev->next = s;
    ch->subscribers.prev = s;
    ch->n_subscribers++;
    ch->last_used_ms = clock_now_ms();
    channel_update_idle(ch);
}

void feed_channel_unsubscribe(feed_subscriber *s)
{
    if (!s->channel || !s->prev)
        return;
    s->prev->next = s->next;
    s->next->prev = s->prev;
    s->prev = s->next = NULL;
    s->channel->n_subscribers--;
    s->channel->last_used_ms = clock_now_ms();
    channel_update_idle(s->channel);
}

size_t feed_channel_subscriber_count(const feed_channel *ch)
{
    return ch->n_subscribers;
}
