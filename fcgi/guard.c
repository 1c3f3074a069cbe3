/*
 * guard — identity and the read, publish and admin decisions for one request;
 * CORS is cors.c's, fed from the request's parameters here (see guard.h).
 */
#include "guard.h"
#include "channel_name.h"
#include "cors.h"
#include "log.h"
#include "xalloc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PUBLISH_TOKEN_MIN 16
#define PUBLISH_TOKEN_FILE_MAX 4096
#define REMOTE_USER_MAX 256

typedef struct string_list {
    char **items;
    size_t n;
} string_list;

struct guard {
    const pgfeed_config *cfg;
    token_keys *keys;
    authz *rules;
    bool has_publish_token;
    unsigned char publish_token_digest[32]; /* SHA-256: compared digest to digest */
    bool admin_any, admin_loopback;
    string_list admin_users;
    cors *cors;
    bool has_publish_rules;
};

static void list_add(string_list *l, const char *s, size_t len)
{
    l->items = xrealloc(l->items, (l->n + 1) * sizeof *l->items);
    l->items[l->n++] = xstrndup(s, len);
}

static void list_free(string_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
}

/* Calls each(item, len) for the comma-separated items of text; stops at the first -1. */
static int split_list(const char *text, guard *a, char *err, size_t err_len,
                      int (*each)(guard *, const char *, size_t, char *, size_t))
{
    for (const char *p = text ? text : ""; *p;) {
        size_t len = strcspn(p, ", ");
        if (len > 0 && each(a, p, len, err, err_len) < 0)
            return -1;
        p += len;
        p += strspn(p, ", ");
    }
    return 0;
}

static int admin_item(guard *a, const char *item, size_t len, char *err, size_t err_len)
{
    if (len == 3 && !strncmp(item, "any", 3))
        a->admin_any = true;
    else if (len == 8 && !strncmp(item, "loopback", 8))
        a->admin_loopback = true;
    else if (len > 5 && !strncmp(item, "user:", 5))
        list_add(&a->admin_users, item + 5, len - 5);
    else {
        snprintf(err, err_len, "--admin-allow: \"%.*s\" is not loopback, any or user:NAME",
                 (int)len, item);
        return -1;
    }
    return 0;
}

static void sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 32;
    EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

static int read_publish_token(guard *a, const char *path, char *err, size_t err_len)
{
    int rc = -1;
    char text[PUBLISH_TOKEN_FILE_MAX + 1];
    size_t n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "--publish-token-file: %s: cannot open", path);
        goto cleanup;
    }
    n = fread(text, 1, sizeof text, f);
    if (ferror(f) || n > PUBLISH_TOKEN_FILE_MAX) {
        snprintf(err, err_len, "--publish-token-file: %s: unreadable or over %d bytes", path,
                 PUBLISH_TOKEN_FILE_MAX);
        goto cleanup;
    }
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
        n--; /* echo token > file adds a newline the client will not send */
    if (n < PUBLISH_TOKEN_MIN || memchr(text, '\n', n)) {
        snprintf(err, err_len,
                 "--publish-token-file: %s: expected one line of at least %d characters", path,
                 PUBLISH_TOKEN_MIN);
        goto cleanup;
    }
    sha256(text, n, a->publish_token_digest);
    a->has_publish_token = true;
    rc = 0;
cleanup:
    OPENSSL_cleanse(text, sizeof text);
    if (f)
        fclose(f);
    return rc;
}

