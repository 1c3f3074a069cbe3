/*
 * buf — a growable byte buffer.
 *
 * Response bodies, SSE frames and pending output are all built by appending;
 * one small type keeps every module from re-doing length bookkeeping. The data
 * is always NUL-terminated so it can be handed to C string APIs.
 */
#ifndef PGFEED_BUF_H
#define PGFEED_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct buf {
    char *data; /* NUL-terminated; NULL until the first append */
    size_t len;
    size_t cap;
} buf;

#define BUF_INIT                                                                                   \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void buf_append(buf *b, const char *data, size_t len);
void buf_append_str(buf *b, const char *s);
void buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes (already written out). */
void buf_consume(buf *b, size_t n);
void buf_reset(buf *b);
/* Releases the memory; b can be appended to again afterwards. */
void buf_free(buf *b);

#endif
