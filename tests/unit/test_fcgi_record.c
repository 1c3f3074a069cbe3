/*
 * test_fcgi_record — the FastCGI record parser, pure: bytes in, status,
 * params, body and protocol replies out. Streams are fed whole and one byte
 * at a time, since servers split records anywhere.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fastcgi.h>
#include <string.h>

#include "buf.h"
#include "fcgi_record.h"

static const fcgi_parser_limits limits = {.max_params = 256, .max_body = 64, .max_conns = 77};

static void put(buf *out, int type, int id, const char *content, size_t len, size_t padding)
{
    static const char zeros[255];
    fcgi_record_frame(out, type, id, content, len);
    out->data[out->len - len - 2] = (char)padding; /* the header's paddingLength */
    buf_append(out, zeros, padding);
}

static void put_begin(buf *out, int id, int role, bool keep)
{
    const char body[8] = {(char)(role >> 8), (char)role, keep ? FCGI_KEEP_CONN : 0};
    put(out, FCGI_BEGIN_REQUEST, id, body, sizeof body, 0);
}

static void put_pair(buf *out, const char *name, const char *value)
{
    const char lengths[2] = {(char)strlen(name), (char)strlen(value)};
    buf_append(out, lengths, 2);
    buf_append_str(out, name);
    buf_append_str(out, value);
}

/* BEGIN, params "name=value" strings (NULL-terminated list), empty PARAMS, body, empty STDIN. */
static void put_request(buf *out, int id, bool keep, const char *const *params, const char *body)
{
    put_begin(out, id, FCGI_RESPONDER, keep);
    buf pairs = BUF_INIT;
    for (size_t i = 0; params[i]; i += 2)
        put_pair(&pairs, params[i], params[i + 1]);
    put(out, FCGI_PARAMS, id, pairs.data, pairs.len, 3);
    put(out, FCGI_PARAMS, id, NULL, 0, 0);
    if (body && *body)
        put(out, FCGI_STDIN, id, body, strlen(body), 0);
    put(out, FCGI_STDIN, id, NULL, 0, 0);
    buf_free(&pairs);
}

/* Feeds in one byte at a time (bytewise) or whole; returns the status and what was consumed. */
static fcgi_parse_status feed(fcgi_parser *p, const buf *in, bool bytewise, size_t *consumed,
                              buf *reply)
{
    if (!bytewise) {
        fcgi_parse_status s = fcgi_parser_feed(p, in->data, in->len, consumed, reply);
        assert_true(*consumed <= in->len);
        return s;
    }
    /* The caller's buffer grows a byte at a time; what was consumed is dropped. */
    buf pending = BUF_INIT;
    size_t total = 0;
    for (size_t at = 0; at < in->len; at++) {
        buf_append(&pending, in->data + at, 1);
        size_t n = 0;
        fcgi_parse_status s = fcgi_parser_feed(p, pending.data, pending.len, &n, reply);
        buf_consume(&pending, n);
        total += n;
        if (s != FCGI_PARSE_MORE) {
            *consumed = total;
            buf_free(&pending);
            return s;
        }
    }
    *consumed = total;
    buf_free(&pending);
    return FCGI_PARSE_MORE;
}

static void test_a_request_whole_and_bytewise(void **state)
{
    const char *const params[] = {
        "REQUEST_METHOD", "POST", "PATH_INFO", "/orders", "CONTENT_LENGTH", "5",
        "HTTP_X",         "",     NULL};
    for (int bytewise = 0; bytewise <= 1; bytewise++) {
        buf in = BUF_INIT, reply = BUF_INIT;
        put_request(&in, 0x1234, false, params, "hello");
        fcgi_parser *p = fcgi_parser_new(&limits);
        size_t consumed;
        assert_int_equal(feed(p, &in, bytewise, &consumed, &reply), FCGI_PARSE_REQUEST);
        /* Complete once CONTENT_LENGTH bytes are in: the empty STDIN is left unread. */
        assert_int_equal(in.len - consumed, FCGI_HEADER_LEN);
        assert_int_equal(fcgi_parser_request_id(p), 0x1234);
        assert_false(fcgi_parser_keep_conn(p));
        for (size_t i = 0; params[i]; i += 2)
            assert_string_equal(fcgi_parser_param(p, params[i]), params[i + 1]);
        assert_null(fcgi_parser_param(p, "PATH"));
        size_t len;
        bool too_large;
        assert_memory_equal(fcgi_parser_body(p, &len, &too_large), "hello", 5);
        assert_int_equal(len, 5);
        assert_false(too_large);
        assert_int_equal(reply.len, 0);
        fcgi_parser_drop(p);
        assert_null(fcgi_parser_param(p, "PATH_INFO"));
        fcgi_parser_free(p);
        buf_free(&in);
        buf_free(&reply);
    }
}