guard *guard_new(const pgfeed_config *cfg, char *err, size_t err_len)
{
    guard *a = xcalloc(1, sizeof *a);
    a->cfg = cfg;
    authz_settings s = {.allow = cfg->allow,
                        .allow_user = cfg->allow_user,
                        .publish_allow_user = cfg->publish_allow_user,
                        .sql = cfg->authorize_sql,
                        .cache_ttl = cfg->auth_cache_ttl,
                        .cache_max = cfg->auth_cache_max};
    a->rules = authz_new(&s, err, err_len);
    if (!a->rules)
        goto fail;
    if (cfg->token_keys && *cfg->token_keys) {
        a->keys = token_keys_load(cfg->token_keys, err, err_len);
        if (!a->keys)
            goto fail;
    }
    if (cfg->publish_token_file && *cfg->publish_token_file &&
        read_publish_token(a, cfg->publish_token_file, err, err_len) < 0)
        goto fail;
    if (split_list(cfg->admin_allow, a, err, err_len, admin_item) < 0)
        goto fail;
    /* Credentials only where a cookie carries the token. */
    a->cors = cors_new(cfg->cors_origin, cfg->token_cookie && *cfg->token_cookie, err, err_len);
    if (!a->cors)
        goto fail;
    a->has_publish_rules = cfg->publish_allow_user && *cfg->publish_allow_user;
    if (cfg->publish && !a->has_publish_token && !a->has_publish_rules && !a->keys) {
        snprintf(err, err_len,
                 "--publish is never anonymous: give --publish-token-file, --publish-allow-user "
                 "or --token-keys (tokens with a publish claim)");
        goto fail;
    }
    return a;
fail:
    guard_free(a);
    return NULL;
}

void guard_free(guard *a)
{
    if (!a)
        return;
    token_keys_free(a->keys);
    authz_free(a->rules);
    list_free(&a->admin_users);
    cors_free(a->cors);
    OPENSSL_cleanse(a->publish_token_digest, sizeof a->publish_token_digest);
    free(a);
}

int guard_reload_keys(guard *a, char *err, size_t err_len)
{
    if (!a->cfg->token_keys || !*a->cfg->token_keys)
        return 0;
    token_keys *keys = token_keys_load(a->cfg->token_keys, err, err_len);
    if (!keys)
        return -1;
    token_keys_free(a->keys);
    a->keys = keys;
    return 0;
}

const char *guard_closed_advice(const guard *a)
{
    if (authz_has_read_rules(a->rules) || a->keys)
        return NULL;
    return "no read rule is configured, so every read is refused: open channels with "
           "--allow 'public:*' (anyone), --allow-user 'user:{user}' (REMOTE_USER or a "
           "token's sub), --token-keys FILE (tokens with a channels claim) or --authorize-sql";
}

/* ---- identity ----------------------------------------------------------- */

static void refuse(guard_refusal *why, int status, const char *www, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void refuse(guard_refusal *why, int status, const char *www, const char *fmt, ...)
{
    why->status = status;
    why->www_authenticate = www;
    why->channel[0] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why->detail, sizeof why->detail, fmt, ap);
    va_end(ap);
}

#define WWW_BEARER "Bearer realm=\"pgfeed\""
#define WWW_INVALID "Bearer realm=\"pgfeed\", error=\"invalid_token\""

/* The value of cookie name in a Cookie header, or NULL; *len is its length. */
static const char *cookie_value(const char *header, const char *name, size_t *len)
{
    size_t name_len = strlen(name);
    for (const char *p = header; p && *p;) {
        p += strspn(p, " \t;");
        size_t item = strcspn(p, ";");
        if (item > name_len && !strncmp(p, name, name_len) && p[name_len] == '=') {
            const char *v = p + name_len + 1;
            *len = item - name_len - 1;
            while (*len > 0 && (v[*len - 1] == ' ' || v[*len - 1] == '\t'))
                (*len)--;
            return v;
        }
        p += item;
    }
    return NULL;
}

static bool is_publish_token(const guard *a, const char *value, size_t len)
{
    if (!a->has_publish_token)
        return false;
    unsigned char digest[32];
    sha256(value, len, digest);
    return CRYPTO_memcmp(digest, a->publish_token_digest, sizeof digest) == 0;
}

