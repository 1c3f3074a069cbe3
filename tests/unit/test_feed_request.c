/*
 * test_feed_request — routes, methods, channels, cursors, paging and
 * transport chosen from CGI parameters, and the exact 4xx every hostile or
 * mistaken request earns. Parameters come from a NULL-terminated list of
 * name, value pairs, so each test states its whole request.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cursor.h"
#include "feed_request.h"

#define NAME_RULE                                                                                  \
    "names are 1 to 128 characters of A-Z a-z 0-9 _ . : - and start with a letter or digit"
#define SINCE_DETAIL "since must be a non-negative integer, \"now\", or a cursor"
#define LIMIT_DETAIL "limit must be an integer from 1 to 1000"
#define WAIT_DETAIL "wait must be a non-negative integer (seconds)"

/* A request: name, value, name, value, ..., NULL. */
#define REQ(...) ((const char *[]){__VA_ARGS__, NULL})

static const feed_limits LIMITS = {
    .max_query_length = 4096,
    .max_channels = 16,
    .default_limit = 100,
    .max_limit = 1000,
    .max_wait = 30,
    .publish_enabled = false,
};

static feed_limits publishing(void)
{
    feed_limits limits = LIMITS;
    limits.publish_enabled = true;
    return limits;
}

static const char *lookup(void *ctx, const char *name)
{
    for (const char **kv = ctx; kv[0] != NULL; kv += 2)
        if (strcmp(kv[0], name) == 0)
            return kv[1];
    return NULL;
}

static void parse_with(const char **kv, const feed_limits *limits, feed_request *req)
{
    feed_error err;
    if (feed_request_parse(lookup, kv, limits, req, &err) != 0)
        fail_msg("expected success, got %d: %s", err.status, err.detail);
}

static void parse(const char **kv, feed_request *req)
{
    parse_with(kv, &LIMITS, req);
}

/* Parses a request that must fail; checks the empty result and returns the error. */
static feed_error refuse_with(const char **kv, const feed_limits *limits, int status)
{
    feed_request req;
    feed_error err;
    memset(&req, 0x5a, sizeof req);
    assert_int_equal(feed_request_parse(lookup, kv, limits, &req, &err), -1);
    assert_int_equal(err.status, status);
    assert_true(strlen(err.detail) > 0 && strlen(err.detail) < sizeof err.detail);
    assert_int_equal(req.n_channels, 0);
    assert_null(req.channels);
    assert_null(req.cursors);
    assert_null(req.if_none_match);
    if (status != 405)
        assert_null(err.allow);
    feed_request_free(&req); /* harmless on the empty result */
    return err;
}

static void refuse(const char **kv, int status, const char *detail)
{
    feed_error err = refuse_with(kv, &LIMITS, status);
    assert_string_equal(err.detail, detail);
}

/* A one-channel feed request with every default: poll from the oldest retained event (POST
 * takes no cursor), default limit, unconditional. */
static void assert_plain_feed(const feed_request *req, feed_method method, const char *channel)
{
    assert_int_equal(req->route, ROUTE_FEED);
    assert_int_equal(req->method, method);
    assert_int_equal(req->transport, TRANSPORT_POLL);
    assert_int_equal(req->n_channels, 1);
    assert_string_equal(req->channels[0], channel);
    assert_true(req->cursors[0] == (method == METHOD_POST ? 0 : CURSOR_OLDEST));
    assert_int_equal(req->limit, 100);
    assert_int_equal(req->wait, 0);
    assert_null(req->if_none_match);
}

/* ---- routes ---- */

static void test_one_channel_by_path(void **state)
{
    feed_request req;
    parse(REQ("REQUEST_METHOD", "GET", "PATH_INFO", "/orders"), &req);
    assert_plain_feed(&req, METHOD_GET, "orders");
    feed_request_free(&req);
    assert_null(req.channels);
    feed_request_free(&req); /* idempotent */
}

