/*
 * test_relay — relay_copy between two socket pairs: the test plays the web
 * server on one and the hub on the other while a child process relays.
 * Checked: bytes pass unchanged both ways through buffers smaller than the
 * answer, a hub that closes without answering gets its request a 503 framed
 * with the request's own id, a web server that leaves is passed on to the
 * hub, and silence ends at the timeout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fastcgi.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "relay.h"

typedef struct relay_pair {
    pid_t pid;
    int server; /* the web server's end */
    int hub;    /* the hub's end */
} relay_pair;

static relay_pair start(size_t buffer, int timeout_ms)
{
    int s[2], h[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, h), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(s[0]);
        close(h[0]);
        fcntl(s[1], F_SETFL, O_NONBLOCK);
        fcntl(h[1], F_SETFL, O_NONBLOCK);
        _exit((int)relay_copy(s[1], h[1], buffer, timeout_ms));
    }
    close(s[1]);
    close(h[1]);
    return (relay_pair){.pid = pid, .server = s[0], .hub = h[0]};
}

static relay_end finish(relay_pair *r)
{
    int status;
    assert_int_equal(waitpid(r->pid, &status, 0), r->pid);
    assert_true(WIFEXITED(status));
    close(r->server);
    close(r->hub);
    return (relay_end)WEXITSTATUS(status);
}

static void write_all(int fd, const char *data, size_t len)
{
    while (len) {
        ssize_t n = write(fd, data, len);
        assert_true(n > 0);
        data += n;
        len -= (size_t)n;
    }
}

static void read_exactly(int fd, char *out, size_t len)
{
    while (len) {
        ssize_t n = read(fd, out, len);
        assert_true(n > 0);
        out += n;
        len -= (size_t)n;
    }
}

static void read_to_eof(int fd, buf *out)
{
    char chunk[4096];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof chunk)) > 0)
        buf_append(out, chunk, (size_t)n);
    assert_int_equal(n, 0);
}

static void begin_request(buf *out, int id)
{
    FCGI_BeginRequestRecord rec = {.header = {.version = FCGI_VERSION_1,
                                              .type = FCGI_BEGIN_REQUEST,
                                              .requestIdB1 = (unsigned char)(id >> 8),
                                              .requestIdB0 = (unsigned char)id,
                                              .contentLengthB0 = sizeof(FCGI_BeginRequestBody)},
                                   .body = {.roleB0 = FCGI_RESPONDER}};
    buf_append(out, (const char *)&rec, sizeof rec);
}

static void test_bytes_pass_unchanged_both_ways(void **state)
{
    relay_pair r = start(4096, 5000);
    buf request = BUF_INIT;
    begin_request(&request, 1);
    for (int i = 0; request.len < 3000; i++)
        buf_printf(&request, "param-%d;", i);
    write_all(r.server, request.data, request.len);
    char *seen = malloc(request.len);
    read_exactly(r.hub, seen, request.len);
    assert_memory_equal(seen, request.data, request.len);

    /* An answer 50 times the relay's buffer: back-pressure, not loss or growth. */
    buf answer = BUF_INIT;
    for (int i = 0; answer.len < 200000; i++)
        buf_printf(&answer, "%d,", i);
    pid_t writer = fork();
    if (writer == 0) {
        write_all(r.hub, answer.data, answer.len);
        _exit(0);
    }
    close(r.hub); /* the writer child holds the hub's end until it is done */
    r.hub = -1;
    buf got = BUF_INIT;
    read_to_eof(r.server, &got);
    assert_int_equal(got.len, answer.len);
    assert_memory_equal(got.data, answer.data, answer.len);
    waitpid(writer, NULL, 0);
    assert_int_equal(finish(&r), RELAY_ANSWERED);
    free(seen);
    buf_free(&request);
    buf_free(&answer);
    buf_free(&got);
}

static void test_a_hub_lost_before_answering_gets_a_503_with_the_request_id(void **state)
{
    relay_pair r = start(65536, 5000);
    buf request = BUF_INIT;
    begin_request(&request, 0x0102);
    write_all(r.server, request.data, request.len);
    char seen[sizeof(FCGI_BeginRequestRecord)];
    read_exactly(r.hub, seen, sizeof seen);
    close(r.hub); /* killed before a byte of answer */
    r.hub = -1;
    buf got = BUF_INIT;
    read_to_eof(r.server, &got);
    assert_true(got.len > 2 * sizeof(FCGI_Header));
    const FCGI_Header *h = (const FCGI_Header *)got.data;
    assert_int_equal(h->type, FCGI_STDOUT);
    assert_int_equal(h->requestIdB1, 0x01);
    assert_int_equal(h->requestIdB0, 0x02);
    size_t len = (size_t)(h->contentLengthB1 << 8 | h->contentLengthB0);
    char *text = strndup(got.data + sizeof *h, len);
    assert_non_null(strstr(text, "Status: 503"));
    assert_non_null(strstr(text, "Retry-After: 1\r\n"));
    assert_non_null(strstr(text, "application/problem+json"));
    assert_non_null(strstr(text, "\"status\":503"));
    /* then the empty STDOUT and END_REQUEST of the same request */
    const FCGI_Header *end =
        (const FCGI_Header *)(got.data + got.len - sizeof(FCGI_EndRequestRecord));
    assert_int_equal(end->type, FCGI_END_REQUEST);
    assert_int_equal(end->requestIdB0, 0x02);
    free(text);
    buf_free(&request);
    buf_free(&got);
    assert_int_equal(finish(&r), RELAY_HUB_LOST);
}

static void test_a_departed_server_is_passed_on_to_the_hub(void **state)
{
    relay_pair r = start(65536, 5000);
    buf request = BUF_INIT;
    begin_request(&request, 1);
    write_all(r.server, request.data, request.len);
    close(r.server);
    r.server = -1;
    /* The hub reads the request, then end of input: its client left. */
    buf got = BUF_INIT;
    read_to_eof(r.hub, &got);
    assert_int_equal(got.len, request.len);
    close(r.hub);
    r.hub = -1;
    assert_int_equal(finish(&r), RELAY_SERVER_GONE);
    buf_free(&request);
    buf_free(&got);
}

static void test_silence_ends_at_the_timeout(void **state)
{
    relay_pair r = start(65536, 200);
    assert_int_equal(finish(&r), RELAY_TIMEOUT);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes_pass_unchanged_both_ways),
        cmocka_unit_test(test_a_hub_lost_before_answering_gets_a_503_with_the_request_id),
        cmocka_unit_test(test_a_departed_server_is_passed_on_to_the_hub),
        cmocka_unit_test(test_silence_ends_at_the_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
