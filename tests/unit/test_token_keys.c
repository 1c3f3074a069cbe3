/*
 * test_token_keys — JWK Sets: what is refused at load (short secrets, other
 * algorithms, points off the curve, duplicate kids, "use" other than sig, a
 * missing file), and how a kid finds its key and its algorithm.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "token_keys.h"

static const char *two_keys = "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"k1\",\"alg\":\"HS256\","
                              "\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"},"
                              "{\"kty\":\"oct\",\"kid\":\"k2\",\"alg\":\"HS256\","
                              "\"k\":\"c2Vjb25kLXNlY3JldC1zZWNvbmQtc2VjcmV0LXNlY29uZA\"}]}";
static const char *one_key = "{\"keys\":[{\"kty\":\"oct\",\"k\":"
                             "\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}]}";

static void test_kid_finds_key(void **state)
{
    char err[256] = "";
    token_keys *k = token_keys_parse(two_keys, strlen(two_keys), err, sizeof err);
    assert_non_null(k);
    assert_int_equal(token_keys_count(k), 2);
    assert_non_null(token_keys_find(k, "k1"));
    assert_non_null(token_keys_find(k, "k2"));
    assert_ptr_not_equal(token_keys_find(k, "k1"), token_keys_find(k, "k2"));
    assert_string_equal(token_keys_alg(token_keys_find(k, "k1")), "HS256");
    assert_null(token_keys_find(k, "k9"));
    assert_null(token_keys_find(k, NULL)); /* several keys: a token must name one */
    token_keys_free(k);
    /* One key without a kid serves tokens without one, and nothing named. */
    k = token_keys_parse(one_key, strlen(one_key), err, sizeof err);
    assert_non_null(k);
    assert_non_null(token_keys_find(k, NULL));
    assert_null(token_keys_find(k, "k1"));
    token_keys_free(k);
    assert_int_equal(token_keys_count(NULL), 0);
}

static void test_bad_key_sets(void **state)
{
    const char *bad[] = {
        "",
        "[]",
        "{\"keys\":[]}",
        "{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2hvcnQ\"}]}", /* secret too short */
        "{\"keys\":[{\"kty\":\"oct\",\"alg\":\"HS512\",\"k\":"
        "\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}]}",
        "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"x\",\"e\":\"AQAB\"}]}",
        "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}]}",
        /* a point not on the curve */
        "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":"
        "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\",\"y\":"
        "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\"}]}",
        "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"a\",\"k\":"
        "\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"},{\"kty\":\"oct\",\"kid\":\"a\",\"k\":"
        "\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}]}", /* duplicate kid */
        "{\"keys\":[{\"kty\":\"oct\",\"use\":\"enc\",\"k\":"
        "\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "";
        token_keys *k = token_keys_parse(bad[i], strlen(bad[i]), err, sizeof err);
        if (k)
            fail_msg("accepted key set %zu", i);
        assert_true(err[0] != '\0');
    }
    char err[256];
    assert_null(token_keys_load("/nonexistent/jwks.json", err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/jwks.json"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kid_finds_key),
        cmocka_unit_test(test_bad_key_sets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
