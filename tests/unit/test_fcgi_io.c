/*
 * test_fcgi_io — the FastCGI seam over a real Unix socket. The test plays the
 * web server: it connects to fcgi_listen_open's socket, writes FastCGI records
 * by hand (split and padded the way servers do, lengths in both encodings),
 * and reads back the records pgfeed frames itself, checking every header
 * byte. No thread and no sleep: accept, flush and peer_closed never block,
 * and the test side reads only what is already there.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fastcgi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "buf.h"
#include "event_loop.h"
#include "fcgi_io.h"
#include "fcgi_listen.h"

static char sock_dir[] = "/tmp/pgfeed-unit-XXXXXX";
static char sock_path[sizeof sock_dir + 16];
static int listen_fd = -1;

/*
 * pgfeed's intake, one per max_body a test asks for, each on its own loop so
 * that only the one a test runs accepts. Requests land in `arrived`.
 */
typedef struct intake_slot {
    size_t max_body;
    event_loop *loop;
    fcgi_intake *intake;
} intake_slot;
static intake_slot slots[8];
/* Requests in the order they arrived: one turn may complete several. */
static fcgi_conn *arrived[16];
static size_t n_arrived;

static void on_request(void *ctx, fcgi_conn *conn)
{
    assert_true(n_arrived < sizeof arrived / sizeof *arrived);
    arrived[n_arrived++] = conn;
}

static intake_slot *slot_for(size_t max_body)
{
    size_t i = 0;
    for (; i < sizeof slots / sizeof *slots && slots[i].loop; i++)
        if (slots[i].max_body == max_body)
            return &slots[i];
    assert_true(i < sizeof slots / sizeof *slots);
    fcgi_intake_limits limits = {.max_params = 65536,
                                 .max_body = max_body,
                                 .request_timeout_ms = 10000,
                                 .idle_timeout_ms = 10000,
                                 .max_connections = 64};
    slots[i].max_body = max_body;
    slots[i].loop = event_loop_new();
    slots[i].intake = fcgi_intake_new(slots[i].loop, listen_fd, &limits, on_request, NULL);
    assert_non_null(slots[i].intake);
    return &slots[i];
}

/* Runs the slot's loop for up to turns turns (wait_ms each) or until a request arrives. */
static fcgi_conn *intake_run(size_t max_body, int turns, int wait_ms)
{
    intake_slot *slot = slot_for(max_body);
    for (int i = 0; i < turns && !n_arrived; i++) {
        event_loop_run_once(slot->loop, wait_ms);
        fcgi_intake_tick(slot->intake, clock_now_ms());
    }
    if (!n_arrived)
        return NULL;
    fcgi_conn *conn = arrived[0];
    memmove(arrived, arrived + 1, --n_arrived * sizeof *arrived);
    return conn;
}

static int setup_listener(void **state)
{
    signal(SIGPIPE, SIG_IGN); /* as server.c does: a departed peer is EPIPE, not death */
    if (!mkdtemp(sock_dir))
        return -1;
    snprintf(sock_path, sizeof sock_path, "%s/fcgi.sock", sock_dir);
    if (fcgi_io_init() != 0)
        return -1;
    listen_fd = fcgi_listen_open(sock_path, 16, NULL);
    return listen_fd < 0 ? -1 : 0;
}

static int remove_listener(void **state)
{
    for (size_t i = 0; i < sizeof slots / sizeof *slots && slots[i].loop; i++) {
        fcgi_intake_free(slots[i].intake);
        event_loop_free(slots[i].loop);
    }
    close(listen_fd);
    unlink(sock_path);
    rmdir(sock_dir);
    return 0;
}

/* ---- the web server's side ---- */

static int server_connect(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, sock_path);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

static void write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        assert_true(n > 0);
        data += n;
        len -= (size_t)n;
    }
}

static void put_record(buf *out, int type, int id, const char *content, size_t len, size_t padding)
{
    static const char zeros[255];
    const unsigned char header[FCGI_HEADER_LEN] = {FCGI_VERSION_1,
                                                   (unsigned char)type,
                                                   (unsigned char)(id >> 8),
                                                   (unsigned char)(id & 0xff),
                                                   (unsigned char)(len >> 8),
                                                   (unsigned char)(len & 0xff),
                                                   (unsigned char)padding,
                                                   0};
    buf_append(out, (const char *)header, sizeof header);
    buf_append(out, content, len);
    buf_append(out, zeros, padding);
}

