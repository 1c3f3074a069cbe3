/*
 * test_token — the JWS verifier against RFC 7515 appendix A.1, against tokens
 * minted by Node's crypto (an independent implementation; see
 * mint_tokens.mjs, run by ctest as this test's fixture), and against every way
 * a token can be tampered with: bit flips anywhere, alg none, alg switches,
 * claims missing or out of time, unknown kid, oversized and malformed input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jws_mint.h"
#include "token.h"

static const token_limits limits = {.max_bytes = 8192, .leeway = 30};

/* RFC 7515 A.1: the HS256 example, key and token verbatim from the RFC. */
static const char *a1_jwks =
    "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-"
    "1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow\"}]}";
static const char *a1_token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
                              ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGx"
                              "lLmNvbS9pc19yb290Ijp0cnVlfQ"
                              ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
#define A1_EXP 1300819380

/* The secret of the test keys below: 32 bytes "0123456789abcdef0123456789abcdef". */
#define SECRET "0123456789abcdef0123456789abcdef"
static const char *test_jwks = "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"k1\",\"alg\":\"HS256\","
                               "\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"},"
                               "{\"kty\":\"oct\",\"kid\":\"k2\",\"alg\":\"HS256\","
                               "\"k\":\"c2Vjb25kLXNlY3JldC1zZWNvbmQtc2VjcmV0LXNlY29uZA\"}]}";

#define NOW 1700000000

static token_keys *keys_from(const char *json)
{
    char err[256] = "";
    token_keys *k = token_keys_parse(json, strlen(json), err, sizeof err);
    if (!k)
        fail_msg("keys: %s", err);
    return k;
}

/* A token over header and payload, signed with HMAC-SHA256 and secret. */
static char *mint(const char *header, const char *payload, const char *secret)
{
    return jws_mint_hs256(header, strlen(header), payload, strlen(payload), secret, strlen(secret));
}

static char *b64url(const void *data, size_t len)
{
    return jws_b64url(data, len);
}

static token_status verify(const token_keys *k, const char *token, int64_t now, token_claims *c)
{
    return token_verify(k, &limits, token, strlen(token), now, c);
}

static void test_rfc7515_a1(void **state)
{
    token_keys *k = keys_from(a1_jwks);
    token_claims c;
    assert_int_equal(verify(k, a1_token, A1_EXP - 100, &c), TOKEN_OK);
    assert_int_equal(c.exp, A1_EXP);
    assert_null(c.sub);
    assert_null(c.channels);
    token_claims_free(&c);
    /* Past exp, but within the leeway; then past it. */
    assert_int_equal(verify(k, a1_token, A1_EXP + 29, &c), TOKEN_OK);
    token_claims_free(&c);
    assert_int_equal(verify(k, a1_token, A1_EXP + 30, &c), TOKEN_EXPIRED);
    assert_null(c.sub);
    token_keys_free(k);
}

/* Every single-bit flip of every character must break the token. */
static void test_bit_flips(void **state)
{
    token_keys *k = keys_from(a1_jwks);
    char *t = strdup(a1_token);
    size_t len = strlen(t);
    int refused_sig = 0;
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            char saved = t[i];
            t[i] = (char)(t[i] ^ (1 << bit));
            token_claims c;
            token_status st = token_verify(k, &limits, t, len, A1_EXP - 100, &c);
            /* A flip in the last character may only touch the unused low bits of a
             * 43-character signature; base64url then still decodes to the same bytes
             * unless the decoder insists on canonical input. Either way: not OK. */
            if (st == TOKEN_OK)
                fail_msg("flip of bit %d at %zu accepted", bit, i);
            refused_sig += st == TOKEN_BAD_SIGNATURE;
            token_claims_free(&c);
            t[i] = saved;
        }
    }
    assert_true(refused_sig > 0);
    free(t);
    token_keys_free(k);
}

