/*
 * test_authz — patterns, {user} substitution (and the principals that must
 * match nothing), the order of the rules, token claims, publishing, and the
 * pgfeed.authorize cache's TTL and size bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authz.h"

static authz *make(const char *allow, const char *allow_user, const char *publish, bool sql,
                   int ttl, int max)
{
    authz_settings s = {.allow = allow,
                        .allow_user = allow_user,
                        .publish_allow_user = publish,
                        .sql = sql,
                        .cache_ttl = ttl,
                        .cache_max = max};
    char err[256] = "";
    authz *a = authz_new(&s, err, sizeof err);
    if (!a)
        fail_msg("authz_new: %s", err);
    return a;
}

static void test_patterns(void **state)
{
    assert_true(authz_pattern_valid("orders", false));
    assert_true(authz_pattern_valid("public:*", false));
    assert_true(authz_pattern_valid("*", false));
    assert_true(authz_pattern_valid("user:{user}", true));
    assert_true(authz_pattern_valid("team:{user}:*", true));
    assert_false(authz_pattern_valid("user:{user}", false));
    assert_false(authz_pattern_valid("", false));
    assert_false(authz_pattern_valid("a*b", false));
    assert_false(authz_pattern_valid("**", false));
    assert_false(authz_pattern_valid("_health", false));
    assert_false(authz_pattern_valid(":x", false));
    assert_false(authz_pattern_valid("a b", false));
    assert_false(authz_pattern_valid("{usr}", true));
    assert_false(authz_pattern_valid("a/b", false));

    assert_true(authz_pattern_match("orders", NULL, "orders"));
    assert_false(authz_pattern_match("orders", NULL, "orders2"));
    assert_false(authz_pattern_match("orders", NULL, "order"));
    assert_true(authz_pattern_match("public:*", NULL, "public:news"));
    assert_true(authz_pattern_match("public:*", NULL, "public:"));
    assert_false(authz_pattern_match("public:*", NULL, "public"));
    assert_false(authz_pattern_match("public:*", NULL, "private:x"));
    assert_true(authz_pattern_match("*", NULL, "anything"));
    assert_true(authz_pattern_match("user:{user}", "alice", "user:alice"));
    assert_false(authz_pattern_match("user:{user}", "alice", "user:bob"));
    assert_false(authz_pattern_match("user:{user}", "alice", "user:alice2"));
    assert_false(authz_pattern_match("user:{user}", "alice", "user:alic"));
    assert_false(authz_pattern_match("user:{user}", NULL, "user:alice"));
    assert_true(authz_pattern_match("team:{user}:*", "al", "team:al:x"));
    assert_false(authz_pattern_match("team:{user}:*", "al", "team:alice:x"));
}

/* A principal that is not made of channel characters (without ':') matches nothing. */
static void test_odd_principals(void **state)
{
    const char *bad[] = {"a,b", "a=b", "a*",  "a:b",  "{user}", "",
                         "a b", "ü",   "a/b", "a\nb", "x{",     "alice@example.com"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(authz_principal_usable(bad[i]));
        char channel[64];
        snprintf(channel, sizeof channel, "user:%s", bad[i]);
        assert_false(authz_pattern_match("user:{user}", bad[i], channel));
        assert_false(authz_pattern_match("user:{user}*", bad[i], channel));
    }
    /* "a:b" must not reach into the "user:a:*" namespace through user:{user}. */
    assert_false(authz_pattern_match("user:{user}", "a:b", "user:a:b"));
    /* "{user}" as a principal is text, not a second substitution. */
    assert_false(authz_pattern_match("user:{user}", "{user}", "user:{user}"));
    char long_name[200];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_false(authz_principal_usable(long_name));
    assert_true(authz_principal_usable("alice.smith-2_x"));

    authz *a = make(NULL, "user:{user}", NULL, false, 60, 100);
    assert_int_equal(authz_read(a, "a:b", NULL, "user:a:b"), AUTHZ_DENY);
    assert_int_equal(authz_read(a, "alice", NULL, "user:alice"), AUTHZ_ALLOW);
    authz_free(a);
}

