/*
 * fuzz_feed_request — libFuzzer harness for request parsing from params.
 *
 * The input is a list of CGI params, "NAME=value" separated by NUL bytes, as
 * the intake would hand them over (PATH_INFO, QUERY_STRING, HTTP_ACCEPT,
 * HTTP_IF_NONE_MATCH, HTTP_LAST_EVENT_ID, REQUEST_METHOD ...). Whatever
 * parse says, the request must be freeable, and a success must be coherent.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "feed_request.h"

typedef struct params {
    char *text; /* the input, NUL-terminated pieces */
    size_t len;
} params;

static const char *param(void *ctx, const char *name)
{
    params *p = ctx;
    size_t name_len = strlen(name);
    for (size_t at = 0; at < p->len; at += strlen(p->text + at) + 1) {
        const char *piece = p->text + at;
        if (!strncmp(piece, name, name_len) && piece[name_len] == '=')
            return piece + name_len + 1;
    }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    params p = {.text = malloc(size + 1), .len = size};
    memcpy(p.text, data, size);
    p.text[size] = '\0';
    feed_limits limits = {.max_query_length = 4096,
                          .max_channels = 16,
                          .default_limit = 100,
                          .max_limit = 1000,
                          .max_wait = 30,
                          .publish_enabled = size % 2};
    feed_request req;
    feed_error err;
    if (feed_request_parse(param, &p, &limits, &req, &err) == 0) {
        if (req.route == ROUTE_FEED && req.method != METHOD_POST &&
            (req.n_channels == 0 || req.n_channels > limits.max_channels))
            abort();
        for (size_t i = 0; i < req.n_channels; i++)
            if (!req.channels[i] || !*req.channels[i])
                abort();
    } else if (err.status < 400 || err.status > 599 || !err.detail[0]) {
        abort();
    }
    feed_request_free(&req);
    free(p.text);
    return 0;
}
