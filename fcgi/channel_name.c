/*
 * channel_name — the channel alphabet check (see channel_name.h).
 *
 * The test is written with explicit byte ranges rather than <ctype.h>: the
 * ctype functions follow the locale and take int, so a high byte from a URL
 * could be "alphanumeric" in one locale or undefined behaviour as a char.
 */
#include "channel_name.h"

#include <string.h>

static bool is_alnum(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool channel_name_valid(const char *name, size_t len)
{
    if (name == NULL || len == 0 || len > CHANNEL_NAME_MAX)
        return false;
    /* The first character is never punctuation, which keeps '_' free for routes. */
    if (!is_alnum((unsigned char)name[0]))
        return false;
    for (size_t i = 1; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!is_alnum(c) && c != '_' && c != '.' && c != ':' && c != '-')
            return false;
    }
    return true;
}

bool channel_name_listed(const char *patterns, const char *name)
{
    size_t name_len = strlen(name);
    for (const char *p = patterns; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 0 && p[len - 1] == '*') {
            if (name_len >= len - 1 && strncmp(name, p, len - 1) == 0)
                return true;
        } else if (len == name_len && strncmp(name, p, len) == 0) {
            return true;
        }
        p = end ? end + 1 : p + len;
    }
    return false;
}
