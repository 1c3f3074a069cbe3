/*
 * feed_format — header blocks, poll bodies and SSE frames (see feed_format.h).
 */
#include "feed_format.h"
#include "http_status.h"
#include "xalloc.h"

#include <inttypes.h>
#include <string.h>
#include <json-c/json.h>
#include <stdlib.h>

/* "Name: value\r\n", appended without printf: every answer has several. */
static void append_header(buf *out, const char *name, size_t name_len, const char *value)
{
    buf_append(out, name, name_len);
    buf_append_str(out, value);
    buf_append(out, "\r\n", 2);
}

#define APPEND_HEADER(out, literal, value)                                                         \
    append_header((out), literal, sizeof literal - 1, (value))

void feed_format_head_cache(buf *out, int status, const char *content_type,
                            const char *cache_control)
{
    /* Status codes are three digits (http_status knows only those). */
    char code[5] = {(char)('0' + status / 100 % 10), (char)('0' + status / 10 % 10),
                    (char)('0' + status % 10), ' ', '\0'};
    buf_append(out, "Status: ", 8);
    buf_append(out, code, 4);
    buf_append_str(out, http_status_reason(status));
    buf_append(out, "\r\n", 2);
    if (content_type)
        APPEND_HEADER(out, "Content-Type: ", content_type);
    /* Feed answers change with every publish: caches must revalidate, never reuse blindly.
     * An error is about this moment only (a 503 is over once the database is back): a
     * cache must not keep it at all. */
    if (!cache_control)
        cache_control = status >= 400 ? "no-store" : "no-cache";
    APPEND_HEADER(out, "Cache-Control: ", cache_control);
}

void feed_format_head(buf *out, int status, const char *content_type)
{
    feed_format_head_cache(out, status, content_type, NULL);
}

void feed_format_header(buf *out, const char *name, const char *value)
{
    buf_append_str(out, name);
    APPEND_HEADER(out, ": ", value);
}

void feed_format_etag(buf *out, const char *cursor)
{
    buf_append(out, "ETag: \"", 7);
    buf_append_str(out, cursor);
    buf_append(out, "\"\r\n", 3);
}

void feed_format_retry_after(buf *out, int64_t seconds)
{
    buf_printf(out, "Retry-After: %" PRId64 "\r\n", seconds);
}

void feed_format_end_head(buf *out)
{
    buf_append_str(out, "\r\n");
}

static void append_events(buf *out, const feed_view *v, bool *first)
{
    for (size_t i = 0; i < v->n_events; i++) {
        if (!*first)
            buf_append(out, ",", 1);
        *first = false;
        buf_append(out, v->events[i], v->event_lens[i]);
    }
}

/* ,"next":"<link>" when the answer names its canonical next URL. */
static void append_next(buf *out, const char *next)
{
    if (next)
        buf_printf(out, ",\"next\":\"%s\"", next);
}

void feed_format_poll_body(buf *out, const feed_view *views, size_t n_views, bool several,
                           const char *cursor, const char *next)
{
    bool first = true;
    if (!several) {
        const feed_view *v = &views[0];
        buf_printf(out,
                   "{\"channel\":\"%s\",\"head\":%" PRId64 ",\"oldest\":%" PRId64 ",\"events\":[",
                   v->channel, v->head, v->oldest);
        append_events(out, v, &first);
        buf_printf(out, "],\"more\":%s,\"cursor\":\"%s\"", v->more ? "true" : "false", cursor);
        append_next(out, next);
        buf_append_str(out, "}");
        return;
    }
    buf_append_str(out, "{\"channels\":{");
    for (size_t i = 0; i < n_views; i++)
        buf_printf(out, "%s\"%s\":{\"head\":%" PRId64 ",\"oldest\":%" PRId64 ",\"more\":%s}",
                   i ? "," : "", views[i].channel, views[i].head, views[i].oldest,
                   views[i].more ? "true" : "false");
    buf_append_str(out, "},\"events\":[");
    for (size_t i = 0; i < n_views; i++)
        append_events(out, &views[i], &first);
    buf_printf(out, "],\"cursor\":\"%s\"", cursor);
    append_next(out, next);
    buf_append_str(out, "}");
}