static void test_kept_connection_carries_the_next_request(void **state)
{
    const char *const first[] = {"PATH_INFO", "/a", NULL};
    const char *const second[] = {"PATH_INFO", "/b", NULL};
    buf in = BUF_INIT, reply = BUF_INIT;
    put_request(&in, 1, true, first, NULL);
    put_request(&in, 2, true, second, NULL);
    fcgi_parser *p = fcgi_parser_new(&limits);
    size_t consumed;
    assert_int_equal(fcgi_parser_feed(p, in.data, in.len, &consumed, &reply), FCGI_PARSE_REQUEST);
    assert_true(fcgi_parser_keep_conn(p));
    assert_string_equal(fcgi_parser_param(p, "PATH_INFO"), "/a");
    /* Serving: nothing more is consumed until the request is answered. */
    size_t again;
    assert_int_equal(fcgi_parser_feed(p, in.data + consumed, in.len - consumed, &again, &reply),
                     FCGI_PARSE_MORE);
    assert_int_equal(again, 0);
    fcgi_parser_next(p);
    buf_consume(&in, consumed);
    /* The first request's empty STDIN is skipped, then the second one arrives. */
    assert_int_equal(fcgi_parser_feed(p, in.data, in.len, &consumed, &reply), FCGI_PARSE_REQUEST);
    assert_int_equal(fcgi_parser_request_id(p), 2);
    assert_string_equal(fcgi_parser_param(p, "PATH_INFO"), "/b");
    assert_int_equal(reply.len, 0);
    fcgi_parser_free(p);
    buf_free(&in);
    buf_free(&reply);
}

/* Reads the records in reply: type, id, content of the n-th. */
static const unsigned char *reply_record(const buf *reply, size_t n, int *type, int *id,
                                         size_t *len)
{
    size_t at = 0;
    for (size_t i = 0;; i++) {
        assert_true(reply->len - at >= FCGI_HEADER_LEN);
        const unsigned char *h = (const unsigned char *)reply->data + at;
        *type = h[1];
        *id = h[2] << 8 | h[3];
        *len = (size_t)h[4] << 8 | h[5];
        assert_int_equal(h[6], 0);
        if (i == n)
            return h + FCGI_HEADER_LEN;
        at += FCGI_HEADER_LEN + *len;
    }
}

static void test_management_records(void **state)
{
    buf in = BUF_INIT, reply = BUF_INIT, names = BUF_INIT;
    put_pair(&names, FCGI_MAX_CONNS, "");
    put_pair(&names, "OTHER", "");
    put_pair(&names, FCGI_MPXS_CONNS, "");
    put_pair(&names, FCGI_MAX_REQS, "");
    put(&in, FCGI_GET_VALUES, 0, names.data, names.len, 0);
    put(&in, 42, 0, "abc", 3, 0);
    fcgi_parser *p = fcgi_parser_new(&limits);
    size_t consumed;
    assert_int_equal(fcgi_parser_feed(p, in.data, in.len, &consumed, &reply), FCGI_PARSE_MORE);
    assert_int_equal(consumed, in.len);
    int type, id;
    size_t len;
    const unsigned char *c = reply_record(&reply, 0, &type, &id, &len);
    assert_int_equal(type, FCGI_GET_VALUES_RESULT);
    assert_int_equal(id, 0);
    buf want = BUF_INIT;
    put_pair(&want, FCGI_MAX_CONNS, "77");
    put_pair(&want, FCGI_MPXS_CONNS, "0");
    put_pair(&want, FCGI_MAX_REQS, "77");
    assert_int_equal(len, want.len);
    assert_memory_equal(c, want.data, want.len);
    c = reply_record(&reply, 1, &type, &id, &len);
    assert_int_equal(type, FCGI_UNKNOWN_TYPE);
    assert_int_equal(len, 8);
    assert_int_equal(c[0], 42);
    assert_false(fcgi_parser_busy(p));
    fcgi_parser_free(p);
    buf_free(&in);
    buf_free(&reply);
    buf_free(&names);
    buf_free(&want);
}