static void test_path_name_at_the_length_cap(void **state)
{
    char path[1 + 128 + 1] = "/";
    memset(path + 1, 'x', 128);
    path[129] = '\0';
    feed_request req;
    parse(REQ("REQUEST_METHOD", "GET", "PATH_INFO", path), &req);
    assert_string_equal(req.channels[0], path + 1);
    feed_request_free(&req);
}

static void test_several_channels_by_parameter(void **state)
{
    const char *paths[] = {"/", ""};
    for (size_t i = 0; i < 2; i++) {
        feed_request req;
        parse(REQ("REQUEST_METHOD", "HEAD", "PATH_INFO", paths[i], "QUERY_STRING",
                  "channel=orders&channel=user%3A42&_=1700000000"),
              &req);
        assert_int_equal(req.method, METHOD_HEAD);
        assert_int_equal(req.n_channels, 2);
        assert_string_equal(req.channels[0], "orders");
        assert_string_equal(req.channels[1], "user:42");
        assert_true(req.cursors[0] == CURSOR_OLDEST);
        assert_true(req.cursors[1] == CURSOR_OLDEST);
        feed_request_free(&req);
    }
}

static void test_missing_path_info_is_root(void **state)
{
    feed_request req;
    parse(REQ("REQUEST_METHOD", "GET", "QUERY_STRING", "channel=a"), &req);
    assert_int_equal(req.n_channels, 1);
    assert_string_equal(req.channels[0], "a");
    feed_request_free(&req);
    refuse(REQ("REQUEST_METHOD", "GET"), 400,
           "no channel given; request /{channel} or add channel= parameters");
}

static void test_health_and_metrics(void **state)
{
    const char *methods[] = {"GET", "HEAD"};
    for (size_t i = 0; i < 2; i++) {
        feed_request req;
        /* the query string is not even decoded: "%" does no harm here */
        parse(REQ("REQUEST_METHOD", methods[i], "PATH_INFO", "/_health", "QUERY_STRING", "%"),
              &req);
        assert_int_equal(req.route, ROUTE_HEALTH);
        assert_int_equal(req.n_channels, 0);
        assert_null(req.channels);
        assert_null(req.cursors);
        feed_request_free(&req);
        parse(REQ("REQUEST_METHOD", methods[i], "PATH_INFO", "/_metrics", "QUERY_STRING",
                  "channel=a"),
              &req);
        assert_int_equal(req.route, ROUTE_METRICS);
        assert_int_equal(req.n_channels, 0);
        feed_request_free(&req);
    }
}

static void test_health_still_bounds_the_query_string(void **state)
{
    char query[4098];
    memset(query, 'x', 4097);
    query[4097] = '\0';
    refuse(REQ("REQUEST_METHOD", "GET", "PATH_INFO", "/_health", "QUERY_STRING", query), 414,
           "query string is 4097 bytes long; at most 4096 are accepted");
}

static void test_unknown_underscore_routes(void **state)
{
    refuse(REQ("REQUEST_METHOD", "GET", "PATH_INFO", "/_foo"), 404, "no route for \"/_foo\"");
    refuse(REQ("REQUEST_METHOD", "GET", "PATH_INFO", "/_health/"), 404,
           "no route for \"/_health/\"");
    refuse(REQ("REQUEST_METHOD", "GET", "PATH_INFO", "/_HEALTH"), 404, "no route for \"/_HEALTH\"");
    refuse(REQ("REQUEST_METHOD", "GET", "PATH_INFO", "/_"), 404, "no route for \"/_\"");
    refuse(REQ("REQUEST_METHOD", "GET", "PATH_INFO", "orders"), 404, "no route for \"orders\"");
    /* a 404 wins over a bad method: the path is what is wrong */
    refuse(REQ("REQUEST_METHOD", "DELETE", "PATH_INFO", "/_x\n\"y"), 404,
           "no route for \"/_x\\x0A\\x22y\"");
}

/* A bad value and how a detail must echo it (quoted, escaped). */
typedef struct echo_case {
    const char *input;
    const char *echoed;
} echo_case;

