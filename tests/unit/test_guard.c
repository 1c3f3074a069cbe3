/*
 * test_guard — a request's identity from REMOTE_USER, Authorization: Bearer
 * and the token cookie; refusals (401 with WWW-Authenticate, 403 naming the
 * channel, never echoing the token); the shared publish token; --admin-allow;
 * CORS answers and preflights; settings refused at startup.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guard.h"
#include "jws_mint.h"

#define SECRET "0123456789abcdef0123456789abcdef"
#define NOW_MS 1700000000000LL

#define JWKS_K1                                                                                    \
    "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"k1\",\"alg\":\"HS256\","                                \
    "\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}]}"

static char dir[64];
static char keys_path[128], publish_path[128];

/* The request's CGI parameters: name=value pairs, NULL-terminated. */
typedef struct params {
    const char *kv[16];
} params;

static const char *param(void *ctx, const char *name)
{
    params *p = ctx;
    for (size_t i = 0; p->kv[i]; i += 2)
        if (!strcmp(p->kv[i], name))
            return p->kv[i + 1];
    return NULL;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    strcpy(dir, "/tmp/pgfeed-test-guard-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(keys_path, sizeof keys_path, "%s/jwks.json", dir);
    snprintf(publish_path, sizeof publish_path, "%s/publish-token", dir);
    write_file(keys_path, JWKS_K1);
    write_file(publish_path, "publish-secret-0123456789\n");
    return 0;
}

static int teardown(void **state)
{
    unlink(keys_path);
    unlink(publish_path);
    rmdir(dir);
    return 0;
}

static pgfeed_config base_config(void)
{
    pgfeed_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.allow = "public:*";
    cfg.allow_user = "user:{user}";
    cfg.token_keys = keys_path;
    cfg.token_cookie = "pgfeed_token";
    cfg.token_leeway = 0;
    cfg.token_max_bytes = 8192;
    cfg.auth_cache_ttl = 60;
    cfg.auth_cache_max = 100;
    cfg.admin_allow = "loopback";
    cfg.publish_allow_user = "user:{user}";
    cfg.publish_token_file = publish_path;
    cfg.cors_origin = "https://app.example,*";
    return cfg;
}

static guard *make(const pgfeed_config *cfg)
{
    char err[256] = "";
    guard *a = guard_new(cfg, err, sizeof err);
    if (!a)
        fail_msg("guard_new: %s", err);
    return a;
}

static char *token_for(const char *payload)
{
    const char *h = "{\"alg\":\"HS256\",\"kid\":\"k1\"}";
    return jws_mint_hs256(h, strlen(h), payload, strlen(payload), SECRET, 32);
}

static void test_remote_user(void **state)
{
    pgfeed_config cfg = base_config();
    guard *a = make(&cfg);
    params p = {{"REMOTE_USER", "alice", NULL}};
    guard_identity id;
    guard_refusal why;
    assert_int_equal(guard_identify(a, param, &p, NOW_MS, NOW_MS / 1000, &id, &why), 0);
    assert_string_equal(id.principal, "alice");
    assert_false(id.has_token);
    int64_t until;
    assert_int_equal(guard_read(a, &id, "user:alice", NOW_MS, &until, &why), AUTHZ_ALLOW);
    assert_true(until == INT64_MAX);
    assert_int_equal(guard_read(a, &id, "user:bob", NOW_MS, &until, &why), AUTHZ_DENY);
    assert_int_equal(why.status, 403);
    assert_non_null(strstr(why.detail, "\"user:bob\""));
    assert_int_equal(guard_read(a, &id, "public:news", NOW_MS, &until, &why), AUTHZ_ALLOW);
    guard_identity_free(&id);

    /* Anonymous: public reads, 401 with WWW-Authenticate for the rest. */
    params anon = {{NULL}};
    assert_int_equal(guard_identify(a, param, &anon, NOW_MS, NOW_MS / 1000, &id, &why), 0);
    assert_null(id.principal);
    assert_int_equal(guard_read(a, &id, "user:bob", NOW_MS, &until, &why), AUTHZ_DENY);
    assert_int_equal(why.status, 401);
    buf h = BUF_INIT;
    guard_refusal_headers(&why, &h);
    assert_non_null(strstr(h.data, "WWW-Authenticate: Bearer"));
    buf_free(&h);
    guard_identity_free(&id);
    guard_free(a);
}

static void test_bearer_and_cookie(void **state)
{
    pgfeed_config cfg = base_config();
    guard *a = make(&cfg);
    char *t = token_for("{\"sub\":\"carol\",\"exp\":1700000600,\"channels\":[\"room:*\"]}");
    char auth[1024], cookie[1100];
    snprintf(auth, sizeof auth, "Bearer %s", t);
    snprintf(cookie, sizeof cookie, "theme=dark; pgfeed_token=%s; other=1", t);
    guard_identity id;
    guard_refusal why;
    int64_t until;
    params by_header = {{"HTTP_AUTHORIZATION", auth, NULL}};
    params by_cookie = {{"HTTP_COOKIE", cookie, NULL}};
    params *both[] = {&by_header, &by_cookie};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(guard_identify(a, param, both[i], NOW_MS, NOW_MS / 1000, &id, &why), 0);
        assert_string_equal(id.principal, "carol");
        assert_int_equal(id.expires_ms, 1700000600000LL);
        assert_int_equal(guard_read(a, &id, "room:1", NOW_MS, &until, &why), AUTHZ_ALLOW);
        assert_int_equal(until, 1700000600000LL); /* ends with the token */
        assert_int_equal(guard_read(a, &id, "user:carol", NOW_MS, &until, &why), AUTHZ_ALLOW);
        assert_int_equal(guard_read(a, &id, "user:dave", NOW_MS, &until, &why), AUTHZ_DENY);
        assert_int_equal(why.status, 403);
        guard_identity_free(&id);
    }
    /* exp is wall time; expires_ms is on the caller's monotonic clock (5 s since boot). */
    assert_int_equal(guard_identify(a, param, &by_header, 5000, NOW_MS / 1000, &id, &why), 0);
    assert_int_equal(id.expires_ms, 5000 + 600000);
    guard_identity_free(&id);
    /* REMOTE_USER and the token must agree. */
    params clash = {{"HTTP_AUTHORIZATION", auth, "REMOTE_USER", "mallory", NULL}};
    assert_int_equal(guard_identify(a, param, &clash, NOW_MS, NOW_MS / 1000, &id, &why), -1);
    assert_int_equal(why.status, 401);
    guard_identity_free(&id);
    params agree = {{"HTTP_AUTHORIZATION", auth, "REMOTE_USER", "carol", NULL}};
    assert_int_equal(guard_identify(a, param, &agree, NOW_MS, NOW_MS / 1000, &id, &why), 0);
    guard_identity_free(&id);
    /* Expired (leeway 0 here) and tampered tokens: 401 naming why, never the token. */
    assert_int_equal(
        guard_identify(a, param, &by_header, 1700000600000LL, 1700000600000LL / 1000, &id, &why),
        -1);
    assert_int_equal(why.status, 401);
    assert_non_null(strstr(why.detail, "expired"));
    assert_null(strstr(why.detail, t));
    buf h = BUF_INIT;
    guard_refusal_headers(&why, &h);
    assert_non_null(strstr(h.data, "error=\"invalid_token\""));
    buf_free(&h);
    guard_identity_free(&id);
    auth[strlen(auth) - 3] ^= 1;
    assert_int_equal(guard_identify(a, param, &by_header, NOW_MS, NOW_MS / 1000, &id, &why), -1);
    assert_non_null(strstr(why.detail, "signature"));
    guard_identity_free(&id);
    /* Basic credentials are the web server's business. */
    params basic = {{"HTTP_AUTHORIZATION", "Basic YWxpY2U6eA==", "REMOTE_USER", "alice", NULL}};
    assert_int_equal(guard_identify(a, param, &basic, NOW_MS, NOW_MS / 1000, &id, &why), 0);
    assert_string_equal(id.principal, "alice");
    guard_identity_free(&id);
    free(t);
    guard_free(a);

    /* A token with no --token-keys to check it is refused, not ignored. */
    cfg.token_keys = NULL;
    cfg.publish = false;
    a = make(&cfg);
    assert_int_equal(guard_identify(a, param, &by_header, NOW_MS, NOW_MS / 1000, &id, &why), -1);
    assert_int_equal(why.status, 401);
    guard_identity_free(&id);
    guard_free(a);
}

