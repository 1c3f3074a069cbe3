/*
 * feed_poll — short and long polls: answer, hold until a channel moves, time out, 410.
 */
#include "request_private.h"
#include "feed_format.h"
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
 * Answers a poll from prepared subscriptions, or holds a long poll that has
 * nothing new. timed_out: the wait is over, answer even when empty.
 */
static void feed_poll_answer(request *r, bool timed_out)
{
    size_t n = r->n_subs;
    feed_view *views = xcalloc(n, sizeof *views);
    int64_t *next = xcalloc(n, sizeof *next);
    const char **texts = NULL;
    size_t *lens = NULL;
    size_t total = 0, used = 0, bytes = 0;
    for (size_t i = 0; i < n; i++) {
        subscription_source src = subscription_source_of(&r->subs[i]);
        if (src.gone || src.ahead) {
            feed_poll_fail_gone(r, &r->subs[i], &src);
            goto cleanup;
        }
        int64_t available = src.head - r->subs[i].cursor;
        total += (size_t)(available < r->fr.limit ? (available > 0 ? available : 0) : r->fr.limit);
    }
    if (total == 0 && r->fr.transport == TRANSPORT_LONG_POLL && !timed_out &&
        !r->reg->shutting_down) {
        request_set_state(r, REQ_HELD);
        goto cleanup;
    }
    texts = xcalloc(total ? total : 1, sizeof *texts);
    lens = xcalloc(total ? total : 1, sizeof *lens);
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
    buf cursor = BUF_INIT;
    subscription_format_cursor(r, next, &cursor);
    buf headers = BUF_INIT;
    feed_format_etag(&headers, cursor.data);
    if (!db_is_up(r->reg->database))
        feed_format_database_down(&headers); /* a 304 has no body to say it in */
    if (used == 0 && feed_request_etag_matches(&r->fr, cursor.data)) {
        request_respond(r, 304, NULL, headers.data, NULL, 0);
    } else {
        buf body = BUF_INIT;
        feed_format_poll_body(&body, views, n, r->fr.n_channels > 1, cursor.data);
        r->reg->stats->events_delivered += used;
        request_respond(r, 200, "application/json", headers.data, body.data, body.len);
        buf_free(&body);
    }
    buf_free(&headers);
    buf_free(&cursor);
cleanup:
    free(views);
    free(next);
    free(texts);
    free(lens);
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
            db_query_cancel(s->query);
            s->query = NULL;
            history *h = xcalloc(1, sizeof *h);
            h->head = s->cursor;
            h->oldest = feed_channel_oldest(s->node.channel); /* the last one known */
            subscription_history_free(s->hist);
            s->hist = h;
        }
    }
    feed_poll_answer(r, true);
}