int guard_identify(const guard *a, guard_param_fn param, void *ctx, int64_t now_ms, int64_t wall_s,
                   guard_identity *id, guard_refusal *why)
{
    memset(id, 0, sizeof *id);
    memset(why, 0, sizeof *why);
    id->expires_ms = INT64_MAX;
    const char *user = param(ctx, "REMOTE_USER");
    if (user && *user) {
        if (strlen(user) > REMOTE_USER_MAX) {
            refuse(why, 401, WWW_BEARER, "REMOTE_USER is longer than %d bytes", REMOTE_USER_MAX);
            return -1;
        }
        id->remote_user = xstrdup(user);
        id->principal = id->remote_user;
    }
    const char *token = NULL;
    size_t token_len = 0;
    const char *auth = param(ctx, "HTTP_AUTHORIZATION");
    if (auth && !strncasecmp(auth, "Bearer ", 7)) {
        token = auth + 7;
        token += strspn(token, " ");
        token_len = strlen(token);
        while (token_len > 0 && token[token_len - 1] == ' ')
            token_len--;
        if (is_publish_token(a, token, token_len)) {
            id->bearer_is_publish_token = true;
            token = NULL;
        }
    }
    /* The cookie is only ours to read when there are keys to check it with. */
    if (!token && !id->bearer_is_publish_token && a->keys && a->cfg->token_cookie &&
        *a->cfg->token_cookie)
        token = cookie_value(param(ctx, "HTTP_COOKIE"), a->cfg->token_cookie, &token_len);
    if (!token)
        return 0;
    if (!a->keys) {
        refuse(why, 401, WWW_INVALID,
               "a bearer token was sent, but this server has no "
               "--token-keys to check it with");
        return -1;
    }
    token_limits limits = {.max_bytes = (size_t)a->cfg->token_max_bytes,
                           .leeway = a->cfg->token_leeway};
    token_status st = token_verify(a->keys, &limits, token, token_len, wall_s, &id->claims);
    if (st != TOKEN_OK) {
        refuse(why, 401, WWW_INVALID, "%s", token_status_text(st));
        return -1;
    }
    id->has_token = true;
    /* exp is a time of day; the loop's deadlines are monotonic: carry the distance over. */
    id->expires_ms = now_ms + (id->claims.exp + a->cfg->token_leeway - wall_s) * 1000;
    if (id->claims.sub) {
        if (id->remote_user && strcmp(id->remote_user, id->claims.sub) != 0) {
            refuse(why, 401, WWW_INVALID,
                   "the token's sub is not the user the web server authenticated");
            return -1;
        }
        id->principal = id->claims.sub;
    }
    return 0;
}

void guard_identity_free(guard_identity *id)
{
    token_claims_free(&id->claims);
    free(id->remote_user);
    memset(id, 0, sizeof *id);
}

/* ---- decisions ---------------------------------------------------------- */

bool guard_channel_public(const guard *a, const char *channel)
{
    return authz_read(a->rules, NULL, NULL, channel) == AUTHZ_ALLOW;
}

bool guard_channel_cacheable(const guard *a, const char *channel)
{
    return channel_name_listed(a->cfg->cache_public, channel) && guard_channel_public(a, channel);
}

static void refuse_read(const guard_identity *id, const char *channel, guard_refusal *why)
{
    if (!id->principal && !id->has_token)
        refuse(why, 401, WWW_BEARER,
               "reading channel \"%s\" needs an identity: a login at the web server or a "
               "token (Authorization: Bearer, or the token cookie)",
               channel);
    else {
        refuse(why, 403, NULL, "not allowed to read channel \"%s\"", channel);
        snprintf(why->channel, sizeof why->channel, "%s", channel);
    }
}

void guard_refuse_channel(const guard_identity *id, const char *channel, guard_refusal *why)
{
    refuse_read(id, channel, why);
}