static void test_alg_none_and_switches(void **state)
{
    token_keys *k = keys_from(test_jwks);
    const char *payload = "{\"sub\":\"alice\",\"exp\":1800000000}";
    token_claims c;
    /* alg none with an empty signature, and with a valid HMAC anyway. */
    const char *none_header = "{\"alg\":\"none\",\"kid\":\"k1\"}";
    char *h = b64url(none_header, strlen(none_header));
    char *p = b64url(payload, strlen(payload));
    char none[512];
    snprintf(none, sizeof none, "%s.%s.", h, p);
    assert_int_equal(verify(k, none, NOW, &c), TOKEN_WRONG_ALG);
    free(h);
    free(p);
    const char *headers[] = {
        "{\"alg\":\"none\",\"kid\":\"k1\"}",  "{\"alg\":\"HS384\",\"kid\":\"k1\"}",
        "{\"alg\":\"HS512\",\"kid\":\"k1\"}", "{\"alg\":\"ES256\",\"kid\":\"k1\"}",
        "{\"alg\":\"RS256\",\"kid\":\"k1\"}", "{\"alg\":\"hs256\",\"kid\":\"k1\"}",
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        char *t = mint(headers[i], payload, SECRET);
        assert_int_equal(verify(k, t, NOW, &c), TOKEN_WRONG_ALG);
        free(t);
    }
    /* No alg at all, and crit, are malformed. */
    char *t = mint("{\"kid\":\"k1\"}", payload, SECRET);
    assert_int_equal(verify(k, t, NOW, &c), TOKEN_MALFORMED);
    free(t);
    t = mint("{\"alg\":\"HS256\",\"kid\":\"k1\",\"crit\":[\"exp\"]}", payload, SECRET);
    assert_int_equal(verify(k, t, NOW, &c), TOKEN_MALFORMED);
    free(t);
    /* The right alg and key works, and the claims come through. */
    t = mint("{\"alg\":\"HS256\",\"kid\":\"k1\"}",
             "{\"sub\":\"alice\",\"exp\":1800000000,\"channels\":[\"team:*\"],"
             "\"publish\":[\"user:alice\"]}",
             SECRET);
    assert_int_equal(verify(k, t, NOW, &c), TOKEN_OK);
    assert_string_equal(c.sub, "alice");
    assert_int_equal(c.n_channels, 1);
    assert_string_equal(c.channels[0], "team:*");
    assert_int_equal(c.n_publish, 1);
    token_claims_free(&c);
    free(t);
    token_keys_free(k);
}

static void test_kid_selects_key(void **state)
{
    token_keys *k = keys_from(test_jwks);
    token_claims c;
    const char *payload = "{\"sub\":\"bob\",\"exp\":1800000000}";
    char *t1 = mint("{\"alg\":\"HS256\",\"kid\":\"k1\"}", payload, SECRET);
    char *t2 =
        mint("{\"alg\":\"HS256\",\"kid\":\"k2\"}", payload, "second-secret-second-secret-second");
    char *wrong = mint("{\"alg\":\"HS256\",\"kid\":\"k2\"}", payload, SECRET);
    char *unknown = mint("{\"alg\":\"HS256\",\"kid\":\"k9\"}", payload, SECRET);
    char *nokid = mint("{\"alg\":\"HS256\"}", payload, SECRET);
    char *numkid = mint("{\"alg\":\"HS256\",\"kid\":1}", payload, SECRET);
    assert_int_equal(verify(k, t1, NOW, &c), TOKEN_OK);
    token_claims_free(&c);
    assert_int_equal(verify(k, t2, NOW, &c), TOKEN_OK);
    token_claims_free(&c);
    assert_int_equal(verify(k, wrong, NOW, &c), TOKEN_BAD_SIGNATURE);
    assert_int_equal(verify(k, unknown, NOW, &c), TOKEN_UNKNOWN_KEY);
    assert_int_equal(verify(k, nokid, NOW, &c), TOKEN_UNKNOWN_KEY); /* several keys: kid needed */
    assert_int_equal(verify(k, numkid, NOW, &c), TOKEN_MALFORMED);
    assert_int_equal(token_verify(NULL, &limits, t1, strlen(t1), NOW, &c), TOKEN_UNKNOWN_KEY);
    free(t1);
    free(t2);
    free(wrong);
    free(unknown);
    free(nokid);
    free(numkid);
    token_keys_free(k);
}

