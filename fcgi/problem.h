/*
 * problem — RFC 9457 problem+json error bodies.
 *
 * Every failed request is answered with one of these, so a client (or a person
 * with curl) always learns which parameter was wrong and why.
 */
#ifndef PGFEED_PROBLEM_H
#define PGFEED_PROBLEM_H

#include <json-c/json.h>

#include "buf.h"

/*
 * Appends {"type":"about:blank","title":<reason>,"status":..,"detail":..} plus
 * every member of extra (may be NULL; not taken over, the caller still owns it).
 * A member of extra named like a standard member is left out, and an extra
 * that is not an object is ignored. detail is copied as is: keep it UTF-8.
 */
void problem_body(buf *out, int status, const char *detail, const json_object *extra);
/* The same with a type URI and title of pgfeed's own, for a condition a client must tell
 * apart from others of the same status (e.g. PROBLEM_TYPE_BUSY). */
void problem_body_typed(buf *out, int status, const char *type, const char *title,
                        const char *detail, const json_object *extra);

/* 503: pgfeed itself is busy loading channels (--load-queue), the database is fine. */
#define PROBLEM_TYPE_BUSY "tag:pgfeed,2026:busy-loading-channels"

#endif