/* Sends each input as param and expects a 400 whose detail is detail_format with the echo. */
static void refuse_names(const char *param, const echo_case *cases, size_t n,
                         const char *detail_format)
{
    for (size_t i = 0; i < n; i++) {
        char expect[256];
        snprintf(expect, sizeof expect, detail_format, cases[i].echoed);
        refuse(REQ("REQUEST_METHOD", "GET", param, cases[i].input), 400, expect);
    }
}

static void test_invalid_path_names(void **state)
{
    static const echo_case cases[] = {
        {"/a/b", "a/b"}, {"/bad name", "bad name"},         {"/orders/", "orders/"}, {"//", "/"},
        {"/.x", ".x"},   {"/caf\xc3\xa9", "caf\\xC3\\xA9"},
    };
    refuse_names("PATH_INFO", cases, sizeof cases / sizeof *cases,
                 "invalid channel name \"%s\" in the path; " NAME_RULE);
}

static void test_overlong_path_names_are_cut_in_the_detail(void **state)
{
    char path[1 + 129 + 1] = "/";
    memset(path + 1, 'a', 129);
    path[130] = '\0';
    feed_error err = refuse_with(REQ("REQUEST_METHOD", "GET", "PATH_INFO", path), &LIMITS, 400);
    char expect[256];
    snprintf(expect, sizeof expect, "invalid channel name \"%.60s...\" in the path; " NAME_RULE,
             path + 1);
    assert_string_equal(err.detail, expect);

    /* an escape that would not fit whole is left out, not cut in half */
    memset(path + 1, 'a', 59);
    strcpy(path + 60, "\xff\xff");
    err = refuse_with(REQ("REQUEST_METHOD", "GET", "PATH_INFO", path), &LIMITS, 400);
    snprintf(expect, sizeof expect, "invalid channel name \"%.59s...\" in the path; " NAME_RULE,
             path + 1);
    assert_string_equal(err.detail, expect);

    /* 100 KB of non-ASCII: the echo is escaped, cut, and the detail still ends properly */
    size_t n = 100000;
    char *huge = malloc(n + 2);
    huge[0] = '/';
    memset(huge + 1, 0xff, n);
    huge[n + 1] = '\0';
    err = refuse_with(REQ("REQUEST_METHOD", "GET", "PATH_INFO", huge), &LIMITS, 400);
    assert_non_null(strstr(err.detail, "\"\\xFF\\xFF"));
    assert_non_null(strstr(err.detail, "...\" in the path; "));
    for (const char *p = err.detail; *p; p++)
        assert_true(*p >= 0x20 && *p < 0x7f);
    free(huge);
}

/* ---- methods ---- */

/* Expects a 405 with this detail and this Allow header. */
static void refuse_method(const char **kv, const feed_limits *limits, const char *detail,
                          const char *allow)
{
    feed_error err = refuse_with(kv, limits, 405);
    assert_string_equal(err.detail, detail);
    assert_string_equal(err.allow, allow);
}

static void test_other_methods(void **state)
{
    const char *methods[] = {"PUT", "DELETE", "OPTIONS", "get", "", "GET "};
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++) {
        char expect[256];
        snprintf(expect, sizeof expect, "method \"%s\" is not allowed; use GET or HEAD",
                 methods[i]);
        refuse_method(REQ("REQUEST_METHOD", methods[i], "PATH_INFO", "/orders"), &LIMITS, expect,
                      "GET, HEAD");
    }
    refuse_method(REQ("PATH_INFO", "/orders"), &LIMITS,
                  "method \"\" is not allowed; use GET or HEAD", "GET, HEAD");
    refuse_method(REQ("REQUEST_METHOD", "P\x01T", "PATH_INFO", "/orders"), &LIMITS,
                  "method \"P\\x01T\" is not allowed; use GET or HEAD", "GET, HEAD");
}

