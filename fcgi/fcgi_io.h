/*
 * fcgi_io — the seam between pgfeed and the web server.
 *
 * The only module that sees libfcgi. libfcgi accepts a connection and parses
 * the FastCGI request (params, body); after that pgfeed writes the response
 * itself, framing FCGI_STDOUT records into a per-connection buffer and writing
 * them without blocking. libfcgi's own writer blocks the calling thread on a
 * slow peer and keeps 17 KB of buffers per request, which would defeat holding
 * thousands of requests in one thread. The same interface serves plain CGI
 * (environment in, stdout out), so every code path is shared.
 */
#ifndef PGFEED_FCGI_IO_H
#define PGFEED_FCGI_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct fcgi_conn fcgi_conn;

/* Prepares libfcgi; call once before anything else here. */
int fcgi_io_init(void) __attribute__((warn_unused_result));
/* True when fd 0 is a listening socket (started by mod_fcgid, lighttpd, spawn-fcgi). */
bool fcgi_io_is_fastcgi(void);
/*
 * Opens a non-blocking listening socket on a Unix socket path (anything with a
 * '/') or HOST:PORT. Unlike FCGX_OpenSocket it returns -1 with a logged reason
 * instead of exiting. A stale Unix socket file is replaced.
 */
int fcgi_io_listen(const char *address, int backlog) __attribute__((warn_unused_result));
/* Makes an inherited listening fd non-blocking so accepting never stalls the loop. */
int fcgi_io_prepare_listener(int fd) __attribute__((warn_unused_result));

/*
 * Accepts one connection and reads its request (params and up to max_body
 * bytes of body). Returns NULL when no connection is waiting or on a broken
 * one (*would_block tells which).
 */
fcgi_conn *fcgi_io_accept(int listen_fd, size_t max_body, bool *would_block);
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
void fcgi_conn_close(fcgi_conn *conn);

#endif
