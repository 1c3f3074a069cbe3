/*
 * cursor — parsing and formatting the client's read position (see cursor.h).
 *
 * Cursors come back from clients in since=, If-None-Match and Last-Event-ID,
 * all of them attacker-controlled, so parsing is exact: digits only, no
 * overflow, no empty pairs. A version of "007" is accepted as 7 (PostgreSQL's
 * bigint input agrees), but cursor_format never writes leading zeros, so the
 * cursors pgfeed hands out have one spelling and compare correctly as text.
 */
#include "cursor.h"
#include "channel_name.h"
#include "xalloc.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

int cursor_parse_version(const char *text, size_t len, int64_t *out)
{
    if (len == 0)
        return -1;
    int64_t value = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return -1;
        int digit = text[i] - '0';
        if (value > (INT64_MAX - digit) / 10)
            return -1;
        value = value * 10 + digit;
    }
    *out = value;
    return 0;
}

static size_t find_channel(const char *name, size_t len, size_t n_channels,
                           const char *const *channels)
{
    for (size_t i = 0; i < n_channels; i++)
        if (strlen(channels[i]) == len && memcmp(channels[i], name, len) == 0)
            return i;
    return n_channels;
}

/*
 * The name=version pairs form. Names cannot contain '=' or ',', so a pair is
 * split at its only '='. A requested channel named twice is refused rather
 * than guessed at; unrequested names are only checked for shape.
 */
static int parse_pairs(const char *text, size_t len, size_t n_channels, const char *const *channels,
                       int64_t *versions, bool *seen)
{
    const char *end = text + len;
    const char *p = text;
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *pair_end = comma ? comma : end;
        const char *eq = memchr(p, '=', (size_t)(pair_end - p));
        if (eq == NULL)
            return -1;
        size_t name_len = (size_t)(eq - p);
        int64_t version;
        if (!channel_name_valid(p, name_len) ||
            cursor_parse_version(eq + 1, (size_t)(pair_end - eq - 1), &version) < 0)
            return -1;
        size_t i = find_channel(p, name_len, n_channels, channels);
        if (i < n_channels) {
            if (seen[i])
                return -1;
            seen[i] = true;
            versions[i] = version;
        }
        if (comma == NULL)
            return 0;
        p = comma + 1;
    }
}

int cursor_parse(const char *text, size_t len, size_t n_channels, const char *const *channels,
                 int64_t *versions)
{
    if (memchr(text, '=', len) == NULL) {
        int64_t version;
        if (cursor_parse_version(text, len, &version) < 0)
            return -1;
        for (size_t i = 0; i < n_channels; i++)
            versions[i] = version;
        return 0;
    }
    /* Parse into scratch space so versions is untouched when the text is bad. */
    int64_t *scratch = xcalloc(n_channels, sizeof *scratch);
    bool *seen = xcalloc(n_channels, sizeof *seen);
    int rc = parse_pairs(text, len, n_channels, channels, scratch, seen);
    if (rc == 0)
        memcpy(versions, scratch, n_channels * sizeof *versions);
    free(seen);
    free(scratch);
    return rc;
}

void cursor_format(buf *out, size_t n_channels, const char *const *channels,
                   const int64_t *versions)
{
    for (size_t i = 0; i < n_channels; i++)
        assert(versions[i] >= 0 && "resolve CURSOR_NOW before formatting a cursor");
    if (n_channels == 1) {
        buf_printf(out, "%" PRId64, versions[0]);
        return;
    }
    for (size_t i = 0; i < n_channels; i++)
        buf_printf(out, "%s%s=%" PRId64, i ? "," : "", channels[i], versions[i]);
}

static const char *skip_list_space(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == ',')
        p++;
    return p;
}

/* etagc in RFC 9110: visible ASCII but '"', or obs-text. */
static bool is_etagc(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x7e) || c >= 0x80;
}

bool cursor_from_if_none_match(const char *header, const char **tag, size_t *tag_len)
{
    if (header == NULL)
        return false;
    /* A list may begin with empty elements (RFC 9110 section 5.6.1). */
    const char *p = skip_list_space(header);
    if (strncmp(p, "W/", 2) == 0)
        p += 2;
    if (*p != '"')
        return false; /* "*", empty, or not an entity-tag */
    const char *start = ++p;
    while (is_etagc((unsigned char)*p))
        p++;
    if (*p != '"')
        return false; /* unterminated, or a byte no tag may hold */
    const char *after = p + 1;
    while (*after == ' ' || *after == '\t')
        after++;
    if (*after != '\0' && *after != ',')
        return false;
    *tag = start;
    *tag_len = (size_t)(p - start);
    return true;
}
