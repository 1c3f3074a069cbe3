/*
 * test_channel_name — the channel alphabet, its length cap, and bytes that
 * must never pass (NUL, non-ASCII, route prefixes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "channel_name.h"

static bool valid(const char *name)
{
    return channel_name_valid(name, strlen(name));
}

static void test_accepts_the_alphabet(void **state)
{
    assert_true(valid("orders"));
    assert_true(valid("user:42"));
    assert_true(valid("a"));
    assert_true(valid("7"));
    assert_true(valid("Z.y_x-w:v"));
    assert_true(valid("0abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-"));
}

static void test_rejects_punctuation_first(void **state)
{
    assert_false(valid("_health"));
    assert_false(valid(".hidden"));
    assert_false(valid(":x"));
    assert_false(valid("-x"));
}

static void test_rejects_other_bytes(void **state)
{
    const char *bad[] = {"a b",   "a/b",  "a=b",  "a,b",  "a%b",
                         "a\"b",  "a\\b", "a\tb", "a\nb", "a+b",
                         "a?b",   "a#b",  "a&b",  "a;b",  "\xc3\xa9t\xc3\xa9",
                         "a\xff", "a\x7f"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_false(valid(bad[i]));
}

static void test_length_bounds(void **state)
{
    char name[CHANNEL_NAME_MAX + 2];
    memset(name, 'a', sizeof name);
    assert_false(channel_name_valid(name, 0));
    assert_true(channel_name_valid(name, CHANNEL_NAME_MAX));
    assert_false(channel_name_valid(name, CHANNEL_NAME_MAX + 1));
    assert_false(channel_name_valid(NULL, 0));
    assert_false(channel_name_valid("", 0));
}

static void test_len_is_respected(void **state)
{
    /* Only len bytes are looked at: a valid prefix of an invalid string passes... */
    assert_true(channel_name_valid("orders/1", 6));
    /* ...and an embedded NUL inside len does not. */
    assert_false(channel_name_valid("ab\0cd", 5));
}

static void test_listed_names_prefixes_and_star(void **state)
{
    (void)state;
    assert_false(channel_name_listed(NULL, "news"));
    assert_false(channel_name_listed("", "news"));
    assert_true(channel_name_listed("news", "news"));
    assert_false(channel_name_listed("news", "newsroom"));
    assert_false(channel_name_listed("newsroom", "news"));
    assert_true(channel_name_listed("orders,news", "news"));
    assert_true(channel_name_listed("public:*", "public:42"));
    assert_false(channel_name_listed("public:*", "user:42"));
    assert_true(channel_name_listed("*", "user:42"));
    assert_false(channel_name_listed(",,", "news"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_the_alphabet),
        cmocka_unit_test(test_rejects_punctuation_first),
        cmocka_unit_test(test_rejects_other_bytes),
        cmocka_unit_test(test_length_bounds),
        cmocka_unit_test(test_len_is_respected),
        cmocka_unit_test(test_listed_names_prefixes_and_star),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
