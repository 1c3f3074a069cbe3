/*
 * authz — read and publish rules, and the cache of pgfeed.authorize answers
 * (see authz.h).
 *
 * The cache is json-c's linkhash (seeded at random, so chosen channel names
 * cannot pile into one bucket), which also keeps its entries in insertion
 * order: the head is the oldest answer, the one to drop when full.
 */
#include "authz.h"
#include "channel_name.h"
#include "xalloc.h"

#include <json-c/linkhash.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USER_TOKEN "{user}"
#define USER_TOKEN_LEN (sizeof USER_TOKEN - 1)

typedef struct pattern_list {
    char **items;
    size_t n;
} pattern_list;

typedef struct cache_entry {
    int64_t expires_ms;
    bool allowed;
    char key[]; /* channel '\n' principal: a channel has no '\n', so the split is unambiguous */
} cache_entry;

struct authz {
    pattern_list allow, allow_user, publish_allow_user;
    bool sql;
    int64_t ttl_ms;
    size_t cache_max;
    struct lh_table *cache;
};

static bool is_channel_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == ':' || c == '-';
}

bool authz_principal_usable(const char *principal)
{
    if (!principal || !*principal || strlen(principal) > CHANNEL_NAME_MAX)
        return false;
    for (const unsigned char *p = (const unsigned char *)principal; *p; p++)
        if (*p == ':' || !is_channel_char(*p))
            return false;
    return true;
}

bool authz_pattern_valid(const char *pattern, bool user_allowed)
{
    size_t len = strlen(pattern);
    if (len == 0 || len > CHANNEL_NAME_MAX + 16)
        return false;
    if (!strcmp(pattern, "*"))
        return true;
    /* Check the pattern as the channel it becomes for a one-letter user. */
    char probe[CHANNEL_NAME_MAX + 17];
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        if (!strncmp(pattern + i, USER_TOKEN, USER_TOKEN_LEN)) {
            if (!user_allowed)
                return false;
            probe[n++] = 'u';
            i += USER_TOKEN_LEN;
        } else if (pattern[i] == '*') {
            if (i + 1 != len)
                return false; /* '*' only at the end: a prefix */
            i++;
        } else {
            if (!is_channel_char((unsigned char)pattern[i]))
                return false;
            probe[n++] = pattern[i++];
        }
    }
    return n > 0 && is_channel_char((unsigned char)probe[0]) && probe[0] != '_' &&
           probe[0] != '.' && probe[0] != ':' && probe[0] != '-';
}

bool authz_pattern_match(const char *pattern, const char *user, const char *channel)
{
    const char *c = channel;
    for (const char *p = pattern; *p;) {
        if (!strncmp(p, USER_TOKEN, USER_TOKEN_LEN)) {
            if (!authz_principal_usable(user))
                return false;
            size_t ulen = strlen(user);
            if (strncmp(c, user, ulen) != 0)
                return false;
            c += ulen;
            p += USER_TOKEN_LEN;
        } else if (*p == '*' && p[1] == '\0') {
            return true; /* the prefix matched */
        } else {
            if (*p != *c)
                return false;
            p++;
            c++;
        }
    }
    return *c == '\0';
}

static bool list_matches(const pattern_list *l, const char *user, const char *channel)
{
    for (size_t i = 0; i < l->n; i++)
        if (authz_pattern_match(l->items[i], user, channel))
            return true;
    return false;
}

/* Token claims: the patterns were signed by the application; {user} has no meaning there. */
static bool claims_match(char **patterns, size_t n, const char *channel)
{
    for (size_t i = 0; i < n; i++)
        if (authz_pattern_valid(patterns[i], false) &&
            authz_pattern_match(patterns[i], NULL, channel))
            return true;
    return false;
}

static int list_parse(pattern_list *l, const char *text, bool user_allowed, const char *flag,
                      char *err, size_t err_len)
{
    if (!text)
        return 0;
    for (const char *p = text; *p;) {
        size_t len = strcspn(p, ", ");
        if (len > 0) {
            char *item = xstrndup(p, len);
            if (!authz_pattern_valid(item, user_allowed)) {
                snprintf(err, err_len,
                         "--%s: \"%s\" is not a channel pattern (a channel name, optionally "
                         "ending in '*'%s)",
                         flag, item, user_allowed ? ", with {user} for the principal" : "");
                free(item);
                return -1;
            }
            l->items = xrealloc(l->items, (l->n + 1) * sizeof *l->items);
            l->items[l->n++] = item;
        }
        p += len;
        p += strspn(p, ", ");
    }
    return 0;
}

