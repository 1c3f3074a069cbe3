/*
 * fcgi_io — the FastCGI intake (accepting, reading requests under deadlines
 * and caps, keeping connections) and the non-blocking response writer (see
 * fcgi_io.h for why both are our own).
 */
#define _GNU_SOURCE /* accept4 */
#include "fcgi_io.h"
#include "buf.h"
#include "fcgi_record.h"
#include "log.h"
#include "xalloc.h"

#include <errno.h>
#include <fastcgi.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define ACCEPTS_PER_TURN 64     /* so a burst of connections cannot starve held requests */
#define ACCEPT_PAUSE_MS 100     /* listener rest at the descriptor limit */
#define SWEEP_MS 100            /* deadlines are checked this often */
#define READ_CHUNK 65536        /* per wake-up, so one fast sender cannot hog a turn */
#define MAX_REPLY_BACKLOG 65536 /* protocol replies a server has not read: it is not a server */

/*
 * Where a FastCGI connection is. A CGI "connection" is always SERVING.
 */
typedef enum conn_state {
    /* On intake->reading, watched by the intake: records are parsed until a
     * request is complete, the deadline passes or a cap is exceeded. */
    CONN_READING,
    /* Handed to the request layer, which watches the fd; comes back to
     * READING through fcgi_conn_close when the server keeps the connection. */
    CONN_SERVING,
} conn_state;

struct fcgi_conn {
    bool is_cgi;
    int fd;         /* FastCGI connection, or stdout for CGI */
    int request_id; /* FastCGI request id, framed into every record */
    conn_state state;
    fcgi_intake *intake; /* NULL for CGI */
    fcgi_parser *parser;
    buf in;  /* read and not yet parsed: at most a partial record and one read */
    buf out; /* bytes framed and not yet written */
    bool ended;
    bool keep;          /* the server keeps the connection after this request */
    bool used;          /* it carried a request before */
    bool idle_deadline; /* the deadline is the kept connection's idle one */
    int64_t deadline_ms;
    event_watch watch; /* the intake's, while READING */
    fcgi_conn *prev, *next;
    fcgi_conn *pending_next; /* on intake->pending: came back with bytes buffered */
    bool on_pending;
    buf cgi_body; /* CGI only: the body read from stdin */
    bool cgi_body_too_large;
};

struct fcgi_intake {
    event_loop *loop;
    fcgi_intake_limits limits;
    fcgi_parser_limits parser_limits;
    fcgi_intake_fn on_request;
    void *ctx;
    event_watch listener;
    bool listening;       /* the listener is registered with the loop */
    bool stopped;         /* shutdown: no accepting, kept connections are closed */
    int64_t paused_until; /* listener rests until then (descriptor limit) */
    bool fd_episode;      /* at the descriptor limit since the last successful accept */
    bool full_episode;    /* at --max-connections since the last accepted one */
    int64_t last_sweep;
    fcgi_conn *reading;
    fcgi_conn *pending;
    fcgi_intake_stats stats;
    bool (*peer_allowed)(int fd); /* NULL: every peer that can reach the socket */
};

extern char **environ;

int fcgi_io_init(void)
{
    if (FCGX_Init() != 0) {
        log_error(0, "FCGX_Init failed");
        return -1;
    }
    return 0;
}

bool fcgi_io_is_fastcgi(void)
{
    return !FCGX_IsCGI();
}

/*
 * Reads and drops what the server still sends (unread STDIN records, a CGI body
 * nobody asked for). Closing a socket with unread input makes the kernel reset
 * the connection, and the server may then lose the end of our answer.
 */
static void drain_input(int fd, int wait_ms)
{
    char scratch[4096];
    for (int i = 0; i < 256; i++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, wait_ms) <= 0)
            return;
        ssize_t n = read(fd, scratch, sizeof scratch);
        if (n <= 0 && !(n < 0 && errno == EINTR))
            return;
    }
}

/* ---- the intake ------------------------------------------------------------ */