/* Splits a stream into records of at most piece bytes, padded to 8 as servers do. */
static void put_stream(buf *out, int type, int id, const char *data, size_t len, size_t piece)
{
    for (size_t at = 0; at < len; at += piece) {
        size_t n = len - at < piece ? len - at : piece;
        put_record(out, type, id, data + at, n, (8 - n % 8) % 8);
    }
}

/* A name-value length: one byte below 128, else four with the high bit set. */
static void put_length(buf *out, size_t n)
{
    if (n < 128) {
        const char one = (char)n;
        buf_append(out, &one, 1);
        return;
    }
    const char four[4] = {(char)(0x80 | (n >> 24)), (char)(n >> 16), (char)(n >> 8), (char)n};
    buf_append(out, four, 4);
}

/*
 * Writes a whole request: BEGIN_REQUEST, params (name, value, ..., NULL) in
 * 61-byte PARAMS records so pairs straddle records, then body in 5-byte STDIN
 * records, and the empty STDIN record when close_stdin.
 */
static void put_request(buf *out, int id, const char *const *params, const char *body,
                        size_t body_len, bool close_stdin, bool keep)
{
    const char begin[8] = {0, FCGI_RESPONDER, keep ? FCGI_KEEP_CONN : 0, 0, 0, 0, 0, 0};
    put_record(out, FCGI_BEGIN_REQUEST, id, begin, sizeof begin, 0);
    buf pairs = BUF_INIT;
    for (size_t i = 0; params[i]; i += 2) {
        put_length(&pairs, strlen(params[i]));
        put_length(&pairs, strlen(params[i + 1]));
        buf_append_str(&pairs, params[i]);
        buf_append_str(&pairs, params[i + 1]);
    }
    put_stream(out, FCGI_PARAMS, id, pairs.data, pairs.len, 61);
    put_record(out, FCGI_PARAMS, id, NULL, 0, 0);
    put_stream(out, FCGI_STDIN, id, body, body_len, 5);
    if (close_stdin)
        put_record(out, FCGI_STDIN, id, NULL, 0, 0);
    buf_free(&pairs);
}

static void server_send_request(int fd, int id, const char *const *params, const char *body,
                                size_t body_len, bool close_stdin)
{
    buf out = BUF_INIT;
    put_request(&out, id, params, body, body_len, close_stdin, false);
    write_all(fd, out.data, out.len);
    buf_free(&out);
}

/* Reads what the socket holds now; returns false once it has seen EOF. */
static bool server_read_available(int fd, buf *raw)
{
    char chunk[65536];
    for (;;) {
        ssize_t n = recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
        if (n > 0) {
            buf_append(raw, chunk, (size_t)n);
            continue;
        }
        if (n == 0)
            return false;
        assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
        return true;
    }
}

/* A response read back from records. */
typedef struct response {
    buf content;           /* FCGI_STDOUT contents, reassembled */
    size_t stdout_records; /* never empty: END_REQUEST ends the stream */
    size_t largest_record;
    bool ended; /* FCGI_END_REQUEST came: nothing may follow */
    unsigned char end_body[8];
} response;

/* Parses raw as the complete response to request id: every record, every header byte. */
static void parse_response(const buf *raw, int id, response *r)
{
    size_t at = 0;
    while (at < raw->len) {
        assert_false(r->ended);
        assert_true(raw->len - at >= FCGI_HEADER_LEN);
        const unsigned char *h = (const unsigned char *)raw->data + at;
        size_t len = (size_t)h[4] << 8 | h[5];
        assert_int_equal(h[0], FCGI_VERSION_1);
        assert_int_equal((h[2] << 8) | h[3], id);
        assert_int_equal(h[6], 0); /* no padding */
        assert_int_equal(h[7], 0);
        assert_true(raw->len - at >= FCGI_HEADER_LEN + len);
        const char *content = raw->data + at + FCGI_HEADER_LEN;
        if (h[1] == FCGI_STDOUT) {
            assert_true(len > 0);
            r->stdout_records++;
            r->largest_record = len > r->largest_record ? len : r->largest_record;
            buf_append(&r->content, content, len);
        } else {
            assert_int_equal(h[1], FCGI_END_REQUEST);
            assert_int_equal(len, sizeof r->end_body);
            memcpy(r->end_body, content, len);
            r->ended = true;
        }
        at += FCGI_HEADER_LEN + len;
    }
    assert_true(r->ended);
    static const unsigned char complete[8] = {0, 0, 0, 0, FCGI_REQUEST_COMPLETE, 0, 0, 0};
    assert_memory_equal(r->end_body, complete, sizeof complete); /* appStatus 0 */
}

