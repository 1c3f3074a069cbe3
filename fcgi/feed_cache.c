/*
 * feed_cache — the channel table: a channel's head, what reads and
 * notifications make of it, and its subscribers (see feed_cache.h). Its ring
 * is channel_ring.c, the head batches that load it channel_loader.c, the
 * budget that evicts it cache_budget.c; they share feed_cache_private.h.
 */
#include "feed_cache_private.h"
#include "event_loop.h"
#include "xalloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LOAD_BATCH_DEFAULT 1000

void feed_channel_set_loading(feed_channel *ch, bool loading)
{
    ch->loading = loading;
    cache_budget_update_idle(ch);
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
    channel_loader_free(c);
    lh_table_free(c->channels);
    free(c);
}

feed_channel *feed_cache_channel(feed_cache *c, const char *name)
{
    void *found = NULL;
    if (lh_table_lookup_ex(c->channels, name, &found)) {
        feed_channel *ch = found;
        ch->last_used_ms = clock_now_ms();
        cache_budget_touch(ch);
        return ch;
    }
    feed_channel *ch = xcalloc(1, sizeof *ch);
    ch->cache = c;
    ch->name = xstrdup(name);
    ch->oldest = 1;
    ch->subscribers.prev = ch->subscribers.next = &ch->subscribers;
    ch->last_used_ms = clock_now_ms();
    lh_table_insert(c->channels, ch->name, ch);
    cache_budget_account(ch);
    cache_budget_update_idle(ch);
    return ch;
}

static void channel_free(feed_channel *ch)
{
    channel_ring_clear(ch, 0);
    cache_budget_forget(ch);
    free(ch->name);
    free(ch);
}

/* Pruned events leave memory too, so every process answers a pruned cursor alike. */
/* Tells every subscriber the channel changed; a woken one may unsubscribe itself. */
void feed_channel_wake(feed_channel *ch)
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
void feed_channel_on_read(void *ctx, const db_read_result *r)
{
    feed_channel *ch = ctx;
    feed_channel_set_loading(ch, false);
    if (!r->ok) {
        ch->known = false;
        feed_channel_wake(ch);
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
        channel_ring_clear(ch, after < r->head ? after : r->head);
    if (appends || whole) {
        for (size_t i = 0; i < r->n_events; i++) {
            const db_event *e = &r->events[i];
            /* Out of range or out of order would break the ring's ordering: skip it. */
            if (e->version <= ch->ring_from || e->version > r->head ||
                (ch->ring_count && e->version <= channel_ring_at(ch, ch->ring_count - 1)->version))
                continue;
            channel_ring_push(ch, e->version, e->json, e->json_len);
        }
        ch->head = whole ? r->head : last;
        if (!whole)
            ch->reread = true; /* the next page follows */
    } else {
        channel_ring_clear(ch, r->head);
        ch->head = r->head;
    }
    ch->oldest = r->oldest;
    ch->epoch = r->epoch;
    channel_ring_drop_below(ch, ch->oldest);
    ch->known = true;
    if (ch->reread || ch->rebuild) {
        ch->reread = false;
        feed_channel_start_read(ch, ch->head);
    }
    feed_channel_wake(ch);
}

void feed_channel_start_read(feed_channel *ch, int64_t after)
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
    db_query *q = db_read(c->database, ch->name, after, limit, feed_channel_on_read, ch);
    if (q) {
        feed_channel_set_loading(ch, true);
        ch->read_after = after;
        ch->read_replaces = ch->rebuild || !ch->known;
        ch->rebuild = false;
        c->misses++;
    }
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
        feed_channel_start_read(ch, ch->head);
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
        feed_channel_start_read(ch, ch->ring_from);
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
    channel_ring_drop_below(ch, oldest);
    if (ch->loading)
        ch->reread = true;
    else
        feed_channel_start_read(ch, ch->head);
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
        feed_channel_start_read(ch, ch->ring_from);
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

void feed_cache_end_turn(feed_cache *c)
{
    channel_loader_send_heads(c);
    cache_budget_enforce(c);
}

void feed_cache_get_stats(const feed_cache *c, feed_cache_stats *out)
{
    *out = c->counts;
    out->channels = (size_t)c->channels->count;
    out->bytes = cache_budget_bytes(c);
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
    cache_budget_update_idle(ch);
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
    cache_budget_update_idle(s->channel);
}

size_t feed_channel_subscriber_count(const feed_channel *ch)
{
    return ch->n_subscribers;
}