/* SIGHUP: a rotated key set replaces the old one; a broken file keeps the old one. */
static void test_reload_keys(void **state)
{
    pgfeed_config cfg = base_config();
    guard *a = make(&cfg);
    char *t = token_for("{\"sub\":\"carol\",\"exp\":1700000600}");
    char auth[1024];
    snprintf(auth, sizeof auth, "Bearer %s", t);
    params p = {{"HTTP_AUTHORIZATION", auth, NULL}};
    guard_identity id;
    guard_refusal why;
    char err[256];
    assert_int_equal(guard_identify(a, param, &p, NOW_MS, NOW_MS / 1000, &id, &why), 0);
    guard_identity_free(&id);
    write_file(keys_path, "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"k2\",\"alg\":\"HS256\","
                          "\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}]}");
    assert_int_equal(guard_reload_keys(a, err, sizeof err), 0);
    assert_int_equal(guard_identify(a, param, &p, NOW_MS, NOW_MS / 1000, &id, &why), -1);
    assert_non_null(strstr(why.detail, "kid"));
    guard_identity_free(&id);
    write_file(keys_path, "{not json");
    assert_int_equal(guard_reload_keys(a, err, sizeof err), -1);
    assert_non_null(strstr(err, keys_path));
    write_file(keys_path, JWKS_K1); /* the original key set, for the tests after this one */
    assert_int_equal(guard_reload_keys(a, err, sizeof err), 0);
    assert_int_equal(guard_identify(a, param, &p, NOW_MS, NOW_MS / 1000, &id, &why), 0);
    guard_identity_free(&id);
    free(t);
    guard_free(a);
}

