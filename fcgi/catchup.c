/*
 * catchup — shared catch-up reads: in-flight reads joined, pages kept briefly (see catchup.h).
 */
#include "catchup.h"
#include "event_loop.h"
#include "xalloc.h"

#include <json-c/linkhash.h>
#include <stdlib.h>
#include <string.h>

typedef struct catchup_slot catchup_slot;
typedef struct catchup_entry catchup_entry;

struct catchup_wait {
    catchup_wait *prev, *next; /* on an entry's waiters, or on the list being delivered */
    int64_t cursor;
    int limit;
    bool exact; /* a page read from another cursor did not serve it: only its own read will */
    catchup_cb cb;
    void *ctx;
};

/*
 * One read of a channel from `after`. In flight (query set, waiters listed)
 * until PostgreSQL answers; then kept (page set, on the age list) while it
 * may serve later clients, or freed.
 */
struct catchup_entry {
    catchup *cache;
    catchup_slot *slot;
    catchup_entry *prev, *next; /* on slot->entries */
    catchup_entry *newer;       /* kept: on the cache's age list, oldest first */
    catchup_entry *older;
    db_query *query;
    int64_t after;
    int limit;
    int64_t ring_head;    /* the channel's head in memory when the read started */
    catchup_wait waiters; /* sentinel of a circular list */
    catchup_page *page;
    int64_t kept_at_ms;
};

/* A channel's entries, in flight and kept. */
struct catchup_slot {
    char *name;
    catchup_entry *entries;
};

struct catchup {
    db *database;
    catchup_limits limits;
    struct lh_table *slots; /* name -> catchup_slot */
    catchup_entry *oldest_kept, *newest_kept;
    size_t kept_bytes;
};

catchup *catchup_new(db *d, const catchup_limits *limits)
{
    catchup *c = xcalloc(1, sizeof *c);
    c->database = d;
    c->limits = *limits;
    c->slots = lh_kchar_table_new(64, NULL);
    return c;
}

catchup_page *catchup_page_new(int64_t after, int64_t head, int64_t oldest)
{
    catchup_page *p = xcalloc(1, sizeof *p);
    p->refs = 1;
    p->after = after;
    p->head = head;
    p->oldest = oldest;
    p->bytes = sizeof *p;
    return p;
}

void catchup_page_release(catchup_page *p)
{
    if (!p || --p->refs > 0)
        return;
    for (size_t i = 0; i < p->n_events; i++)
        free(p->events[i]);
    free(p->events);
    free(p);
}

/* Events of p above version. */
static size_t page_count_after(const catchup_page *p, int64_t version)
{
    size_t lo = 0, hi = p->n_events;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->events[mid]->version <= version)
            lo = mid + 1;
        else
            hi = mid;
    }
    return p->n_events - lo;
}

const feed_event *catchup_page_event_after(const catchup_page *p, int64_t version)
{
    size_t after = page_count_after(p, version);
    return after ? p->events[p->n_events - after] : NULL;
}

/*
 * True when p holds the whole answer of limit events after cursor that a
 * read of its own would have given when p was read. A shorter answer (the
 * page reached the head) only while no newer head is known (known_head): it
 * would say "nothing more" where the ring already knows more, and hold a
 * long poll that has events to get.
 */
static bool page_serves(const catchup_page *p, int64_t cursor, int limit, int64_t known_head)
{
    if (cursor < p->after || cursor > p->head)
        return false;
    if (page_count_after(p, cursor) >= (size_t)limit)
        return true;
    return p->complete && known_head <= p->head;
}

/*
 * What the channel shows now contradicts e's page: pruned above its oldest,
 * or its head gone back since the read started (a reset). A page may well be
 * ahead of the ring's head, which has not read the newest commits yet.
 */
static bool page_outdated(const catchup_entry *e, const feed_channel *ch)
{
    return feed_channel_known(ch) &&
           (feed_channel_oldest(ch) > e->page->oldest || feed_channel_head(ch) < e->ring_head);
}

static catchup_slot *slot_of(catchup *c, const char *name, bool create)
{
    void *found = NULL;
    if (lh_table_lookup_ex(c->slots, name, &found))
        return found;
    if (!create)
        return NULL;
    catchup_slot *s = xcalloc(1, sizeof *s);
    s->name = xstrdup(name);
    lh_table_insert(c->slots, s->name, s);
    return s;
}