/* Flushes conn while the server side reads; returns how many flushes found it full. */
static size_t exchange(fcgi_conn *conn, int server, int id, response *r)
{
    buf raw = BUF_INIT;
    size_t full = 0;
    for (;;) {
        size_t pending = fcgi_conn_pending(conn);
        int rc = fcgi_conn_flush(conn);
        assert_in_range(rc, 0, 1);
        if (rc == 1)
            break;
        full++;
        assert_true(fcgi_conn_pending(conn) <= pending);
        /* A second flush before the reader moves can write nothing more. */
        pending = fcgi_conn_pending(conn);
        assert_int_equal(fcgi_conn_flush(conn), 0);
        assert_int_equal(fcgi_conn_pending(conn), pending);
        assert_true(server_read_available(server, &raw));
    }
    assert_int_equal(fcgi_conn_pending(conn), 0);
    /* A Unix socket hands written bytes to the reader at once. */
    assert_true(server_read_available(server, &raw));
    parse_response(&raw, id, r);
    buf_free(&raw);
    return full;
}

static void response_free(response *r)
{
    buf_free(&r->content);
}

/* ---- pgfeed's side ---- */

static fcgi_conn *accept_one(size_t max_body)
{
    fcgi_conn *conn = intake_run(max_body, 20, 50);
    assert_non_null(conn);
    assert_true(fcgi_conn_fd(conn) >= 0);
    return conn;
}

/* A whole GET with no body, accepted: returns pgfeed's side, the server's in *server. */
static fcgi_conn *accept_get(int id, int *server)
{
    const char *const params[] = {"REQUEST_METHOD", "GET", NULL};
    *server = server_connect();
    server_send_request(*server, id, params, NULL, 0, true);
    return accept_one(0);
}

/* Closes both ends of a connection and frees what was read back. */
static void close_all(fcgi_conn *conn, int server, response *r)
{
    fcgi_conn_close(conn);
    close(server);
    response_free(r);
}

static void expect_nothing_waiting(void)
{
    assert_null(intake_run(1024, 3, 0));
}

static void expect_body(fcgi_conn *conn, const char *want, size_t want_len, bool too_large)
{
    size_t len = 12345;
    bool body_too_large = !too_large;
    const char *body = fcgi_conn_body(conn, &len, &body_too_large);
    assert_non_null(body);
    assert_int_equal(len, want_len);
    assert_memory_equal(body, want, want_len);
    assert_int_equal(body_too_large, too_large);
}

static void fill_pattern(char *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (char)(' ' + (i * 31 + i / 65535) % 95);
}

static void test_accept_with_nothing_waiting(void **state)
{
    expect_nothing_waiting();
    expect_nothing_waiting(); /* and again: nothing was consumed or broken */
}

static void test_params_body_and_framed_response(void **state)
{
    char long_value[301], long_name[201];
    memset(long_value, 'v', 300);
    long_value[0] = '<';
    long_value[299] = '>';
    long_value[300] = '\0';
    memcpy(long_name, "HTTP_X_", 7);
    memset(long_name + 7, 'N', 193);
    long_name[200] = '\0';
    const char *const params[] = {"REQUEST_METHOD",
                                  "POST",
                                  "PATH_INFO",
                                  "/orders",
                                  "QUERY_STRING",
                                  "since=41&wait=25",
                                  "CONTENT_TYPE",
                                  "application/json",
                                  "CONTENT_LENGTH",
                                  "11",
                                  "HTTP_X_LONG",
                                  long_value,
                                  long_name,
                                  "short",
                                  "HTTP_X_EMPTY",
                                  "",
                                  NULL};
    const int id = 0x1234; /* both bytes of the id matter */
    int server = server_connect();
    server_send_request(server, id, params, "hello world", 11, true);
    fcgi_conn *conn = accept_one(1024);
    expect_nothing_waiting();

    for (size_t i = 0; params[i]; i += 2) {
        const char *value = fcgi_conn_param(conn, params[i]);
        assert_non_null(value);
        assert_string_equal(value, params[i + 1]);
    }
    assert_null(fcgi_conn_param(conn, "HTTP_ACCEPT"));
    assert_null(fcgi_conn_param(conn, "PATH"));    /* not this process's environment */
    assert_null(fcgi_conn_param(conn, "PATH_IN")); /* no prefix matches */
    expect_body(conn, "hello world", 11, false);

    fcgi_conn_drop_params(conn);
    assert_null(fcgi_conn_param(conn, "REQUEST_METHOD"));
    expect_body(conn, "", 0, false);
    fcgi_conn_drop_params(conn); /* twice is harmless */

    /* A header block, a body over two record limits, and a tail. */
    enum { big = 2 * 65535 + 18930 };
    static char body[big];
    fill_pattern(body, big);
    const char *head = "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n";
    buf want = BUF_INIT;
    buf_append_str(&want, head);
    buf_append(&want, body, big);
    buf_append_str(&want, "tail");
    fcgi_conn_send(conn, head, strlen(head));
    fcgi_conn_send(conn, body, big);
    fcgi_conn_send(conn, "tail", 4);
    fcgi_conn_end(conn);
    /* What is queued fills records to the limit: 3 STDOUT records, END_REQUEST and its 8 bytes. */
    assert_int_equal(fcgi_conn_pending(conn), want.len + 4 * FCGI_HEADER_LEN + 8);

    response r = {0};
    exchange(conn, server, id, &r);
    assert_int_equal(r.content.len, want.len);
    assert_memory_equal(r.content.data, want.data, want.len);
    assert_int_equal(r.stdout_records, 3);
    assert_int_equal(r.largest_record, 65535);
    assert_false(fcgi_conn_peer_closed(conn));

    fcgi_conn_close(conn);
    buf raw = BUF_INIT;
    assert_false(server_read_available(server, &raw)); /* closed, nothing more */
    assert_int_equal(raw.len, 0);
    close(server);
    response_free(&r);
    buf_free(&want);
}

