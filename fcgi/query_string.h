/*
 * query_string — decoding application/x-www-form-urlencoded text.
 *
 * QUERY_STRING arrives percent-encoded and may repeat a name (channel=a&channel=b).
 * Parsing is strict: a malformed escape or an encoded NUL is an error the
 * client hears about, never something silently repaired.
 */
#ifndef PGFEED_QUERY_STRING_H
#define PGFEED_QUERY_STRING_H

#include <stddef.h>

typedef struct query_params query_params;

/*
 * Parses text (may be NULL or empty). '+' is a space; empty pieces ("a=1&&b=2")
 * are skipped. On success *out owns the decoded pairs; on failure (a bad or
 * truncated %XX, or %00) returns -1, sets *out to NULL and points
 * *error_detail at a static sentence.
 */
int query_params_parse(const char *text, query_params **out, const char **error_detail)
    __attribute__((warn_unused_result));
/* First value for name, or NULL. A name without '=' has the value "". */
const char *query_params_get(const query_params *params, const char *name);
size_t query_params_count(const query_params *params, const char *name);
/* The n-th (0-based) value for name, or NULL. */
const char *query_params_get_nth(const query_params *params, const char *name, size_t n);
/* params can be NULL. */
void query_params_free(query_params *params);

#endif
