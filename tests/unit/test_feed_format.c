/*
 * test_feed_format — the exact bytes of CGI header blocks and SSE frames, and
 * poll bodies read back with json-c so every member is checked as JSON.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <json-c/json.h>
#include <string.h>

#include "feed_format.h"

static void expect_text(const buf *b, const char *want)
{
    assert_non_null(b->data);
    assert_string_equal(b->data, want);
    assert_int_equal(b->len, strlen(want));
}

/* ---- header blocks ---- */

static void test_head_with_content_type(void **state)
{
    buf b = BUF_INIT;
    feed_format_head(&b, 200, "application/json");
    feed_format_header(&b, "ETag", "\"41\"");
    feed_format_end_head(&b);
    expect_text(&b, "Status: 200 OK\r\n"
                    "Content-Type: application/json\r\n"
                    "Cache-Control: no-cache\r\n"
                    "ETag: \"41\"\r\n"
                    "\r\n");
    buf_free(&b);
}

static void test_head_without_content_type(void **state)
{
    buf b = BUF_INIT;
    feed_format_head(&b, 304, NULL);
    feed_format_end_head(&b);
    expect_text(&b, "Status: 304 Not Modified\r\n"
                    "Cache-Control: no-cache\r\n"
                    "\r\n");
    buf_free(&b);
}

static void test_head_of_an_unknown_status(void **state)
{
    buf b = BUF_INIT;
    feed_format_head(&b, 418, "text/plain");
    expect_text(&b, "Status: 418 Unknown\r\n"
                    "Content-Type: text/plain\r\n"
                    "Cache-Control: no-store\r\n");
    buf_free(&b);
}

static void test_head_then_body_in_one_buffer(void **state)
{
    buf b = BUF_INIT;
    feed_format_head(&b, 503, "application/problem+json");
    feed_format_header(&b, "Retry-After", "5");
    feed_format_header(&b, "X-Accel-Buffering", "no");
    feed_format_end_head(&b);
    buf_append_str(&b, "{}");
    expect_text(&b, "Status: 503 Service Unavailable\r\n"
                    "Content-Type: application/problem+json\r\n"
                    "Cache-Control: no-store\r\n"
                    "Retry-After: 5\r\n"
                    "X-Accel-Buffering: no\r\n"
                    "\r\n"
                    "{}");
    buf_free(&b);
}

static void test_header_longer_than_the_printf_fast_path(void **state)
{
    char value[1001];
    memset(value, 'v', sizeof value - 1);
    value[sizeof value - 1] = '\0';
    buf b = BUF_INIT;
    feed_format_header(&b, "Link", value);
    assert_int_equal(b.len, strlen("Link: ") + 1000 + 2);
    assert_memory_equal(b.data, "Link: vvv", 9);
    assert_memory_equal(b.data + b.len - 3, "v\r\n", 3);
    buf_free(&b);
}

/* ---- poll bodies ---- */

static json_object *parse_object(const buf *b)
{
    assert_non_null(b->data);
    assert_int_equal(strlen(b->data), b->len); /* no stray NUL inside */
    json_tokener *tok = json_tokener_new();
    json_object *parsed = json_tokener_parse_ex(tok, b->data, (int)b->len);
    assert_int_equal(json_tokener_get_error(tok), json_tokener_success);
    assert_int_equal(json_tokener_get_parse_end(tok), b->len); /* nothing after it */
    json_tokener_free(tok);
    assert_non_null(parsed);
    assert_true(json_object_is_type(parsed, json_type_object));
    return parsed;
}

static json_object *member(json_object *obj, const char *key, json_type type)
{
    json_object *value = NULL;
    assert_true(json_object_object_get_ex(obj, key, &value));
    assert_true(json_object_is_type(value, type));
    return value;
}

static void expect_int_member(json_object *obj, const char *key, int64_t want)
{
    assert_int_equal(json_object_get_int64(member(obj, key, json_type_int)), want);
}

static void expect_bool_member(json_object *obj, const char *key, bool want)
{
    assert_int_equal(json_object_get_boolean(member(obj, key, json_type_boolean)), want);
}

static void expect_string_member(json_object *obj, const char *key, const char *want)
{
    assert_string_equal(json_object_get_string(member(obj, key, json_type_string)), want);
}

