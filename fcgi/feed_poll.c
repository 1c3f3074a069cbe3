/*
 * feed_poll — short and long polls: answer, hold until a channel moves, time out, 410.
 */
#include "request_private.h"
#include "feed_format.h"
#include "guard.h"
#include "xalloc.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void feed_poll_fail_gone(request *r, const subscription *s, const subscription_source *src)
{
    json_object *extra = json_object_new_object();
    json_object_object_add(extra, "channel",
                           json_object_new_string(feed_channel_name(s->node.channel)));
    json_object_object_add(extra, "oldest", json_object_new_int64(src->oldest));
    json_object_object_add(extra, "head", json_object_new_int64(src->head));
    json_object_object_add(extra, "cursor", json_object_new_int64(s->cursor));
    char detail[256];
    if (src->ahead)
        snprintf(detail, sizeof detail,
                 "cursor %" PRId64 " of channel \"%s\" is beyond its head %" PRId64
                 " (the feed was reset): reload and continue from the head",
                 s->cursor, feed_channel_name(s->node.channel), src->head);
    else
        snprintf(detail, sizeof detail,
                 "events after %" PRId64
                 " of channel \"%s\" were pruned (oldest retained is %" PRId64
                 "): reload and continue from the head",
                 s->cursor, feed_channel_name(s->node.channel), src->oldest);
    request_fail(r, 410, detail, extra);
    json_object_put(extra);
}

/*
 * Shared caches. An answer carrying events after a cursor is true forever, so
 * a front cache (nginx fastcgi_cache with its lock, Apache mod_cache) may hand
 * one answer to every client polling the same URL, and 2,000 long polls for
 * one cursor cost pgfeed one request per round. Three things make that safe:
 *  - only channels the operator listed in --cache-public that are also
 *    open to anyone (--allow: guard_channel_cacheable) are ever "public";
 *    everything else stays no-cache, errors and streams no-store;
 *  - every cacheable answer names its canonical next URL (Link rel="next"
 *    and "next" in the body), so clients that got the same answer ask the
 *    same next URL and collapse again;
 *  - after an empty answer the next URL's round= goes up by one, so a client
 *    never gets the same cached empty answer back and cannot loop on it.
 * A full page (limit events from every channel) never changes: immutable. A
 * partial or empty one is kept for about the wait, after which the URL's
 * answer would hold more.
 */
static bool feed_poll_shareable(const request *r)
{
    for (size_t i = 0; i < r->fr.n_channels; i++)
        if (!guard_channel_cacheable(r->reg->guard, r->fr.channels[i]))
            return false;
    return true;
}

/* The canonical relative URL ("?...") of the poll that follows this answer. */
static void feed_poll_next_link(const request *r, const char *cursor, bool empty, buf *out)
{
    buf_append_str(out, "?");
    if (r->fr.channels_in_query)
        for (size_t i = 0; i < r->fr.n_channels; i++)
            buf_printf(out, "channel=%s&", r->fr.channels[i]);
    buf_append_str(out, "since=");
    /* Several channels' cursor is a=1,b=2: escape what a query gives meaning to. */
    for (const char *p = cursor; *p; p++)
        if (*p == '=')
            buf_append_str(out, "%3D");
        else if (*p == ',')
            buf_append_str(out, "%2C");
        else
            buf_append(out, p, 1);
    if (r->fr.limit != r->reg->cfg->default_limit)
        buf_printf(out, "&limit=%d", r->fr.limit);
    if (r->fr.transport == TRANSPORT_LONG_POLL)
        buf_printf(out, "&wait=%d", r->fr.wait);
    int64_t round = empty ? r->fr.round + 1 : 0;
    if (round > 0)
        buf_printf(out, "&round=%" PRId64, round);
}

/*
 * The answer formatted for the first of identical requests, written unchanged
 * to the others. A publish wakes every long poll held on a channel within one
 * loop turn, and those waiting on the same cursor (8,000 clients re-polling
 * with the ETag they all got) would each build the same JSON, ETag and Link.
 * The key is everything the bytes depend on: each channel's name, the
 * request's cursor and the channel's head and oldest, limit, wait, round, the
 * transport and how the channels were named. It is forgotten at the end of
 * the turn (request_reap), so nothing a later turn changes (a read, a prune,
 * a reset) can be answered from it. Behind the ring the key names the shared
 * catch-up page instead of the channel's head (the page is immutable, and the
 * memo holds a reference so its address cannot be reused meanwhile): the
 * clients that one shared read woke are answered with one formatting too.
 */
