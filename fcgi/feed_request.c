/*
 * feed_request — turning CGI parameters into a validated request (see
 * feed_request.h).
 *
 * Every check that can fail a request lives here, before any I/O, so the
 * responder only ever sees channels that passed channel_name_valid, cursors
 * that are numbers, and limits inside the configured range. The checks run
 * cheapest first: the query string's length before it is decoded, the route
 * before the method (a 404 says more than a 405 on a path that does not
 * exist), the channel count before any name is copied.
 *
 * Details echo client input through echo_text, because they end up in JSON
 * and log lines, which must not carry control bytes or invalid UTF-8.
 */
#include "feed_request.h"
#include "channel_name.h"
#include "cursor.h"
#include "query_string.h"
#include "xalloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NAME_RULE                                                                                  \
    "names are 1 to 128 characters of A-Z a-z 0-9 _ . : - and start with a letter or digit"
/* If-None-Match tags looked at; a longer list is cut (the query length bounds nothing here). */
#define MAX_ETAGS 16
#define ALLOW_READ "GET, HEAD"
#define ALLOW_READ_PUBLISH "GET, HEAD, POST"

/* Client text echoed in a detail is cut to this many bytes, leaving room for the sentence. */
#define ECHO_MAX 60

typedef struct echo_buf {
    char text[ECHO_MAX + sizeof "..."];
} echo_buf;

/*
 * Copies client text for a detail: printable ASCII stays, any other byte (and
 * '"' and '\', which would make the quoting ambiguous) becomes \xHH, and text
 * longer than ECHO_MAX ends in "...".
 */
static const char *echo_text(echo_buf *e, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool plain = c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
        if (o + (plain ? 1 : 4) > ECHO_MAX) {
            memcpy(e->text + o, "...", sizeof "...");
            return e->text;
        }
        if (plain) {
            e->text[o++] = (char)c;
        } else {
            e->text[o++] = '\\';
            e->text[o++] = 'x';
            e->text[o++] = hex[c >> 4];
            e->text[o++] = hex[c & 15];
        }
    }
    e->text[o] = '\0';
    return e->text;
}

