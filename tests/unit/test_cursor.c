/*
 * test_cursor — versions as PostgreSQL bigints, the one- and several-channel
 * cursor forms, their formatting, and If-None-Match entity-tags.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "cursor.h"

static int version_of(const char *text, int64_t *out)
{
    return cursor_parse_version(text, strlen(text), out);
}

static void expect_version(const char *text, int64_t want)
{
    int64_t v = -5;
    assert_int_equal(version_of(text, &v), 0);
    assert_int_equal(v, want);
}

static void test_version_valid(void **state)
{
    expect_version("0", 0);
    expect_version("41", 41);
    expect_version("9223372036854775807", INT64_MAX);
}

static void test_version_leading_zeros_are_the_same_number(void **state)
{
    expect_version("007", 7);
    expect_version("000", 0);
    expect_version("00000000000000000000009223372036854775807", INT64_MAX);
}

static void test_version_invalid(void **state)
{
    const char *bad[] = {"",
                         "-1",
                         "+1",
                         " 1",
                         "1 ",
                         "1\t",
                         "\n1",
                         "1e3",
                         "0x10",
                         "1.0",
                         "1,2",
                         "abc",
                         "4 1",
                         "1_000",
                         "\xff",
                         "-0",
                         "now",
                         "9223372036854775808",
                         "18446744073709551616",
                         "99999999999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t v = 123;
        assert_int_equal(version_of(bad[i], &v), -1);
        assert_int_equal(v, 123); /* untouched on failure */
    }
}

static void test_version_respects_len(void **state)
{
    int64_t v = 0;
    assert_int_equal(cursor_parse_version("41,7", 2, &v), 0);
    assert_int_equal(v, 41);
    assert_int_equal(cursor_parse_version("4\0"
                                          "1",
                                          3, &v),
                     -1);
}

static const char *const two[] = {"orders", "user:42"};

/* Parses text as a cursor for the channels in two and checks both versions. */
static void expect_two(const char *text, int64_t want_orders, int64_t want_user)
{
    int64_t v[2] = {-9, -9};
    assert_int_equal(cursor_parse(text, strlen(text), 2, two, v), 0);
    assert_int_equal(v[0], want_orders);
    assert_int_equal(v[1], want_user);
}

static void test_parse_bare_applies_to_every_channel(void **state)
{
    expect_two("41", 41, 41);
    expect_two("0", 0, 0);
    int64_t v[1] = {-9};
    assert_int_equal(cursor_parse("7", 1, 1, two, v), 0);
    assert_int_equal(v[0], 7);
}

static void test_parse_pairs(void **state)
{
    expect_two("orders=41,user:42=7", 41, 7);
    expect_two("user:42=3,orders=5", 5, 3); /* order in the text does not matter */
}

static void test_parse_pairs_missing_and_extra(void **state)
{
    /* user:42 is not named: it starts from 0; gone.channel is no longer requested. */
    expect_two("gone.channel=99,orders=41", 41, 0);
    expect_two("other=5", 0, 0);
}

static void test_parse_names_with_punctuation(void **state)
{
    const char *const names[] = {"a.b-c_d:e", "x:1:2"};
    int64_t v[2] = {0, 0};
    const char *text = "x:1:2=12,a.b-c_d:e=34";
    assert_int_equal(cursor_parse(text, strlen(text), 2, names, v), 0);
    assert_int_equal(v[0], 34);
    assert_int_equal(v[1], 12);
}

static void test_parse_name_must_match_exactly(void **state)
{
    /* "order" and "orders1" are different channels from "orders". */
    expect_two("order=1,orders1=2", 0, 0);
}

static void test_parse_invalid(void **state)
{
    const char *bad[] = {"",
                         "-1",
                         "+41",
                         " 41",
                         "41 ",
                         "1e3",
                         "now",
                         "orders=",
                         "=41",
                         "orders=41,",
                         ",orders=41",
                         "orders=41,,user:42=7",
                         "orders=41, user:42=7",
                         "orders =41",
                         "orders= 41",
                         "orders=-1",
                         "orders=+1",
                         "orders=41,user:42",
                         "orders=41=5",
                         "orders=9223372036854775808",
                         "_orders=1",
                         "bad name=1",
                         "orders=41,orders=42",
                         "orders=41,7",
                         "41,42",
                         "\xff=1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t v[2] = {-9, -8};
        assert_int_equal(cursor_parse(bad[i], strlen(bad[i]), 2, two, v), -1);
        /* a rejected cursor leaves the versions as they were */
        assert_int_equal(v[0], -9);
        assert_int_equal(v[1], -8);
    }
}

static void test_parse_duplicate_unrequested_name_is_only_ignored(void **state)
{
    expect_two("other=1,other=2,orders=3", 3, 0);
}