static void test_refusals(void **state)
{
    /* A second request while one is read: CANT_MPX_CONN for it, the first goes on. */
    buf in = BUF_INIT, reply = BUF_INIT;
    put_begin(&in, 1, FCGI_RESPONDER, false);
    put_begin(&in, 2, FCGI_RESPONDER, false);
    put(&in, FCGI_PARAMS, 2, "\x01\x01XY", 4, 0); /* the refused one's records are skipped */
    put(&in, FCGI_PARAMS, 1, NULL, 0, 0);
    fcgi_parser *p = fcgi_parser_new(&limits);
    size_t consumed;
    assert_int_equal(fcgi_parser_feed(p, in.data, in.len, &consumed, &reply), FCGI_PARSE_REQUEST);
    assert_null(fcgi_parser_param(p, "X"));
    int type, id;
    size_t len;
    const unsigned char *c = reply_record(&reply, 0, &type, &id, &len);
    assert_int_equal(type, FCGI_END_REQUEST);
    assert_int_equal(id, 2);
    assert_int_equal(c[4], FCGI_CANT_MPX_CONN);
    fcgi_parser_free(p);

    /* Another role: UNKNOWN_ROLE; without KEEP_CONN the exchange is over. */
    buf_reset(&in);
    buf_reset(&reply);
    put_begin(&in, 3, FCGI_AUTHORIZER, false);
    p = fcgi_parser_new(&limits);
    assert_int_equal(fcgi_parser_feed(p, in.data, in.len, &consumed, &reply), FCGI_PARSE_CLOSE);
    c = reply_record(&reply, 0, &type, &id, &len);
    assert_int_equal(id, 3);
    assert_int_equal(c[4], FCGI_UNKNOWN_ROLE);
    fcgi_parser_free(p);

    /* ABORT_REQUEST while the params come, on a kept connection: END_REQUEST, then idle. */
    buf_reset(&in);
    buf_reset(&reply);
    put_begin(&in, 4, FCGI_RESPONDER, true);
    put(&in, FCGI_ABORT_REQUEST, 4, NULL, 0, 0);
    p = fcgi_parser_new(&limits);
    assert_int_equal(fcgi_parser_feed(p, in.data, in.len, &consumed, &reply), FCGI_PARSE_MORE);
    c = reply_record(&reply, 0, &type, &id, &len);
    assert_int_equal(type, FCGI_END_REQUEST);
    assert_int_equal(c[4], FCGI_REQUEST_COMPLETE);
    assert_false(fcgi_parser_busy(p));
    fcgi_parser_free(p);
    buf_free(&in);
    buf_free(&reply);
}

