/*
 * test_jose — base64url as JWS spells it (canonical, unpadded, URL alphabet)
 * and the bounded JSON objects tokens and key sets are parsed into.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "jose.h"

static void test_b64url(void **state)
{
    size_t n = 0;
    unsigned char *out = jose_b64url_decode("-_8", 3, &n); /* 0xfb 0xff */
    assert_non_null(out);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 0xfb);
    assert_int_equal(out[1], 0xff);
    free(out);
    out = jose_b64url_decode("", 0, &n);
    assert_non_null(out);
    assert_int_equal(n, 0);
    free(out);
    const char *refused[] = {
        "+/8",  /* the standard alphabet */
        "-_8=", /* padding */
        "-_9",  /* unused low bits set: a second spelling of -_8 */
        "QUJDRA ", "QUJ DRA", "Q", "QUJDR", "QUJ\nD",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (jose_b64url_decode(refused[i], strlen(refused[i]), &n))
            fail_msg("accepted \"%s\"", refused[i]);
}

static void test_json(void **state)
{
    const char *ok = "{\"a\":\"x\",\"n\":1}";
    json_object *o = jose_json_parse(ok, strlen(ok));
    assert_non_null(o);
    assert_string_equal(jose_json_member(o, "a"), "x");
    assert_null(jose_json_member(o, "n")); /* not a string */
    assert_null(jose_json_member(o, "missing"));
    json_object_put(o);
    /* One object and nothing after it, nested only so deep. */
    char deep[64] = "{\"x\":";
    for (int i = 0; i < 10; i++)
        strcat(deep, "[");
    const char *refused[] = {"[1]", "\"s\"", "{} {}", "{\"a\":1} x", "{", deep};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        o = jose_json_parse(refused[i], strlen(refused[i]));
        if (o)
            fail_msg("accepted %s", refused[i]);
    }
    /* A NUL inside a string would let C read a shorter one. */
    const char *nul = "{\"sub\":\"al\\u0000ice\"}";
    o = jose_json_parse(nul, strlen(nul));
    assert_non_null(o);
    assert_null(jose_json_member(o, "sub"));
    json_object_put(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url),
        cmocka_unit_test(test_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