static void test_send_splits_exactly_at_the_record_limit(void **state)
{
    static const struct {
        size_t len;
        size_t records;
    } cases[] = {{0, 0}, {1, 1}, {65534, 1}, {65535, 1}, {65536, 2}, {3 * 65535, 3}};
    static char data[3 * 65535];
    fill_pattern(data, sizeof data);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int server;
        fcgi_conn *conn = accept_get(1, &server);
        fcgi_conn_send(conn, data, cases[i].len);
        fcgi_conn_end(conn);
        response r = {0};
        exchange(conn, server, 1, &r);
        assert_int_equal(r.stdout_records, cases[i].records);
        assert_int_equal(r.content.len, cases[i].len);
        assert_memory_equal(r.content.data ? r.content.data : "", data, cases[i].len);
        close_all(conn, server, &r);
    }
}

static void test_send_after_end_is_dropped(void **state)
{
    int server;
    fcgi_conn *conn = accept_get(7, &server);
    fcgi_conn_send(conn, "before", 6);
    fcgi_conn_end(conn);
    size_t pending = fcgi_conn_pending(conn);
    fcgi_conn_end(conn);
    fcgi_conn_send(conn, "after", 5);
    assert_int_equal(fcgi_conn_pending(conn), pending);
    response r = {0};
    exchange(conn, server, 7, &r); /* one empty STDOUT, one END_REQUEST */
    assert_int_equal(r.content.len, 6);
    assert_memory_equal(r.content.data, "before", 6);
    close_all(conn, server, &r);
}

/*
 * An answer queued as a header block and a body (how request_respond sends it)
 * is one STDOUT record and END_REQUEST, written by one flush: the web server
 * parses two records, and one write carries both.
 */
static void test_answer_is_one_record_and_end_request(void **state)
{
    int server;
    fcgi_conn *conn = accept_get(3, &server);
    const char *head = "Status: 200 OK\r\nContent-Type: application/json\r\n\r\n";
    const char *body = "{\"events\":[]}";
    fcgi_conn_send(conn, head, strlen(head));
    fcgi_conn_send(conn, body, strlen(body));
    fcgi_conn_end(conn);
    size_t content = strlen(head) + strlen(body);
    assert_int_equal(fcgi_conn_pending(conn), FCGI_HEADER_LEN + content + FCGI_HEADER_LEN + 8);
    assert_int_equal(fcgi_conn_flush(conn), 1); /* one call, everything out */
    buf raw = BUF_INIT;
    assert_true(server_read_available(server, &raw));
    const unsigned char *h = (const unsigned char *)raw.data;
    assert_int_equal(h[1], FCGI_STDOUT);
    assert_int_equal((size_t)h[4] << 8 | h[5], content);
    response r = {0};
    parse_response(&raw, 3, &r);
    assert_int_equal(r.stdout_records, 1);
    buf_free(&raw);
    close_all(conn, server, &r);
}