void feed_format_sse_event(buf *out, const char *id, const char *event_name, const char *data,
                           size_t data_len)
{
    if (id)
        buf_printf(out, "id: %s\n", id);
    if (event_name)
        buf_printf(out, "event: %s\n", event_name);
    buf_append_str(out, "data: ");
    buf_append(out, data, data_len);
    buf_append_str(out, "\n\n");
}

void feed_format_sse_event_version(buf *out, int64_t version, const char *data, size_t data_len)
{
    /* Digits written by hand, right to left: no printf on the path of every delivery. */
    char head[4 + 20 + 7];
    char *p = head + sizeof head;
    p -= 7;
    memcpy(p, "\ndata: ", 7);
    uint64_t v = version < 0 ? 0 : (uint64_t)version;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    p -= 4;
    memcpy(p, "id: ", 4);
    buf_append(out, p, (size_t)(head + sizeof head - p));
    buf_append(out, data, data_len);
    buf_append(out, "\n\n", 2);
}

struct feed_sse_memo {
    int64_t version;
    size_t data_len;
    buf frame; /* "id: <version>\ndata: <data>\n\n" */
};

feed_sse_memo *feed_sse_memo_new(void)
{
    return xcalloc(1, sizeof(feed_sse_memo));
}

void feed_sse_memo_free(feed_sse_memo *m)
{
    if (!m)
        return;
    buf_free(&m->frame);
    free(m);
}

const buf *feed_sse_memo_frame(feed_sse_memo *m, int64_t version, const char *data, size_t data_len)
{
    /* The data is the frame's last data_len bytes before the closing "\n\n". */
    if (m->frame.data && m->version == version && m->data_len == data_len &&
        memcmp(m->frame.data + m->frame.len - 2 - data_len, data, data_len) == 0)
        return &m->frame;
    buf_reset(&m->frame);
    feed_format_sse_event_version(&m->frame, version, data, data_len);
    m->version = version;
    m->data_len = data_len;
    return &m->frame;
}

void feed_format_sse_comment(buf *out, const char *text)
{
    buf_printf(out, ": %s\n\n", text);
}

void feed_format_sse_retry(buf *out, int retry_ms)
{
    buf_printf(out, "retry: %d\n\n", retry_ms);
}

void feed_format_sse_head(buf *out, int retry_ms, const char *extra_headers)
{
    /* A stream is this connection's alone: no cache may keep or share any of it. */
    feed_format_head_cache(out, 200, "text/event-stream", "no-store");
    /* nginx buffers FastCGI answers unless told otherwise, per response. */
    feed_format_header(out, "X-Accel-Buffering", "no");
    if (extra_headers)
        buf_append_str(out, extra_headers);
    feed_format_end_head(out);
    feed_format_sse_retry(out, retry_ms);
}

void feed_format_sse_auth(buf *out, const char *reason)
{
    json_object *data = json_object_new_object();
    json_object_object_add(data, "reason", json_object_new_string(reason));
    /* No id: the client's last event id stays its cursor to resume from. */
    buf_printf(out, "event: auth\ndata: %s\n\n",
               json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN));
    json_object_put(data);
}

void feed_format_sse_reset(buf *out, const char *id, const char *channel, int64_t oldest,
                           int64_t head, const char *reason)
{
    buf data = BUF_INIT;
    buf_printf(&data,
               "{\"channel\":\"%s\",\"oldest\":%" PRId64 ",\"head\":%" PRId64 ",\"reason\":\"%s\"}",
               channel, oldest, head, reason);
    feed_format_sse_event(out, id, "reset", data.data, data.len);
    buf_free(&data);
}

void feed_format_sse_status(buf *out, bool database_up)
{
    buf_printf(out, "event: status\ndata: {\"database\":\"%s\"}\n\n", database_up ? "up" : "down");
}

void feed_format_database_down(buf *out)
{
    feed_format_header(out, "Pgfeed-Database", "down");
}

void feed_format_published(buf *out, const char *channel, int64_t version)
{
    buf_printf(out, "{\"channel\":\"%s\",\"version\":%" PRId64 "}", channel, version);
}

void feed_format_health(buf *out)
{
    buf_append_str(out, "{\"status\":\"ok\",\"database\":\"up\"}");
}