static void test_errors(void **state)
{
    static const struct {
        const char *what;
        const char *bytes;
        size_t len;
        fcgi_parse_error error;
    } cases[] = {
        {"version 2", "\x02\x01\x00\x01\x00\x00\x00\x00", 8, FCGI_ERROR_PROTOCOL},
        {"short BEGIN", "\x01\x01\x00\x01\x00\x01\x00\x00\x00", 9, FCGI_ERROR_PROTOCOL},
        {"STDOUT to the application", "\x01\x06\x00\x01\x00\x00\x00\x00", 8, FCGI_ERROR_PROTOCOL},
        {"type 0", "\x01\x00\x00\x01\x00\x00\x00\x00", 8, FCGI_ERROR_PROTOCOL},
        {"bad GET_VALUES", "\x01\x09\x00\x00\x00\x02\x00\x00\x05\x00", 10, FCGI_ERROR_PROTOCOL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        fcgi_parser *p = fcgi_parser_new(&limits);
        buf reply = BUF_INIT;
        size_t consumed;
        assert_int_equal(fcgi_parser_feed(p, cases[i].bytes, cases[i].len, &consumed, &reply),
                         FCGI_PARSE_ERROR);
        const char *detail;
        assert_int_equal(fcgi_parser_error(p, &detail), cases[i].error);
        assert_true(strlen(detail) > 0);
        fcgi_parser_free(p);
        buf_free(&reply);
    }
}

static void test_params_caps_and_malformed_pairs(void **state)
{
    static const struct {
        const char *pairs;
        size_t len;
        fcgi_parse_status status;
    } cases[] = {
        {"\x0a\x01"
         "AB",
         4, FCGI_PARSE_ERROR}, /* name runs past the end */
        {"\xff\xff\xff\xff\x01"
         "AB",
         7, FCGI_PARSE_ERROR}, /* a 2 GB name */
        {"\x01\x03"
         "AB\0C",
         6, FCGI_PARSE_ERROR}, /* NUL in a value */
        {"\x00\x01"
         "A",
         3, FCGI_PARSE_ERROR}, /* empty name */
        {"\x80\x00\x00\x01\x01"
         "AB",
         7, FCGI_PARSE_REQUEST},     /* four-byte length of 1 */
        {"", 0, FCGI_PARSE_REQUEST}, /* no params at all */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        buf in = BUF_INIT, reply = BUF_INIT;
        put_begin(&in, 1, FCGI_RESPONDER, false);
        if (cases[i].len)
            put(&in, FCGI_PARAMS, 1, cases[i].pairs, cases[i].len, 0);
        put(&in, FCGI_PARAMS, 1, NULL, 0, 0);
        fcgi_parser *p = fcgi_parser_new(&limits);
        size_t consumed;
        assert_int_equal(fcgi_parser_feed(p, in.data, in.len, &consumed, &reply), cases[i].status);
        fcgi_parser_free(p);
        buf_free(&in);
        buf_free(&reply);
    }
    /* Over max_params across records: PARAMS_TOO_LARGE before the params end. */
    buf in = BUF_INIT, reply = BUF_INIT;
    char chunk[200];
    memset(chunk, 'A', sizeof chunk);
    put_begin(&in, 1, FCGI_RESPONDER, false);
    put(&in, FCGI_PARAMS, 1, chunk, sizeof chunk, 0);
    put(&in, FCGI_PARAMS, 1, chunk, sizeof chunk, 0);
    fcgi_parser *p = fcgi_parser_new(&limits);
    size_t consumed;
    assert_int_equal(fcgi_parser_feed(p, in.data, in.len, &consumed, &reply), FCGI_PARSE_ERROR);
    const char *detail;
    assert_int_equal(fcgi_parser_error(p, &detail), FCGI_ERROR_PARAMS_TOO_LARGE);
    fcgi_parser_free(p);
    buf_free(&in);
    buf_free(&reply);
}

/*
 * Params in one record with their empty record right behind (what servers
 * send) are decoded where they lie: the same caps and the same result as when
 * they come in pieces.
 */
static void test_params_in_one_record(void **state)
{
    char big[257]; /* one over max_params */
    memset(big, 'A', sizeof big);
    buf pairs = BUF_INIT;
    put_pair(&pairs, "PATH_INFO", "/one");
    /* The end right behind, unpadded and padded; then one with a record between them. */
    for (int variant = 0; variant < 3; variant++) {
        buf in = BUF_INIT, reply = BUF_INIT;
        put_begin(&in, 1, FCGI_RESPONDER, false);
        put(&in, FCGI_PARAMS, 1, pairs.data, pairs.len, 0);
        if (variant == 2)
            put(&in, FCGI_PARAMS, 2, NULL, 0, 0); /* another request's: skipped */
        put(&in, FCGI_PARAMS, 1, NULL, 0, variant == 1 ? 7 : 0);
        fcgi_parser *p = fcgi_parser_new(&limits);
        size_t consumed;
        assert_int_equal(fcgi_parser_feed(p, in.data, in.len, &consumed, &reply),
                         FCGI_PARSE_REQUEST);
        assert_int_equal(consumed, in.len);
        assert_string_equal(fcgi_parser_param(p, "PATH_INFO"), "/one");
        fcgi_parser_free(p);
        buf_free(&in);
        buf_free(&reply);
    }
    buf in = BUF_INIT, reply = BUF_INIT;
    put_begin(&in, 1, FCGI_RESPONDER, false);
    put(&in, FCGI_PARAMS, 1, big, sizeof big, 0);
    put(&in, FCGI_PARAMS, 1, NULL, 0, 0);
    fcgi_parser *p = fcgi_parser_new(&limits);
    size_t consumed;
    const char *detail;
    assert_int_equal(fcgi_parser_feed(p, in.data, in.len, &consumed, &reply), FCGI_PARSE_ERROR);
    assert_int_equal(fcgi_parser_error(p, &detail), FCGI_ERROR_PARAMS_TOO_LARGE);
    fcgi_parser_free(p);
    buf_free(&in);
    buf_free(&reply);
    buf_free(&pairs);
}

static void test_content_lengths(void **state)
{
    static const struct {
        const char *content_length;
        bool too_large;
        size_t body;
    } cases[] = {
        {"64", false, 64}, {"65", true, 0},     {"-5", false, 0},
        {"abc", false, 0}, {"", false, 0},      {"99999999999999999999999", true, 0},
        {"007", false, 7}, {"12abc", false, 0},
    };
    char body[100];
    memset(body, 'b', sizeof body - 1);
    body[sizeof body - 1] = '\0';
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *const params[] = {"CONTENT_LENGTH", cases[i].content_length, NULL};
        buf in = BUF_INIT, reply = BUF_INIT;
        put_request(&in, 1, false, params, body);
        fcgi_parser *p = fcgi_parser_new(&limits);
        size_t consumed, len;
        bool too_large;
        assert_int_equal(fcgi_parser_feed(p, in.data, in.len, &consumed, &reply),
                         FCGI_PARSE_REQUEST);
        fcgi_parser_body(p, &len, &too_large);
        assert_int_equal(too_large, cases[i].too_large);
        assert_int_equal(len, cases[i].body);
        fcgi_parser_free(p);
        buf_free(&in);
        buf_free(&reply);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_request_whole_and_bytewise),
        cmocka_unit_test(test_kept_connection_carries_the_next_request),
        cmocka_unit_test(test_management_records),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_params_caps_and_malformed_pairs),
        cmocka_unit_test(test_params_in_one_record),
        cmocka_unit_test(test_content_lengths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