static void test_other_methods_when_publishing(void **state)
{
    feed_limits limits = publishing();
    refuse_method(REQ("REQUEST_METHOD", "PUT", "PATH_INFO", "/orders"), &limits,
                  "method \"PUT\" is not allowed; use GET, HEAD or POST", "GET, HEAD, POST");
    refuse_method(REQ("REQUEST_METHOD", "PUT", "QUERY_STRING", "channel=a"), &limits,
                  "method \"PUT\" is not allowed; use GET or HEAD", "GET, HEAD");
}

static void test_post_when_publishing_is_off(void **state)
{
    refuse_method(REQ("REQUEST_METHOD", "POST", "PATH_INFO", "/orders"), &LIMITS,
                  "POST is not allowed: publishing is disabled on this server", "GET, HEAD");
}

static void test_post_publishes_to_one_channel(void **state)
{
    feed_limits limits = publishing();
    feed_request req;
    /* cursor, paging and transport parameters mean nothing to a publish */
    parse_with(REQ("REQUEST_METHOD", "POST", "PATH_INFO", "/user:42", "QUERY_STRING",
                   "since=bogus&limit=0", "HTTP_ACCEPT", "text/event-stream"),
               &limits, &req);
    assert_plain_feed(&req, METHOD_POST, "user:42");
    feed_request_free(&req);
}

static void test_post_elsewhere(void **state)
{
    feed_limits limits = publishing();
    refuse_method(REQ("REQUEST_METHOD", "POST", "QUERY_STRING", "channel=a"), &limits,
                  "POST publishes to one channel; use POST /{channel}", "GET, HEAD");
    refuse_method(REQ("REQUEST_METHOD", "POST", "PATH_INFO", "/_health"), &limits,
                  "POST is not allowed on /_health; use GET or HEAD", "GET, HEAD");
    refuse_method(REQ("REQUEST_METHOD", "POST", "PATH_INFO", "/_metrics"), &limits,
                  "POST is not allowed on /_metrics; use GET or HEAD", "GET, HEAD");
    /* publishing still needs a clean query string and a single channel */
    feed_error err =
        refuse_with(REQ("REQUEST_METHOD", "POST", "PATH_INFO", "/a", "QUERY_STRING", "channel=b"),
                    &limits, 400);
    assert_string_equal(err.detail, "use either /{channel} or channel= parameters, not both");
}

/* ---- channels ---- */

static void test_path_and_parameter_do_not_mix(void **state)
{
    refuse(REQ("REQUEST_METHOD", "GET", "PATH_INFO", "/orders", "QUERY_STRING", "channel=orders"),
           400, "use either /{channel} or channel= parameters, not both");
}

static void test_duplicate_channels(void **state)
{
    refuse(REQ("REQUEST_METHOD", "GET", "QUERY_STRING", "channel=a&channel=b&channel=a"), 400,
           "channel \"a\" is given more than once");
}

static void test_invalid_channel_parameters(void **state)
{
    static const echo_case cases[] = {
        {"channel=", ""},
        {"channel", ""},
        {"channel=ok&channel=bad+name", "bad name"},
        {"channel=_health", "_health"},
        {"channel=a,b", "a,b"},
        {"channel=%FF%0a%22", "\\xFF\\x0A\\x22"},
    };
    refuse_names("QUERY_STRING", cases, sizeof cases / sizeof *cases,
                 "channel parameter \"%s\" is not a valid channel name; " NAME_RULE);
}

static char *many_channels(size_t n)
{
    char *query = malloc(n * 16 + 1);
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(query + len, "%schannel=c%zu", i ? "&" : "", i);
    return query;
}

static void test_channel_cap(void **state)
{
    char *query = many_channels(16);
    feed_request req;
    parse(REQ("REQUEST_METHOD", "GET", "QUERY_STRING", query), &req);
    assert_int_equal(req.n_channels, 16);
    assert_string_equal(req.channels[15], "c15");
    feed_request_free(&req);
    free(query);

    query = many_channels(17);
    refuse(REQ("REQUEST_METHOD", "GET", "QUERY_STRING", query), 400,
           "too many channels (17); at most 16 are allowed per request");
    free(query);
}