static void test_time_claims(void **state)
{
    token_keys *k = keys_from(test_jwks);
    const char *h = "{\"alg\":\"HS256\",\"kid\":\"k1\"}";
    struct {
        const char *payload;
        token_status expect;
    } cases[] = {
        {"{\"sub\":\"a\"}", TOKEN_BAD_CLAIMS},                        /* no exp */
        {"{\"sub\":\"a\",\"exp\":\"1800000000\"}", TOKEN_BAD_CLAIMS}, /* exp a string */
        {"{\"sub\":\"a\",\"exp\":1699999000}", TOKEN_EXPIRED},        /* long past */
        {"{\"sub\":\"a\",\"exp\":1699999971}", TOKEN_OK},             /* within leeway */
        {"{\"sub\":\"a\",\"exp\":1699999970}", TOKEN_EXPIRED},        /* just past it */
        {"{\"sub\":\"a\",\"exp\":1800000000.5}", TOKEN_OK},           /* a fraction */
        {"{\"sub\":\"a\",\"exp\":1e300}", TOKEN_BAD_CLAIMS},          /* absurd */
        /* json-c saturates this to INT64_MAX; exp + leeway must not overflow (found by
         * fuzz_token). */
        {"{\"sub\":\"a\",\"exp\":180000007777777777777777777777700}", TOKEN_BAD_CLAIMS},
        {"{\"sub\":\"a\",\"exp\":9223372036854775807}", TOKEN_BAD_CLAIMS},
        {"{\"sub\":\"a\",\"exp\":1800000000,\"nbf\":1700000100}", TOKEN_NOT_YET},
        {"{\"sub\":\"a\",\"exp\":1800000000,\"nbf\":1700000020}", TOKEN_OK},
        {"{\"sub\":\"a\",\"exp\":1800000000,\"iat\":1700000100}", TOKEN_NOT_YET},
        {"{\"sub\":\"a\",\"exp\":1800000000,\"iat\":1600000000}", TOKEN_OK},
        {"{\"sub\":\"a\",\"exp\":1800000000,\"nbf\":null}", TOKEN_BAD_CLAIMS},
        {"{\"sub\":\"\",\"exp\":1800000000}", TOKEN_BAD_CLAIMS}, /* empty sub */
        {"{\"sub\":7,\"exp\":1800000000}", TOKEN_BAD_CLAIMS},
        {"{\"sub\":\"a\",\"exp\":1800000000,\"channels\":\"x\"}", TOKEN_BAD_CLAIMS},
        {"{\"sub\":\"a\",\"exp\":1800000000,\"channels\":[1]}", TOKEN_BAD_CLAIMS},
        {"{\"sub\":\"a\",\"exp\":1800000000,\"publish\":true}", TOKEN_BAD_CLAIMS},
        {"[1,2]", TOKEN_MALFORMED},
        {"{\"sub\":\"a\",\"exp\":1800000000} x", TOKEN_MALFORMED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *t = mint(h, cases[i].payload, SECRET);
        token_claims c;
        token_status st = verify(k, t, NOW, &c);
        if (st != cases[i].expect)
            fail_msg("%s: got %d, expected %d", cases[i].payload, st, cases[i].expect);
        token_claims_free(&c);
        free(t);
    }
    token_keys_free(k);
}

/* Principals with characters that mean something elsewhere still verify as they are;
 * authz decides what they may match (test_authz). */
static void test_odd_principals(void **state)
{
    token_keys *k = keys_from(test_jwks);
    const char *subs[] = {"a,b", "a=b", "a*", "a:b", "{user}", "al\\u0000ice"};
    const char *expect[] = {"a,b", "a=b", "a*", "a:b", "{user}", NULL};
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        char payload[128];
        snprintf(payload, sizeof payload, "{\"sub\":\"%s\",\"exp\":1800000000}", subs[i]);
        char *t = mint("{\"alg\":\"HS256\",\"kid\":\"k1\"}", payload, SECRET);
        token_claims c;
        token_status st = verify(k, t, NOW, &c);
        if (expect[i]) {
            assert_int_equal(st, TOKEN_OK);
            assert_string_equal(c.sub, expect[i]);
        } else {
            /* An embedded NUL would let "al" stand for "al\0ice": refused. */
            assert_int_equal(st, TOKEN_BAD_CLAIMS);
        }
        token_claims_free(&c);
        free(t);
    }
    token_keys_free(k);
}

