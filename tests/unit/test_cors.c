/*
 * test_cors — --cors-origin: the headers of an answer for a named origin, for
 * "*" (public channels only, never with credentials) and for others; preflights
 * allowed and refused; origins refused at startup.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "cors.h"

static cors *make(const char *origins, bool credentials)
{
    char err[256] = "";
    cors *c = cors_new(origins, credentials, err, sizeof err);
    if (!c)
        fail_msg("cors_new: %s", err);
    return c;
}

static void test_answer_headers(void **state)
{
    cors *c = make("https://app.example,*", true);
    buf h = BUF_INIT;
    cors_headers(c, "https://app.example", false, &h);
    assert_non_null(strstr(h.data, "Access-Control-Allow-Origin: https://app.example\r\n"));
    assert_non_null(strstr(h.data, "Access-Control-Allow-Credentials: true\r\n"));
    /* A cross-origin page reads the cursor and the degraded signal (pgfeed.js). */
    assert_non_null(strstr(h.data, "Access-Control-Expose-Headers: ETag, Pgfeed-Database\r\n"));
    assert_non_null(strstr(h.data, "Vary: Origin\r\n"));
    buf_reset(&h);
    /* "*" covers public channels only, and never with credentials. */
    cors_headers(c, "https://elsewhere.example", true, &h);
    assert_non_null(strstr(h.data, "Access-Control-Allow-Origin: *\r\n"));
    assert_null(strstr(h.data, "Credentials"));
    buf_reset(&h);
    cors_headers(c, "https://elsewhere.example", false, &h);
    assert_null(strstr(h.data, "Access-Control-Allow-Origin"));
    assert_non_null(strstr(h.data, "Vary: Origin\r\n")); /* caches must key on Origin */
    buf_reset(&h);
    /* No Origin: only Vary. */
    cors_headers(c, NULL, true, &h);
    assert_string_equal(h.data, "Vary: Origin\r\n");
    buf_free(&h);
    cors_free(c);

    /* Without a token cookie, a named origin gets no credentials. */
    c = make("https://app.example", false);
    h = (buf)BUF_INIT;
    cors_headers(c, "https://app.example", false, &h);
    assert_non_null(strstr(h.data, "Access-Control-Allow-Origin: https://app.example\r\n"));
    assert_null(strstr(h.data, "Credentials"));
    buf_free(&h);
    cors_free(c);
}

static void test_preflight(void **state)
{
    cors *c = make("https://app.example,*", true);
    buf h = BUF_INIT;
    char why[256];
    assert_true(cors_preflight(c, "https://app.example", "GET", &h, why, sizeof why));
    assert_non_null(strstr(h.data, "Access-Control-Allow-Origin: https://app.example\r\n"));
    const char *needed[] = {"If-None-Match", "Last-Event-ID", "Authorization"};
    for (size_t i = 0; i < 3; i++)
        assert_non_null(strstr(h.data, needed[i]));
    buf_reset(&h);
    assert_false(cors_preflight(c, "https://app.example", "PUT", &h, why, sizeof why));
    assert_non_null(strstr(why, "PUT"));
    assert_false(cors_preflight(c, NULL, "GET", &h, why, sizeof why));
    assert_false(cors_preflight(c, "https://app.example", NULL, &h, why, sizeof why));
    buf_free(&h);
    cors_free(c);

    /* A named list without "*" refuses other origins. */
    c = make("https://app.example", true);
    h = (buf)BUF_INIT;
    assert_false(cors_preflight(c, "https://elsewhere.example", "GET", &h, why, sizeof why));
    assert_non_null(strstr(why, "elsewhere.example"));
    assert_int_equal(h.len, 0);
    cors_free(c);

    /* Without --cors-origin: no CORS headers, preflights refused. */
    c = make(NULL, true);
    cors_headers(c, "https://app.example", true, &h);
    assert_int_equal(h.len, 0);
    assert_false(cors_preflight(c, "https://app.example", "GET", &h, why, sizeof why));
    buf_free(&h);
    cors_free(c);
}

static void test_bad_origins(void **state)
{
    const char *bad[] = {"https://app.example/path", "app.example", "https://", "ftp://x", "**"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "";
        cors *c = cors_new(bad[i], false, err, sizeof err);
        if (c)
            fail_msg("accepted %s", bad[i]);
        assert_non_null(strstr(err, "--cors-origin"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answer_headers),
        cmocka_unit_test(test_preflight),
        cmocka_unit_test(test_bad_origins),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
