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

#endif
