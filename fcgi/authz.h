/*
 * authz — who may read or publish which channel.
 *
 * A pattern is a channel name, or a channel-name prefix ending in '*'
 * ("public:*"; "*" alone is every channel). In --allow-user and
 * --publish-allow-user patterns "{user}" stands for the principal, inserted
 * literally; a principal that is not made of [A-Za-z0-9_.-] (so no ':', which
 * separates the parts of a channel name, and nothing a pattern means
 * something by) matches no {user} pattern at all.
 *
 * The order of decision for one channel: --allow (anyone), then, with a
 * principal, --allow-user and the token's "channels" claim; what no rule
 * allowed is asked of pgfeed.authorize(principal, channel) when
 * --authorize-sql is on, else denied. pgfeed.authorize's answers are cached
 * per (principal, channel) for a TTL, in a cache with a size bound; when it is
 * full the oldest answer goes (all answers live equally long, so the oldest is
 * the one that expires first).
 */
#ifndef PGFEED_AUTHZ_H
#define PGFEED_AUTHZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "token.h"

typedef struct authz authz;

typedef struct authz_settings {
    const char *allow;              /* comma-separated patterns, or NULL */
    const char *allow_user;         /* the same, {user} allowed */
    const char *publish_allow_user; /* the same, for POST */
    bool sql;                       /* ask pgfeed.authorize for the rest */
    int cache_ttl;                  /* seconds an answer of pgfeed.authorize is kept */
    int cache_max;                  /* answers kept at most */
} authz_settings;

typedef enum authz_verdict {
    AUTHZ_ALLOW,
    AUTHZ_DENY,
    AUTHZ_ASK_SQL, /* no rule allowed it; pgfeed.authorize decides (see authz_cache_get) */
} authz_verdict;

/* Validates every pattern; NULL with a sentence in err when one is not a pattern. */
authz *authz_new(const authz_settings *settings, char *err, size_t err_len)
    __attribute__((warn_unused_result));
void authz_free(authz *a);

/* True when some rule other than a token's claims can allow a read at all. */
bool authz_has_read_rules(const authz *a);

/* True when principal may stand for {user}. */
bool authz_principal_usable(const char *principal);
/* Whether pattern is well formed; user_allowed: "{user}" may appear in it. */
bool authz_pattern_valid(const char *pattern, bool user_allowed);
/* Whether channel matches pattern, with {user} as user (NULL: no {user} pattern matches). */
bool authz_pattern_match(const char *pattern, const char *user, const char *channel);

/*
 * The rules that need no database. principal and claims may be NULL (an
 * anonymous request). AUTHZ_ASK_SQL only comes back with a principal and
 * --authorize-sql on.
 */
authz_verdict authz_read(const authz *a, const char *principal, const token_claims *claims,
                         const char *channel);
/* POST: the token's "publish" claim or --publish-allow-user; never the database. */
bool authz_publish(const authz *a, const char *principal, const token_claims *claims,
                   const char *channel);

typedef enum authz_cached { AUTHZ_CACHE_MISS, AUTHZ_CACHE_YES, AUTHZ_CACHE_NO } authz_cached;

/* A live cached answer of pgfeed.authorize; *expires_ms (may be NULL) says until when. */
authz_cached authz_cache_get(authz *a, const char *principal, const char *channel, int64_t now_ms,
                             int64_t *expires_ms);
/* Records an answer; returns when it expires. */
int64_t authz_cache_put(authz *a, const char *principal, const char *channel, bool allowed,
                        int64_t now_ms);
size_t authz_cache_size(const authz *a);

#endif