static void test_publish(void **state)
{
    pgfeed_config cfg = base_config();
    cfg.publish = true;
    guard *a = make(&cfg);
    guard_identity id;
    guard_refusal why;
    params shared = {{"HTTP_AUTHORIZATION", "Bearer publish-secret-0123456789", NULL}};
    assert_int_equal(guard_identify(a, param, &shared, NOW_MS, NOW_MS / 1000, &id, &why), 0);
    assert_true(id.bearer_is_publish_token);
    assert_true(guard_publish(a, &id, "anything", &why));
    guard_identity_free(&id);
    /* One character off, shorter, longer: a token that does not verify. */
    const char *wrong[] = {"Bearer publish-secret-0123456780", "Bearer publish-secret-012345678",
                           "Bearer publish-secret-01234567890"};
    for (size_t i = 0; i < 3; i++) {
        params p = {{"HTTP_AUTHORIZATION", wrong[i], NULL}};
        assert_int_equal(guard_identify(a, param, &p, NOW_MS, NOW_MS / 1000, &id, &why), -1);
        guard_identity_free(&id);
    }
    params anon = {{NULL}};
    assert_int_equal(guard_identify(a, param, &anon, NOW_MS, NOW_MS / 1000, &id, &why), 0);
    assert_false(guard_publish(a, &id, "public:x", &why)); /* --allow is for reading */
    assert_int_equal(why.status, 401);
    guard_identity_free(&id);
    params alice = {{"REMOTE_USER", "alice", NULL}};
    assert_int_equal(guard_identify(a, param, &alice, NOW_MS, NOW_MS / 1000, &id, &why), 0);
    assert_true(guard_publish(a, &id, "user:alice", &why));
    assert_false(guard_publish(a, &id, "user:bob", &why));
    assert_int_equal(why.status, 403);
    guard_identity_free(&id);
    char *t = token_for("{\"sub\":\"bot\",\"exp\":1700000600,\"publish\":[\"room:*\"]}");
    char auth[1024];
    snprintf(auth, sizeof auth, "Bearer %s", t);
    params bot = {{"HTTP_AUTHORIZATION", auth, NULL}};
    assert_int_equal(guard_identify(a, param, &bot, NOW_MS, NOW_MS / 1000, &id, &why), 0);
    assert_true(guard_publish(a, &id, "room:3", &why));
    assert_false(guard_publish(a, &id, "news", &why));
    guard_identity_free(&id);
    free(t);
    guard_free(a);
}

static void test_admin(void **state)
{
    pgfeed_config cfg = base_config();
    guard *a = make(&cfg);
    guard_identity id = {0};
    guard_refusal why;
    const char *local[] = {"127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"};
    const char *remote[] = {"192.0.2.1", "10.0.0.1", "::ffff:192.0.2.1", "2001:db8::1", "", "x"};
    for (size_t i = 0; i < 4; i++) {
        params p = {{"REMOTE_ADDR", local[i], NULL}};
        assert_true(guard_admin(a, param, &p, &id, &why));
    }
    for (size_t i = 0; i < 6; i++) {
        params p = {{"REMOTE_ADDR", remote[i], NULL}};
        assert_false(guard_admin(a, param, &p, &id, &why));
        assert_int_equal(why.status, 403);
    }
    params none = {{NULL}};
    assert_false(guard_admin(a, param, &none, &id, &why));
    guard_free(a);

    cfg.admin_allow = "user:ops";
    a = make(&cfg);
    params outside = {{"REMOTE_ADDR", "192.0.2.1", NULL}};
    id.principal = "ops";
    assert_true(guard_admin(a, param, &outside, &id, &why));
    id.principal = "alice";
    assert_false(guard_admin(a, param, &outside, &id, &why));
    params inside = {{"REMOTE_ADDR", "127.0.0.1", NULL}};
    assert_false(guard_admin(a, param, &inside, &id, &why)); /* loopback no longer listed */
    guard_free(a);
}

