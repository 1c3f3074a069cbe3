/*
 * fcgi_io — the FastCGI intake: accepting, reading requests under deadlines and
 * caps, keeping connections (see fcgi_io.h for why it is our own; the writer is
 * fcgi_conn.c).
 */
#define _GNU_SOURCE /* accept4 */
#include "fcgi_io.h"
#include "fcgi_io_private.h"
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
void fcgi_io_drain_input(int fd, int wait_ms)
{
    char scratch[4096];
    if (wait_ms == 0) {
        /* Only what is already there: one recv, no poll, when nothing is. */
        for (int i = 0; i < 256; i++) {
            ssize_t n = recv(fd, scratch, sizeof scratch, MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EINTR))
                return;
        }
        return;
    }
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
void fcgi_intake_conn_destroy(fcgi_conn *c, bool drain)
{
    fcgi_intake *in = c->intake;
    if (c->state == CONN_READING)
        conn_list_remove(&in->reading, c);
    /* Accepted by us and never dup'ed: the close below takes it out of epoll. */
    if (c->watched)
        event_loop_unwatch_closing(in->loop, &c->watch);
    pending_remove(in, c);
    if (drain)
        fcgi_io_drain_input(c->fd, 0);
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
    /* The watch stays registered: the request takes it over (fcgi_conn_watch). */
    conn_list_remove(&in->reading, c);
    /* A held request keeps no read buffer (it was most of its memory). */
    if (c->in.len == 0)
        buf_free(&c->in);
    c->state = CONN_SERVING;
    /* Sent all of it: what else comes is read ahead while it is answered (fcgi_conn.c). */
    c->read_ahead = fcgi_parser_input_ended(c->parser);
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

/*
 * Parses data, which is c->in (buffered) or a read that found c->in empty:
 * that one is parsed where it lies, and only a partial record is kept, so a
 * request that arrives whole costs no read buffer. Answers management
 * records, hands out a complete request.
 */
static void conn_feed(fcgi_conn *c, const char *data, size_t len, bool buffered)
{
    fcgi_intake *in = c->intake;
    size_t consumed = 0;
    if (!data)
        data = "";
    fcgi_parse_status status = fcgi_parser_feed(c->parser, data, len, &consumed, &c->out);
    /* The empty STDIN that came with the params is all the server still had to say. */
    if (status == FCGI_PARSE_REQUEST)
        consumed += fcgi_parser_take_input_end(c->parser, data + consumed, len - consumed);
    if (buffered)
        buf_consume(&c->in, consumed);
    else if (consumed < len)
        buf_append(&c->in, data + consumed, len - consumed);
    if (c->idle_deadline && (c->in.len > 0 || fcgi_parser_busy(c->parser))) {
        /* A kept connection started its next request: it has request_timeout from now. */
        c->idle_deadline = false;
        c->deadline_ms = clock_now_ms() + in->limits.request_timeout_ms;
    }
    if (!conn_write_replies(c)) {
        fcgi_intake_conn_destroy(c, false);
        return;
    }
    const char *detail;
    switch (status) {
    case FCGI_PARSE_MORE:
        if (event_loop_modify(in->loop, &c->watch,
                              EPOLLIN | EPOLLRDHUP | (c->out.len ? EPOLLOUT : 0)) < 0)
            fcgi_intake_conn_destroy(c, false);
        return;
    case FCGI_PARSE_REQUEST:
        conn_serve(c);
        return;
    case FCGI_PARSE_CLOSE:
        fcgi_intake_conn_destroy(c, true);
        return;
    case FCGI_PARSE_ERROR:
        if (fcgi_parser_error(c->parser, &detail) == FCGI_ERROR_PARAMS_TOO_LARGE)
            in->stats.too_large++;
        else
            in->stats.protocol_errors++;
        log_debug(0, "closing a FastCGI connection: %s", detail);
        fcgi_intake_conn_destroy(c, false);
        return;
    }
}

/* Parses what is buffered. */
static void conn_parse(fcgi_conn *c)
{
    conn_feed(c, c->in.data, c->in.len, true);
}

static void conn_on_io(void *data, uint32_t events)
{
    fcgi_conn *c = data;
    if (events & EPOLLOUT && !conn_write_replies(c)) {
        fcgi_intake_conn_destroy(c, false);
        return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        char chunk[READ_CHUNK];
        ssize_t n = recv(c->fd, chunk, sizeof chunk, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            /* The server went away: normal for an idle kept connection, else unfinished. */
            fcgi_intake_conn_destroy(c, false);
            return;
        }
        if (n > 0 && c->in.len == 0) {
            conn_feed(c, chunk, (size_t)n, false);
            return;
        }
        if (n > 0)
            buf_append(&c->in, chunk, (size_t)n);
    }
    conn_parse(c);
}

/* Puts c on the reading list with its deadline; false if it cannot be watched. */
bool fcgi_intake_conn_start_reading(fcgi_conn *c, bool idle)
{
    fcgi_intake *in = c->intake;
    c->state = CONN_READING;
    c->read_ahead = false;
    c->idle_deadline = idle;
    c->deadline_ms =
        clock_now_ms() + (idle ? in->limits.idle_timeout_ms : in->limits.request_timeout_ms);
    c->watch.handler = conn_on_io;
    c->watch.data = c;
    conn_list_push(&in->reading, c);
    if (c->watched)
        return event_loop_modify(in->loop, &c->watch, EPOLLIN | EPOLLRDHUP) == 0;
    /* A new connection: epoll hears of it only if it is still open when the turn ends. */
    c->watch.fd = c->fd;
    event_loop_watch_later(in->loop, &c->watch, EPOLLIN | EPOLLRDHUP);
    c->watched = true;
    return true;
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
    c->loop = in->loop;
    c->parser = fcgi_parser_new(&in->parser_limits);
    in->stats.open++;
    if (!fcgi_intake_conn_start_reading(c, false)) {
        fcgi_intake_conn_destroy(c, false);
        return;
    }
    /* The server writes its request as soon as it is connected (lighttpd, nginx): read it
     * now, and a request answered at once never costs an epoll_ctl nor a wake-up. */
    conn_on_io(c, EPOLLIN);
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
            fcgi_intake_conn_destroy(c, false);
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
        fcgi_intake_conn_destroy(in->reading, false);
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