struct feed_poll_memo {
    buf key;
    buf cursor;
    buf headers; /* ETag, and Link and Vary when shared */
    buf body;
    char cache_control[64]; /* "" for the default */
    size_t used;            /* events in the body */
    history **pages;        /* references to the catch-up pages the key names */
    size_t n_pages;
};

static void feed_poll_memo_free(feed_poll_memo *m)
{
    if (!m)
        return;
    buf_free(&m->key);
    buf_free(&m->cursor);
    buf_free(&m->headers);
    buf_free(&m->body);
    for (size_t i = 0; i < m->n_pages; i++)
        subscription_history_free(m->pages[i]);
    free(m->pages);
    free(m);
}

void feed_poll_memo_forget(request_registry *reg)
{
    feed_poll_memo_free(reg->poll_memo);
    reg->poll_memo = NULL;
}

/* The memo key of r's answer: bytes compared whole, so binary (printf was 4% of a 304). */
static void feed_poll_memo_key(const request *r, buf *key)
{
    for (size_t i = 0; i < r->n_subs; i++) {
        const subscription *s = &r->subs[i];
        const char *name = feed_channel_name(s->node.channel);
        buf_append(key, name, strlen(name) + 1); /* a name has no NUL: the end is unambiguous */
        if (s->hist) {
            const int64_t page[2] = {(int64_t)(intptr_t)s->hist, s->cursor};
            buf_append(key, "p", 1);
            buf_append(key, (const char *)page, sizeof page);
            continue;
        }
        subscription_source src = subscription_source_of(s);
        const int64_t ring[3] = {s->cursor, src.head, src.oldest};
        buf_append(key, "h", 1);
        buf_append(key, (const char *)ring, sizeof ring);
    }
    const int64_t rest[5] = {r->fr.limit, r->fr.wait, r->fr.round, (int64_t)r->fr.transport,
                             (int64_t)r->fr.channels_in_query};
    buf_append(key, (const char *)rest, sizeof rest);
}

/* Makes m the turn's memo under key, holding the pages r's answer came from. */
static void feed_poll_memo_keep(request *r, feed_poll_memo *m, buf key)
{
    feed_poll_memo_forget(r->reg);
    m->key = key;
    m->pages = xcalloc(r->n_subs, sizeof *m->pages);
    for (size_t i = 0; i < r->n_subs; i++)
        if (r->subs[i].hist) {
            r->subs[i].hist->refs++;
            m->pages[m->n_pages++] = r->subs[i].hist;
        }
    r->reg->poll_memo = m;
}

/*
 * Sends a formatted answer: 304 when it is empty and one of the client's tags
 * is its cursor. What differs per request is added here, never kept in the
 * memo: the CORS headers (request_respond adds r->cors) and whether the
 * database is down, which is about this moment only, so such an answer is
 * not offered to a shared cache either.
 */
static void feed_poll_send(request *r, const feed_poll_memo *m)
{
    bool down = !db_is_up(r->reg->database);
    buf headers = BUF_INIT;
    const char *extra = m->headers.data;
    if (down) {
        buf_append(&headers, m->headers.data, m->headers.len);
        feed_format_database_down(&headers); /* a 304 has no body to say it in */
        extra = headers.data;
    }
    if (m->used == 0 && feed_request_etag_matches(&r->fr, m->cursor.data)) {
        request_respond(r, 304, NULL, extra, NULL, 0);
    } else {
        r->reg->stats->events_delivered += m->used;
        request_respond_cache(r, 200, "application/json",
                              m->cache_control[0] && !down ? m->cache_control : NULL, extra,
                              m->body.data, m->body.len);
    }
    buf_free(&headers);
}