/* CORS itself is test_cors's; here: the request's Origin and method reach it. */
static void test_cors(void **state)
{
    pgfeed_config cfg = base_config();
    guard *a = make(&cfg);
    buf h = BUF_INIT;
    params named = {{"HTTP_ORIGIN", "https://app.example", NULL}};
    guard_cors_headers(a, param, &named, false, &h);
    assert_non_null(strstr(h.data, "Access-Control-Allow-Origin: https://app.example\r\n"));
    /* The token cookie is configured: credentials. */
    assert_non_null(strstr(h.data, "Access-Control-Allow-Credentials: true\r\n"));
    buf_reset(&h);

    guard_refusal why;
    params pre = {
        {"HTTP_ORIGIN", "https://app.example", "HTTP_ACCESS_CONTROL_REQUEST_METHOD", "GET", NULL}};
    assert_int_equal(guard_preflight(a, param, &pre, &h, &why), 204);
    assert_non_null(strstr(h.data, "Access-Control-Allow-Methods"));
    buf_reset(&h);
    params put = {
        {"HTTP_ORIGIN", "https://app.example", "HTTP_ACCESS_CONTROL_REQUEST_METHOD", "PUT", NULL}};
    assert_int_equal(guard_preflight(a, param, &put, &h, &why), 403);
    assert_int_equal(why.status, 403);
    assert_non_null(strstr(why.detail, "PUT"));
    buf_free(&h);
    guard_free(a);
}

static void test_bad_settings(void **state)
{
    char err[256];
    pgfeed_config cfg = base_config();
    cfg.admin_allow = "everyone";
    assert_null(guard_new(&cfg, err, sizeof err));
    assert_non_null(strstr(err, "--admin-allow"));
    cfg = base_config();
    cfg.cors_origin = "https://app.example/path";
    assert_null(guard_new(&cfg, err, sizeof err));
    assert_non_null(strstr(err, "--cors-origin"));
    cfg = base_config();
    cfg.token_keys = "/nonexistent";
    assert_null(guard_new(&cfg, err, sizeof err));
    cfg = base_config();
    write_file(publish_path, "short\n");
    cfg.publish_token_file = publish_path;
    assert_null(guard_new(&cfg, err, sizeof err));
    assert_non_null(strstr(err, "--publish-token-file"));
    write_file(publish_path, "publish-secret-0123456789\n");
    /* Publishing is never anonymous. */
    memset(&cfg, 0, sizeof cfg);
    cfg.publish = true;
    cfg.auth_cache_ttl = 60;
    cfg.auth_cache_max = 10;
    assert_null(guard_new(&cfg, err, sizeof err));
    assert_non_null(strstr(err, "never anonymous"));
    /* No rule: it starts, and says how to open reads. */
    cfg.publish = false;
    guard *a = make(&cfg);
    assert_non_null(guard_closed_advice(a));
    guard_free(a);
}

/* --cache-public only ever covers channels anyone may read (--allow). */
static void test_cacheable(void **state)
{
    pgfeed_config cfg = base_config(); /* --allow public:* */
    guard *a = make(&cfg);
    assert_false(guard_channel_cacheable(a, "public:news")); /* nothing listed: private */
    guard_free(a);
    cfg.cache_public = "*";
    a = make(&cfg);
    assert_true(guard_channel_cacheable(a, "public:news"));
    assert_false(guard_channel_cacheable(a, "user:alice")); /* listed, but authorized */
    assert_false(guard_channel_cacheable(a, "orders"));     /* listed, but nobody may read */
    guard_free(a);
    cfg.cache_public = "public:n*,user:alice";
    a = make(&cfg);
    assert_true(guard_channel_cacheable(a, "public:news"));
    assert_false(guard_channel_cacheable(a, "public:sport")); /* public, not listed */
    assert_false(guard_channel_cacheable(a, "user:alice"));   /* listed by name, still private */
    guard_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_remote_user),  cmocka_unit_test(test_bearer_and_cookie),
        cmocka_unit_test(test_reload_keys),  cmocka_unit_test(test_publish),
        cmocka_unit_test(test_admin),        cmocka_unit_test(test_cors),
        cmocka_unit_test(test_bad_settings), cmocka_unit_test(test_cacheable),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
