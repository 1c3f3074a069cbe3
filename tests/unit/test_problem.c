/*
 * test_problem — the problem+json body, read back with
 * json-c's parser so the tests check JSON, not one spelling of it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "problem.h"

/* Builds the body and parses it back; the caller puts the result. */
static json_object *body_of(int status, const char *detail, const json_object *extra, buf *b)
{
    problem_body(b, status, detail, extra);
    assert_non_null(b->data);
    json_object *parsed = json_tokener_parse(b->data);
    assert_non_null(parsed);
    assert_true(json_object_is_type(parsed, json_type_object));
    return parsed;
}

static const char *member_string(json_object *obj, const char *key)
{
    json_object *value;
    assert_true(json_object_object_get_ex(obj, key, &value));
    return json_object_get_string(value);
}

static void test_plain_body(void **state)
{
    buf b = BUF_INIT;
    json_object *parsed = body_of(404, "no route for \"/_foo\"", NULL, &b);
    /* exact text: plain, standard members first, slashes not escaped */
    assert_string_equal(b.data, "{\"type\":\"about:blank\",\"title\":\"Not Found\",\"status\":404,"
                                "\"detail\":\"no route for \\\"/_foo\\\"\"}");
    assert_string_equal(member_string(parsed, "type"), "about:blank");
    assert_string_equal(member_string(parsed, "title"), "Not Found");
    assert_string_equal(member_string(parsed, "detail"), "no route for \"/_foo\"");
    json_object *status;
    assert_true(json_object_object_get_ex(parsed, "status", &status));
    assert_int_equal(json_object_get_int(status), 404);
    assert_int_equal(json_object_object_length(parsed), 4);
    json_object_put(parsed);
    buf_free(&b);
}

static void test_null_detail_is_left_out(void **state)
{
    buf b = BUF_INIT;
    json_object *parsed = body_of(503, NULL, NULL, &b);
    assert_false(json_object_object_get_ex(parsed, "detail", NULL));
    assert_string_equal(member_string(parsed, "title"), "Service Unavailable");
    json_object_put(parsed);
    buf_free(&b);
}

static void test_extra_members_and_ownership(void **state)
{
    json_object *extra = json_object_new_object();
    json_object_object_add(extra, "oldest", json_object_new_int64(17));
    json_object_object_add(extra, "head", json_object_new_int64(INT64_MAX));
    json_object *nested = json_object_new_array();
    json_object_array_add(nested, json_object_new_string("orders"));
    json_object_object_add(extra, "channels", nested);

    buf b = BUF_INIT;
    json_object *parsed = body_of(410, "cursor 3 is gone", extra, &b);
    json_object *value;
    assert_true(json_object_object_get_ex(parsed, "oldest", &value));
    assert_int_equal(json_object_get_int64(value), 17);
    assert_true(json_object_object_get_ex(parsed, "head", &value));
    assert_true(json_object_get_int64(value) == INT64_MAX);
    assert_true(json_object_object_get_ex(parsed, "channels", &value));
    assert_string_equal(json_object_get_string(json_object_array_get_idx(value, 0)), "orders");
    json_object_put(parsed);

    /* extra still belongs to the caller and is unchanged; a second use works too */
    assert_int_equal(json_object_object_length(extra), 3);
    buf_reset(&b);
    parsed = body_of(410, "again", extra, &b);
    assert_true(json_object_object_get_ex(parsed, "oldest", NULL));
    json_object_put(parsed);
    json_object_put(extra); /* frees everything: ASan/valgrind prove no reference leaked */
    buf_free(&b);
}

static void test_extra_cannot_override_standard_members(void **state)
{
    json_object *extra = json_object_new_object();
    json_object_object_add(extra, "status", json_object_new_int(200));
    json_object_object_add(extra, "title", json_object_new_string("OK"));
    json_object_object_add(extra, "detail", json_object_new_string("all fine"));
    json_object_object_add(extra, "type", json_object_new_string("https://example.com/x"));
    json_object_object_add(extra, "retry_after", json_object_new_int(5));

    buf b = BUF_INIT;
    json_object *parsed = body_of(503, "database is down", extra, &b);
    json_object *status;
    assert_true(json_object_object_get_ex(parsed, "status", &status));
    assert_int_equal(json_object_get_int(status), 503);
    assert_string_equal(member_string(parsed, "title"), "Service Unavailable");
    assert_string_equal(member_string(parsed, "detail"), "database is down");
    assert_string_equal(member_string(parsed, "type"), "about:blank");
    assert_true(json_object_object_get_ex(parsed, "retry_after", NULL));
    assert_int_equal(json_object_object_length(parsed), 5);
    json_object_put(parsed);
    json_object_put(extra);
    buf_free(&b);
}

static void test_extra_not_an_object_is_ignored(void **state)
{
    json_object *extra = json_object_new_array();
    json_object_array_add(extra, json_object_new_int(1));
    buf b = BUF_INIT;
    json_object *parsed = body_of(400, "x", extra, &b);
    assert_int_equal(json_object_object_length(parsed), 4);
    json_object_put(parsed);
    json_object_put(extra);
    buf_free(&b);
}

static void test_detail_is_escaped(void **state)
{
    const char *detail = "quote \" backslash \\ newline \n tab \t control \x01 </script>";
    buf b = BUF_INIT;
    json_object *parsed = body_of(400, detail, NULL, &b);
    assert_string_equal(member_string(parsed, "detail"), detail);
    assert_null(memchr(b.data, '\n', b.len));
    assert_null(memchr(b.data, '\x01', b.len));
    json_object_put(parsed);
    buf_free(&b);
}

static void test_appends_to_existing_buffer(void **state)
{
    buf b = BUF_INIT;
    buf_append_str(&b, "prefix:");
    problem_body(&b, 400, "d", NULL);
    assert_int_equal(strncmp(b.data, "prefix:{", 8), 0);
    assert_int_equal(b.data[b.len - 1], '}');
    buf_free(&b);
}

static void test_long_detail(void **state)
{
    char detail[4096];
    memset(detail, 'x', sizeof detail - 1);
    detail[sizeof detail - 1] = '\0';
    buf b = BUF_INIT;
    json_object *parsed = body_of(400, detail, NULL, &b);
    assert_string_equal(member_string(parsed, "detail"), detail);
    json_object_put(parsed);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_body),
        cmocka_unit_test(test_null_detail_is_left_out),
        cmocka_unit_test(test_extra_members_and_ownership),
        cmocka_unit_test(test_extra_cannot_override_standard_members),
        cmocka_unit_test(test_extra_not_an_object_is_ignored),
        cmocka_unit_test(test_detail_is_escaped),
        cmocka_unit_test(test_appends_to_existing_buffer),
        cmocka_unit_test(test_long_detail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