/*
 * A server that has sent the request's empty STDIN sends nothing more: its
 * connection is closed at once after the answer, without shutdown and linger
 * (lighttpd, nginx). One whose STDIN is still open (mod_proxy_fcgi writes it
 * after the params) gets the shutdown, so its late write cannot break.
 */
static void test_linger_only_while_the_server_may_still_send(void **state)
{
    const char *const params[] = {"REQUEST_METHOD", "GET", NULL};
    for (int stdin_open = 0; stdin_open <= 1; stdin_open++) {
        int server = server_connect();
        server_send_request(server, 1, params, NULL, 0, !stdin_open);
        fcgi_conn *conn = accept_one(0);
        fcgi_conn_send(conn, "Status: 304 Not Modified\r\n\r\n", 28);
        fcgi_conn_end(conn);
        response r = {0};
        exchange(conn, server, 1, &r);
        assert_int_equal(fcgi_conn_shutdown_output(conn), stdin_open == 1);
        close_all(conn, server, &r);
    }
}

/* Sends a POST with the given CONTENT_LENGTH and body; returns the accepted conn. */
static fcgi_conn *post(int server, const char *content_length, const char *body, size_t max_body)
{
    const char *const params[] = {"REQUEST_METHOD", "POST", "CONTENT_LENGTH", content_length, NULL};
    server_send_request(server, 1, params, body, strlen(body), true);
    return accept_one(max_body);
}

static void test_body_up_to_the_limit(void **state)
{
    char body[4097];
    fill_pattern(body, 4096);
    body[4096] = '\0';
    int server = server_connect();
    fcgi_conn *conn = post(server, "4096", body, 4096);
    expect_body(conn, body, 4096, false);
    fcgi_conn_close(conn);
    close(server);
}

static void test_body_over_the_limit(void **state)
{
    char body[101];
    fill_pattern(body, 100);
    body[100] = '\0';
    int server = server_connect();
    fcgi_conn *conn = post(server, "100", body, 99);
    expect_body(conn, "", 0, true);
    /* The unread body and the empty STDIN are still queued: not a hangup. */
    assert_false(fcgi_conn_peer_closed(conn));
    assert_false(fcgi_conn_peer_closed(conn));
    close(server);
    assert_true(fcgi_conn_peer_closed(conn));
    fcgi_conn_close(conn);
}