/* Formats r's answer from its prepared subscriptions into a new memo. */
static feed_poll_memo *feed_poll_format(request *r, size_t total)
{
    size_t n = r->n_subs, used = 0;
    feed_view *views = xcalloc(n, sizeof *views);
    int64_t *next = xcalloc(n, sizeof *next);
    const char **texts = xcalloc(total ? total : 1, sizeof *texts);
    size_t *lens = xcalloc(total ? total : 1, sizeof *lens);
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        subscription *s = &r->subs[i];
        subscription_source src = subscription_source_of(s);
        views[i] = (feed_view){.channel = feed_channel_name(s->node.channel),
                               .head = src.head,
                               .oldest = src.oldest,
                               .events = texts + used,
                               .event_lens = lens + used};
        next[i] = s->cursor;
        const feed_event *e;
        /* --max-answer-bytes bounds the answer as limit bounds its count; the first event
         * always goes, so one larger than the budget is delivered alone (more: true). */
        while (views[i].n_events < (size_t)r->fr.limit && used < total &&
               (e = subscription_event_after(s, next[i])) != NULL &&
               (used == 0 || bytes + e->json_len <= (size_t)r->reg->cfg->max_answer_bytes)) {
            bytes += e->json_len;
            texts[used] = e->json;
            lens[used] = e->json_len;
            used++;
            views[i].n_events++;
            next[i] = e->version;
        }
        next[i] = subscription_caught_up(s, &src, next[i]);
        views[i].more = next[i] < src.head;
    }
    feed_poll_memo *m = xcalloc(1, sizeof *m);
    m->used = used;
    subscription_format_cursor(r, next, &m->cursor);
    feed_format_etag(&m->headers, m->cursor.data);
    buf link = BUF_INIT;
    bool shared = feed_poll_shareable(r);
    if (shared) {
        bool full = used > 0;
        for (size_t i = 0; i < n; i++)
            full = full && views[i].n_events == (size_t)r->fr.limit;
        if (full)
            snprintf(m->cache_control, sizeof m->cache_control,
                     "public, max-age=31536000, immutable");
        else
            snprintf(m->cache_control, sizeof m->cache_control, "public, max-age=%d",
                     r->fr.wait > 0 ? r->fr.wait : 1);
        feed_poll_next_link(r, m->cursor.data, used == 0, &link);
        buf_printf(&m->headers, "Link: <%s>; rel=\"next\"\r\n", link.data);
        /* SSE shares the URL: a cache must key on Accept too. */
        feed_format_header(&m->headers, "Vary", "Accept");
    }
    feed_format_poll_body(&m->body, views, n, r->fr.n_channels > 1, m->cursor.data,
                          shared ? link.data : NULL);
    buf_free(&link);
    free(views);
    free(next);
    free(texts);
    free(lens);
    return m;
}

/*
 * Answers a poll from prepared subscriptions, or holds a long poll that has
 * nothing new. timed_out: the wait is over, answer even when empty.
 */
static void feed_poll_answer(request *r, bool timed_out)
{
    size_t total = 0;
    for (size_t i = 0; i < r->n_subs; i++) {
        subscription_source src = subscription_source_of(&r->subs[i]);
        if (src.gone || src.ahead) {
            feed_poll_fail_gone(r, &r->subs[i], &src);
            return;
        }
        int64_t available = src.head - r->subs[i].cursor;
        total += (size_t)(available < r->fr.limit ? (available > 0 ? available : 0) : r->fr.limit);
    }
    if (total == 0 && r->fr.transport == TRANSPORT_LONG_POLL && !timed_out &&
        !r->reg->shutting_down) {
        request_set_state(r, REQ_HELD);
        return;
    }
    buf key = BUF_INIT;
    feed_poll_memo_key(r, &key);
    feed_poll_memo *m = r->reg->poll_memo;
    if (m && m->key.len == key.len && memcmp(m->key.data, key.data, key.len) == 0) {
        buf_free(&key);
        feed_poll_send(r, m);
        return;
    }
    m = feed_poll_format(r, total);
    feed_poll_memo_keep(r, m, key);
    feed_poll_send(r, m);
}

void feed_poll_evaluate(request *r)
{
    int ready = subscription_prepare_all(r);
    if (ready < 0) {
        /* An outage keeps a held poll: the channel is re-read when the database is back
         * (or the wait ends). Reads failing with the database up fail again: answer now. */
        if (r->state == REQ_HELD && !request_reads_failing(r))
            return;
        request_fail_unavailable(r);
        return;
    }
    if (ready == 0) {
        if (r->state != REQ_HELD)
            request_set_state(r, REQ_WAITING_DB);
        return;
    }
    feed_poll_answer(r, false);
}

/* The wait is over: answer with what is known, which may be nothing. */
void feed_poll_time_out(request *r)
{
    for (size_t i = 0; i < r->n_subs; i++) {
        subscription *s = &r->subs[i];
        bool usable = s->hist || (feed_channel_known(s->node.channel) && s->cursor != CURSOR_NOW &&
                                  feed_channel_covers(s->node.channel, s->cursor));
        if (!usable) {
            if (s->cursor == CURSOR_NOW) {
                request_fail_unavailable(r);
                return;
            }
            /* Nothing trustworthy is known: answer "nothing new" at the client's own cursor. */
            catchup_cancel(s->query);
            s->query = NULL;
            /* the last oldest known */
            history *h =
                catchup_page_new(s->cursor, s->cursor, feed_channel_oldest(s->node.channel));
            subscription_history_free(s->hist);
            s->hist = h;
        }
    }
    feed_poll_answer(r, true);
}