static catchup_entry *entry_new(catchup *c, catchup_slot *slot, int64_t after, int limit)
{
    catchup_entry *e = xcalloc(1, sizeof *e);
    e->cache = c;
    e->slot = slot;
    e->after = after;
    e->limit = limit;
    e->waiters.prev = e->waiters.next = &e->waiters;
    e->next = slot->entries;
    if (slot->entries)
        slot->entries->prev = e;
    slot->entries = e;
    return e;
}

/* Takes e off its slot (and the slot off the table once empty) and frees it; not its waiters. */
static void entry_free(catchup *c, catchup_entry *e)
{
    catchup_slot *slot = e->slot;
    if (e->prev)
        e->prev->next = e->next;
    else
        slot->entries = e->next;
    if (e->next)
        e->next->prev = e->prev;
    if (!slot->entries) {
        lh_table_delete(c->slots, slot->name);
        free(slot->name);
        free(slot);
    }
    catchup_page_release(e->page);
    free(e);
}

static void kept_forget(catchup *c, catchup_entry *e)
{
    if (e->older)
        e->older->newer = e->newer;
    else
        c->oldest_kept = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        c->newest_kept = e->older;
    c->kept_bytes -= e->page->bytes;
    entry_free(c, e);
}

static void kept_expire(catchup *c, int64_t now_ms)
{
    while (c->oldest_kept && now_ms - c->oldest_kept->kept_at_ms > c->limits.keep_ms)
        kept_forget(c, c->oldest_kept);
}

/* Keeps e's page for later clients, the oldest pages leaving for it when over the bound. */
static bool kept_add(catchup *c, catchup_entry *e)
{
    if (e->page->bytes > c->limits.max_bytes)
        return false;
    while (c->oldest_kept && c->kept_bytes + e->page->bytes > c->limits.max_bytes)
        kept_forget(c, c->oldest_kept);
    e->kept_at_ms = clock_now_ms();
    e->older = c->newest_kept;
    e->newer = NULL;
    if (c->newest_kept)
        c->newest_kept->newer = e;
    else
        c->oldest_kept = e;
    c->newest_kept = e;
    c->kept_bytes += e->page->bytes;
    return true;
}

catchup_page *catchup_find(catchup *c, const feed_channel *ch, int64_t cursor, int limit)
{
    kept_expire(c, clock_now_ms());
    catchup_slot *slot = slot_of(c, feed_channel_name(ch), false);
    for (catchup_entry *e = slot ? slot->entries : NULL; e; e = e->next) {
        if (e->page && !page_outdated(e, ch) &&
            page_serves(e->page, cursor, limit,
                        feed_channel_known(ch) ? feed_channel_head(ch) : e->page->head)) {
            e->page->refs++;
            return e->page;
        }
    }
    return NULL;
}

static void waiter_link(catchup_wait *list, catchup_wait *w)
{
    w->prev = list->prev;
    w->next = list;
    list->prev->next = w;
    list->prev = w;
}

static void waiter_unlink(catchup_wait *w)
{
    w->prev->next = w->next;
    w->next->prev = w->prev;
    w->prev = w->next = NULL;
}

/* The in-flight read of slot that w may wait for, or NULL. */
static catchup_entry *in_flight_for(catchup_slot *slot, const catchup_wait *w)
{
    for (catchup_entry *e = slot ? slot->entries : NULL; e; e = e->next) {
        if (!e->query || w->cursor < e->after || e->limit < w->limit)
            continue;
        if (w->exact ? w->cursor == e->after
                     /* with versions gapless, its page holds w's whole answer */
                     : w->cursor - e->after <= (int64_t)(e->limit - w->limit))
            return e;
    }
    return NULL;
}

static void entry_on_read(void *ctx, const db_read_result *res);

/* Puts w on a read that will serve it, starting one if need be; false when none can start. */
static bool waiter_place(catchup *c, const char *name, int64_t ring_head, catchup_wait *w,
                         bool *joined)
{
    catchup_entry *e = in_flight_for(slot_of(c, name, false), w);
    *joined = e != NULL;
    if (!e) {
        e = entry_new(c, slot_of(c, name, true), w->cursor, w->limit);
        e->ring_head = ring_head;
        e->query = db_read(c->database, name, w->cursor, w->limit, entry_on_read, e);
        if (!e->query) {
            entry_free(c, e);
            return false;
        }
    }
    waiter_link(&e->waiters, w);
    return true;
}

