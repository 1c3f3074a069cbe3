/*
 * channel_name — the channel alphabet check (see channel_name.h).
 *
 * The test is written with explicit byte ranges rather than <ctype.h>: the
 * ctype functions follow the locale and take int, so a high byte from a URL
 * could be "alphanumeric" in one locale or undefined behaviour as a char.
 */
#include "channel_name.h"

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
