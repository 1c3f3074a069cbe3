/*
 * channel_name — what a feed channel may be called.
 *
 * Names travel in URLs, ETags, SSE ids and NOTIFY payloads, so they are kept to
 * a small alphabet: [A-Za-z0-9][A-Za-z0-9_.:-]{0,127}. Names that start with
 * '_' are therefore impossible and free for routes such as /_health.
 */
#ifndef PGFEED_CHANNEL_NAME_H
#define PGFEED_CHANNEL_NAME_H

#include <stdbool.h>
#include <stddef.h>

#define CHANNEL_NAME_MAX 128

bool channel_name_valid(const char *name, size_t len);

/*
 * True when patterns (comma-separated: a name, a prefix ending in '*', or '*'
 * alone; NULL or "" matches nothing) names the channel. Used for settings that
 * list channels, e.g. --cache-public.
 */
bool channel_name_listed(const char *patterns, const char *name);

#endif
