/*
 * xalloc — allocation that aborts on failure (see xalloc.h for why).
 */
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *check(void *ptr, size_t size)
{
    if (ptr == NULL && size != 0) {
        fprintf(stderr, "pgfeed: out of memory allocating %zu bytes\n", size);
        abort();
    }
    return ptr;
}

void *xmalloc(size_t size)
{
    return check(malloc(size ? size : 1), size ? size : 1);
}

void *xcalloc(size_t count, size_t size)
{
    return check(calloc(count ? count : 1, size ? size : 1), 1);
}

void *xrealloc(void *ptr, size_t size)
{
    return check(realloc(ptr, size ? size : 1), size ? size : 1);
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t len)
{
    char *copy = xmalloc(len + 1);
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}
