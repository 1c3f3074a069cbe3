/*
 * test_query_string — decoding, repeated names, and every malformed escape a
 * hostile client can send.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query_string.h"

static query_params *parse_ok(const char *text)
{
    query_params *q = NULL;
    const char *detail = NULL;
    assert_int_equal(query_params_parse(text, &q, &detail), 0);
    assert_non_null(q);
    return q;
}

static const char *parse_error(const char *text)
{
    query_params *q = (query_params *)1;
    const char *detail = NULL;
    assert_int_equal(query_params_parse(text, &q, &detail), -1);
    assert_null(q);
    assert_non_null(detail);
    return detail;
}

static void test_null_and_empty(void **state)
{
    const char *texts[] = {NULL, "", "&", "&&&"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        query_params *q = parse_ok(texts[i]);
        assert_null(query_params_get(q, ""));
        assert_int_equal(query_params_count(q, "a"), 0);
        query_params_free(q);
    }
    query_params_free(NULL);
}

static void test_simple_pairs(void **state)
{
    query_params *q = parse_ok("since=41&limit=10&wait=25");
    assert_string_equal(query_params_get(q, "since"), "41");
    assert_string_equal(query_params_get(q, "limit"), "10");
    assert_string_equal(query_params_get(q, "wait"), "25");
    assert_null(query_params_get(q, "Since"));
    assert_null(query_params_get(q, "missing"));
    query_params_free(q);
}

static void test_repeated_names(void **state)
{
    query_params *q = parse_ok("channel=a&x=1&channel=b&channel=c");
    assert_int_equal(query_params_count(q, "channel"), 3);
    assert_string_equal(query_params_get(q, "channel"), "a");
    assert_string_equal(query_params_get_nth(q, "channel", 0), "a");
    assert_string_equal(query_params_get_nth(q, "channel", 1), "b");
    assert_string_equal(query_params_get_nth(q, "channel", 2), "c");
    assert_null(query_params_get_nth(q, "channel", 3));
    assert_null(query_params_get_nth(q, "y", 0));
    query_params_free(q);
}

static void test_empty_pieces_are_skipped(void **state)
{
    query_params *q = parse_ok("&a=1&&b=2&");
    assert_string_equal(query_params_get(q, "a"), "1");
    assert_string_equal(query_params_get(q, "b"), "2");
    assert_int_equal(query_params_count(q, ""), 0);
    query_params_free(q);
}

static void test_names_without_values(void **state)
{
    query_params *q = parse_ok("flag&empty=&=orphan");
    assert_string_equal(query_params_get(q, "flag"), "");
    assert_string_equal(query_params_get(q, "empty"), "");
    assert_string_equal(query_params_get(q, ""), "orphan");
    query_params_free(q);
}

static void test_only_first_equals_splits(void **state)
{
    query_params *q = parse_ok("since=orders=41,user:42=7");
    assert_string_equal(query_params_get(q, "since"), "orders=41,user:42=7");
    query_params_free(q);
}

static void test_decoding(void **state)
{
    query_params *q = parse_ok("a=x+y&b=%41%62%2c%2C&c=%25&d=%2B+&e=%c3%A9&%6e%61me=v&f=a%3Db");
    assert_string_equal(query_params_get(q, "a"), "x y");
    assert_string_equal(query_params_get(q, "b"), "Ab,,");
    assert_string_equal(query_params_get(q, "c"), "%");
    assert_string_equal(query_params_get(q, "d"), "+ ");
    assert_string_equal(query_params_get(q, "e"), "\xc3\xa9");
    assert_string_equal(query_params_get(q, "name"), "v");
    assert_string_equal(query_params_get(q, "f"), "a=b");
    query_params_free(q);
}

static void test_raw_non_ascii_passes_through(void **state)
{
    query_params *q = parse_ok("channel=\xff\xfe&x=\x01");
    assert_string_equal(query_params_get(q, "channel"), "\xff\xfe");
    assert_string_equal(query_params_get(q, "x"), "\x01");
    query_params_free(q);
}

static void test_malformed_escapes(void **state)
{
    const char *bad[] = {"a=%",  "a=%4",        "a=%GG", "a=%4G",   "a=%G4", "a=% 41",
                         "%=1",  "%zz=1",       "a=1&%", "a=%%41",  "a=%-1", "a=%+1",
                         "a=1%", "a=%\xff\xff", "a=%0",  "b=1&a=%4"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_string_equal(
            parse_error(bad[i]),
            "query string has a malformed percent-escape (% must be followed by two hex digits)");
}

static void test_encoded_nul(void **state)
{
    const char *bad[] = {"a=%00", "a%00b=1", "channel=orders%00evil", "x=1&a=%00"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_string_equal(parse_error(bad[i]), "query string contains an encoded NUL byte (%00)");
}

static void test_many_pairs(void **state)
{
    /* 10,000 channel= pairs: the array grows, nothing is lost or leaked. */
    size_t n = 10000;
    char *text = malloc(n * 16 + 1);
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(text + len, "%schannel=c%zu", i ? "&" : "", i);
    query_params *q = parse_ok(text);
    assert_int_equal(query_params_count(q, "channel"), n);
    assert_string_equal(query_params_get_nth(q, "channel", 9999), "c9999");
    query_params_free(q);
    free(text);
}

static void test_huge_value(void **state)
{
    size_t n = 1 << 20;
    char *text = malloc(n + 3);
    memcpy(text, "a=", 2);
    memset(text + 2, 'z', n);
    text[n + 2] = '\0';
    query_params *q = parse_ok(text);
    assert_int_equal(strlen(query_params_get(q, "a")), n);
    query_params_free(q);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_and_empty),
        cmocka_unit_test(test_simple_pairs),
        cmocka_unit_test(test_repeated_names),
        cmocka_unit_test(test_empty_pieces_are_skipped),
        cmocka_unit_test(test_names_without_values),
        cmocka_unit_test(test_only_first_equals_splits),
        cmocka_unit_test(test_decoding),
        cmocka_unit_test(test_raw_non_ascii_passes_through),
        cmocka_unit_test(test_malformed_escapes),
        cmocka_unit_test(test_encoded_nul),
        cmocka_unit_test(test_many_pairs),
        cmocka_unit_test(test_huge_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