static void test_ten_thousand_channels(void **state)
{
    feed_limits limits = LIMITS;
    limits.max_query_length = 1 << 20;
    char *query = many_channels(10000);
    feed_error err = refuse_with(REQ("REQUEST_METHOD", "GET", "QUERY_STRING", query), &limits, 400);
    assert_string_equal(err.detail,
                        "too many channels (10000); at most 16 are allowed per request");
    free(query);
}

/* ---- query string ---- */

static void test_query_string_length(void **state)
{
    char query[4098] = "channel=a&_=";
    size_t prefix = strlen(query);
    memset(query + prefix, 'x', 4096 - prefix);
    query[4096] = '\0';
    feed_request req;
    parse(REQ("REQUEST_METHOD", "GET", "QUERY_STRING", query), &req);
    feed_request_free(&req);
    query[4096] = 'x';
    query[4097] = '\0';
    refuse(REQ("REQUEST_METHOD", "GET", "QUERY_STRING", query), 414,
           "query string is 4097 bytes long; at most 4096 are accepted");
}

static void test_malformed_query_strings(void **state)
{
    const char *malformed[] = {"channel=a&x=%", "channel=a&x=%4", "channel=%GG", "%=1"};
    for (size_t i = 0; i < sizeof malformed / sizeof *malformed; i++)
        refuse(REQ("REQUEST_METHOD", "GET", "PATH_INFO", "/", "QUERY_STRING", malformed[i]), 400,
               "query string has a malformed percent-escape (% must be followed by two hex "
               "digits)");
    refuse(REQ("REQUEST_METHOD", "GET", "QUERY_STRING", "channel=orders%00x"), 400,
           "query string contains an encoded NUL byte (%00)");
    /* even a parameter pgfeed ignores must be well-formed */
    refuse(REQ("REQUEST_METHOD", "GET", "PATH_INFO", "/orders", "QUERY_STRING", "_=%zz"), 400,
           "query string has a malformed percent-escape (% must be followed by two hex digits)");
}

static void test_unknown_parameters_are_ignored(void **state)
{
    feed_request req;
    parse(REQ("REQUEST_METHOD", "GET", "PATH_INFO", "/orders", "QUERY_STRING",
              "_=1700000000&foo=%41&&bar"),
          &req);
    assert_int_equal(req.n_channels, 1);
    feed_request_free(&req);
}

/* ---- since, limit, wait ---- */