/* The events array must hold exactly the given texts, each one as JSON equal to it. */
static void expect_events(json_object *body, const char *const *want, size_t n)
{
    json_object *events = member(body, "events", json_type_array);
    assert_int_equal(json_object_array_length(events), n);
    for (size_t i = 0; i < n; i++) {
        json_object *expected = json_tokener_parse(want[i]);
        assert_non_null(expected);
        assert_true(json_object_equal(json_object_array_get_idx(events, i), expected));
        json_object_put(expected);
    }
}

/* The six members of a one-channel body; the events are checked by the caller. */
static void expect_one_channel(json_object *body, const char *channel, int64_t head, int64_t oldest,
                               bool more, const char *cursor)
{
    assert_int_equal(json_object_object_length(body), 6);
    expect_string_member(body, "channel", channel);
    expect_int_member(body, "head", head);
    expect_int_member(body, "oldest", oldest);
    expect_bool_member(body, "more", more);
    expect_string_member(body, "cursor", cursor);
}

static const char *const orders_events[] = {
    "{\"version\":41,\"type\":\"created\",\"data\":{\"id\":7},\"time\":\"2024-05-01T10:00:00Z\"}",
    "{\"version\":42,\"type\":\"updated\",\"data\":{\"id\":7,\"note\":\"caf\\u00e9 \\\"q\\\"\"},"
    "\"time\":\"2024-05-01T10:00:01Z\"}",
};

static void lens_of(const char *const *texts, size_t n, size_t *lens)
{
    for (size_t i = 0; i < n; i++)
        lens[i] = strlen(texts[i]);
}

static void test_one_channel_exact_text(void **state)
{
    const char *events[] = {"{\"version\":1}", "{\"version\":2}"};
    size_t lens[2];
    lens_of(events, 2, lens);
    feed_view v = {"orders", 2, 1, false, 2, events, lens};
    buf b = BUF_INIT;
    feed_format_poll_body(&b, &v, 1, false, "2", NULL);
    expect_text(&b,
                "{\"channel\":\"orders\",\"head\":2,\"oldest\":1,"
                "\"events\":[{\"version\":1},{\"version\":2}],\"more\":false,\"cursor\":\"2\"}");
    buf_free(&b);
}

static void test_one_channel_members(void **state)
{
    size_t lens[2];
    lens_of(orders_events, 2, lens);
    feed_view v = {"orders", 50, 3, true, 2, orders_events, lens};
    buf b = BUF_INIT;
    feed_format_poll_body(&b, &v, 1, false, "42", NULL);
    json_object *body = parse_object(&b);
    expect_one_channel(body, "orders", 50, 3, true, "42");
    expect_events(body, orders_events, 2);
    /* Event JSON is copied, never re-encoded: the escapes arrive as PostgreSQL wrote them. */
    assert_non_null(strstr(b.data, orders_events[1]));
    json_object_put(body);
    buf_free(&b);
}

static void test_one_channel_without_events(void **state)
{
    feed_view v = {"user:42", 0, 0, false, 0, NULL, NULL};
    buf b = BUF_INIT;
    feed_format_poll_body(&b, &v, 1, false, "0", NULL);
    json_object *body = parse_object(&b);
    expect_one_channel(body, "user:42", 0, 0, false, "0");
    expect_events(body, NULL, 0);
    json_object_put(body);
    buf_free(&b);
}

static void test_event_lengths_are_respected(void **state)
{
    /* The texts are views into a larger row buffer: only len bytes belong to each. */
    const char *row = "{\"version\":5}{\"version\":6}trailing garbage";
    const char *events[] = {row, row + 13};
    const size_t lens[] = {13, 13};
    const char *const want[] = {"{\"version\":5}", "{\"version\":6}"};
    feed_view v = {"a", 6, 5, false, 2, events, lens};
    buf b = BUF_INIT;
    feed_format_poll_body(&b, &v, 1, false, "6", NULL);
    json_object *body = parse_object(&b);
    expect_events(body, want, 2);
    assert_null(strstr(b.data, "garbage"));
    json_object_put(body);
    buf_free(&b);
}

