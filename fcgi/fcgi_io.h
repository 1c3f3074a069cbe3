/*
 * fcgi_io — the seam between pgfeed and the web server.
 *
 * pgfeed reads FastCGI itself (fcgi_record), without ever blocking: libfcgi's
 * reader blocks on params and bodies, and one client sending half a body would
 * freeze every request of the process. An fcgi_intake accepts connections,
 * reads each one's request under a deadline and size caps, and hands complete
 * requests to its callback. pgfeed writes the response itself, framing
 * FCGI_STDOUT records into a per-connection buffer and writing them without
 * blocking. With FCGI_KEEP_CONN a connection goes back to the intake when its
 * request is closed after a complete answer, so successive requests travel
 * over one connection. libfcgi is left to tell CGI from FastCGI. The same
 * fcgi_conn interface serves plain CGI (environment in, stdout out), so every
 * code path is shared.
 */
#ifndef PGFEED_FCGI_IO_H
#define PGFEED_FCGI_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "event_loop.h"

typedef struct fcgi_conn fcgi_conn;
typedef struct fcgi_intake fcgi_intake;

/* Prepares libfcgi; call once before anything else here. */
int fcgi_io_init(void) __attribute__((warn_unused_result));
/* True when fd 0 is a listening socket (started by mod_fcgid, lighttpd, spawn-fcgi). */
bool fcgi_io_is_fastcgi(void);

/* The bounds of the intake; every one is a setting. */
typedef struct fcgi_intake_limits {
    size_t max_params;      /* raw param bytes of one request */
    size_t max_body;        /* a larger CONTENT_LENGTH is not read (413) */
    int request_timeout_ms; /* from the connection (or its request's first record) to complete */
    int idle_timeout_ms;    /* a kept connection waiting for its next request */
    size_t max_connections; /* beyond it, accepted and closed at once */
} fcgi_intake_limits;

/* Counters for /_metrics. */
typedef struct fcgi_intake_stats {
    uint64_t accepted;
    uint64_t refused;         /* over --max-connections */
    uint64_t refused_peers;   /* refused by the peer filter (fcgi_intake_filter_peers) */
    uint64_t timed_out;       /* request not complete within --request-timeout */
    uint64_t too_large;       /* params over --max-params */
    uint64_t protocol_errors; /* malformed records */
    uint64_t kept_requests;   /* requests that came over an already used connection */
    uint64_t fd_exhausted;    /* accept() episodes at the descriptor limit */
    size_t open;              /* connections now, reading or served */
} fcgi_intake_stats;

/* Called with each complete request; the callee owns conn and ends with fcgi_conn_close. */
typedef void (*fcgi_intake_fn)(void *ctx, fcgi_conn *conn);

/* Watches listen_fd on loop; the intake owns neither. */
fcgi_intake *fcgi_intake_new(event_loop *loop, int listen_fd, const fcgi_intake_limits *limits,
                             fcgi_intake_fn on_request, void *ctx);
/* Connections whose peer allowed(fd) refuses are closed at accept, before a byte is read. */
void fcgi_intake_filter_peers(fcgi_intake *in, bool (*allowed)(int fd));
/*
 * Call every loop turn: closes connections past their deadline (checked every
 * 100 ms), resumes a listener paused at the descriptor limit, and reads
 * requests already buffered on connections that came back from a request.
 */
void fcgi_intake_tick(fcgi_intake *in, int64_t now_ms);
/* Stops accepting and closes the connections still reading (shutdown). */
void fcgi_intake_stop(fcgi_intake *in);
const fcgi_intake_stats *fcgi_intake_get_stats(const fcgi_intake *in);
/* Closes what is still reading; connections handed out must be closed before. */
void fcgi_intake_free(fcgi_intake *in);

/* The CGI request of this process. */
fcgi_conn *fcgi_io_cgi(size_t max_body);

/* A request parameter (CGI variable) or NULL; valid until fcgi_conn_drop_params. */
const char *fcgi_conn_param(fcgi_conn *conn, const char *name);
/* Body bytes read (POST). body_too_large: CONTENT_LENGTH exceeded max_body. */
const char *fcgi_conn_body(fcgi_conn *conn, size_t *len, bool *body_too_large);
/* Frees what only parsing needed, so a held request keeps only its own state. */
void fcgi_conn_drop_params(fcgi_conn *conn);

/* The fd to watch for the server hanging up, and the epoll events that mean it. */
int fcgi_conn_fd(const fcgi_conn *conn);
uint32_t fcgi_conn_hangup_events(const fcgi_conn *conn);
/*
 * Hands the connection's events to handler(data, events) until fcgi_conn_close
 * (the first call registers CGI's stdout). A FastCGI connection is registered
 * once for its life, so handing it between the intake and a request costs no
 * syscall. When the server has sent all of the request, EPOLLIN stays on
 * meanwhile and what arrives is read ahead for the intake (up to --max-params;
 * beyond it the connection is closed): the handler sees only a hang-up.
 * -1: it cannot be watched (CGI output to a regular file).
 */
int fcgi_conn_watch(fcgi_conn *conn, event_loop *loop, void (*handler)(void *data, uint32_t events),
                    void *data, uint32_t events) __attribute__((warn_unused_result));
/* Changes the events the request's handler gets (event_loop_modify). */
int fcgi_conn_watch_events(fcgi_conn *conn, uint32_t events) __attribute__((warn_unused_result));
/* Queues response bytes (HTTP header block, then body). Never blocks. */
void fcgi_conn_send(fcgi_conn *conn, const char *data, size_t len);
/* Queues the end of the response. */
void fcgi_conn_end(fcgi_conn *conn);
/* Bytes queued and not yet taken by the server. */
size_t fcgi_conn_pending(const fcgi_conn *conn);
/*
 * Writes as much as the socket takes now. Returns 1 when everything is out,
 * 0 when the socket is full (wait for EPOLLOUT), -1 when the server is gone.
 */
int fcgi_conn_flush(fcgi_conn *conn) __attribute__((warn_unused_result));
/* True when the server has hung up (read side saw EOF or an error). */
bool fcgi_conn_peer_closed(fcgi_conn *conn);
/*
 * After the whole answer is out: shuts our side and says whether to linger.
 * A FastCGI server may still be sending (mod_proxy_fcgi writes the empty STDIN
 * record after the params, even when the answer came first); closing now would
 * break its pipe, so the caller keeps reading (fcgi_conn_peer_closed) until the
 * server closes, for a bounded time. Returns false when closing at once is fine.
 */
bool fcgi_conn_shutdown_output(fcgi_conn *conn);
/*
 * Ends the request's use of conn. A FastCGI connection whose server asked for
 * FCGI_KEEP_CONN and whose answer is complete and written goes back to its
 * intake for the next request; any other is closed.
 */
void fcgi_conn_close(fcgi_conn *conn);

#endif