static void test_malformed(void **state)
{
    token_keys *k = keys_from(test_jwks);
    char *good =
        mint("{\"alg\":\"HS256\",\"kid\":\"k1\"}", "{\"sub\":\"a\",\"exp\":1800000000}", SECRET);
    char buf[10000];
    const char *cases[] = {
        "",
        ".",
        "..",
        "...",
        "a.b",
        "a.b.c.d",
        "abc",
        "!!!.!!!.!!!",
        "e30.e30.",
        "e30.e30.e30",
        "eyJhbGciOiJIUzI1NiJ9.e30", /* two parts */
    };
    token_claims c;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_not_equal(verify(k, cases[i], NOW, &c), TOKEN_OK);
    /* Padding, whitespace and a standard-alphabet character are not base64url. */
    snprintf(buf, sizeof buf, "%s=", good);
    assert_int_not_equal(verify(k, buf, NOW, &c), TOKEN_OK);
    snprintf(buf, sizeof buf, " %s", good);
    assert_int_not_equal(verify(k, buf, NOW, &c), TOKEN_OK);
    snprintf(buf, sizeof buf, "%s", good);
    *strrchr(buf, '.') = '+';
    assert_int_not_equal(verify(k, buf, NOW, &c), TOKEN_OK);
    /* An embedded NUL: the length given is what is verified. */
    size_t len = strlen(good);
    memcpy(buf, good, len + 1);
    buf[len / 2] = '\0';
    assert_int_not_equal(token_verify(k, &limits, buf, len, NOW, &c), TOKEN_OK);
    /* Oversized: refused before any decoding. */
    memset(buf, 'A', sizeof buf - 1);
    buf[sizeof buf - 1] = '\0';
    assert_int_equal(verify(k, buf, NOW, &c), TOKEN_TOO_LARGE);
    /* Deeply nested header JSON is refused by the depth bound, not parsed. */
    char deep[600] = "{\"alg\":\"HS256\",\"kid\":\"k1\",\"x\":";
    for (int i = 0; i < 100; i++)
        strcat(deep, "[");
    char *t = mint(deep, "{\"exp\":1800000000}", SECRET);
    assert_int_equal(verify(k, t, NOW, &c), TOKEN_MALFORMED);
    free(t);
    assert_int_equal(verify(k, good, NOW, &c), TOKEN_OK);
    token_claims_free(&c);
    free(good);
    token_keys_free(k);
}

/* Tokens minted by Node's crypto (HS256 and ES256), with the JWK Set it wrote. */
static void test_node_minted(void **state)
{
    const char *path = getenv("PGFEED_TOKEN_VECTORS");
    if (!path)
        fail_msg("PGFEED_TOKEN_VECTORS is not set (ctest runs mint_tokens.mjs first)");
    json_object *root = json_object_from_file(path);
    assert_non_null(root);
    json_object *jwks, *cases;
    assert_true(json_object_object_get_ex(root, "jwks", &jwks));
    assert_true(json_object_object_get_ex(root, "cases", &cases));
    const char *jwks_text = json_object_to_json_string(jwks);
    token_keys *k = keys_from(jwks_text);
    json_object *now_obj;
    assert_true(json_object_object_get_ex(root, "now", &now_obj));
    int64_t now = json_object_get_int64(now_obj);
    size_t n = json_object_array_length(cases);
    assert_true(n >= 8);
    for (size_t i = 0; i < n; i++) {
        json_object *cs = json_object_array_get_idx(cases, i), *v;
        json_object_object_get_ex(cs, "name", &v);
        const char *name = json_object_get_string(v);
        json_object_object_get_ex(cs, "token", &v);
        const char *token = json_object_get_string(v);
        json_object_object_get_ex(cs, "ok", &v);
        bool ok = json_object_get_boolean(v);
        token_claims c;
        token_status st = verify(k, token, now, &c);
        if ((st == TOKEN_OK) != ok)
            fail_msg("%s: status %d (%s)", name, st, token_status_text(st));
        if (ok) {
            json_object_object_get_ex(cs, "sub", &v);
            assert_string_equal(c.sub, json_object_get_string(v));
        }
        token_claims_free(&c);
    }
    token_keys_free(k);
    json_object_put(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc7515_a1),
        cmocka_unit_test(test_bit_flips),
        cmocka_unit_test(test_alg_none_and_switches),
        cmocka_unit_test(test_kid_selects_key),
        cmocka_unit_test(test_time_claims),
        cmocka_unit_test(test_odd_principals),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_node_minted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