static void test_extreme_versions(void **state)
{
    char name[129];
    memset(name, 'n', 128); /* the longest channel name */
    name[128] = '\0';
    feed_view v = {name, INT64_MAX, INT64_MAX - 1, false, 0, NULL, NULL};
    buf b = BUF_INIT;
    buf_append_str(&b, "   "); /* the body is appended, not written over what is there */
    feed_format_poll_body(&b, &v, 1, false, "9223372036854775807", NULL);
    const char *start = "   {\"channel\":\"nnn";
    assert_memory_equal(b.data, start, strlen(start));
    json_object *body = parse_object(&b);
    expect_one_channel(body, name, INT64_MAX, INT64_MAX - 1, false, "9223372036854775807");
    json_object_put(body);
    buf_free(&b);
}

static void expect_channel(json_object *channels, const char *name, int64_t head, int64_t oldest,
                           bool more)
{
    json_object *c = member(channels, name, json_type_object);
    assert_int_equal(json_object_object_length(c), 3);
    expect_int_member(c, "head", head);
    expect_int_member(c, "oldest", oldest);
    expect_bool_member(c, "more", more);
}

static void test_several_channels(void **state)
{
    const char *users[] = {"{\"version\":7,\"channel\":\"user:42\"}"};
    const char *audit[] = {"{\"version\":1,\"channel\":\"audit.log\"}",
                           "{\"version\":2,\"channel\":\"audit.log\"}"};
    size_t orders_lens[2], users_lens[1], audit_lens[2];
    lens_of(orders_events, 2, orders_lens);
    lens_of(users, 1, users_lens);
    lens_of(audit, 2, audit_lens);
    /* An empty view between two full ones: the commas must still come out right. */
    const feed_view views[] = {
        {"orders", 42, 1, true, 2, orders_events, orders_lens},
        {"empty", 0, 0, false, 0, NULL, NULL},
        {"user:42", 7, 7, false, 1, users, users_lens},
        {"audit.log", 2, 1, false, 2, audit, audit_lens},
    };
    buf b = BUF_INIT;
    feed_format_poll_body(&b, views, 4, true, "orders=42,empty=0,user:42=7,audit.log=2", NULL);
    json_object *body = parse_object(&b);
    assert_int_equal(json_object_object_length(body), 3);
    json_object *channels = member(body, "channels", json_type_object);
    assert_int_equal(json_object_object_length(channels), 4);
    expect_channel(channels, "orders", 42, 1, true);
    expect_channel(channels, "empty", 0, 0, false);
    expect_channel(channels, "user:42", 7, 7, false);
    expect_channel(channels, "audit.log", 2, 1, false);
    const char *const all[] = {orders_events[0], orders_events[1], users[0], audit[0], audit[1]};
    expect_events(body, all, 5);
    expect_string_member(body, "cursor", "orders=42,empty=0,user:42=7,audit.log=2");
    json_object_put(body);
    buf_free(&b);
}

static void test_several_channels_none_with_events(void **state)
{
    const feed_view views[] = {
        {"a", 0, 0, false, 0, NULL, NULL},
        {"b", 9, 10, false, 0, NULL, NULL},
    };
    buf b = BUF_INIT;
    feed_format_poll_body(&b, views, 2, true, "a=0,b=9", NULL);
    expect_text(&b, "{\"channels\":{\"a\":{\"head\":0,\"oldest\":0,\"more\":false},"
                    "\"b\":{\"head\":9,\"oldest\":10,\"more\":false}},"
                    "\"events\":[],\"cursor\":\"a=0,b=9\"}");
    buf_free(&b);
}

static void test_several_form_with_one_channel(void **state)
{
    const char *events[] = {"{\"version\":3}"};
    size_t lens[1];
    lens_of(events, 1, lens);
    feed_view v = {"only", 3, 1, false, 1, events, lens};
    buf b = BUF_INIT;
    feed_format_poll_body(&b, &v, 1, true, "only=3", NULL);
    json_object *body = parse_object(&b);
    assert_false(json_object_object_get_ex(body, "channel", NULL));
    expect_channel(member(body, "channels", json_type_object), "only", 3, 1, false);
    expect_events(body, events, 1);
    expect_string_member(body, "cursor", "only=3");
    json_object_put(body);
    buf_free(&b);
}

