/*
 * guard — the identity of a request and what it may do, from its CGI
 * parameters: the seam between the request modules and authz/token.
 *
 * The principal is REMOTE_USER (the front server authenticated the client;
 * only the web server can reach pgfeed's socket, so it is trusted) or the sub
 * of an app-signed token, sent as "Authorization: Bearer" or in the cookie
 * --token-cookie names (EventSource cannot send headers). Never from the URL.
 * When both are there they must agree.
 *
 * Also here, because they are decided from the same parameters: the shared
 * publish token (--publish-token-file, compared in constant time), who sees
 * /_health and /_metrics (--admin-allow), and the CORS answer (cors.h,
 * --cors-origin) to the request's Origin.
 */
#ifndef PGFEED_GUARD_H
#define PGFEED_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "authz.h"
#include "buf.h"
#include "config.h"
#include "token.h"

typedef struct guard guard;

/* Returns the CGI parameter called name, or NULL (same shape as feed_param_fn). */
typedef const char *(*guard_param_fn)(void *ctx, const char *name);

/* Who a request is. A value type; guard_identity_free releases it. */
typedef struct guard_identity {
    const char *principal; /* REMOTE_USER or claims.sub; NULL: anonymous */
    char *remote_user;
    bool has_token; /* a verified token; claims valid */
    token_claims claims;
    int64_t expires_ms;           /* when the token runs out; INT64_MAX without one */
    bool bearer_is_publish_token; /* Authorization carried the shared publish token */
} guard_identity;

/* Why a request is refused, for its problem+json answer. */
typedef struct guard_refusal {
    int status;                   /* 401 or 403 */
    char detail[256];             /* never contains the token */
    const char *www_authenticate; /* for 401: the header's value (static) */
    char channel[160];            /* for a 403 about one channel: its name, else "" */
} guard_refusal;

/* Loads keys and the publish token; NULL with a sentence in err on bad settings. */
guard *guard_new(const pgfeed_config *cfg, char *err, size_t err_len)
    __attribute__((warn_unused_result));
void guard_free(guard *a);
/* SIGHUP: re-reads --token-keys; on failure the old keys stay and -1 comes back. */
int guard_reload_keys(guard *a, char *err, size_t err_len) __attribute__((warn_unused_result));
/* Startup advice when no rule opens any read (NULL when some rule does). */
const char *guard_closed_advice(const guard *a);

/*
 * Finds who the request is. Returns 0, or -1 with *why filled (a token that
 * does not verify, REMOTE_USER and the token disagreeing): such a request is
 * refused whatever it asks. *id is always initialized. now_ms is the monotonic
 * clock the event loop runs on (expires_ms is on it too); wall_s is the time
 * of day, which token claims are in.
 */
int guard_identify(const guard *a, guard_param_fn param, void *ctx, int64_t now_ms, int64_t wall_s,
                   guard_identity *id, guard_refusal *why) __attribute__((warn_unused_result));
void guard_identity_free(guard_identity *id);

/*
 * Whether id may read channel. ALLOW and DENY are final; ASK_SQL means ask
 * pgfeed.authorize and record the answer with guard_sql_answer. *valid_until
 * (ms) says until when an ALLOW holds: the token's expiry, or the cached SQL
 * answer's, whichever comes first. On DENY *why says 401 or 403.
 */
authz_verdict guard_read(guard *a, const guard_identity *id, const char *channel, int64_t now_ms,
                         int64_t *valid_until, guard_refusal *why);
/* Records pgfeed.authorize's answer; returns until when it holds (as valid_until). */
int64_t guard_sql_answer(guard *a, const guard_identity *id, const char *channel, bool allowed,
                         int64_t now_ms);
/* The 403 for a channel pgfeed.authorize refused. */
void guard_refuse_channel(const guard_identity *id, const char *channel, guard_refusal *why);

/* POST: the shared publish token, the token's publish claim, or --publish-allow-user. */
bool guard_publish(const guard *a, const guard_identity *id, const char *channel,
                   guard_refusal *why);
/* /_health and /_metrics. */
bool guard_admin(const guard *a, guard_param_fn param, void *ctx, const guard_identity *id,
                 guard_refusal *why);

/*
 * CORS on an answer: appends Access-Control-Allow-Origin (and -Credentials,
 * Vary, Expose-Headers) when the request's Origin is allowed. all_public: every
 * channel of the request is open to anyone (--allow), which is all "*" covers.
 */
void guard_cors_headers(const guard *a, guard_param_fn param, void *ctx, bool all_public,
                        buf *headers);
/* A preflight OPTIONS: 204 with the CORS headers appended, or 403 (why filled). */
int guard_preflight(const guard *a, guard_param_fn param, void *ctx, buf *headers,
                    guard_refusal *why);
/* Whether --allow alone opens channel (for CORS "*"). */
bool guard_channel_public(const guard *a, const char *channel);
/*
 * Whether a shared cache may keep answers of channel: listed in --cache-public
 * AND open to anyone. A channel authorization restricts is never public, or a
 * cache would hand one reader's answer to the next, who may not read it.
 */
bool guard_channel_cacheable(const guard *a, const char *channel);

/* Appends the headers a refusal needs (WWW-Authenticate). */
void guard_refusal_headers(const guard_refusal *why, buf *headers);

#endif