static void list_free(pattern_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
}

static void cache_entry_free(struct lh_entry *e)
{
    free(lh_entry_v(e));
}

authz *authz_new(const authz_settings *s, char *err, size_t err_len)
{
    authz *a = xcalloc(1, sizeof *a);
    if (list_parse(&a->allow, s->allow, false, "allow", err, err_len) < 0 ||
        list_parse(&a->allow_user, s->allow_user, true, "allow-user", err, err_len) < 0 ||
        list_parse(&a->publish_allow_user, s->publish_allow_user, true, "publish-allow-user", err,
                   err_len) < 0) {
        authz_free(a);
        return NULL;
    }
    a->sql = s->sql;
    a->ttl_ms = (int64_t)s->cache_ttl * 1000;
    a->cache_max = s->cache_max > 0 ? (size_t)s->cache_max : 0;
    a->cache = lh_kchar_table_new(16, cache_entry_free);
    return a;
}

void authz_free(authz *a)
{
    if (!a)
        return;
    list_free(&a->allow);
    list_free(&a->allow_user);
    list_free(&a->publish_allow_user);
    if (a->cache)
        lh_table_free(a->cache);
    free(a);
}

bool authz_has_read_rules(const authz *a)
{
    return a->allow.n > 0 || a->allow_user.n > 0 || a->sql;
}

authz_verdict authz_read(const authz *a, const char *principal, const token_claims *claims,
                         const char *channel)
{
    if (list_matches(&a->allow, NULL, channel))
        return AUTHZ_ALLOW;
    if (claims && claims_match(claims->channels, claims->n_channels, channel))
        return AUTHZ_ALLOW;
    if (!principal)
        return AUTHZ_DENY;
    if (list_matches(&a->allow_user, principal, channel))
        return AUTHZ_ALLOW;
    return a->sql ? AUTHZ_ASK_SQL : AUTHZ_DENY;
}

bool authz_publish(const authz *a, const char *principal, const token_claims *claims,
                   const char *channel)
{
    if (claims && claims_match(claims->publish, claims->n_publish, channel))
        return true;
    return principal && list_matches(&a->publish_allow_user, principal, channel);
}

/* ---- the pgfeed.authorize cache ---------------------------------------- */

static char *cache_key(const char *principal, const char *channel)
{
    size_t cl = strlen(channel), pl = strlen(principal);
    char *key = xmalloc(cl + 1 + pl + 1);
    memcpy(key, channel, cl);
    key[cl] = '\n';
    memcpy(key + cl + 1, principal, pl + 1);
    return key;
}

authz_cached authz_cache_get(authz *a, const char *principal, const char *channel, int64_t now_ms,
                             int64_t *expires_ms)
{
    char *key = cache_key(principal, channel);
    struct lh_entry *e = lh_table_lookup_entry(a->cache, key);
    free(key);
    if (!e)
        return AUTHZ_CACHE_MISS;
    const cache_entry *ce = lh_entry_v(e);
    if (ce->expires_ms <= now_ms) {
        lh_table_delete_entry(a->cache, e);
        return AUTHZ_CACHE_MISS;
    }
    if (expires_ms)
        *expires_ms = ce->expires_ms;
    return ce->allowed ? AUTHZ_CACHE_YES : AUTHZ_CACHE_NO;
}

int64_t authz_cache_put(authz *a, const char *principal, const char *channel, bool allowed,
                        int64_t now_ms)
{
    int64_t expires = now_ms + a->ttl_ms;
    if (a->ttl_ms <= 0 || a->cache_max == 0)
        return expires;
    char *key = cache_key(principal, channel);
    struct lh_entry *old = lh_table_lookup_entry(a->cache, key);
    if (old)
        lh_table_delete_entry(a->cache, old); /* re-inserted at the tail: newest */
    while ((size_t)lh_table_length(a->cache) >= a->cache_max)
        lh_table_delete_entry(a->cache, lh_table_head(a->cache));
    size_t key_len = strlen(key);
    cache_entry *ce = xmalloc(sizeof *ce + key_len + 1);
    ce->expires_ms = expires;
    ce->allowed = allowed;
    memcpy(ce->key, key, key_len + 1);
    free(key);
    if (lh_table_insert(a->cache, ce->key, ce) < 0)
        free(ce);
    return expires;
}

size_t authz_cache_size(const authz *a)
{
    return (size_t)lh_table_length(a->cache);
}