static void test_hostile_content_lengths(void **state)
{
    static const struct {
        const char *content_length;
        bool too_large;
    } cases[] = {
        {"-5", false},
        {"abc", false},
        {"", false},
        {"0", false},
        {"99999999999999999999", true},
        {"18446744073709551617", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int server = server_connect();
        fcgi_conn *conn = post(server, cases[i].content_length, "xyz", 1 << 20);
        expect_body(conn, "", 0, cases[i].too_large);
        fcgi_conn_close(conn);
        close(server);
    }
}

static void test_body_shorter_than_content_length(void **state)
{
    /* The server ended STDIN early: what arrived is the body, nothing is invented. */
    int server = server_connect();
    fcgi_conn *conn = post(server, "10", "abc", 100);
    expect_body(conn, "abc", 3, false);
    fcgi_conn_close(conn);
    close(server);
}

static void test_peer_closed_sees_only_a_hangup(void **state)
{
    const char *const params[] = {"REQUEST_METHOD", "GET", "PATH_INFO", "/orders", NULL};
    int server = server_connect();
    server_send_request(server, 3, params, NULL, 0, false);
    fcgi_conn *conn = accept_one(0);
    assert_false(fcgi_conn_peer_closed(conn)); /* nothing queued at all */
    /* STDIN that arrives later, longer than peer_closed's scratch, then its end. */
    char late[2000];
    fill_pattern(late, sizeof late);
    buf out = BUF_INIT;
    put_stream(&out, FCGI_STDIN, 3, late, sizeof late, 1000);
    put_record(&out, FCGI_STDIN, 3, NULL, 0, 0);
    write_all(server, out.data, out.len);
    buf_free(&out);
    assert_false(fcgi_conn_peer_closed(conn));
    assert_string_equal(fcgi_conn_param(conn, "PATH_INFO"), "/orders");
    fcgi_conn_drop_params(conn);
    assert_false(fcgi_conn_peer_closed(conn));

    /* A held request answers; the connection stays up until pgfeed closes it. */
    fcgi_conn_send(conn, "x", 1);
    fcgi_conn_end(conn);
    response r = {0};
    exchange(conn, server, 3, &r);
    assert_false(fcgi_conn_peer_closed(conn));

    close(server);
    assert_true(fcgi_conn_peer_closed(conn));
    assert_true(fcgi_conn_peer_closed(conn));
    fcgi_conn_close(conn);
    response_free(&r);
}

static void test_flush_waits_for_a_slow_reader(void **state)
{
    int server;
    fcgi_conn *conn = accept_get(9, &server);
    int small = 4096;
    assert_int_equal(setsockopt(server, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    assert_int_equal(setsockopt(fcgi_conn_fd(conn), SOL_SOCKET, SO_SNDBUF, &small, sizeof small),
                     0);

    enum { total = 1 << 20 };
    static char data[total];
    fill_pattern(data, total);
    fcgi_conn_send(conn, data, total);
    fcgi_conn_end(conn);
    size_t framed = fcgi_conn_pending(conn);

    /* The reader is not reading: the first flush stops short and says so. */
    assert_int_equal(fcgi_conn_flush(conn), 0);
    size_t left = fcgi_conn_pending(conn);
    assert_true(left > 0 && left < framed);

    response r = {0};
    size_t full = exchange(conn, server, 9, &r);
    assert_true(full >= 2);
    assert_int_equal(r.content.len, total);
    assert_memory_equal(r.content.data, data, total);
    close_all(conn, server, &r);
}

static void test_flush_to_a_departed_server(void **state)
{
    int server;
    fcgi_conn *conn = accept_get(4, &server);
    close(server);
    assert_true(fcgi_conn_peer_closed(conn));
    fcgi_conn_send(conn, "too late", 8);
    fcgi_conn_end(conn);
    assert_int_equal(fcgi_conn_flush(conn), -1);
    assert_true(fcgi_conn_pending(conn) > 0); /* kept, the caller decides to drop it */
    fcgi_conn_close(conn);
}

static void test_several_waiting_connections(void **state)
{
    enum { n = 3 };
    int servers[n];
    fcgi_conn *conns[n];
    char paths[n][16];
    for (int i = 0; i < n; i++) {
        snprintf(paths[i], sizeof paths[i], "/channel-%d", i);
        const char *const params[] = {"PATH_INFO", paths[i], NULL};
        servers[i] = server_connect();
        server_send_request(servers[i], 100 + i, params, NULL, 0, true);
    }
    for (int i = 0; i < n; i++) {
        conns[i] = accept_one(0);
        assert_string_equal(fcgi_conn_param(conns[i], "PATH_INFO"), paths[i]);
    }
    expect_nothing_waiting();
    /* Answered out of order: each connection frames its own request id. */
    for (int i = n - 1; i >= 0; i--) {
        fcgi_conn_send(conns[i], paths[i], strlen(paths[i]));
        fcgi_conn_end(conns[i]);
        response r = {0};
        exchange(conns[i], servers[i], 100 + i, &r);
        assert_int_equal(r.content.len, strlen(paths[i]));
        assert_memory_equal(r.content.data, paths[i], r.content.len);
        close_all(conns[i], servers[i], &r);
    }
}

static void test_broken_connections_are_skipped(void **state)
{
    /* One hangs up at once, one sends a record of an unknown protocol version,
     * one stops in the middle of its params; the last one is whole. */
    int silent = server_connect();
    close(silent);

    int garbage = server_connect();
    const char bad_header[8] = {9, FCGI_BEGIN_REQUEST, 0, 1, 0, 8, 0, 0};
    write_all(garbage, bad_header, sizeof bad_header);
    close(garbage);

    int cut = server_connect();
    buf out = BUF_INIT;
    const char begin[8] = {0, FCGI_RESPONDER, 0, 0, 0, 0, 0, 0};
    put_record(&out, FCGI_BEGIN_REQUEST, 1, begin, sizeof begin, 0);
    put_record(&out, FCGI_PARAMS, 1, "\x04\x80\x00\x01\x00PATH", 9, 0);
    write_all(cut, out.data, out.len);
    buf_free(&out);
    close(cut);

    const char *const params[] = {"PATH_INFO", "/whole", NULL};
    int whole = server_connect();
    server_send_request(whole, 2, params, NULL, 0, true);

    fcgi_conn *conn = accept_one(0);
    assert_string_equal(fcgi_conn_param(conn, "PATH_INFO"), "/whole");
    expect_nothing_waiting();
    fcgi_conn_close(conn);
    close(whole);
}

/* An address that cannot be listened on is refused with -1, never exit(). */
/* Whether fd is registered with any epoll instance of this process (its fdinfo lists it). */
static bool fd_in_epoll(int fd)
{
    bool found = false;
    DIR *dir = opendir("/proc/self/fd");
    assert_non_null(dir);
    for (struct dirent *e; !found && (e = readdir(dir));) {
        char path[300], target[64];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        if (strcmp(target, "anon_inode:[eventpoll]") != 0)
            continue;
        snprintf(path, sizeof path, "/proc/self/fdinfo/%s", e->d_name);
        FILE *f = fopen(path, "r");
        char line[256];
        int tfd;
        while (f && fgets(line, sizeof line, f))
            if (sscanf(line, "tfd: %d", &tfd) == 1 && tfd == fd)
                found = true;
        if (f)
            fclose(f);
    }
    closedir(dir);
    return found;
}

/* Events a request's handler got (fcgi_conn_watch). */
typedef struct seen_events {
    int calls;
    uint32_t events;
} seen_events;

static void on_conn_events(void *data, uint32_t events)
{
    seen_events *seen = data;
    seen->calls++;
    seen->events |= events;
}

/* Runs the loop of intake slot 0 (max_body 0) for turns turns of wait_ms. */
static void loop_turns(int turns, int wait_ms)
{
    intake_slot *slot = slot_for(0);
    for (int i = 0; i < turns; i++) {
        event_loop_run_once(slot->loop, wait_ms);
        fcgi_intake_tick(slot->intake, clock_now_ms());
    }
}

/* A kept connection's GET of path, accepted and held by a request watching for hang-ups. */
static fcgi_conn *accept_kept_held(int id, const char *path, int *server, seen_events *seen)
{
    const char *const params[] = {"PATH_INFO", path, NULL};
    *server = server_connect();
    buf out = BUF_INIT;
    put_request(&out, id, params, NULL, 0, true, true);
    write_all(*server, out.data, out.len);
    buf_free(&out);
    fcgi_conn *conn = accept_one(0);
    assert_int_equal(fcgi_conn_watch(conn, slot_for(0)->loop, on_conn_events, seen, EPOLLRDHUP), 0);
    loop_turns(1, 0);
    return conn;
}

/*
 * The params come with the connect (lighttpd, nginx): the request is read in
 * the turn that accepts it, and a connection answered and closed within that
 * turn is never registered with epoll (no ADD, no DEL). One still open when
 * the turn ends is.
 */
static void test_request_read_in_its_accept_turn(void **state)
{
    int server;
    const char *const params[] = {"REQUEST_METHOD", "GET", "PATH_INFO", "/at-once", NULL};
    server = server_connect();
    server_send_request(server, 1, params, NULL, 0, true);
    fcgi_conn *conn = intake_run(0, 1, 1000); /* one turn: the listener's wake-up */
    assert_non_null(conn);
    assert_string_equal(fcgi_conn_param(conn, "PATH_INFO"), "/at-once");
    assert_false(fd_in_epoll(fcgi_conn_fd(conn)));
    fcgi_conn_send(conn, "Status: 304 Not Modified\r\n\r\n", 28);
    fcgi_conn_end(conn);
    response r = {0};
    exchange(conn, server, 1, &r);
    close_all(conn, server, &r);

    /* Held past the turn: registered before the loop waits again. */
    server = server_connect();
    server_send_request(server, 2, params, NULL, 0, true);
    conn = intake_run(0, 1, 1000);
    assert_non_null(conn);
    seen_events seen = {0};
    assert_int_equal(fcgi_conn_watch(conn, slot_for(0)->loop, on_conn_events, &seen, EPOLLRDHUP),
                     0);
    loop_turns(1, 0);
    assert_true(fd_in_epoll(fcgi_conn_fd(conn)));
    assert_int_equal(seen.calls, 0);
    close(server); /* the hang-up reaches the request's handler */
    loop_turns(1, 1000);
    assert_true(seen.events & EPOLLRDHUP);
    assert_true(fcgi_conn_peer_closed(conn));
    fcgi_conn_close(conn);
}

/*
 * While a kept connection's request is held, what the server sends is read
 * ahead (the request's handler hears nothing of it) and served once the
 * connection is back: here a next request sent early, answered without
 * another byte from the server.
 */
static void test_read_ahead_while_held_is_served_next(void **state)
{
    const char *const second[] = {"PATH_INFO", "/next", NULL};
    int server;
    seen_events seen = {0};
    fcgi_conn *conn = accept_kept_held(1, "/held", &server, &seen);
    buf out = BUF_INIT;
    put_request(&out, 2, second, NULL, 0, true, true);
    write_all(server, out.data, out.len);
    buf_free(&out);
    loop_turns(2, 50);
    assert_int_equal(seen.calls, 0);
    assert_false(fcgi_conn_peer_closed(conn));
    assert_true(fd_in_epoll(fcgi_conn_fd(conn)));

    fcgi_conn_send(conn, "Status: 200 OK\r\n\r\nheld", 22);
    fcgi_conn_end(conn);
    response r = {0};
    exchange(conn, server, 1, &r);
    response_free(&r);
    fcgi_conn_close(conn); /* back to the intake, with request 2 already read */
    conn = intake_run(0, 1, 0);
    assert_non_null(conn);
    assert_string_equal(fcgi_conn_param(conn, "PATH_INFO"), "/next");
    fcgi_conn_send(conn, "Status: 200 OK\r\n\r\nnext", 22);
    fcgi_conn_end(conn);
    r = (response){0};
    exchange(conn, server, 2, &r);
    assert_memory_equal(r.content.data + r.content.len - 4, "next", 4);
    close_all(conn, server, &r);
}

/*
 * More than --max-params bytes while a request is held is not a server: the
 * connection is closed and counted, with at most the bound buffered.
 */
static void test_read_ahead_is_bounded(void **state)
{
    int server;
    seen_events seen = {0};
    fcgi_conn *conn = accept_kept_held(1, "/held", &server, &seen);
    const fcgi_intake_stats *stats = fcgi_intake_get_stats(slot_for(0)->intake);
    uint64_t errors = stats->protocol_errors;
    size_t open = stats->open;
    static char flood[65536 + 1]; /* the slot's max_params + 1 */
    memset(flood, 'x', sizeof flood);
    write_all(server, flood, sizeof flood);
    for (int i = 0; i < 20 && !seen.calls; i++)
        loop_turns(1, 50);
    assert_true(seen.events & EPOLLRDHUP);
    assert_true(fcgi_conn_peer_closed(conn));
    assert_int_equal(stats->protocol_errors, errors + 1);
    /* The answer written, the connection is closed all the same, not kept. */
    fcgi_conn_send(conn, "Status: 200 OK\r\n\r\n", 18);
    fcgi_conn_end(conn);
    assert_int_equal(fcgi_conn_flush(conn), 1);
    fcgi_conn_close(conn);
    assert_int_equal(stats->open, open - 1);
    buf raw = BUF_INIT;
    for (int i = 0; i < 100 && server_read_available(server, &raw); i++)
        usleep(10000);
    assert_false(server_read_available(server, &raw)); /* EOF */
    buf_free(&raw);
    close(server);
}

static void test_listen_refuses_bad_addresses(void **state)
{
    (void)state;
    const char *bad[] = {"127.0.0.1:0",
                         "127.0.0.1:65536",
                         "127.0.0.1:99999",
                         "127.0.0.1:http",
                         "127.0.0.1:",
                         ":9000",
                         "no-colon",
                         "/nonexistent/dir/pgfeed.sock",
                         "no.such.host.invalid:9000"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(fcgi_listen_open(bad[i], 16, NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_with_nothing_waiting),
        cmocka_unit_test(test_params_body_and_framed_response),
        cmocka_unit_test(test_send_splits_exactly_at_the_record_limit),
        cmocka_unit_test(test_send_after_end_is_dropped),
        cmocka_unit_test(test_answer_is_one_record_and_end_request),
        cmocka_unit_test(test_linger_only_while_the_server_may_still_send),
        cmocka_unit_test(test_body_up_to_the_limit),
        cmocka_unit_test(test_body_over_the_limit),
        cmocka_unit_test(test_hostile_content_lengths),
        cmocka_unit_test(test_body_shorter_than_content_length),
        cmocka_unit_test(test_peer_closed_sees_only_a_hangup),
        cmocka_unit_test(test_flush_waits_for_a_slow_reader),
        cmocka_unit_test(test_flush_to_a_departed_server),
        cmocka_unit_test(test_several_waiting_connections),
        cmocka_unit_test(test_broken_connections_are_skipped),
        cmocka_unit_test(test_request_read_in_its_accept_turn),
        cmocka_unit_test(test_read_ahead_while_held_is_served_next),
        cmocka_unit_test(test_read_ahead_is_bounded),
        cmocka_unit_test(test_listen_refuses_bad_addresses),
    };
    return cmocka_run_group_tests(tests, setup_listener, remove_listener);
}