static void test_rule_order(void **state)
{
    authz *a = make("public:*, news", "user:{user},staff:*", "user:{user}", true, 60, 100);
    assert_true(authz_has_read_rules(a));
    /* --allow serves anyone, anonymous included. */
    assert_int_equal(authz_read(a, NULL, NULL, "public:x"), AUTHZ_ALLOW);
    assert_int_equal(authz_read(a, NULL, NULL, "news"), AUTHZ_ALLOW);
    /* Anonymous gets nothing else, and never reaches SQL. */
    assert_int_equal(authz_read(a, NULL, NULL, "user:alice"), AUTHZ_DENY);
    assert_int_equal(authz_read(a, NULL, NULL, "other"), AUTHZ_DENY);
    assert_int_equal(authz_read(a, "alice", NULL, "user:alice"), AUTHZ_ALLOW);
    assert_int_equal(authz_read(a, "alice", NULL, "staff:board"), AUTHZ_ALLOW);
    assert_int_equal(authz_read(a, "alice", NULL, "user:bob"), AUTHZ_ASK_SQL);
    /* The token's channels claim: its own patterns, no {user}. */
    char *chans[] = {"room:7", "game:*", "user:{user}", "bad pattern"};
    token_claims c = {.sub = "carol", .channels = chans, .n_channels = 4};
    assert_int_equal(authz_read(a, "carol", &c, "room:7"), AUTHZ_ALLOW);
    assert_int_equal(authz_read(a, "carol", &c, "game:42"), AUTHZ_ALLOW);
    assert_int_equal(authz_read(a, "carol", &c, "room:8"), AUTHZ_ASK_SQL);
    /* A token without sub still grants its channels. */
    assert_int_equal(authz_read(a, NULL, &c, "room:7"), AUTHZ_ALLOW);
    assert_int_equal(authz_read(a, NULL, &c, "room:8"), AUTHZ_DENY);
    /* Publishing: the publish claim or --publish-allow-user, never --allow. */
    assert_false(authz_publish(a, NULL, NULL, "public:x"));
    assert_true(authz_publish(a, "alice", NULL, "user:alice"));
    assert_false(authz_publish(a, "alice", NULL, "user:bob"));
    assert_false(authz_publish(a, "carol", &c, "room:7")); /* channels is for reading */
    char *pubs[] = {"room:*"};
    token_claims p = {.sub = "dave", .publish = pubs, .n_publish = 1};
    assert_true(authz_publish(a, "dave", &p, "room:9"));
    assert_false(authz_publish(a, "dave", &p, "user:erin"));
    authz_free(a);

    a = make(NULL, NULL, NULL, false, 60, 100);
    assert_false(authz_has_read_rules(a));
    assert_int_equal(authz_read(a, "alice", NULL, "user:alice"), AUTHZ_DENY);
    authz_free(a);
}

static void test_bad_settings(void **state)
{
    const char *allow[] = {"a/b*", "{user}", "x*y", "_metrics"};
    for (size_t i = 0; i < sizeof allow / sizeof allow[0]; i++) {
        authz_settings s = {.allow = allow[i], .cache_ttl = 60, .cache_max = 10};
        char err[256] = "";
        assert_null(authz_new(&s, err, sizeof err));
        assert_non_null(strstr(err, "--allow"));
    }
    authz_settings s = {.allow_user = "user:{user}/x", .cache_ttl = 60, .cache_max = 10};
    char err[256] = "";
    assert_null(authz_new(&s, err, sizeof err));
    assert_non_null(strstr(err, "--allow-user"));
}

static void test_cache_ttl(void **state)
{
    authz *a = make(NULL, NULL, NULL, true, 60, 100);
    int64_t t = 1000000, exp = 0;
    assert_int_equal(authz_cache_get(a, "alice", "room:1", t, &exp), AUTHZ_CACHE_MISS);
    assert_int_equal(authz_cache_put(a, "alice", "room:1", true, t), t + 60000);
    assert_int_equal(authz_cache_put(a, "alice", "room:2", false, t), t + 60000);
    assert_int_equal(authz_cache_get(a, "alice", "room:1", t + 59999, &exp), AUTHZ_CACHE_YES);
    assert_int_equal(exp, t + 60000);
    assert_int_equal(authz_cache_get(a, "alice", "room:2", t + 1, NULL), AUTHZ_CACHE_NO);
    /* Other principals and channels are other keys; "\n" cannot forge one. */
    assert_int_equal(authz_cache_get(a, "bob", "room:1", t, NULL), AUTHZ_CACHE_MISS);
    assert_int_equal(authz_cache_get(a, "alice\nroom:1", "", t, NULL), AUTHZ_CACHE_MISS);
    /* Expired answers are misses and leave the cache. */
    assert_int_equal(authz_cache_get(a, "alice", "room:1", t + 60000, NULL), AUTHZ_CACHE_MISS);
    assert_int_equal(authz_cache_size(a), 1);
    /* A fresh answer replaces the old one. */
    authz_cache_put(a, "alice", "room:2", true, t + 70000);
    assert_int_equal(authz_cache_get(a, "alice", "room:2", t + 70001, NULL), AUTHZ_CACHE_YES);
    assert_int_equal(authz_cache_size(a), 1);
    authz_free(a);
}

static void test_cache_bound(void **state)
{
    authz *a = make(NULL, NULL, NULL, true, 60, 3);
    char ch[32];
    for (int i = 0; i < 10; i++) {
        snprintf(ch, sizeof ch, "room:%d", i);
        authz_cache_put(a, "alice", ch, true, 1000 + i);
        assert_true(authz_cache_size(a) <= 3);
    }
    /* The newest three stay; the oldest went first. */
    assert_int_equal(authz_cache_get(a, "alice", "room:9", 2000, NULL), AUTHZ_CACHE_YES);
    assert_int_equal(authz_cache_get(a, "alice", "room:7", 2000, NULL), AUTHZ_CACHE_YES);
    assert_int_equal(authz_cache_get(a, "alice", "room:6", 2000, NULL), AUTHZ_CACHE_MISS);
    assert_int_equal(authz_cache_get(a, "alice", "room:0", 2000, NULL), AUTHZ_CACHE_MISS);
    authz_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_patterns),   cmocka_unit_test(test_odd_principals),
        cmocka_unit_test(test_rule_order), cmocka_unit_test(test_bad_settings),
        cmocka_unit_test(test_cache_ttl),  cmocka_unit_test(test_cache_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