static void test_several_channels_with_a_long_cursor(void **state)
{
    /* 40 channels of 100-byte names: the cursor alone is far past printf's fast path. */
    enum { n = 40 };
    char names[n][101];
    feed_view views[n];
    buf cursor = BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        memset(names[i], 'c', 100);
        names[i][98] = (char)('0' + i / 10);
        names[i][99] = (char)('0' + i % 10);
        names[i][100] = '\0';
        views[i] = (feed_view){names[i], (int64_t)i * 1000, 1, i % 2 == 0, 0, NULL, NULL};
        buf_printf(&cursor, "%s%s=%zu", i ? "," : "", names[i], i * 1000);
    }
    buf b = BUF_INIT;
    feed_format_poll_body(&b, views, n, true, cursor.data, NULL);
    json_object *body = parse_object(&b);
    json_object *channels = member(body, "channels", json_type_object);
    assert_int_equal(json_object_object_length(channels), n);
    for (size_t i = 0; i < n; i++)
        expect_channel(channels, names[i], (int64_t)i * 1000, 1, i % 2 == 0);
    expect_string_member(body, "cursor", cursor.data);
    json_object_put(body);
    buf_free(&b);
    buf_free(&cursor);
}

/* ---- SSE frames ---- */

static void test_sse_event_with_name(void **state)
{
    const char *data = "{\"version\":41,\"type\":\"created\"}";
    buf b = BUF_INIT;
    feed_format_sse_event(&b, "41", "created", data, strlen(data));
    expect_text(&b, "id: 41\nevent: created\ndata: {\"version\":41,\"type\":\"created\"}\n\n");
    buf_free(&b);
}

static void test_sse_event_without_name_or_id(void **state)
{
    buf b = BUF_INIT;
    feed_format_sse_event(&b, "orders=3,user:42=9", NULL, "{}", 2);
    expect_text(&b, "id: orders=3,user:42=9\ndata: {}\n\n");
    buf_reset(&b);
    feed_format_sse_event(&b, NULL, "gone", "{\"oldest\":5}", 12);
    expect_text(&b, "event: gone\ndata: {\"oldest\":5}\n\n");
    buf_reset(&b);
    feed_format_sse_event(&b, NULL, NULL, "", 0);
    expect_text(&b, "data: \n\n");
    buf_free(&b);
}

static void test_sse_data_length_is_respected(void **state)
{
    buf b = BUF_INIT;
    feed_format_sse_event(&b, "1", NULL, "{\"a\":1}{\"b\":2}", 7);
    expect_text(&b, "id: 1\ndata: {\"a\":1}\n\n");
    buf_free(&b);
}

static void test_sse_large_event(void **state)
{
    enum { n = 100000 };
    static char data[n];
    data[0] = '"';
    memset(data + 1, 'x', n - 2);
    data[n - 1] = '"';
    buf b = BUF_INIT;
    feed_format_sse_event(&b, "7", "big", data, n);
    const char *prefix = "id: 7\nevent: big\ndata: ";
    size_t prefix_len = strlen(prefix);
    assert_int_equal(b.len, prefix_len + n + 2);
    assert_memory_equal(b.data, prefix, prefix_len);
    assert_memory_equal(b.data + prefix_len, data, n);
    assert_memory_equal(b.data + prefix_len + n, "\n\n", 3); /* and the NUL */
    buf_free(&b);
}

/* The one-channel frame is the general frame with the version as its id, byte for byte. */
static void test_sse_event_version_matches_the_general_frame(void **state)
{
    const int64_t versions[] = {0, 1, 9, 10, 41, 999, 1000, 123456789, INT64_MAX};
    const char *data = "{\"version\":41,\"type\":\"created\"}";
    buf b = BUF_INIT, want = BUF_INIT, id = BUF_INIT;
    for (size_t i = 0; i < sizeof versions / sizeof *versions; i++) {
        buf_reset(&b);
        buf_reset(&want);
        buf_reset(&id);
        buf_printf(&id, "%" PRId64, versions[i]);
        feed_format_sse_event_version(&b, versions[i], data, strlen(data));
        feed_format_sse_event(&want, id.data, NULL, data, strlen(data));
        expect_text(&b, want.data);
    }
    buf_free(&b);
    buf_free(&want);
    buf_free(&id);
}

static void test_sse_event_version_exact_and_appended(void **state)
{
    buf b = BUF_INIT;
    feed_format_sse_event_version(&b, 7, "{\"a\":1}{\"b\":2}", 7); /* data_len is respected */
    feed_format_sse_event_version(&b, 9223372036854775807, "", 0);
    expect_text(&b, "id: 7\ndata: {\"a\":1}\n\n"
                    "id: 9223372036854775807\ndata: \n\n");
    buf_free(&b);
}