/* Parses a request that must succeed; checks each cursor and the kept If-None-Match tag. */
static void expect_cursors(const char **kv, size_t n, const int64_t *want, const char *kept)
{
    feed_request req;
    parse(kv, &req);
    assert_int_equal(req.n_channels, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(req.cursors[i], want[i]);
    if (kept)
        assert_string_equal(req.if_none_match, kept);
    else
        assert_null(req.if_none_match);
    feed_request_free(&req);
}

#define WANT(...) ((const int64_t[]){__VA_ARGS__})
#define ORDERS(...) REQ("REQUEST_METHOD", "GET", "PATH_INFO", "/orders", __VA_ARGS__)
#define TWO(...)                                                                                   \
    REQ("REQUEST_METHOD", "GET", "QUERY_STRING", "channel=orders&channel=user:42", __VA_ARGS__)
#define TWO_SINCE(since)                                                                           \
    REQ("REQUEST_METHOD", "GET", "QUERY_STRING", "channel=orders&channel=user:42&since=" since)

static void test_since(void **state)
{
    static const struct {
        const char *query;
        int64_t want;
    } cases[] = {
        {"since=41", 41},          {"since=0", 0},
        {"since=007", 7},          {"since=9223372036854775807", INT64_MAX},
        {"since=now", CURSOR_NOW}, {"since=orders%3D5", 5},
        {"since=other%3D5", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        expect_cursors(ORDERS("QUERY_STRING", cases[i].query), 1, WANT(cases[i].want), NULL);
}

static void test_since_several_channels(void **state)
{
    expect_cursors(TWO_SINCE("user:42%3D7,orders%3D41"), 2, WANT(41, 7), NULL);
    expect_cursors(TWO_SINCE("now"), 2, WANT(CURSOR_NOW, CURSOR_NOW), NULL);
    expect_cursors(TWO_SINCE("9"), 2, WANT(9, 9), NULL);
}

static void test_since_invalid(void **state)
{
    const char *bad[] = {"since=-1",
                         "since=1e3",
                         "since=",
                         "since=+1",
                         "since=%201",
                         "since=NOW",
                         "since=now%20",
                         "since=abc",
                         "since=1.5",
                         "since=0x10",
                         "since=orders%3D",
                         "since=a%3D1,,b%3D2",
                         "since=9223372036854775808",
                         "since=99999999999999999999999999999999",
                         "since=%C3%A9"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        refuse(REQ("REQUEST_METHOD", "GET", "PATH_INFO", "/orders", "QUERY_STRING", bad[i]), 400,
               SINCE_DETAIL);
    refuse(REQ("REQUEST_METHOD", "GET", "PATH_INFO", "/orders", "QUERY_STRING", "since=1&since=2"),
           400, "since is given more than once");
}

static int limit_of(const char *query)
{
    feed_request req;
    parse(REQ("REQUEST_METHOD", "GET", "PATH_INFO", "/orders", "QUERY_STRING", query), &req);
    int limit = req.limit;
    feed_request_free(&req);
    return limit;
}

static void test_limit(void **state)
{
    assert_int_equal(limit_of(""), 100);
    assert_int_equal(limit_of("limit=1"), 1);
    assert_int_equal(limit_of("limit=1000"), 1000);
    assert_int_equal(limit_of("limit=0050"), 50);
    const char *bad[] = {"limit=0",          "limit=1001",
                         "limit=-1",         "limit=",
                         "limit=abc",        "limit=1e3",
                         "limit=+5",         "limit=5%20",
                         "limit=2147483648", "limit=99999999999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        refuse(REQ("REQUEST_METHOD", "GET", "PATH_INFO", "/orders", "QUERY_STRING", bad[i]), 400,
               LIMIT_DETAIL);
    refuse(
        REQ("REQUEST_METHOD", "GET", "PATH_INFO", "/orders", "QUERY_STRING", "limit=5&limit=500"),
        400, "limit is given more than once");
}

static void test_wait(void **state)
{
    feed_request req;
    parse(REQ("REQUEST_METHOD", "GET", "PATH_INFO", "/orders", "QUERY_STRING", "wait=25"), &req);
    assert_int_equal(req.transport, TRANSPORT_LONG_POLL);
    assert_int_equal(req.wait, 25);
    feed_request_free(&req);

    parse(REQ("REQUEST_METHOD", "GET", "PATH_INFO", "/orders", "QUERY_STRING", "wait=0"), &req);
    assert_int_equal(req.transport, TRANSPORT_POLL);
    assert_int_equal(req.wait, 0);
    feed_request_free(&req);

    const char *clamped[] = {"wait=31", "wait=3600", "wait=99999999999999999999999999999"};
    for (size_t i = 0; i < 3; i++) {
        parse(REQ("REQUEST_METHOD", "GET", "PATH_INFO", "/orders", "QUERY_STRING", clamped[i]),
              &req);
        assert_int_equal(req.transport, TRANSPORT_LONG_POLL);
        assert_int_equal(req.wait, 30);
        feed_request_free(&req);
    }
}

static void test_wait_when_waiting_is_off(void **state)
{
    feed_limits limits = LIMITS;
    limits.max_wait = 0;
    feed_request req;
    parse_with(REQ("REQUEST_METHOD", "GET", "PATH_INFO", "/orders", "QUERY_STRING", "wait=25"),
               &limits, &req);
    assert_int_equal(req.transport, TRANSPORT_POLL);
    assert_int_equal(req.wait, 0);
    feed_request_free(&req);
}

static void test_wait_invalid(void **state)
{
    const char *bad[] = {"wait=abc", "wait=-1", "wait=", "wait=1.5", "wait=+3", "wait=%203"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        refuse(REQ("REQUEST_METHOD", "GET", "PATH_INFO", "/orders", "QUERY_STRING", bad[i]), 400,
               WAIT_DETAIL);
    refuse(REQ("REQUEST_METHOD", "GET", "PATH_INFO", "/orders", "QUERY_STRING", "wait=1&wait=2"),
           400, "wait is given more than once");
}

/* ---- transport and cursor sources ---- */

static void test_sse_starts_at_the_live_edge(void **state)
{
    const char *accepts[] = {"text/event-stream", "TEXT/Event-Stream",
                             "text/html, text/event-stream;q=0.9"};
    for (size_t i = 0; i < 3; i++) {
        feed_request req;
        parse(REQ("REQUEST_METHOD", "GET", "QUERY_STRING", "channel=a&channel=b&wait=25",
                  "HTTP_ACCEPT", accepts[i]),
              &req);
        assert_int_equal(req.transport, TRANSPORT_SSE);
        assert_int_equal(req.wait, 0);
        assert_true(req.cursors[0] == CURSOR_NOW && req.cursors[1] == CURSOR_NOW);
        feed_request_free(&req);
    }
}

static void test_other_accept_is_a_poll(void **state)
{
    feed_request req;
    parse(REQ("REQUEST_METHOD", "GET", "PATH_INFO", "/orders", "HTTP_ACCEPT",
              "application/json, */*"),
          &req);
    assert_int_equal(req.transport, TRANSPORT_POLL);
    assert_true(req.cursors[0] == CURSOR_OLDEST);
    feed_request_free(&req);
}

static void test_last_event_id(void **state)
{
    /* the reconnect resumes; since= is what the first URL said */
    expect_cursors(ORDERS("QUERY_STRING", "since=now", "HTTP_ACCEPT", "text/event-stream",
                          "HTTP_LAST_EVENT_ID", "41"),
                   1, WANT(41), NULL);
    expect_cursors(
        TWO("HTTP_ACCEPT", "text/event-stream", "HTTP_LAST_EVENT_ID", "orders=41,user:42=7"), 2,
        WANT(41, 7), NULL);
    /* an empty Last-Event-ID is no Last-Event-ID */
    expect_cursors(ORDERS("HTTP_ACCEPT", "text/event-stream", "HTTP_LAST_EVENT_ID", ""), 1,
                   WANT(CURSOR_NOW), NULL);
    /* and a poll does not look at it at all */
    expect_cursors(ORDERS("HTTP_LAST_EVENT_ID", "garbage"), 1, WANT(CURSOR_OLDEST), NULL);
}

static void test_last_event_id_invalid(void **state)
{
    const char *bad[] = {
        "abc", "-1", "1e3", " 41", "orders=", "orders=1,orders=2", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        refuse(REQ("REQUEST_METHOD", "GET", "PATH_INFO", "/orders", "HTTP_ACCEPT",
                   "text/event-stream", "HTTP_LAST_EVENT_ID", bad[i]),
               400, "Last-Event-ID must be a non-negative integer or a cursor for these channels");
    /* since= is checked even when Last-Event-ID would win */
    refuse(REQ("REQUEST_METHOD", "GET", "PATH_INFO", "/orders", "QUERY_STRING", "since=x",
               "HTTP_ACCEPT", "text/event-stream", "HTTP_LAST_EVENT_ID", "41"),
           400, SINCE_DETAIL);
}

static void test_if_none_match_is_a_cursor(void **state)
{
    const char *headers[] = {"\"41\"", "W/\"41\"", "\"41\", \"40\""};
    for (size_t i = 0; i < 3; i++)
        expect_cursors(ORDERS("HTTP_IF_NONE_MATCH", headers[i]), 1, WANT(41), "41");
    expect_cursors(TWO("HTTP_IF_NONE_MATCH", "\"orders=41,user:42=7\""), 2, WANT(41, 7),
                   "orders=41,user:42=7");
    /* with no since= or Last-Event-ID even a stream resumes from it */
    expect_cursors(ORDERS("HTTP_ACCEPT", "text/event-stream", "HTTP_IF_NONE_MATCH", "\"12\""), 1,
                   WANT(12), "12");
}

static void test_since_beats_if_none_match(void **state)
{
    /* the tag is kept for the 304 comparison all the same */
    expect_cursors(ORDERS("QUERY_STRING", "since=5", "HTTP_IF_NONE_MATCH", "\"41\""), 1, WANT(5),
                   "41");
}

/*
 * An If-None-Match that is no cursor of ours is not an error: the poll starts
 * from 0. A well-formed foreign tag is still kept for the 304 comparison.
 */
static void test_if_none_match_that_is_not_a_cursor(void **state)
{
    static const struct {
        const char *header;
        const char *kept; /* NULL: the request is unconditional */
    } cases[] = {
        {"\"abc-123\"", "abc-123"},
        {"W/\"5f3e-1a\"", "5f3e-1a"},
        {"\"\"", ""},
        {"\"-1\"", "-1"},
        {"\"99999999999999999999\"", "99999999999999999999"},
        {"*", NULL},
        {"\"41", NULL},
        {"41", NULL},
        {"", NULL},
        {"garbage \"41\"", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        expect_cursors(ORDERS("HTTP_IF_NONE_MATCH", cases[i].header), 1, WANT(CURSOR_OLDEST),
                       cases[i].kept);
}

static void test_error_leaves_no_partial_request(void **state)
{
    /* the failure comes after channels and If-None-Match were already copied */
    feed_error err =
        refuse_with(REQ("REQUEST_METHOD", "GET", "QUERY_STRING", "channel=a&channel=b&since=bad",
                        "HTTP_IF_NONE_MATCH", "\"a=1\""),
                    &LIMITS, 400);
    assert_string_equal(err.detail, SINCE_DETAIL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_channel_by_path),
        cmocka_unit_test(test_path_name_at_the_length_cap),
        cmocka_unit_test(test_several_channels_by_parameter),
        cmocka_unit_test(test_missing_path_info_is_root),
        cmocka_unit_test(test_health_and_metrics),
        cmocka_unit_test(test_health_still_bounds_the_query_string),
        cmocka_unit_test(test_unknown_underscore_routes),
        cmocka_unit_test(test_invalid_path_names),
        cmocka_unit_test(test_overlong_path_names_are_cut_in_the_detail),
        cmocka_unit_test(test_other_methods),
        cmocka_unit_test(test_other_methods_when_publishing),
        cmocka_unit_test(test_post_when_publishing_is_off),
        cmocka_unit_test(test_post_publishes_to_one_channel),
        cmocka_unit_test(test_post_elsewhere),
        cmocka_unit_test(test_path_and_parameter_do_not_mix),
        cmocka_unit_test(test_duplicate_channels),
        cmocka_unit_test(test_invalid_channel_parameters),
        cmocka_unit_test(test_channel_cap),
        cmocka_unit_test(test_ten_thousand_channels),
        cmocka_unit_test(test_query_string_length),
        cmocka_unit_test(test_malformed_query_strings),
        cmocka_unit_test(test_unknown_parameters_are_ignored),
        cmocka_unit_test(test_since),
        cmocka_unit_test(test_since_several_channels),
        cmocka_unit_test(test_since_invalid),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_wait),
        cmocka_unit_test(test_wait_when_waiting_is_off),
        cmocka_unit_test(test_wait_invalid),
        cmocka_unit_test(test_sse_starts_at_the_live_edge),
        cmocka_unit_test(test_other_accept_is_a_poll),
        cmocka_unit_test(test_last_event_id),
        cmocka_unit_test(test_last_event_id_invalid),
        cmocka_unit_test(test_if_none_match_is_a_cursor),
        cmocka_unit_test(test_since_beats_if_none_match),
        cmocka_unit_test(test_if_none_match_that_is_not_a_cursor),
        cmocka_unit_test(test_error_leaves_no_partial_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