static void test_parse_respects_len(void **state)
{
    int64_t v[2] = {0, 0};
    assert_int_equal(cursor_parse("orders=41,user:42=7", 9, 2, two, v), 0);
    assert_int_equal(v[0], 41);
    assert_int_equal(v[1], 0);
}

static void test_parse_name_too_long(void **state)
{
    char text[160];
    memset(text, 'a', 129);
    strcpy(text + 129, "=1");
    int64_t v[2] = {-9, -9};
    assert_int_equal(cursor_parse(text, strlen(text), 2, two, v), -1);
}

static void test_format_one_channel_is_bare(void **state)
{
    buf b = BUF_INIT;
    int64_t v[] = {41};
    cursor_format(&b, 1, two, v);
    assert_string_equal(b.data, "41");
    buf_reset(&b);
    int64_t big[] = {INT64_MAX};
    cursor_format(&b, 1, two, big);
    assert_string_equal(b.data, "9223372036854775807");
    buf_free(&b);
}

static void test_format_several_channels(void **state)
{
    buf b = BUF_INIT;
    int64_t v[] = {41, 7};
    cursor_format(&b, 2, two, v);
    assert_string_equal(b.data, "orders=41,user:42=7");
    buf_free(&b);
}

static void test_format_appends(void **state)
{
    buf b = BUF_INIT;
    buf_append_str(&b, "\"");
    int64_t v[] = {0};
    cursor_format(&b, 1, two, v);
    buf_append_str(&b, "\"");
    assert_string_equal(b.data, "\"0\"");
    buf_free(&b);
}

static void test_format_then_parse_round_trips(void **state)
{
    const char *const names[] = {"a", "b:1", "c.d", "e-f_g"};
    int64_t in[] = {0, 1, 1234567890123, INT64_MAX};
    int64_t out[4] = {-1, -1, -1, -1};
    buf b = BUF_INIT;
    cursor_format(&b, 4, names, in);
    assert_int_equal(cursor_parse(b.data, b.len, 4, names, out), 0);
    assert_memory_equal(in, out, sizeof in);
    buf_free(&b);
}

static bool tag_of(const char *header, const char *expect)
{
    const char *tag = NULL;
    size_t len = 0;
    if (!cursor_from_if_none_match(header, &tag, &len))
        return false;
    assert_int_equal(len, strlen(expect));
    assert_memory_equal(tag, expect, len);
    return true;
}

static void test_if_none_match_forms(void **state)
{
    assert_true(tag_of("\"41\"", "41"));
    assert_true(tag_of("W/\"41\"", "41"));
    assert_true(tag_of("\"a\", \"b\"", "a"));
    assert_true(tag_of("W/\"a\",\"b\"", "a"));
    assert_true(tag_of("  \"41\"  ", "41"));
    assert_true(tag_of(", \"41\"", "41"));
    assert_true(tag_of("\"orders=41,user:42=7\"", "orders=41,user:42=7"));
    assert_true(tag_of("\"\"", ""));
    assert_true(tag_of("\"\xc3\xa9\"", "\xc3\xa9"));
    /* the first tag is taken even when a later one is malformed */
    assert_true(tag_of("\"41\", garbage", "41"));
}

static void test_if_none_match_rejects(void **state)
{
    const char *bad[] = {"",          "*",        " * ",      "\"41",
                         "41",        "W/41",     "w/\"41\"", "W/ \"41\"",
                         "\"4 1\"",   "\"4\t1\"", "\"41\"x",  "\"41\" \"42\"",
                         "\"4\x01\"", "W/",       ",",        "\"a\"\"b\""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *tag = NULL;
        size_t len = 99;
        assert_false(cursor_from_if_none_match(bad[i], &tag, &len));
    }
    const char *tag;
    size_t len;
    assert_false(cursor_from_if_none_match(NULL, &tag, &len));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_valid),
        cmocka_unit_test(test_version_leading_zeros_are_the_same_number),
        cmocka_unit_test(test_version_invalid),
        cmocka_unit_test(test_version_respects_len),
        cmocka_unit_test(test_parse_bare_applies_to_every_channel),
        cmocka_unit_test(test_parse_pairs),
        cmocka_unit_test(test_parse_pairs_missing_and_extra),
        cmocka_unit_test(test_parse_names_with_punctuation),
        cmocka_unit_test(test_parse_name_must_match_exactly),
        cmocka_unit_test(test_parse_invalid),
        cmocka_unit_test(test_parse_duplicate_unrequested_name_is_only_ignored),
        cmocka_unit_test(test_parse_respects_len),
        cmocka_unit_test(test_parse_name_too_long),
        cmocka_unit_test(test_format_one_channel_is_bare),
        cmocka_unit_test(test_format_several_channels),
        cmocka_unit_test(test_format_appends),
        cmocka_unit_test(test_format_then_parse_round_trips),
        cmocka_unit_test(test_if_none_match_forms),
        cmocka_unit_test(test_if_none_match_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
