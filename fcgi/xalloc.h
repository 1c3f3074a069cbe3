/*
 * xalloc — allocation that cannot fail.
 *
 * A responder that runs out of memory cannot answer anyone correctly, so
 * allocation failure aborts the process (the front server restarts it) instead
 * of threading NULL checks through every caller.
 */
#ifndef PGFEED_XALLOC_H
#define PGFEED_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t len);

#endif