/* The memo hands out the frame of what it is asked for, whatever it held before. */
static void test_sse_memo_is_matched_by_content(void **state)
{
    feed_sse_memo *m = feed_sse_memo_new();
    char a[] = "{\"n\":1}", b[] = "{\"n\":1}", c[] = "{\"n\":2}";
    expect_text(feed_sse_memo_frame(m, 5, a, strlen(a)), "id: 5\ndata: {\"n\":1}\n\n");
    /* The same bytes elsewhere (another copy of the event) give the same frame. */
    expect_text(feed_sse_memo_frame(m, 5, b, strlen(b)), "id: 5\ndata: {\"n\":1}\n\n");
    /* Same version, other data (another channel's event 5, maybe at a's old address). */
    expect_text(feed_sse_memo_frame(m, 5, c, strlen(c)), "id: 5\ndata: {\"n\":2}\n\n");
    memcpy(a, c, sizeof c); /* a's address now holds another event: its bytes decide */
    expect_text(feed_sse_memo_frame(m, 5, a, strlen(a)), "id: 5\ndata: {\"n\":2}\n\n");
    /* Same data, other version; then a prefix of the data (length differs). */
    expect_text(feed_sse_memo_frame(m, 6, c, strlen(c)), "id: 6\ndata: {\"n\":2}\n\n");
    expect_text(feed_sse_memo_frame(m, 6, c, 3), "id: 6\ndata: {\"n\n\n");
    expect_text(feed_sse_memo_frame(m, 6, "", 0), "id: 6\ndata: \n\n");
    expect_text(feed_sse_memo_frame(m, 0, "", 0), "id: 0\ndata: \n\n");
    feed_sse_memo_free(m);
    feed_sse_memo_free(NULL);
}

static void test_sse_retry_and_comments(void **state)
{
    buf b = BUF_INIT;
    feed_format_sse_retry(&b, 2000);
    feed_format_sse_comment(&b, "heartbeat");
    feed_format_sse_retry(&b, 0);
    feed_format_sse_comment(&b, "");
    expect_text(&b, "retry: 2000\n\n"
                    ": heartbeat\n\n"
                    "retry: 0\n\n"
                    ": \n\n");
    buf_free(&b);
}

static void test_sse_stream_start(void **state)
{
    /* What a stream sends first (sse_begin writes feed_format_sse_head), then
     * catch-up events and a heartbeat. */
    buf b = BUF_INIT;
    feed_format_sse_head(&b, 600000, NULL);
    feed_format_sse_event(&b, "1", NULL, "{\"version\":1}", 13);
    feed_format_sse_event(&b, "2", NULL, "{\"version\":2}", 13);
    feed_format_sse_comment(&b, "hb");
    expect_text(&b, "Status: 200 OK\r\n"
                    "Content-Type: text/event-stream\r\n"
                    "Cache-Control: no-store\r\n"
                    "X-Accel-Buffering: no\r\n"
                    "\r\n"
                    "retry: 600000\n\n"
                    "id: 1\ndata: {\"version\":1}\n\n"
                    "id: 2\ndata: {\"version\":2}\n\n"
                    ": hb\n\n");
    buf_free(&b);
}

/* With CORS headers, and the last frame of a stream whose authorization ran out. */
static void test_sse_head_extra_and_auth_frame(void **state)
{
    buf b = BUF_INIT;
    feed_format_sse_head(&b, 1000, "Access-Control-Allow-Origin: https://a.example\r\n");
    feed_format_sse_auth(&b, "the token has expired \"now\"");
    expect_text(&b, "Status: 200 OK\r\n"
                    "Content-Type: text/event-stream\r\n"
                    "Cache-Control: no-store\r\n"
                    "X-Accel-Buffering: no\r\n"
                    "Access-Control-Allow-Origin: https://a.example\r\n"
                    "\r\n"
                    "retry: 1000\n\n"
                    "event: auth\ndata: {\"reason\":\"the token has expired \\\"now\\\"\"}\n\n");
    buf_free(&b);
}

