/*
 * channel_ring — a channel's most recent events, kept in memory so that polls
 * and wake-ups are answered without PostgreSQL (see feed_cache.h). Apart from
 * feed_cache.c because the ring's bounds (--ring-events, --ring-bytes,
 * --ring-seconds) and its circular slots are one job, whatever read or
 * notification fills it.
 */
#include "feed_cache_private.h"
#include "event_loop.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

feed_event *feed_event_new(int64_t version, const char *json, size_t len)
{
    feed_event *e = xmalloc(sizeof *e + len + 1);
    e->version = version;
    e->json_len = len;
    memcpy(e->json, json, len);
    e->json[len] = '\0';
    return e;
}

feed_event *channel_ring_at(const feed_channel *ch, size_t i)
{
    return ch->ring[(ch->ring_start + i) % ch->ring_cap];
}

void channel_ring_clear(feed_channel *ch, int64_t from)
{
    for (size_t i = 0; i < ch->ring_count; i++)
        free(channel_ring_at(ch, i));
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
    cache_budget_account(ch);
}

void channel_ring_drop_oldest(feed_channel *ch)
{
    feed_event *e = channel_ring_at(ch, 0);
    ch->ring_from = e->version;
    ch->ring_bytes -= e->json_len;
    free(e);
    ch->ring_start = (ch->ring_start + 1) % ch->ring_cap;
    ch->ring_count--;
    cache_budget_account(ch);
}

void channel_ring_drop_below(feed_channel *ch, int64_t oldest)
{
    while (ch->ring_count > 0 && channel_ring_at(ch, 0)->version < oldest)
        channel_ring_drop_oldest(ch);
    if (ch->ring_from < oldest - 1)
        ch->ring_from = oldest - 1 < ch->head ? oldest - 1 : ch->head;
}

/* Moves the ring's events into arrays of cap slots (cap >= ring_count), oldest at slot 0. */
static void channel_ring_resize(feed_channel *ch, size_t cap)
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
static void channel_ring_trim(feed_channel *ch, size_t len, int64_t now_ms)
{
    const feed_cache_limits *lim = &ch->cache->limits;
    while (ch->ring_count > 0 && (ch->ring_bytes + len > lim->ring_bytes ||
                                  (ch->ring_count >= lim->ring_events &&
                                   now_ms - ch->ring_ms[ch->ring_start] >= lim->ring_ms)))
        channel_ring_drop_oldest(ch);
    if (ch->ring_count == ch->ring_cap) {
        size_t cap = ch->ring_cap ? ch->ring_cap * 2 : 2;
        if (cap > lim->ring_events && ch->ring_count < lim->ring_events)
            cap = lim->ring_events;
        channel_ring_resize(ch, cap);
    } else if (ch->ring_cap > lim->ring_events && ch->ring_count < ch->ring_cap / 4)
        channel_ring_resize(ch, ch->ring_cap / 2 > lim->ring_events ? ch->ring_cap / 2
                                                                    : lim->ring_events);
}

void channel_ring_push(feed_channel *ch, int64_t version, const char *json, size_t len)
{
    const feed_cache_limits *lim = &ch->cache->limits;
    /* Beyond the cache budget with nothing left to evict, a channel that has no
     * ring does not start one: the turn's end would only trim it again. */
    bool starved = ch->ring_cap == 0 && cache_budget_starved(ch->cache);
    /* An event larger than the whole ring would hold the channel beyond --ring-bytes.
     * Either way its readers read it from the database (an oversized one alone);
     * the ring is complete again from after it. */
    if (len > lim->ring_bytes || starved) {
        channel_ring_clear(ch, version);
        return;
    }
    int64_t now_ms = clock_now_ms();
    channel_ring_trim(ch, len, now_ms);
    size_t slot = (ch->ring_start + ch->ring_count) % ch->ring_cap;
    ch->ring[slot] = feed_event_new(version, json, len);
    ch->ring_ms[slot] = now_ms;
    ch->ring_count++;
    ch->ring_bytes += len;
    cache_budget_account(ch);
}

const feed_event *feed_channel_event_after(const feed_channel *ch, int64_t cursor)
{
    /* Binary search: the first slot whose version is above cursor. */
    size_t lo = 0, hi = ch->ring_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (channel_ring_at(ch, mid)->version <= cursor)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < ch->ring_count ? channel_ring_at(ch, lo) : NULL;
}
