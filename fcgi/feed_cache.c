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
    bool known;   /* head/oldest/ring reflect a read made while LISTENing */
    bool loading; /* a read for this channel is in flight */
    int64_t head;
    int64_t oldest;
    int64_t notified; /* highest version a notification announced */
    /* Ring of the newest events: versions ring_first .. head, contiguous. */
    feed_event **ring;
    size_t ring_start; /* index of ring_first in ring[] */
    size_t ring_count;
    size_t ring_bytes;
    int64_t ring_first;
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

static void ring_clear(feed_channel *ch)
{
    for (size_t i = 0; i < ch->ring_count; i++)
        free(ch->ring[(ch->ring_start + i) % ch->cache->limits.ring_events]);
    ch->ring_start = 0;
    ch->ring_count = 0;
    ch->ring_bytes = 0;
    ch->ring_first = ch->head + 1;
}

static void ring_drop_oldest(feed_channel *ch)
{
    feed_event *e = ch->ring[ch->ring_start];
    ch->ring_bytes -= e->json_len;
    free(e);
    ch->ring_start = (ch->ring_start + 1) % ch->cache->limits.ring_events;
    ch->ring_count--;
    ch->ring_first++;
}

/* Appends the next version; the caller guarantees contiguity. */
static void ring_push(feed_channel *ch, int64_t version, const char *json, size_t len)
{
    const feed_cache_limits *lim = &ch->cache->limits;
    if (ch->ring_count == 0)
        ch->ring_first = version;
    if (len > lim->ring_bytes) {
        /* Larger than the whole ring: caching it would hold the channel beyond
         * --ring-bytes. Its readers read it from the database, and get it alone. */
        while (ch->ring_count > 0)
            ring_drop_oldest(ch);
        ch->ring_first = version + 1;
        return;
    }
    while (ch->ring_count > 0 &&
           (ch->ring_count == lim->ring_events || ch->ring_bytes + len > lim->ring_bytes))
        ring_drop_oldest(ch);
    ch->ring[(ch->ring_start + ch->ring_count) % lim->ring_events] =
        feed_event_new(version, json, len);
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
    ch->ring_first = 1;
    ch->ring = xcalloc(c->limits.ring_events, sizeof *ch->ring);
    ch->subscribers.prev = ch->subscribers.next = &ch->subscribers;
    ch->last_used_ms = clock_now_ms();
    lh_table_insert(c->channels, ch->name, ch);
    return ch;
}

static void channel_free(feed_channel *ch)
{
    ring_clear(ch);
    free(ch->ring);
    free(ch->name);
    free(ch);
}

/* Pruned events leave memory too, so every process answers a pruned cursor alike. */
static void channel_drop_pruned(feed_channel *ch)
{
    while (ch->ring_count > 0 && ch->ring_first < ch->oldest)
        ring_drop_oldest(ch);
    if (ch->ring_count == 0)
        ch->ring_first = ch->head + 1;
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

static void channel_start_read(feed_channel *ch, int64_t after);

/*
 * A read finished: record head/oldest, extend or replace the ring, then wake
 * subscribers. Reads again if notifications announced more than arrived.
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
    bool appends = ch->known && r->n_events > 0 && r->events[0].version == ch->head + 1;
    bool unchanged = ch->known && r->n_events == 0 && r->head == ch->head;
    if (!appends && !unchanged)
        ring_clear(ch);
    for (size_t i = 0; i < r->n_events; i++)
        ring_push(ch, r->events[i].version, r->events[i].json, r->events[i].json_len);
    int64_t last = r->n_events ? r->events[r->n_events - 1].version : r->head;
    if (last < r->head && appends) {
        /* A page of a longer catch-up: serve what arrived, read the rest next. */
        ch->head = last;
        if (r->head > ch->notified)
            ch->notified = r->head;
    } else {
        ch->head = r->head;
        /* A first read that did not reach the head holds nothing servable up to it. */
        if (last < r->head)
            ring_clear(ch);
    }
    ch->oldest = r->oldest;
    channel_drop_pruned(ch);
    ch->known = true;
    if (ch->notified > ch->head)
        channel_start_read(ch, ch->head);
    channel_wake(ch);
}

static void channel_start_read(feed_channel *ch, int64_t after)
{
    feed_cache *c = ch->cache;
    if (ch->loading)
        return;
    if (after < 0)
        after = 0;
    int limit = c->limits.read_batch;
    db_query *q = db_read(c->database, ch->name, after, limit, channel_on_read, ch);
    if (q) {
        ch->loading = true;
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

void feed_cache_on_notify(feed_cache *c, const char *name, int64_t version)
{
    void *found = NULL;
    if (!lh_table_lookup_ex(c->channels, name, &found))
        return; /* nobody here cares about this channel */
    feed_channel *ch = found;
    if (version > ch->notified)
        ch->notified = version;
    if (ch->known && version > ch->head)
        channel_start_read(ch, ch->head);
}

void feed_cache_on_pruned(feed_cache *c, const char *name, int64_t oldest)
{
    void *found = NULL;
    if (!lh_table_lookup_ex(c->channels, name, &found))
        return;
    feed_channel *ch = found;
    if (oldest <= ch->oldest)
        return;
    ch->oldest = oldest;
    channel_drop_pruned(ch);
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
        /* Events are immutable, so the ring stays; the read says whether the head moved. */
        channel_start_read(ch, ch->head);
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
    return ch->known && cursor >= ch->ring_first - 1 && cursor <= ch->head;
}

void feed_cache_count_hit(feed_channel *ch)
{
    ch->cache->hits++;
}

const feed_event *feed_channel_event(const feed_channel *ch, int64_t version)
{
    size_t offset = (size_t)(version - ch->ring_first);
    return ch->ring[(ch->ring_start + offset) % ch->cache->limits.ring_events];
}

void feed_channel_subscribe(feed_channel *ch, feed_subscriber *s)
{
    s->channel = ch;
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
