/*
 * feed_cache — per-channel head, recent events and subscribers (see feed_cache.h).
 */
#include "feed_cache.h"
#include "event_loop.h"
#include "log.h"
#include "xalloc.h"

#include <json-c/linkhash.h>
#include <stdlib.h>
#include <string.h>

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
     * (mod ring_cap) are filled; no other slot is ever read. ring_cap is
     * ring_events, more while --ring-seconds keeps a burst (ring_trim).
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
};

struct feed_cache {
    db *database;
    feed_cache_limits limits;
    struct lh_table *channels; /* name -> feed_channel */
    uint64_t hits;
    uint64_t misses;
};

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
    c->channels = lh_kchar_table_new(64, channel_entry_free);
    return c;
}

void feed_cache_free(feed_cache *c)
{
    if (!c)
        return;
    lh_table_free(c->channels);
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

/* Empties the ring; it is then complete from `from` (nothing is known before it). */
static void ring_clear(feed_channel *ch, int64_t from)
{
    for (size_t i = 0; i < ch->ring_count; i++)
        free(ring_at(ch, i));
    ch->ring_start = 0;
    ch->ring_count = 0;
    ch->ring_bytes = 0;
    ch->ring_from = from;
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
    if (ch->ring_count == ch->ring_cap)
        ring_resize(ch, ch->ring_cap * 2);
    else if (ch->ring_cap > lim->ring_events && ch->ring_count < ch->ring_cap / 4)
        ring_resize(ch, ch->ring_cap / 2 > lim->ring_events ? ch->ring_cap / 2 : lim->ring_events);
}

/* Appends an event newer than every event in the ring (the caller checks). */
static void ring_push(feed_channel *ch, int64_t version, const char *json, size_t len)
{
    const feed_cache_limits *lim = &ch->cache->limits;
    if (len > lim->ring_bytes) {
        /* Larger than the whole ring: caching it would hold the channel beyond
         * --ring-bytes. Its readers read it from the database, and get it alone;
         * the ring is complete again from after it. */
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
}

feed_channel *feed_cache_channel(feed_cache *c, const char *name)
{
    void *found = NULL;
    if (lh_table_lookup_ex(c->channels, name, &found)) {
        feed_channel *ch = found;
        ch->last_used_ms = clock_now_ms();
        return ch;
    }
    feed_channel *ch = xcalloc(1, sizeof *ch);
    ch->cache = c;
    ch->name = xstrdup(name);
    ch->oldest = 1;
    ch->ring = xcalloc(c->limits.ring_events, sizeof *ch->ring);
    ch->ring_ms = xcalloc(c->limits.ring_events, sizeof *ch->ring_ms);
    ch->ring_cap = c->limits.ring_events;
    ch->subscribers.prev = ch->subscribers.next = &ch->subscribers;
    ch->last_used_ms = clock_now_ms();
    lh_table_insert(c->channels, ch->name, ch);
    return ch;
}

static void channel_free(feed_channel *ch)
{
    ring_clear(ch, 0);
    free(ch->ring);
    free(ch->ring_ms);
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
    ch->loading = false;
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
        ch->loading = true;
        ch->read_after = after;
        ch->read_replaces = ch->rebuild || !ch->known;
        ch->rebuild = false;
        c->misses++;
    }
}

bool feed_channel_load(feed_channel *ch, int64_t after_hint)
{
    if (ch->known || ch->loading)
        return true;
    /* A cursor of "now" only needs the head; otherwise fetch from the cursor. */
    channel_start_read(ch, after_hint >= 0 ? after_hint : INT64_MAX / 2);
    return ch->loading;
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
}

size_t feed_channel_subscriber_count(const feed_channel *ch)
{
    return ch->n_subscribers;
}