authz_verdict guard_read(guard *a, const guard_identity *id, const char *channel, int64_t now_ms,
                         int64_t *valid_until, guard_refusal *why)
{
    *valid_until = INT64_MAX;
    if (guard_channel_public(a, channel))
        return AUTHZ_ALLOW; /* open to anyone: no token running out can close it */
    authz_verdict v =
        authz_read(a->rules, id->principal, id->has_token ? &id->claims : NULL, channel);
    if (v == AUTHZ_ASK_SQL) {
        int64_t cached_until = 0;
        switch (authz_cache_get(a->rules, id->principal, channel, now_ms, &cached_until)) {
        case AUTHZ_CACHE_YES:
            v = AUTHZ_ALLOW;
            *valid_until = cached_until;
            break;
        case AUTHZ_CACHE_NO:
            v = AUTHZ_DENY;
            break;
        case AUTHZ_CACHE_MISS:
            return AUTHZ_ASK_SQL;
        }
    }
    if (v == AUTHZ_DENY) {
        refuse_read(id, channel, why);
        return v;
    }
    if (id->expires_ms < *valid_until)
        *valid_until = id->expires_ms;
    return v;
}

int64_t guard_sql_answer(guard *a, const guard_identity *id, const char *channel, bool allowed,
                         int64_t now_ms)
{
    int64_t until = authz_cache_put(a->rules, id->principal, channel, allowed, now_ms);
    return until < id->expires_ms ? until : id->expires_ms;
}

bool guard_publish(const guard *a, const guard_identity *id, const char *channel,
                   guard_refusal *why)
{
    if (id->bearer_is_publish_token)
        return true;
    if (authz_publish(a->rules, id->principal, id->has_token ? &id->claims : NULL, channel))
        return true;
    if (!id->principal && !id->has_token)
        refuse(why, 401, WWW_BEARER,
               "publishing needs an identity: the publish token, a token with a publish "
               "claim, or a login that --publish-allow-user admits");
    else {
        refuse(why, 403, NULL, "not allowed to publish to channel \"%s\"", channel);
        snprintf(why->channel, sizeof why->channel, "%s", channel);
    }
    return false;
}

static bool is_loopback(const char *addr)
{
    if (!addr)
        return false;
    struct in_addr v4;
    struct in6_addr v6;
    if (inet_pton(AF_INET, addr, &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, addr, &v6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&v6) || (IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127);
    return false;
}

bool guard_admin(const guard *a, guard_param_fn param, void *ctx, const guard_identity *id,
                 guard_refusal *why)
{
    if (a->admin_any || (a->admin_loopback && is_loopback(param(ctx, "REMOTE_ADDR"))))
        return true;
    for (size_t i = 0; id->principal && i < a->admin_users.n; i++)
        if (!strcmp(a->admin_users.items[i], id->principal))
            return true;
    refuse(why, 403, NULL, "this route is only answered to what --admin-allow admits");
    return false;
}

/* ---- CORS (cors.h), from the request's parameters --------------------- */

void guard_cors_headers(const guard *a, guard_param_fn param, void *ctx, bool all_public,
                        buf *headers)
{
    cors_headers(a->cors, param(ctx, "HTTP_ORIGIN"), all_public, headers);
}

int guard_preflight(const guard *a, guard_param_fn param, void *ctx, buf *headers,
                    guard_refusal *why)
{
    char detail[sizeof why->detail];
    if (!cors_preflight(a->cors, param(ctx, "HTTP_ORIGIN"),
                        param(ctx, "HTTP_ACCESS_CONTROL_REQUEST_METHOD"), headers, detail,
                        sizeof detail)) {
        refuse(why, 403, NULL, "%s", detail);
        return 403;
    }
    return 204;
}

void guard_refusal_headers(const guard_refusal *why, buf *headers)
{
    if (why->status == 401 && why->www_authenticate)
        buf_printf(headers, "WWW-Authenticate: %s\r\n", why->www_authenticate);
}
