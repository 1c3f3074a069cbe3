/*
 * feed_request — what an HTTP request asks of pgfeed, validated.
 *
 * The responder sees CGI-style parameters (REQUEST_METHOD, PATH_INFO,
 * QUERY_STRING, HTTP_*). This module turns them into a route, the channels
 * with a cursor each, the transport (short poll, long poll, SSE) and the
 * paging limit, or into the precise 4xx a client must hear. It does no I/O,
 * so every hostile input can be tested in isolation.
 */
#ifndef PGFEED_FEED_REQUEST_H
#define PGFEED_FEED_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum feed_route {
    ROUTE_FEED,    /* GET/HEAD a feed, or POST to publish into one */
    ROUTE_HEALTH,  /* GET /_health */
    ROUTE_METRICS, /* GET /_metrics */
} feed_route;

typedef enum feed_method { METHOD_GET, METHOD_HEAD, METHOD_POST } feed_method;

typedef enum feed_transport {
    TRANSPORT_POLL,      /* answer now */
    TRANSPORT_LONG_POLL, /* wait > 0: hold until an event or the wait runs out */
    TRANSPORT_SSE,       /* Accept: text/event-stream */
} feed_transport;

typedef struct feed_limits {
    size_t max_query_length; /* QUERY_STRING bytes; beyond: 414 */
    size_t max_channels;     /* channels per request; beyond: 400 */
    int default_limit;       /* events per answer when limit= is absent */
    int max_limit;           /* limit= above it: 400 */
    int max_wait;            /* wait= is clamped to it (seconds) */
    bool publish_enabled;    /* POST allowed at all */
} feed_limits;

typedef struct feed_request {
    feed_route route;
    feed_method method;
    feed_transport transport;
    size_t n_channels;
    char **channels;  /* n_channels validated names, owned */
    int64_t *cursors; /* per channel: last version the client has, CURSOR_NOW or CURSOR_OLDEST */
    int limit;
    int wait; /* seconds, 0 unless TRANSPORT_LONG_POLL */
    /* round=: how many empty answers in a row led here (see feed_poll's next link); it only
     * makes the URL differ, so a cache never hands the same empty answer back. */
    int64_t round;
    bool channels_in_query; /* channel= parameters name them, not the path */
    /* If-None-Match's first tag (without quotes), NULL when unconditional; points into etags. */
    const char *if_none_match;
    char **etags; /* every tag of If-None-Match (at most 16), owned */
    size_t n_etags;
} feed_request;

typedef struct feed_error {
    int status;        /* 400, 404, 405, 414 */
    char detail[256];  /* a sentence naming the parameter and the problem */
    const char *allow; /* for 405: the Allow header's value (static), else NULL */
} feed_error;

/* Returns the CGI parameter called name (e.g. "HTTP_ACCEPT"), or NULL. */
typedef const char *(*feed_param_fn)(void *ctx, const char *name);

/*
 * Fills *out from the request's parameters. Returns 0, or -1 with *err set
 * (and *out left empty). Rules:
 *   - route: PATH_INFO "/_health", "/_metrics"; "/{channel}" for one channel;
 *     "/" or empty with one or more channel= parameters for several. Other
 *     "/_..." paths: 404. An invalid name: 400. No channel at all: 400.
 *   - channels: a path channel together with channel=, a name given twice,
 *     or more than max_channels: 400. Order is the request's.
 *   - method: GET and HEAD; POST only on a one-channel feed route and only
 *     when publish_enabled; anything else 405.
 *   - cursor per channel, first match wins: Last-Event-ID (SSE only, since
 *     EventSource repeats the original URL on reconnect; empty means absent),
 *     since= (a version, "now", or a cursor as in cursor.h), If-None-Match,
 *     else CURSOR_OLDEST for polls (the oldest retained event, whatever it is
 *     by the time the channel is read) and CURSOR_NOW for SSE (a new stream
 *     starts at the live edge). A bad Last-Event-ID or since= is a 400; an If-None-Match that is
 *     not a cursor for these channels is only not used as one.
 *   - etags keeps every entity-tag of If-None-Match (a list, RFC 9110
 *     section 13.1.2), cursor or not, for the 304 comparison; if_none_match
 *     is the first; "*" and malformed values leave them empty. Of the tags
 *     that are cursors, the highest version per channel is the cursor.
 *   - limit= 1..max_limit, default default_limit; wait= 0..; clamped to max_wait.
 *     since=, limit= and wait= given twice: 400.
 *   - transport: HEAD is always a poll (answered at once, no body); else SSE
 *     when Accept names text/event-stream with a weight above 0, else long
 *     poll when wait > 0, else poll.
 *   - unknown parameters are ignored (cache busters such as _=1700000000).
 *   - checked in this order: QUERY_STRING length, route, method, query
 *     encoding, channels, limit/wait, cursors. /_health and /_metrics stop
 *     after the method (no channels, no parameters read); POST stops after the
 *     channel (cursors 0, limit default_limit, TRANSPORT_POLL).
 * feed_request_free may be called on a request this left empty.
 */
int feed_request_parse(feed_param_fn param, void *ctx, const feed_limits *limits, feed_request *out,
                       feed_error *err) __attribute__((warn_unused_result));
void feed_request_free(feed_request *req);

/* True when If-None-Match listed this tag (weak comparison: W/ is ignored). */
bool feed_request_etag_matches(const feed_request *req, const char *tag);
/* True when Accept names text/event-stream and does not weigh it q=0. */
bool feed_request_accepts_sse(const char *accept);
/* True for a Content-Type of application/json, with or without parameters. */
bool feed_request_is_json(const char *content_type);

#endif
