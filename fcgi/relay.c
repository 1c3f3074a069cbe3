/*
 * relay — copying one FastCGI connection at a time to the hub (see relay.h).
 */
#define _GNU_SOURCE /* accept4 */
#include "relay.h"
#include "buf.h"
#include "log.h"
#include "xalloc.h"

#include <errno.h>
#include <fastcgi.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* After the answer, how long the web server may take to close its side
 * (libfcgi's LIBFCGI_OS_CLOSE_POLL_TIMEOUT): closing with its input unread
 * would reset the connection and could cost the end of the answer. */
#define LINGER_MS 2000

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* One direction: bytes read from one socket and not yet written to the other. */
typedef struct pipe_buf {
    char *data;
    size_t start, len, cap;
    bool eof;          /* the reading side ended */
    uint64_t total_in; /* bytes ever read */
} pipe_buf;

static size_t pipe_space(const pipe_buf *p)
{
    return p->cap - p->start - p->len;
}

/* Reads what fits; returns 1 on data, 0 on EOF, -1 on would-block or no room, -2 on error. */
static int pipe_read(pipe_buf *p, int fd)
{
    if (p->start > 0 && pipe_space(p) == 0) {
        memmove(p->data, p->data + p->start, p->len);
        p->start = 0;
    }
    if (pipe_space(p) == 0)
        return -1; /* a read of 0 bytes would look like the end of input */
    ssize_t n = read(fd, p->data + p->start + p->len, pipe_space(p));
    if (n > 0) {
        p->len += (size_t)n;
        p->total_in += (uint64_t)n;
        return 1;
    }
    if (n == 0)
        return 0;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -1 : -2;
}

/* Writes what the socket takes; returns 0, or -1 when the peer is gone. */
static int pipe_write(pipe_buf *p, int fd)
{
    ssize_t n = send(fd, p->data + p->start, p->len, MSG_NOSIGNAL);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
    p->start += (size_t)n;
    p->len -= (size_t)n;
    if (p->len == 0)
        p->start = 0;
    return 0;
}

static void frame_record(buf *out, int type, int request_id, const char *data, size_t len)
{
    FCGI_Header header = {.version = FCGI_VERSION_1,
                          .type = (unsigned char)type,
                          .requestIdB1 = (unsigned char)(request_id >> 8),
                          .requestIdB0 = (unsigned char)(request_id & 0xff),
                          .contentLengthB1 = (unsigned char)(len >> 8),
                          .contentLengthB0 = (unsigned char)(len & 0xff)};
    buf_append(out, (const char *)&header, sizeof header);
    if (len)
        buf_append(out, data, len);
}

/*
 * The hub closed without a byte of answer: answer 503 in its place, framed as
 * the request's own records, so the client gets a clean retry instead of the
 * web server's 500. Needs the request id of the first record (BEGIN_REQUEST).
 */
static bool answer_hub_lost(pipe_buf *down, const unsigned char *first, size_t first_len)
{
    if (first_len < sizeof(FCGI_Header) || first[1] != FCGI_BEGIN_REQUEST)
        return false;
    int request_id = (first[2] << 8) | first[3];
    /* A constant problem+json: pgfeed-relay has no JSON library to build one. */
    static const char answer[] =
        "Status: 503 Service Unavailable\r\nContent-Type: application/problem+json\r\n"
        "Retry-After: 1\r\nCache-Control: no-store\r\n\r\n"
        "{\"type\":\"about:blank\",\"title\":\"Service Unavailable\",\"status\":503,"
        "\"detail\":\"the pgfeed hub went away; retry (a new one starts on the next request)\"}";
    buf out = BUF_INIT;
    frame_record(&out, FCGI_STDOUT, request_id, answer, sizeof answer - 1);
    frame_record(&out, FCGI_STDOUT, request_id, NULL, 0);
    FCGI_EndRequestBody end = {.protocolStatus = FCGI_REQUEST_COMPLETE};
    frame_record(&out, FCGI_END_REQUEST, request_id, (const char *)&end, sizeof end);
    bool fits = out.len <= down->cap;
    if (fits) {
        memcpy(down->data, out.data, out.len);
        down->start = 0;
        down->len = out.len;
    }
    buf_free(&out);
    return fits;
}

relay_end relay_copy(int server_fd, int hub_fd, size_t buffer_size, int timeout_ms)
{
    relay_end end;
    pipe_buf up = {.data = xmalloc(buffer_size), .cap = buffer_size};   /* server → hub */
    pipe_buf down = {.data = xmalloc(buffer_size), .cap = buffer_size}; /* hub → server */
    unsigned char first[sizeof(FCGI_Header)];
    size_t first_len = 0;
    bool hub_shut = false, hub_lost = false;
    while (true) {
        if (down.eof && down.len == 0) {
            end = hub_lost ? RELAY_HUB_LOST : RELAY_ANSWERED;
            goto cleanup;
        }
        struct pollfd p[2] = {{.fd = server_fd}, {.fd = hub_fd}};
        if (!up.eof && pipe_space(&up) + up.start > 0)
            p[0].events |= POLLIN;
        if (down.len)
            p[0].events |= POLLOUT;
        if (!down.eof && pipe_space(&down) + down.start > 0)
            p[1].events |= POLLIN;
        if (up.len && !down.eof)
            p[1].events |= POLLOUT;
        /* A hangup is reported whatever was asked: a socket we cannot serve
         * now (its buffer full) stays out of the set, or poll would spin. */
        for (int i = 0; i < 2; i++)
            if (!p[i].events)
                p[i].fd = -1;
        int n = poll(p, 2, timeout_ms);
        if (n < 0 && errno == EINTR && stop_requested) {
            end = RELAY_STOPPED;
            goto cleanup;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            end = RELAY_TIMEOUT;
            goto cleanup;
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            uint64_t before = up.total_in;
            int rc = pipe_read(&up, server_fd);
            if (rc == 1 && before < sizeof first) {
                size_t got = (size_t)(up.total_in - before);
                size_t take = got < sizeof first - first_len ? got : sizeof first - first_len;
                memcpy(first + first_len, up.data + up.start + up.len - got, take);
                first_len += take;
            }
            if (rc == -2) {
                end = RELAY_SERVER_GONE;
                goto cleanup;
            }
            if (rc == 0)
                up.eof = true;
        }
        if ((p[1].revents & POLLOUT) && pipe_write(&up, hub_fd) < 0)
            down.eof = hub_lost = true; /* the hub is gone: what it owed is owed by us */
        /* The web server ended its side: the hub must see its client leave. */
        if (up.eof && up.len == 0 && !hub_shut) {
            shutdown(hub_fd, SHUT_WR);
            hub_shut = true;
        }
        if (!down.eof && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            int rc = pipe_read(&down, hub_fd);
            if (rc == 0 || rc == -2) {
                down.eof = true;
                hub_lost = down.total_in == 0;
            }
        }
        if (hub_lost && down.total_in == 0) {
            /* The web server left first: the hub only followed, nobody to answer. */
            if (up.eof) {
                end = RELAY_SERVER_GONE;
                goto cleanup;
            }
            if (!answer_hub_lost(&down, first, first_len)) {
                end = RELAY_HUB_LOST;
                goto cleanup;
            }
            down.total_in = down.len;
        }
        if ((p[0].revents & POLLOUT) && pipe_write(&down, server_fd) < 0) {
            end = RELAY_SERVER_GONE;
            goto cleanup;
        }
        if ((p[0].revents & (POLLHUP | POLLERR)) && !(p[0].revents & POLLIN) && down.len) {
            end = RELAY_SERVER_GONE;
            goto cleanup;
        }
    }
cleanup:
    free(up.data);
    free(down.data);
    return end;
}

bool relay_wanted(const pgfeed_config *cfg)
{
    if (!cfg->hub || cfg->listen)
        return false;
    int listening = 0;
    socklen_t len = sizeof listening;
    return getsockopt(STDIN_FILENO, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening;
}

/* The answer is out: end our side, then let the web server close first. */
static void linger_close(int fd)
{
    shutdown(fd, SHUT_WR);
    char scratch[4096];
    for (int i = 0; i < 64; i++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, LINGER_MS) <= 0)
            break;
        ssize_t n = read(fd, scratch, sizeof scratch);
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
            break;
    }
    close(fd);
}

