/*
 * fcgi_conn — a request's connection: its params and body, the non-blocking
 * writer that frames FCGI_STDOUT itself, and the close that hands a kept
 * connection back to the intake (fcgi_io.c). CGI requests use it too.
 */
#include "fcgi_io.h"
#include "fcgi_io_private.h"
#include "log.h"
#include "xalloc.h"

#include <errno.h>
#include <fastcgi.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

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

/*
 * Bytes queued since the last write go into one growing STDOUT record: an
 * answer's header block and body leave as one record, followed by
 * END_REQUEST, in one write, so the web server parses two records per answer.
 */
void fcgi_conn_send(fcgi_conn *conn, const char *data, size_t len)
{
    if (conn->ended)
        return;
    if (conn->is_cgi) {
        buf_append(&conn->out, data, len);
        return;
    }
    while (len > 0) {
        size_t room = 0;
        if (conn->open_stdout)
            room = FCGI_MAX_LENGTH - fcgi_record_content_length(&conn->out, conn->open_stdout - 1);
        if (room == 0) {
            conn->open_stdout = conn->out.len + 1;
            fcgi_record_frame(&conn->out, FCGI_STDOUT, conn->request_id, NULL, 0);
            room = FCGI_MAX_LENGTH;
        }
        size_t chunk = len < room ? len : room;
        fcgi_record_extend(&conn->out, conn->open_stdout - 1, data, chunk);
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
    /* END_REQUEST ends the answer (app status 0); every front server takes it as the end
     * of STDOUT too, so the empty STDOUT record that would close the stream is left out. */
    conn->open_stdout = 0;
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
    conn->open_stdout = 0; /* what is written is no longer ours to grow */
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

/*
 * While a request whose input is all read is answered, EPOLLIN stays on and
 * whatever the server sends is read into conn->in, where the intake parses
 * it once the connection is back (fcgi_conn_close). So a held long poll costs
 * no epoll_ctl when it starts waiting nor when its kept connection goes back
 * to reading, and a hang-up is read at once. A server sends nothing more
 * before our answer ends (one request at a time per connection): more than
 * --max-params bytes, what the intake takes for a whole request, is not a
 * server, and the connection is closed. False when the connection is over.
 */
static bool conn_read_ahead(fcgi_conn *conn)
{
    size_t bound = conn->intake->limits.max_params;
    for (;;) {
        char chunk[4096];
        ssize_t n = recv(conn->fd, chunk, sizeof chunk, MSG_DONTWAIT);
        /* in may hold more already: what came behind the request in its read (READ_CHUNK). */
        size_t room = conn->in.len < bound ? bound - conn->in.len : 0;
        if (n > 0 && (size_t)n <= room) {
            buf_append(&conn->in, chunk, (size_t)n);
            continue;
        }
        if (n > 0) {
            conn->overflowed = true;
            conn->intake->stats.protocol_errors++;
            log_debug(0, "closing a FastCGI connection that sent more than --max-params bytes "
                         "while its request was answered");
            return false;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        conn->peer_eof = true; /* closed, or broken: nothing to drain either way */
        return false;
    }
}

/* The watch's handler while a request has the connection. */
static void conn_on_events(void *data, uint32_t events)
{
    fcgi_conn *conn = data;
    if (conn->read_ahead) {
        /* The request hears of a hang-up only, never of the bytes read ahead. */
        bool over = (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) &&
                    (conn->peer_eof || conn->overflowed || !conn_read_ahead(conn));
        events = (events & ~(EPOLLIN | EPOLLRDHUP)) | (over ? EPOLLRDHUP : 0);
        if (!events)
            return;
    }
    conn->on_events(conn->on_events_data, events);
}

/* What epoll watches for the request's events. */
static uint32_t conn_events(const fcgi_conn *conn, uint32_t events)
{
    return conn->read_ahead ? events | EPOLLIN | EPOLLRDHUP : events;
}

int fcgi_conn_watch(fcgi_conn *conn, event_loop *loop, void (*handler)(void *data, uint32_t events),
                    void *data, uint32_t events)
{
    conn->on_events = handler;
    conn->on_events_data = data;
    conn->watch.handler = conn_on_events;
    conn->watch.data = conn;
    if (conn->watched)
        return event_loop_modify(conn->loop, &conn->watch, conn_events(conn, events));
    /* CGI: stdout is watched from now on. */
    conn->loop = loop;
    conn->watch.fd = conn->fd;
    conn->watched = event_loop_watch(loop, &conn->watch, events) == 0;
    return conn->watched ? 0 : -1;
}

int fcgi_conn_watch_events(fcgi_conn *conn, uint32_t events)
{
    if (!conn->watched)
        return -1;
    return event_loop_modify(conn->loop, &conn->watch, conn_events(conn, events));
}

bool fcgi_conn_peer_closed(fcgi_conn *conn)
{
    if (conn->is_cgi)
        return true; /* only asked after epoll reported a full hangup or an error */
    if (conn->peer_eof || conn->overflowed)
        return true;
    if (conn->read_ahead)
        return !conn_read_ahead(conn);
    /* The server may still have unread FCGI_STDIN records queued; skip them to find EOF. */
    char scratch[512];
    for (int i = 0; i < 64; i++) {
        ssize_t n = recv(conn->fd, scratch, sizeof scratch, MSG_DONTWAIT);
        if (n == 0) {
            conn->peer_eof = true; /* nothing left to drain at close */
            return true;
        }
        if (n < 0)
            return !(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
    }
    return false; /* still sending: not a hangup we can see yet */
}

bool fcgi_conn_shutdown_output(fcgi_conn *conn)
{
    if (conn->is_cgi || conn->keep)
        return false; /* a kept connection goes straight back to the intake */
    /* The server sent everything (lighttpd, nginx send the empty STDIN with the params):
     * nothing of its can break on our close, so no shutdown, no linger, no drain. */
    if (fcgi_parser_input_ended(conn->parser))
        return false;
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
        if (conn->watched)
            event_loop_unwatch(conn->loop, &conn->watch);
        shutdown(STDOUT_FILENO, SHUT_WR);
        fcgi_io_drain_input(STDIN_FILENO, 200);
        buf_free(&conn->cgi_body);
        buf_free(&conn->out);
        free(conn);
        return;
    }
    fcgi_intake *in = conn->intake;
    if (conn->keep && conn->ended && conn->out.len == 0 && !in->stopped && !conn->peer_eof &&
        !conn->overflowed) {
        /* The answer is complete and out: the server sends its next request here. */
        fcgi_parser_next(conn->parser);
        if (!fcgi_intake_conn_start_reading(conn, true)) {
            fcgi_intake_conn_destroy(conn, false);
            return;
        }
        if (conn->in.len > 0 && !conn->on_pending) {
            conn->on_pending = true;
            conn->pending_next = in->pending;
            in->pending = conn;
        }
        return;
    }
    /* Drained when the server may still be sending (it has not closed, nor ended the
     * request's STDIN): unread input would reset the connection under an answer the
     * server has not read yet. */
    fcgi_intake_conn_destroy(conn, !conn->peer_eof && !fcgi_parser_input_ended(conn->parser));
}
