/*
 * cursor — the position a client has read up to, as text.
 *
 * A cursor is what the client sends back: the ETag of a poll answer, the id of
 * an SSE event, the since parameter. For one channel it is the bare version
 * ("41"); for several it names each ("orders=41,user:42=7", channels in request
 * order), so one connection can carry every feed a page follows.
 */
#ifndef PGFEED_CURSOR_H
#define PGFEED_CURSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* A cursor version meaning "whatever the head is when the request is served". */
#define CURSOR_NOW INT64_C(-1)
/* A poll that named no cursor at all: from the oldest retained event, so never "gone". */
#define CURSOR_OLDEST INT64_C(-2)

/*
 * Parses a non-negative decimal bigint with no sign, spaces or leading '+';
 * more than INT64_MAX is an error. Leading zeros are accepted ("007" is 7);
 * cursor_format never writes them.
 */
int cursor_parse_version(const char *text, size_t len, int64_t *out)
    __attribute__((warn_unused_result));

/*
 * Parses text into versions[i] for channels[i]. Accepted forms: a bare version
 * (applies to every channel), or comma-separated name=version pairs; a channel
 * the pairs do not name gets 0, a pair naming a channel not in the request is
 * ignored (the page changed its subscriptions). Returns -1 for anything else,
 * including empty pairs, spaces, and a requested channel named twice; versions
 * is then left as it was.
 */
int cursor_parse(const char *text, size_t len, size_t n_channels, const char *const *channels,
                 int64_t *versions) __attribute__((warn_unused_result));

/*
 * Appends the cursor text (no quotes) for these versions. Every version must
 * be a position (>= 0): resolve CURSOR_NOW to the head first (asserted).
 */
void cursor_format(buf *out, size_t n_channels, const char *const *channels,
                   const int64_t *versions);

/*
 * Finds the first entity-tag in an If-None-Match header value ("41",
 * W/"41", or a comma-separated list) and returns its opaque text without
 * quotes (*tag points into header). Only the first tag is looked at: returns
 * false for "*", for NULL or empty, and when the first tag is malformed.
 */
bool cursor_from_if_none_match(const char *header, const char **tag, size_t *tag_len);

#endif
