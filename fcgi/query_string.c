/*
 * query_string — strict application/x-www-form-urlencoded decoding (see
 * query_string.h).
 *
 * A request carries a handful of parameters, so the pairs are a plain array
 * searched linearly; the caller bounds QUERY_STRING's length before parsing.
 * Names and values are decoded into their own NUL-terminated copies, which is
 * why an encoded NUL is refused: it would silently cut a value short.
 */
#include "query_string.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

typedef struct query_pair {
    char *name;
    char *value;
} query_pair;

struct query_params {
    query_pair *pairs;
    size_t n;
    size_t cap;
};

static const char MALFORMED_ESCAPE[] =
    "query string has a malformed percent-escape (% must be followed by two hex digits)";
static const char ENCODED_NUL[] = "query string contains an encoded NUL byte (%00)";

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * Decodes text[0..len) into a new string: '+' is a space, %XX a byte. The
 * decoded text is never longer than the encoded text, so one allocation of
 * len + 1 suffices. Returns NULL with *error_detail set on a bad escape.
 */
static char *decode(const char *text, size_t len, const char **error_detail)
{
    char *out = xmalloc(len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '+') {
            out[o++] = ' ';
            continue;
        }
        if (text[i] != '%') {
            out[o++] = text[i];
            continue;
        }
        int hi = len - i >= 3 ? hex_value(text[i + 1]) : -1;
        int lo = hi >= 0 ? hex_value(text[i + 2]) : -1;
        if (lo < 0 || (hi == 0 && lo == 0)) {
            *error_detail = lo < 0 ? MALFORMED_ESCAPE : ENCODED_NUL;
            free(out);
            return NULL;
        }
        out[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[o] = '\0';
    return out;
}

/* Decodes one name[=value] piece and appends it; -1 on a bad escape. */
static int add_pair(query_params *params, const char *piece, size_t len, const char **error_detail)
{
    const char *eq = memchr(piece, '=', len);
    size_t name_len = eq ? (size_t)(eq - piece) : len;
    char *name = decode(piece, name_len, error_detail);
    if (name == NULL)
        return -1;
    char *value = eq ? decode(eq + 1, len - name_len - 1, error_detail) : xstrdup("");
    if (value == NULL) {
        free(name);
        return -1;
    }
    if (params->n == params->cap) {
        params->cap = params->cap ? params->cap * 2 : 8;
        params->pairs = xrealloc(params->pairs, params->cap * sizeof *params->pairs);
    }
    params->pairs[params->n++] = (query_pair){name, value};
    return 0;
}

int query_params_parse(const char *text, query_params **out, const char **error_detail)
{
    query_params *params = xcalloc(1, sizeof *params);
    const char *p = text ? text : "";
    while (*p) {
        size_t len = strcspn(p, "&");
        /* "a=1&&b=2" and a trailing '&' are what naive URL builders produce. */
        if (len > 0 && add_pair(params, p, len, error_detail) < 0) {
            query_params_free(params);
            *out = NULL;
            return -1;
        }
        p += len;
        if (*p == '&')
            p++;
    }
    *out = params;
    return 0;
}

const char *query_params_get(const query_params *params, const char *name)
{
    return query_params_get_nth(params, name, 0);
}

size_t query_params_count(const query_params *params, const char *name)
{
    size_t count = 0;
    for (size_t i = 0; i < params->n; i++)
        if (strcmp(params->pairs[i].name, name) == 0)
            count++;
    return count;
}

const char *query_params_get_nth(const query_params *params, const char *name, size_t n)
{
    for (size_t i = 0; i < params->n; i++) {
        if (strcmp(params->pairs[i].name, name) != 0)
            continue;
        if (n == 0)
            return params->pairs[i].value;
        n--;
    }
    return NULL;
}

void query_params_free(query_params *params)
{
    if (params == NULL)
        return;
    for (size_t i = 0; i < params->n; i++) {
        free(params->pairs[i].name);
        free(params->pairs[i].value);
    }
    free(params->pairs);
    free(params);
}
