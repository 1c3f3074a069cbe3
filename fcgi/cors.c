/*
 * cors — Access-Control-* headers and preflights for --cors-origin (see
 * cors.h).
 */
#include "cors.h"
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PREFLIGHT_MAX_AGE 600

struct cors {
    bool any; /* "*" */
    char **origins;
    size_t n;
    bool credentials;
};

/* An origin is scheme://host[:port], nothing after: what a browser sends in Origin. */
static int cors_add(cors *c, const char *item, size_t len, char *err, size_t err_len)
{
    if (len == 1 && item[0] == '*') {
        c->any = true;
        return 0;
    }
    const char *host = NULL;
    if (len > 7 && !strncmp(item, "http://", 7))
        host = item + 7;
    else if (len > 8 && !strncmp(item, "https://", 8))
        host = item + 8;
    if (!host || memchr(host, '/', len - (size_t)(host - item)) || host == item + len) {
        snprintf(err, err_len,
                 "--cors-origin: \"%.*s\" is not an origin (https://host[:port]) or *", (int)len,
                 item);
        return -1;
    }
    c->origins = xrealloc(c->origins, (c->n + 1) * sizeof *c->origins);
    c->origins[c->n++] = xstrndup(item, len);
    return 0;
}

cors *cors_new(const char *origins, bool credentials, char *err, size_t err_len)
{
    cors *c = xcalloc(1, sizeof *c);
    c->credentials = credentials;
    for (const char *p = origins ? origins : ""; *p;) {
        size_t len = strcspn(p, ", ");
        if (len > 0 && cors_add(c, p, len, err, err_len) < 0) {
            cors_free(c);
            return NULL;
        }
        p += len;
        p += strspn(p, ", ");
    }
    return c;
}

void cors_free(cors *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        free(c->origins[i]);
    free(c->origins);
    free(c);
}

static bool cors_listed(const cors *c, const char *origin)
{
    for (size_t i = 0; i < c->n; i++)
        if (!strcasecmp(c->origins[i], origin))
            return true;
    return false;
}

static bool cors_configured(const cors *c)
{
    return c->any || c->n > 0;
}

void cors_headers(const cors *c, const char *origin, bool all_public, buf *headers)
{
    if (!cors_configured(c))
        return;
    /* The answer depends on Origin whenever CORS is on: caches must key on it. */
    buf_append_str(headers, "Vary: Origin\r\n");
    if (!origin)
        return;
    if (cors_listed(c, origin)) {
        buf_printf(headers, "Access-Control-Allow-Origin: %s\r\n", origin);
        if (c->credentials)
            buf_append_str(headers, "Access-Control-Allow-Credentials: true\r\n");
    } else if (c->any && all_public) {
        buf_append_str(headers, "Access-Control-Allow-Origin: *\r\n");
    } else {
        return;
    }
    /* Pgfeed-Database: down tells a poll the server cannot deliver now (pgfeed.js: degraded). */
    buf_append_str(headers, "Access-Control-Expose-Headers: ETag, Pgfeed-Database\r\n");
}

bool cors_preflight(const cors *c, const char *origin, const char *method, buf *headers, char *why,
                    size_t why_len)
{
    if (!cors_configured(c) || !origin || !method) {
        snprintf(why, why_len,
                 "OPTIONS answers CORS preflights (Origin and Access-Control-Request-Method) for "
                 "the origins --cors-origin names");
        return false;
    }
    bool listed = cors_listed(c, origin);
    if (!listed && !c->any) {
        snprintf(why, why_len, "origin \"%.150s\" is not one --cors-origin allows", origin);
        return false;
    }
    if (strcmp(method, "GET") && strcmp(method, "HEAD") && strcmp(method, "POST")) {
        snprintf(why, why_len, "preflight for %.32s: only GET, HEAD and POST are served", method);
        return false;
    }
    buf_append_str(headers, "Vary: Origin\r\n");
    buf_printf(headers, "Access-Control-Allow-Origin: %s\r\n", listed ? origin : "*");
    if (listed && c->credentials)
        buf_append_str(headers, "Access-Control-Allow-Credentials: true\r\n");
    buf_printf(headers,
               "Access-Control-Allow-Methods: GET, HEAD, POST\r\n"
               "Access-Control-Allow-Headers: Authorization, Content-Type, If-None-Match, "
               "Last-Event-ID, Cache-Control\r\n"
               "Access-Control-Max-Age: %d\r\n",
               PREFLIGHT_MAX_AGE);
    return true;
}
