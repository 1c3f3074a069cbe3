/*
 * feed_format — the bytes of every answer but problem+json: CGI header blocks,
 * the JSON bodies of a poll, a publish and /_health, and SSE frames.
 *
 * Event JSON is built once by PostgreSQL (pgfeed.read) and only concatenated
 * here, so an event delivered to 8,000 clients is never re-encoded. Channel
 * names are validated to a JSON-safe alphabet before they get this far.
 */
#ifndef PGFEED_FEED_FORMAT_H
#define PGFEED_FEED_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef struct feed_view {
    const char *channel;
    int64_t head;
    int64_t oldest;
    bool more;
    size_t n_events;
    const char *const *events; /* event JSON texts */
    const size_t *event_lens;
} feed_view;

/* "Status: 200 OK\r\nContent-Type: ...\r\n" and the headers every answer carries;
 * Cache-Control is no-cache, or no-store for an error (status >= 400). */
void feed_format_head(buf *out, int status, const char *content_type);
/* The same with the Cache-Control value given (NULL: as feed_format_head). */
void feed_format_head_cache(buf *out, int status, const char *content_type,
                            const char *cache_control);
void feed_format_header(buf *out, const char *name, const char *value);
/* ETag: "<cursor>" — the cursor the client should send next. */
void feed_format_etag(buf *out, const char *cursor);
void feed_format_retry_after(buf *out, int64_t seconds);
/* Ends the header block. */
void feed_format_end_head(buf *out);

/* 201's body: {"channel","version"}. */
void feed_format_published(buf *out, const char *channel, int64_t version);
/* /_health's body once the database answered. */
void feed_format_health(buf *out);

/*
 * One channel: {"channel","head","oldest","events":[...],"more","cursor"[,"next"]}.
 * Several: {"channels":{name:{"head","oldest","more"}},"events":[...],"cursor"[,"next"]}.
 * next (NULL: left out) is the canonical URL to poll next, JSON-safe (see feed_poll).
 */
void feed_format_poll_body(buf *out, const feed_view *views, size_t n_views, bool several,
                           const char *cursor, const char *next);

/* "id: <id>\n[event: <name>\n]data: <data>\n\n"; data must hold no newline. */
void feed_format_sse_event(buf *out, const char *id, const char *event_name, const char *data,
                           size_t data_len);
/*
 * The frame of one event on a one-channel stream, whose id is the bare version:
 * "id: <version>\ndata: <data>\n\n" (version ≥ 0; data holds no newline). The
 * same bytes for every stream at that cursor, so a fan-out formats it once.
 */
void feed_format_sse_event_version(buf *out, int64_t version, const char *data, size_t data_len);

/*
 * The last one-channel event frame formatted: a fan-out formats each event
 * once and copies the same bytes into every stream at that cursor. It is
 * matched by content (version and data), never by an event's address, so an
 * event freed and another allocated where it was cannot get the old frame.
 */
typedef struct feed_sse_memo feed_sse_memo;
feed_sse_memo *feed_sse_memo_new(void);
void feed_sse_memo_free(feed_sse_memo *m); /* NULL is fine */
/* feed_format_sse_event_version's frame for (version, data), formatted only when it differs. */
const buf *feed_sse_memo_frame(feed_sse_memo *m, int64_t version, const char *data,
                               size_t data_len);
/* A comment line, which EventSource ignores: keeps proxies from timing out. */
void feed_format_sse_comment(buf *out, const char *text);
void feed_format_sse_retry(buf *out, int retry_ms);
/* What a stream sends first: the 200 header block (plus extra_headers, may be NULL),
 * unbuffered by nginx, then retry:. */
void feed_format_sse_head(buf *out, int retry_ms, const char *extra_headers);
/* "event: auth" with {"reason"}: the stream ends because its authorization ran out. */
void feed_format_sse_auth(buf *out, const char *reason);
/*
 * "event: reset" with {"channel","oldest","head","reason"}: the client's
 * cursor is gone (reason "pruned") or beyond the head ("reset").
 */
void feed_format_sse_reset(buf *out, const char *id, const char *channel, int64_t oldest,
                           int64_t head, const char *reason);
/*
 * "event: status" with {"database":"down"} or {"database":"up"}: whether
 * pgfeed can reach PostgreSQL, so a client can tell a quiet feed from one
 * that cannot deliver. No id: the client's cursor does not move.
 */
void feed_format_sse_status(buf *out, bool database_up);
/* The header that says the same on a poll or 503 answered while the database is down. */
void feed_format_database_down(buf *out);

#endif
