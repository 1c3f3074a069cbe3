/*
 * cors — which other origins' pages may read pgfeed's answers (--cors-origin):
 * the Access-Control-* headers of an answer, and preflight OPTIONS.
 *
 * An origin listed by name gets its own name back, with credentials when a
 * cookie carries the token; "*" covers only channels open to anyone, and never
 * with credentials, since the answer would then be the same for every reader.
 */
#ifndef PGFEED_CORS_H
#define PGFEED_CORS_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

typedef struct cors cors;

/*
 * origins: --cors-origin, comma-separated https://host[:port] or "*" (NULL or
 * "": CORS off). credentials: a token cookie is configured. NULL with a
 * sentence in err for an item that is not an origin.
 */
cors *cors_new(const char *origins, bool credentials, char *err, size_t err_len)
    __attribute__((warn_unused_result));
void cors_free(cors *c);

/*
 * Appends Access-Control-Allow-Origin (and -Credentials, Vary, Expose-Headers)
 * to headers when origin (the request's Origin, NULL when none) is allowed.
 * all_public: every channel of the request is open to anyone.
 */
void cors_headers(const cors *c, const char *origin, bool all_public, buf *headers);
/*
 * A preflight for origin and method (Access-Control-Request-Method): true with
 * the headers appended, or false with the reason in why.
 */
bool cors_preflight(const cors *c, const char *origin, const char *method, buf *headers, char *why,
                    size_t why_len) __attribute__((warn_unused_result));

#endif