static void install_signals(void)
{
    struct sigaction stop = {.sa_handler = on_stop_signal}; /* no SA_RESTART: poll returns */
    sigemptyset(&stop.sa_mask);
    sigaction(SIGTERM, &stop, NULL);
    sigaction(SIGINT, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static int set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL, 0);
    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

int relay_run(const pgfeed_config *cfg, const hub_link *link)
{
    install_signals();
    if (set_nonblocking(STDIN_FILENO) < 0) {
        log_error(0, "relay: cannot make fd 0 non-blocking: %s", strerror(errno));
        return -1;
    }
    unsigned long relayed = 0;
    while (!stop_requested) {
        struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
        if (poll(&p, 1, -1) <= 0)
            continue; /* a signal: the loop condition decides */
        /* The hub first: if there is none, the connection waiting on fd 0 is
         * still there for whoever serves it instead. */
        int hub_fd = hub_link_connect(link);
        if (hub_fd < 0)
            return -1;
        int conn = accept4(STDIN_FILENO, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (conn < 0 || set_nonblocking(hub_fd) < 0) {
            if (conn >= 0)
                close(conn);
            close(hub_fd);
            continue;
        }
        relay_end end =
            relay_copy(conn, hub_fd, (size_t)cfg->relay_buffer, cfg->relay_timeout * 1000);
        relayed++;
        if (end == RELAY_TIMEOUT)
            log_warn(0, "relay: nothing moved for %d s (--relay-timeout); connection closed",
                     cfg->relay_timeout);
        else if (end == RELAY_HUB_LOST)
            log_warn(0, "relay: the hub closed before answering; answered 503");
        close(hub_fd); /* the hub sees its client leave at once */
        linger_close(conn);
    }
    log_debug(0, "relay: stopping after %lu connections", relayed);
    return 0;
}