catchup_wait *catchup_read(catchup *c, const feed_channel *ch, int64_t cursor, int limit,
                           catchup_cb cb, void *ctx, bool *joined)
{
    catchup_wait *w = xcalloc(1, sizeof *w);
    w->cursor = cursor;
    w->limit = limit;
    w->cb = cb;
    w->ctx = ctx;
    int64_t ring_head = feed_channel_known(ch) ? feed_channel_head(ch) : 0;
    if (!waiter_place(c, feed_channel_name(ch), ring_head, w, joined)) {
        free(w);
        return NULL;
    }
    return w;
}

void catchup_cancel(catchup_wait *w)
{
    if (!w)
        return;
    waiter_unlink(w);
    free(w);
}

/* Runs w's callback; w is freed first, so the callback may start another wait. */
static void waiter_finish(catchup_wait *w, catchup_page *page)
{
    catchup_cb cb = w->cb;
    void *ctx = w->ctx;
    waiter_unlink(w);
    free(w);
    cb(ctx, page);
}

static catchup_page *page_of(int64_t after, const db_read_result *res)
{
    catchup_page *p = catchup_page_new(after, res->head, res->oldest);
    p->complete = res->complete;
    p->events = xcalloc(res->n_events ? res->n_events : 1, sizeof *p->events);
    for (size_t i = 0; i < res->n_events; i++) {
        const db_event *e = &res->events[i];
        /* Only ascending versions above the cursor keep the binary search true. */
        if (e->version <= after ||
            (p->n_events && e->version <= p->events[p->n_events - 1]->version))
            continue;
        p->events[p->n_events++] = feed_event_new(e->version, e->json, e->json_len);
        p->bytes += sizeof *p->events + sizeof(feed_event) + e->json_len + 1;
    }
    return p;
}

/*
 * PostgreSQL answered e's read. Its waiters move to a list of our own before
 * any callback runs, since a callback may start reads, cancel waits or fill
 * the cache (which may drop e). A waiter the page does not serve (it joined
 * expecting a page without holes) gets a read from its own cursor.
 */
static void entry_on_read(void *ctx, const db_read_result *res)
{
    catchup_entry *e = ctx;
    catchup *c = e->cache;
    e->query = NULL;
    catchup_wait delivering = {.prev = &delivering, .next = &delivering};
    while (e->waiters.next != &e->waiters) {
        catchup_wait *w = e->waiters.next;
        waiter_unlink(w);
        waiter_link(&delivering, w);
    }
    int64_t after = e->after, ring_head = e->ring_head;
    int limit = e->limit;
    char *name = xstrdup(e->slot->name); /* e and its slot may go before the last callback */
    catchup_page *page = NULL;
    if (res->ok) {
        page = page_of(after, res);
        e->page = page;
        page->refs++; /* ours, while delivering */
        if (!kept_add(c, e))
            entry_free(c, e); /* drops e's reference */
    } else {
        entry_free(c, e);
    }
    while (delivering.next != &delivering) {
        catchup_wait *w = delivering.next;
        bool own = w->cursor == after && w->limit <= limit;
        if (!page || own || page_serves(page, w->cursor, w->limit, page->head)) {
            if (page)
                page->refs++;
            waiter_finish(w, page);
            continue;
        }
        waiter_unlink(w);
        w->exact = true;
        bool joined;
        if (!waiter_place(c, name, ring_head, w, &joined)) {
            waiter_link(&delivering, w);
            waiter_finish(w, NULL);
        }
    }
    catchup_page_release(page);
    free(name);
}

size_t catchup_bytes(const catchup *c)
{
    return c->kept_bytes;
}

void catchup_free(catchup *c)
{
    if (!c)
        return;
    struct lh_entry *le, *tmp;
    lh_foreach_safe(c->slots, le, tmp)
    {
        catchup_slot *slot = (catchup_slot *)lh_entry_v(le);
        while (slot->entries) {
            catchup_entry *e = slot->entries;
            db_query_cancel(e->query);
            while (e->waiters.next != &e->waiters) {
                catchup_wait *w = e->waiters.next;
                waiter_unlink(w);
                free(w);
            }
            bool last = !e->next;
            entry_free(c, e);
            if (last)
                break; /* the slot went with its last entry */
        }
    }
    lh_table_free(c->slots);
    free(c);
}