static void test_cacheable_head_and_next_link(void **state)
{
    buf b = BUF_INIT;
    feed_format_head_cache(&b, 200, "application/json", "public, max-age=25");
    expect_text(&b, "Status: 200 OK\r\n"
                    "Content-Type: application/json\r\n"
                    "Cache-Control: public, max-age=25\r\n");
    buf_reset(&b);
    feed_view v = {.channel = "news", .head = 3, .oldest = 1};
    feed_format_poll_body(&b, &v, 1, false, "3", "?since=3&wait=25&round=1");
    expect_text(&b, "{\"channel\":\"news\",\"head\":3,\"oldest\":1,\"events\":[],"
                    "\"more\":false,\"cursor\":\"3\",\"next\":\"?since=3&wait=25&round=1\"}");
    buf_free(&b);
}

static void test_sse_reset_frame(void **state)
{
    buf b = BUF_INIT;
    feed_format_sse_reset(&b, "orders=9", "orders", 5, 9, "pruned");
    expect_text(&b,
                "id: orders=9\nevent: reset\n"
                "data: {\"channel\":\"orders\",\"oldest\":5,\"head\":9,\"reason\":\"pruned\"}\n\n");
    buf_free(&b);
}

/* The database's state on a stream: a named event without an id (the cursor stays). */
static void test_sse_status_frame(void **state)
{
    buf b = BUF_INIT;
    feed_format_sse_status(&b, false);
    feed_format_sse_status(&b, true);
    expect_text(&b, "event: status\ndata: {\"database\":\"down\"}\n\n"
                    "event: status\ndata: {\"database\":\"up\"}\n\n");
    buf_free(&b);
    feed_format_database_down(&b);
    expect_text(&b, "Pgfeed-Database: down\r\n");
    buf_free(&b);
}

static void test_published_and_health_bodies(void **state)
{
    buf b = BUF_INIT;
    feed_format_published(&b, "user:42", INT64_MAX);
    expect_text(&b, "{\"channel\":\"user:42\",\"version\":9223372036854775807}");
    buf_reset(&b);
    feed_format_health(&b);
    expect_text(&b, "{\"status\":\"ok\",\"database\":\"up\"}");
    buf_free(&b);
}

static void test_etag_and_retry_after_headers(void **state)
{
    buf b = BUF_INIT;
    feed_format_head(&b, 201, "application/json");
    feed_format_etag(&b, "a=1,b=2");
    feed_format_retry_after(&b, 3);
    feed_format_end_head(&b);
    expect_text(&b, "Status: 201 Created\r\n"
                    "Content-Type: application/json\r\n"
                    "Cache-Control: no-cache\r\n"
                    "ETag: \"a=1,b=2\"\r\n"
                    "Retry-After: 3\r\n"
                    "\r\n");
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_with_content_type),
        cmocka_unit_test(test_head_without_content_type),
        cmocka_unit_test(test_head_of_an_unknown_status),
        cmocka_unit_test(test_head_then_body_in_one_buffer),
        cmocka_unit_test(test_header_longer_than_the_printf_fast_path),
        cmocka_unit_test(test_one_channel_exact_text),
        cmocka_unit_test(test_one_channel_members),
        cmocka_unit_test(test_one_channel_without_events),
        cmocka_unit_test(test_event_lengths_are_respected),
        cmocka_unit_test(test_extreme_versions),
        cmocka_unit_test(test_several_channels),
        cmocka_unit_test(test_several_channels_none_with_events),
        cmocka_unit_test(test_several_form_with_one_channel),
        cmocka_unit_test(test_several_channels_with_a_long_cursor),
        cmocka_unit_test(test_sse_event_with_name),
        cmocka_unit_test(test_sse_event_without_name_or_id),
        cmocka_unit_test(test_sse_data_length_is_respected),
        cmocka_unit_test(test_sse_large_event),
        cmocka_unit_test(test_sse_event_version_matches_the_general_frame),
        cmocka_unit_test(test_sse_event_version_exact_and_appended),
        cmocka_unit_test(test_sse_memo_is_matched_by_content),
        cmocka_unit_test(test_sse_retry_and_comments),
        cmocka_unit_test(test_sse_stream_start),
        cmocka_unit_test(test_sse_head_extra_and_auth_frame),
        cmocka_unit_test(test_sse_reset_frame),
        cmocka_unit_test(test_sse_status_frame),
        cmocka_unit_test(test_cacheable_head_and_next_link),
        cmocka_unit_test(test_published_and_health_bodies),
        cmocka_unit_test(test_etag_and_retry_after_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
