/*
 * cache_budget — what the cache's entries cost, and eviction down to
 * --cache-bytes (see feed_cache.h). Apart from feed_cache.c so that the
 * channels' logic reads without the accounting, and the budget's rules (what
 * an entry costs, who is evicted first, when rings go) sit in one place.
 *
 * Every entry is accounted as glibc's heap holds it (its struct, name, ring
 * slots and events, the table's share). Channels without a subscriber or a
 * read sit on the idle list, least recently used first; at the end of a turn
 * they are evicted from its head until the cache is within budget, and when
 * only busy channels are left their rings are emptied.
 */
#include "feed_cache_private.h"

#include <string.h>

/*
 * What an allocation of n bytes takes from glibc's heap: its 8-byte header,
 * rounded to 16, at least 32. The budget counts this, not n, so that it
 * tracks RSS rather than the sizes asked for.
 */
static size_t cache_budget_alloc_cost(size_t n)
{
    size_t chunk = (n + 8 + 15) & ~(size_t)15;
    return chunk < 32 ? 32 : chunk;
}

/* An event in the ring: its struct, JSON and NUL, rounded up as cache_budget_alloc_cost would. */
#define EVENT_OVERHEAD (sizeof(feed_event) + 1 + 8 + 15)

static size_t cache_budget_channel_cost(const feed_channel *ch)
{
    return cache_budget_alloc_cost(sizeof *ch) + cache_budget_alloc_cost(strlen(ch->name) + 1) +
           (ch->ring_cap ? cache_budget_alloc_cost(ch->ring_cap * sizeof *ch->ring) +
                               cache_budget_alloc_cost(ch->ring_cap * sizeof *ch->ring_ms)
                         : 0) +
           ch->ring_bytes + ch->ring_count * EVENT_OVERHEAD;
}

void cache_budget_account(feed_channel *ch)
{
    size_t now = cache_budget_channel_cost(ch);
    ch->cache->entry_bytes = ch->cache->entry_bytes - ch->bytes + now;
    ch->bytes = now;
}

size_t cache_budget_bytes(const feed_cache *c)
{
    return c->entry_bytes + (size_t)c->channels->size * sizeof(struct lh_entry);
}

bool cache_budget_starved(const feed_cache *c)
{
    return c->limits.cache_bytes && !c->idle_head && cache_budget_bytes(c) > c->limits.cache_bytes;
}

/* Appends to the idle list: the most recently used of its channels. */
static void cache_budget_idle_append(feed_channel *ch)
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

static void cache_budget_idle_unlink(feed_channel *ch)
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

void cache_budget_update_idle(feed_channel *ch)
{
    bool idle = ch->n_subscribers == 0 && !ch->loading;
    if (idle && !ch->on_idle)
        cache_budget_idle_append(ch);
    else if (!idle && ch->on_idle)
        cache_budget_idle_unlink(ch);
}

void cache_budget_touch(feed_channel *ch)
{
    if (ch->on_idle) {
        cache_budget_idle_unlink(ch);
        cache_budget_idle_append(ch);
    }
}

void cache_budget_forget(feed_channel *ch)
{
    feed_cache *c = ch->cache;
    if (ch->on_idle)
        cache_budget_idle_unlink(ch);
    c->entry_bytes -= ch->bytes;
    c->table_deletes++;
}

/*
 * Without a rebuild now and then, json-c's table would fill with the
 * tombstones of deleted entries (it only rebuilds when it grows), and every
 * lookup of a new name would walk them; it would also keep the size of its
 * largest day. Rebuilt at twice the live entries (never above its load
 * factor, so the rebuild cannot grow it behind our back).
 */
static void cache_budget_rebuild_table(feed_cache *c)
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
static bool cache_budget_evict_one(feed_cache *c)
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
static void cache_budget_trim_rings(feed_cache *c, size_t budget)
{
    struct lh_entry *e;
    lh_foreach(c->channels, e)
    {
        if (cache_budget_bytes(c) <= budget || c->n_ringed == 0)
            return;
        feed_channel *ch = (feed_channel *)lh_entry_v(e);
        if (ch->ring_cap == 0)
            continue;
        channel_ring_clear(ch, ch->head);
        c->counts.ring_trims++;
    }
}

void cache_budget_enforce(feed_cache *c)
{
    size_t budget = c->limits.cache_bytes;
    if (budget == 0)
        return;
    while (cache_budget_bytes(c) > budget && cache_budget_evict_one(c))
        ;
    cache_budget_rebuild_table(c);
    if (cache_budget_bytes(c) > budget)
        cache_budget_trim_rings(c, budget);
}
