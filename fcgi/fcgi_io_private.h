/*
 * fcgi_io_private — what the intake (fcgi_io.c) and a request's connection
 * (fcgi_conn.c) share; not for other modules.
 */
#ifndef PGFEED_FCGI_IO_PRIVATE_H
#define PGFEED_FCGI_IO_PRIVATE_H

#include "buf.h"
#include "event_loop.h"
#include "fcgi_io.h"
#include "fcgi_record.h"

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
    bool peer_eof;      /* the server closed its side, or the connection broke */
    /* SERVING with the request's input all read: EPOLLIN stays on, and what arrives is
     * read into in (bounded by --max-params) for the intake, instead of a MOD each way. */
    bool read_ahead;
    bool overflowed; /* read ahead beyond the bound: not a server, closed */
    int64_t deadline_ms;
    /* Registered for the connection's whole life: the intake's handler while READING,
     * the request's (fcgi_conn_watch) while SERVING, so a handover costs no syscall. */
    event_watch watch;
    /* The request's handler while SERVING: watch's handler reads ahead, then calls it. */
    void (*on_events)(void *data, uint32_t events);
    void *on_events_data;
    event_loop *loop;   /* where watch is registered (CGI: once the request watches) */
    bool watched;       /* watch is registered */
    size_t open_stdout; /* 1 + offset in out of the STDOUT record still growing; 0: none */
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

/* Closes c and frees it; drain: read what the server still sends first. */
void fcgi_intake_conn_destroy(fcgi_conn *c, bool drain);
/* Puts c (back) on the intake's reading list; idle: the kept connection's idle deadline. */
bool fcgi_intake_conn_start_reading(fcgi_conn *c, bool idle) __attribute__((warn_unused_result));
/*
 * Reads and drops what the peer still sends for up to wait_ms per read, so
 * closing does not reset a connection whose peer has not read our answer.
 */
void fcgi_io_drain_input(int fd, int wait_ms);

#endif