static int fail(feed_error *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fills *err and returns -1, so a check can end with `return fail(...)`. */
static int fail(feed_error *err, int status, const char *fmt, ...)
{
    va_list ap;
    err->status = status;
    va_start(ap, fmt);
    /* vsnprintf truncates a long echo safely; the sentence is what matters. */
    vsnprintf(err->detail, sizeof err->detail, fmt, ap);
    va_end(ap);
    return -1;
}

/*
 * Parses a count such as limit= or wait=: digits only. Too many digits for an
 * int64 is still a count, just a huge one, so it saturates and the range
 * check (or the clamp) decides.
 */
static int parse_count(const char *text, int64_t *out)
{
    size_t len = strlen(text);
    if (cursor_parse_version(text, len, out) == 0)
        return 0;
    if (len > 0 && strspn(text, "0123456789") == len) {
        *out = INT64_MAX;
        return 0;
    }
    return -1;
}

/* Reads a parameter that may be given at most once; a repeat is ambiguous, so it is a 400. */
static int single_param(const query_params *q, const char *name, const char **value,
                        feed_error *err)
{
    if (query_params_count(q, name) > 1)
        return fail(err, 400, "%s is given more than once", name);
    *value = query_params_get(q, name);
    return 0;
}

/*
 * Decides the route from PATH_INFO and checks the method against it. On a
 * one-channel feed route *path_channel points into PATH_INFO.
 */
static int parse_route(feed_param_fn param, void *ctx, const feed_limits *limits, feed_request *out,
                       const char **path_channel, feed_error *err)
{
    echo_buf e;
    const char *path = param(ctx, "PATH_INFO");
    if (path == NULL || *path == '\0')
        path = "/";
    *path_channel = NULL;
    out->route = ROUTE_FEED;
    if (strcmp(path, "/_health") == 0) {
        out->route = ROUTE_HEALTH;
    } else if (strcmp(path, "/_metrics") == 0) {
        out->route = ROUTE_METRICS;
    } else if (path[0] != '/' || path[1] == '_') {
        return fail(err, 404, "no route for \"%s\"", echo_text(&e, path, strlen(path)));
    } else if (path[1] != '\0') {
        size_t len = strlen(path + 1);
        if (!channel_name_valid(path + 1, len))
            return fail(err, 400, "invalid channel name \"%s\" in the path; " NAME_RULE,
                        echo_text(&e, path + 1, len));
        *path_channel = path + 1;
    }

    bool publish_route = *path_channel != NULL && limits->publish_enabled;
    const char *method = param(ctx, "REQUEST_METHOD");
    if (method == NULL)
        method = "";
    if (strcmp(method, "GET") == 0) {
        out->method = METHOD_GET;
    } else if (strcmp(method, "HEAD") == 0) {
        out->method = METHOD_HEAD;
    } else if (strcmp(method, "POST") == 0 && publish_route) {
        out->method = METHOD_POST;
    } else {
        err->allow = publish_route ? ALLOW_READ_PUBLISH : ALLOW_READ;
        if (strcmp(method, "POST") != 0)
            return fail(err, 405, "method \"%s\" is not allowed; use %s",
                        echo_text(&e, method, strlen(method)),
                        publish_route ? "GET, HEAD or POST" : "GET or HEAD");
        if (!limits->publish_enabled)
            return fail(err, 405, "POST is not allowed: publishing is disabled on this server");
        if (out->route != ROUTE_FEED)
            return fail(err, 405, "POST is not allowed on %s; use GET or HEAD", path);
        return fail(err, 405, "POST publishes to one channel; use POST /{channel}");
    }
    return 0;
}

/* Fills out->channels from the path or the channel= parameters, each validated once. */
static int resolve_channels(const query_params *q, const char *path_channel,
                            const feed_limits *limits, feed_request *out, feed_error *err)
{
    size_t n_params = query_params_count(q, "channel");
    size_t n = path_channel ? 1 : n_params;
    if (path_channel && n_params > 0)
        return fail(err, 400, "use either /{channel} or channel= parameters, not both");
    if (n == 0)
        return fail(err, 400, "no channel given; request /{channel} or add channel= parameters");
    if (n > limits->max_channels)
        return fail(err, 400, "too many channels (%zu); at most %zu are allowed per request", n,
                    limits->max_channels);

    out->channels = xcalloc(n, sizeof *out->channels);
    out->cursors = xcalloc(n, sizeof *out->cursors);
    out->n_channels = n;
    out->channels_in_query = path_channel == NULL;
    if (path_channel) {
        out->channels[0] = xstrdup(path_channel);
        return 0;
    }
    echo_buf e;
    for (size_t i = 0; i < n; i++) {
        const char *name = query_params_get_nth(q, "channel", i);
        size_t len = strlen(name);
        if (!channel_name_valid(name, len))
            return fail(err, 400,
                        "channel parameter \"%s\" is not a valid channel name; " NAME_RULE,
                        echo_text(&e, name, len));
        /* n is capped by max_channels, so the quadratic scan stays small. */
        for (size_t j = 0; j < i; j++)
            if (strcmp(out->channels[j], name) == 0)
                return fail(err, 400, "channel \"%s\" is given more than once", name);
        out->channels[i] = xstrdup(name);
    }
    return 0;
}

/* Skips optional white space (RFC 9110 OWS). */
static const char *skip_ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* True when [p, end) is a weight of zero: "0", "0.", "0.0", ... (RFC 9110 section 12.4.2). */
static bool qvalue_is_zero(const char *p, const char *end)
{
    if (p == end || *p != '0')
        return false;
    p++;
    if (p < end && *p == '.')
        p++;
    while (p < end && *p == '0')
        p++;
    return p == end;
}

/*
 * True when Accept names text/event-stream with a weight above zero. Only
 * that media range counts: the wildcards (any type, any text type) are what
 * any fetch sends, and must not turn a poll into a stream. Parameters other
 * than q are ignored.
 */
bool feed_request_accepts_sse(const char *accept)
{
    static const char sse[] = "text/event-stream";
    for (const char *p = accept; p && *p;) {
        p = skip_ows(p);
        const char *end = p + strcspn(p, ",");
        const char *type_end = p + strcspn(p, ";, \t");
        bool named =
            (size_t)(type_end - p) == sizeof sse - 1 && strncasecmp(p, sse, sizeof sse - 1) == 0;
        bool refused = false;
        for (const char *param = type_end; named && param < end;) {
            param = skip_ows(param);
            if (*param == ';')
                param = skip_ows(param + 1);
            const char *param_end = param + strcspn(param, ";,");
            const char *value_end = param_end;
            while (value_end > param && (value_end[-1] == ' ' || value_end[-1] == '\t'))
                value_end--;
            if ((param[0] == 'q' || param[0] == 'Q') && param[1] == '=')
                refused = qvalue_is_zero(param + 2, value_end);
            param = param_end;
        }
        if (named && !refused)
            return true;
        p = *end ? end + 1 : end;
    }
    return false;
}

bool feed_request_is_json(const char *content_type)
{
    static const char json[] = "application/json";
    if (content_type == NULL)
        return false;
    const char *p = skip_ows(content_type);
    if (strncasecmp(p, json, sizeof json - 1) != 0)
        return false;
    p = skip_ows(p + sizeof json - 1);
    return *p == '\0' || *p == ';';
}

bool feed_request_etag_matches(const feed_request *req, const char *tag)
{
    for (size_t i = 0; i < req->n_etags; i++)
        if (strcmp(req->etags[i], tag) == 0)
            return true;
    return false;
}

/* limit=, wait= and the transport they and Accept select. */
static int parse_paging(feed_param_fn param, void *ctx, const query_params *q,
                        const feed_limits *limits, feed_request *out, feed_error *err)
{
    const char *limit_text = NULL, *wait_text = NULL, *round_text = NULL;
    if (single_param(q, "limit", &limit_text, err) < 0 ||
        single_param(q, "wait", &wait_text, err) < 0 ||
        single_param(q, "round", &round_text, err) < 0)
        return -1;
    if (round_text != NULL && parse_count(round_text, &out->round) < 0)
        return fail(err, 400, "round must be a non-negative integer");

    int64_t value;
    out->limit = limits->default_limit;
    if (limit_text != NULL) {
        if (parse_count(limit_text, &value) < 0 || value < 1 || value > limits->max_limit)
            return fail(err, 400, "limit must be an integer from 1 to %d", limits->max_limit);
        out->limit = (int)value;
    }
    int64_t wait = 0;
    if (wait_text != NULL && parse_count(wait_text, &wait) < 0)
        return fail(err, 400, "wait must be a non-negative integer (seconds)");
    if (wait > limits->max_wait)
        wait = limits->max_wait > 0 ? limits->max_wait : 0;

    /* HEAD is answered at once, without a body: never a stream, never held. */
    if (out->method == METHOD_HEAD)
        out->transport = TRANSPORT_POLL;
    else if (feed_request_accepts_sse(param(ctx, "HTTP_ACCEPT")))
        out->transport = TRANSPORT_SSE;
    else if (wait > 0)
        out->transport = TRANSPORT_LONG_POLL;
    else
        out->transport = TRANSPORT_POLL;
    out->wait = out->transport == TRANSPORT_LONG_POLL ? (int)wait : 0;
    return 0;
}

/*
 * Sets a cursor per channel. The sources are applied lowest priority first,
 * each overwriting the last, so since= is validated even when Last-Event-ID
 * wins; cursor_parse leaves the versions alone when it fails.
 */
static int resolve_cursors(feed_param_fn param, void *ctx, const query_params *q, feed_request *out,
                           feed_error *err)
{
    size_t n = out->n_channels;
    const char *const *names = (const char *const *)out->channels;
    bool sse = out->transport == TRANSPORT_SSE;
    /* A new stream starts at the live edge; a poll with no cursor starts at the oldest. */
    for (size_t i = 0; i < n; i++)
        out->cursors[i] = sse ? CURSOR_NOW : CURSOR_OLDEST;

    /*
     * If-None-Match may list several tags (a cache holding several answers):
     * every one counts for the 304, and of those that are our cursors the
     * newest version per channel is where the poll continues. Tags from
     * something else are not our cursor, and not an error.
     */
    const char *tag;
    size_t tag_len;
    const char *list = param(ctx, "HTTP_IF_NONE_MATCH");
    int64_t *parsed = xcalloc(n, sizeof *parsed);
    bool any_cursor = false;
    while (out->n_etags < MAX_ETAGS && cursor_from_if_none_match(list, &tag, &tag_len)) {
        out->etags = xrealloc(out->etags, (out->n_etags + 1) * sizeof *out->etags);
        out->etags[out->n_etags++] = xstrndup(tag, tag_len);
        if (cursor_parse(tag, tag_len, n, names, parsed) == 0) {
            for (size_t i = 0; i < n; i++)
                if (!any_cursor || parsed[i] > out->cursors[i])
                    out->cursors[i] = parsed[i];
            any_cursor = true;
        }
        list = strchr(tag + tag_len + 1, ','); /* the tag's closing quote, then ',' or the end */
        if (list == NULL)
            break;
    }
    free(parsed);
    out->if_none_match = out->n_etags ? out->etags[0] : NULL;

    const char *since = NULL;
    if (single_param(q, "since", &since, err) < 0)
        return -1;
    if (since != NULL && strcmp(since, "now") == 0) {
        for (size_t i = 0; i < n; i++)
            out->cursors[i] = CURSOR_NOW;
    } else if (since != NULL && cursor_parse(since, strlen(since), n, names, out->cursors) < 0) {
        return fail(err, 400, "since must be a non-negative integer, \"now\", or a cursor");
    }

    /* EventSource sends no Last-Event-ID until an event had an id; empty means none. */
    const char *last_id = sse ? param(ctx, "HTTP_LAST_EVENT_ID") : NULL;
    if (last_id != NULL && *last_id != '\0' &&
        cursor_parse(last_id, strlen(last_id), n, names, out->cursors) < 0)
        return fail(err, 400,
                    "Last-Event-ID must be a non-negative integer or a cursor for these channels");
    return 0;
}

int feed_request_parse(feed_param_fn param, void *ctx, const feed_limits *limits, feed_request *out,
                       feed_error *err)
{
    query_params *q = NULL;
    const char *path_channel;
    const char *detail;
    int rc = -1;

    memset(out, 0, sizeof *out);
    memset(err, 0, sizeof *err);
    out->limit = limits->default_limit;

    const char *query = param(ctx, "QUERY_STRING");
    if (query == NULL)
        query = "";
    size_t query_len = strlen(query);
    if (query_len > limits->max_query_length) {
        fail(err, 414, "query string is %zu bytes long; at most %zu are accepted", query_len,
             limits->max_query_length);
        goto cleanup;
    }
    if (parse_route(param, ctx, limits, out, &path_channel, err) < 0)
        goto cleanup;
    if (out->route != ROUTE_FEED) {
        rc = 0; /* health and metrics take no parameters */
        goto cleanup;
    }
    if (query_params_parse(query, &q, &detail) < 0) {
        fail(err, 400, "%s", detail);
        goto cleanup;
    }
    if (resolve_channels(q, path_channel, limits, out, err) < 0)
        goto cleanup;
    if (out->method == METHOD_POST) {
        rc = 0; /* publishing reads a body, not a cursor */
        goto cleanup;
    }
    if (parse_paging(param, ctx, q, limits, out, err) < 0 ||
        resolve_cursors(param, ctx, q, out, err) < 0)
        goto cleanup;
    rc = 0;

cleanup:
    query_params_free(q);
    if (rc < 0)
        feed_request_free(out);
    return rc;
}

void feed_request_free(feed_request *req)
{
    for (size_t i = 0; i < req->n_channels; i++)
        free(req->channels[i]);
    free(req->channels);
    free(req->cursors);
    for (size_t i = 0; i < req->n_etags; i++)
        free(req->etags[i]);
    free(req->etags);
    memset(req, 0, sizeof *req);
}