static void conn_list_remove(fcgi_conn **head, fcgi_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        *head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void conn_list_push(fcgi_conn **head, fcgi_conn *c)
{
    c->prev = NULL;
    c->next = *head;
    if (*head)
        (*head)->prev = c;
    *head = c;
}

static void pending_remove(fcgi_intake *in, fcgi_conn *c)
{
    if (!c->on_pending)
        return;
    for (fcgi_conn **at = &in->pending; *at; at = &(*at)->pending_next) {
        if (*at == c) {
            *at = c->pending_next;
            break;
        }
    }
    c->on_pending = false;
    c->pending_next = NULL;
}

/* The one way a FastCGI connection ends; drain says whether to read its leftovers first. */
static void conn_destroy(fcgi_conn *c, bool drain)
{
    fcgi_intake *in = c->intake;
    if (c->state == CONN_READING) {
        event_loop_unwatch(in->loop, &c->watch);
        conn_list_remove(&in->reading, c);
    }
    pending_remove(in, c);
    if (drain)
        drain_input(c->fd, 0);
    close(c->fd);
    in->stats.open--;
    fcgi_parser_free(c->parser);
    buf_free(&c->in);
    buf_free(&c->out);
    free(c);
}

/* Writes queued protocol replies; false when the connection is broken or hoarding them. */
static bool conn_write_replies(fcgi_conn *c)
{
    if (c->out.len == 0)
        return true;
    int rc = fcgi_conn_flush(c);
    if (rc < 0)
        return false;
    if (c->out.len > MAX_REPLY_BACKLOG) {
        c->intake->stats.protocol_errors++;
        log_debug(0, "closing a FastCGI connection that does not read its replies");
        return false;
    }
    return true;
}

/* Hands a complete request to the request layer, which watches the fd from now on. */
static void conn_serve(fcgi_conn *c)
{
    fcgi_intake *in = c->intake;
    event_loop_unwatch(in->loop, &c->watch);
    conn_list_remove(&in->reading, c);
    c->state = CONN_SERVING;
    c->request_id = fcgi_parser_request_id(c->parser);
    size_t body_len;
    bool body_too_large;
    (void)fcgi_parser_body(c->parser, &body_len, &body_too_large);
    /* An unread body is still coming: only closing the connection skips it. */
    c->keep = fcgi_parser_keep_conn(c->parser) && !body_too_large;
    c->ended = false;
    if (c->used)
        in->stats.kept_requests++;
    c->used = true;
    in->on_request(in->ctx, c);
}

/* Parses what is buffered: answers management records, hands out a complete request. */
static void conn_parse(fcgi_conn *c)
{
    fcgi_intake *in = c->intake;
    size_t consumed = 0;
    fcgi_parse_status status =
        fcgi_parser_feed(c->parser, c->in.data ? c->in.data : "", c->in.len, &consumed, &c->out);
    buf_consume(&c->in, consumed);
    if (c->idle_deadline && (c->in.len > 0 || fcgi_parser_busy(c->parser))) {
        /* A kept connection started its next request: it has request_timeout from now. */
        c->idle_deadline = false;
        c->deadline_ms = clock_now_ms() + in->limits.request_timeout_ms;
    }
    if (!conn_write_replies(c)) {
        conn_destroy(c, false);
        return;
    }
    const char *detail;
    switch (status) {
    case FCGI_PARSE_MORE:
        if (event_loop_modify(in->loop, &c->watch,
                              EPOLLIN | EPOLLRDHUP | (c->out.len ? EPOLLOUT : 0)) < 0)
            conn_destroy(c, false);
        return;
    case FCGI_PARSE_REQUEST:
        conn_serve(c);
        return;
    case FCGI_PARSE_CLOSE:
        conn_destroy(c, true);
        return;
    case FCGI_PARSE_ERROR:
        if (fcgi_parser_error(c->parser, &detail) == FCGI_ERROR_PARAMS_TOO_LARGE)
            in->stats.too_large++;
        else
            in->stats.protocol_errors++;
        log_debug(0, "closing a FastCGI connection: %s", detail);
        conn_destroy(c, false);
        return;
    }
}

static void conn_on_io(void *data, uint32_t events)
{
    fcgi_conn *c = data;
    if (events & EPOLLOUT && !conn_write_replies(c)) {
        conn_destroy(c, false);
        return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        char chunk[READ_CHUNK];
        ssize_t n = recv(c->fd, chunk, sizeof chunk, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            /* The server went away: normal for an idle kept connection, else unfinished. */
            conn_destroy(c, false);
            return;
        }
        if (n > 0)
            buf_append(&c->in, chunk, (size_t)n);
    }
    conn_parse(c);
}

/* Puts c on the reading list with its deadline; false if it cannot be watched. */
static bool conn_start_reading(fcgi_conn *c, bool idle)
{
    fcgi_intake *in = c->intake;
    c->state = CONN_READING;
    c->idle_deadline = idle;
    c->deadline_ms =
        clock_now_ms() + (idle ? in->limits.idle_timeout_ms : in->limits.request_timeout_ms);
    c->watch = (event_watch){.fd = c->fd, .handler = conn_on_io, .data = c};
    conn_list_push(&in->reading, c);
    return event_loop_watch(in->loop, &c->watch, EPOLLIN | EPOLLRDHUP) == 0;
}

static void intake_pause(fcgi_intake *in, int err)
{
    if (in->listening)
        event_loop_unwatch(in->loop, &in->listener);
    in->listening = false;
    in->paused_until = clock_now_ms() + ACCEPT_PAUSE_MS;
    if (!in->fd_episode) {
        in->fd_episode = true;
        in->stats.fd_exhausted++;
        log_warn(0,
                 "accept: %s; not accepting for %d ms at a time until descriptors free up "
                 "(logged once per episode)",
                 strerror(err), ACCEPT_PAUSE_MS);
    }
}

static void intake_accept(fcgi_intake *in, int fd)
{
    if (in->fd_episode) {
        in->fd_episode = false;
        log_info(0, "accepting again: descriptors are available");
    }
    in->stats.accepted++;
    if (in->stats.open >= in->limits.max_connections) {
        in->stats.refused++;
        if (!in->full_episode)
            log_warn(0,
                     "--max-connections %zu reached: closing new FastCGI connections "
                     "(logged once per episode)",
                     in->limits.max_connections);
        in->full_episode = true;
        close(fd);
        return;
    }
    in->full_episode = false;
    if (in->peer_allowed && !in->peer_allowed(fd)) {
        in->stats.refused_peers++;
        close(fd);
        return;
    }
    fcgi_conn *c = xcalloc(1, sizeof *c);
    c->fd = fd;
    c->intake = in;
    c->parser = fcgi_parser_new(&in->parser_limits);
    in->stats.open++;
    if (!conn_start_reading(c, false))
        conn_destroy(c, false);
}

static void intake_on_listener(void *data, uint32_t events)
{
    fcgi_intake *in = data;
    for (int i = 0; i < ACCEPTS_PER_TURN; i++) {
        int fd = accept4(in->listener.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            intake_accept(in, fd);
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
            continue; /* that connection is gone; others may be waiting */
        /* EMFILE, ENFILE, ENOBUFS, ENOMEM: retrying at once would spin on the same error. */
        intake_pause(in, errno);
        return;
    }
}

fcgi_intake *fcgi_intake_new(event_loop *loop, int listen_fd, const fcgi_intake_limits *limits,
                             fcgi_intake_fn on_request, void *ctx)
{
    fcgi_intake *in = xcalloc(1, sizeof *in);
    in->loop = loop;
    in->limits = *limits;
    in->parser_limits = (fcgi_parser_limits){
        .max_params = limits->max_params,
        .max_body = limits->max_body,
        .max_conns = (unsigned)limits->max_connections,
    };
    in->on_request = on_request;
    in->ctx = ctx;
    in->listener = (event_watch){.fd = listen_fd, .handler = intake_on_listener, .data = in};
    in->listening = event_loop_watch(loop, &in->listener, EPOLLIN) == 0;
    if (!in->listening) {
        free(in);
        return NULL;
    }
    return in;
}

void fcgi_intake_filter_peers(fcgi_intake *in, bool (*allowed)(int fd))
{
    in->peer_allowed = allowed;
}

void fcgi_intake_tick(fcgi_intake *in, int64_t now_ms)
{
    /* Connections back from a request with their next one already buffered. */
    while (in->pending) {
        fcgi_conn *c = in->pending;
        in->pending = c->pending_next;
        c->on_pending = false;
        c->pending_next = NULL;
        conn_parse(c);
    }
    if (!in->listening && !in->stopped && now_ms >= in->paused_until)
        in->listening = event_loop_watch(in->loop, &in->listener, EPOLLIN) == 0;
    if (now_ms - in->last_sweep < SWEEP_MS)
        return;
    in->last_sweep = now_ms;
    fcgi_conn *c = in->reading;
    while (c) {
        fcgi_conn *next = c->next;
        if (now_ms >= c->deadline_ms) {
            if (!c->idle_deadline) {
                in->stats.timed_out++;
                log_debug(0, "closing a FastCGI connection whose request did not arrive within "
                             "--request-timeout");
            }
            conn_destroy(c, false);
        }
        c = next;
    }
}

void fcgi_intake_stop(fcgi_intake *in)
{
    if (in->listening)
        event_loop_unwatch(in->loop, &in->listener);
    in->listening = false;
    in->stopped = true;
    while (in->reading)
        conn_destroy(in->reading, false);
}

const fcgi_intake_stats *fcgi_intake_get_stats(const fcgi_intake *in)
{
    return &in->stats;
}

void fcgi_intake_free(fcgi_intake *in)
{
    if (!in)
        return;
    fcgi_intake_stop(in);
    free(in);
}

/* ---- a request's connection -------------------------------------------------- */

fcgi_conn *fcgi_io_cgi(size_t max_body)
{
    fcgi_conn *conn = xcalloc(1, sizeof *conn);
    conn->is_cgi = true;
    conn->fd = STDOUT_FILENO;
    const char *length_text = getenv("CONTENT_LENGTH");
    long long length = length_text ? atoll(length_text) : 0;
    if (length > 0 && (unsigned long long)length > max_body) {
        conn->cgi_body_too_large = true;
    } else if (length > 0) {
        char chunk[4096];
        ssize_t n;
        while (conn->cgi_body.len < (size_t)length) {
            size_t want = (size_t)length - conn->cgi_body.len;
            n = read(STDIN_FILENO, chunk, want < sizeof chunk ? want : sizeof chunk);
            if (n <= 0)
                break;
            buf_append(&conn->cgi_body, chunk, (size_t)n);
        }
    }
    return conn;
}

const char *fcgi_conn_param(fcgi_conn *conn, const char *name)
{
    if (conn->is_cgi)
        return getenv(name);
    return fcgi_parser_param(conn->parser, name);
}

const char *fcgi_conn_body(fcgi_conn *conn, size_t *len, bool *body_too_large)
{
    if (!conn->is_cgi)
        return fcgi_parser_body(conn->parser, len, body_too_large);
    *len = conn->cgi_body.len;
    *body_too_large = conn->cgi_body_too_large;
    return conn->cgi_body.data ? conn->cgi_body.data : "";
}

void fcgi_conn_drop_params(fcgi_conn *conn)
{
    if (conn->is_cgi)
        buf_free(&conn->cgi_body);
    else
        fcgi_parser_drop(conn->parser);
}

int fcgi_conn_fd(const fcgi_conn *conn)
{
    return conn->fd;
}

uint32_t fcgi_conn_hangup_events(const fcgi_conn *conn)
{
    /* A FastCGI server closing the connection shows as a read hangup. A CGI's stdout
     * may be the same socket as its stdin (mod_cgid), whose read side ends with the
     * body, so only a full hangup (always reported by epoll) counts there. */
    return conn->is_cgi ? 0 : EPOLLRDHUP;
}

void fcgi_conn_send(fcgi_conn *conn, const char *data, size_t len)
{
    if (conn->ended)
        return;
    if (conn->is_cgi) {
        buf_append(&conn->out, data, len);
        return;
    }
    while (len > 0) {
        size_t chunk = len > FCGI_MAX_LENGTH ? FCGI_MAX_LENGTH : len;
        fcgi_record_frame(&conn->out, FCGI_STDOUT, conn->request_id, data, chunk);
        data += chunk;
        len -= chunk;
    }
}

void fcgi_conn_end(fcgi_conn *conn)
{
    if (conn->ended)
        return;
    conn->ended = true;
    if (conn->is_cgi)
        return;
    /* An empty STDOUT record closes the stream; END_REQUEST carries app status 0. */
    fcgi_record_frame(&conn->out, FCGI_STDOUT, conn->request_id, NULL, 0);
    const FCGI_EndRequestBody end = {.protocolStatus = FCGI_REQUEST_COMPLETE};
    fcgi_record_frame(&conn->out, FCGI_END_REQUEST, conn->request_id, (const char *)&end,
                      sizeof end);
}

size_t fcgi_conn_pending(const fcgi_conn *conn)
{
    return conn->out.len;
}

int fcgi_conn_flush(fcgi_conn *conn)
{
    size_t written = 0;
    while (written < conn->out.len) {
        ssize_t n = write(conn->fd, conn->out.data + written, conn->out.len - written);
        if (n > 0) {
            written += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        buf_consume(&conn->out, written);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return -1;
    }
    buf_free(&conn->out); /* an idle held request keeps no output buffer */
    return 1;
}

bool fcgi_conn_peer_closed(fcgi_conn *conn)
{
    if (conn->is_cgi)
        return true; /* only asked after epoll reported a full hangup or an error */
    /* The server may still have unread FCGI_STDIN records queued; skip them to find EOF. */
    char scratch[512];
    for (int i = 0; i < 64; i++) {
        ssize_t n = recv(conn->fd, scratch, sizeof scratch, MSG_DONTWAIT);
        if (n == 0)
            return true;
        if (n < 0)
            return !(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
    }
    return false; /* still sending: not a hangup we can see yet */
}

bool fcgi_conn_shutdown_output(fcgi_conn *conn)
{
    if (conn->is_cgi || conn->keep)
        return false; /* a kept connection goes straight back to the intake */
    return shutdown(conn->fd, SHUT_WR) == 0;
}

void fcgi_conn_close(fcgi_conn *conn)
{
    if (!conn)
        return;
    if (conn->is_cgi) {
        /* Under mod_cgid stdin and stdout are one socket: end the answer, then read
         * what is left until the server closes, so it is not reset before it read
         * our answer (a reset makes Apache drop it). */
        shutdown(STDOUT_FILENO, SHUT_WR);
        drain_input(STDIN_FILENO, 200);
        buf_free(&conn->cgi_body);
        buf_free(&conn->out);
        free(conn);
        return;
    }
    fcgi_intake *in = conn->intake;
    if (conn->keep && conn->ended && conn->out.len == 0 && !in->stopped) {
        /* The answer is complete and out: the server sends its next request here. */
        fcgi_parser_next(conn->parser);
        if (!conn_start_reading(conn, true)) {
            conn_destroy(conn, false);
            return;
        }
        if (conn->in.len > 0 && !conn->on_pending) {
            conn->on_pending = true;
            conn->pending_next = in->pending;
            in->pending = conn;
        }
        return;
    }
    conn_destroy(conn, true);
}
