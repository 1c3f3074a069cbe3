/*
 * fcgi_record — the FastCGI protocol as a pure state machine over bytes.
 *
 * pgfeed reads FastCGI itself because libfcgi's reader blocks on params and
 * bodies, and one blocked read inside the one event loop freezes every held
 * request of the process. This module knows no sockets and no clocks: the
 * caller hands it whatever bytes arrived, it consumes the complete records,
 * queues the replies the protocol demands (FCGI_GET_VALUES_RESULT,
 * FCGI_UNKNOWN_TYPE, FCGI_END_REQUEST for a refused request) and says when one
 * request is complete, within caps on its params and body. Deadlines belong to
 * the caller (fcgi_io). The definitions are libfcgi's <fastcgi.h>. Being pure,
 * it is what the cmocka test and the libFuzzer harness drive.
 */
#ifndef PGFEED_FCGI_RECORD_H
#define PGFEED_FCGI_RECORD_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* The largest record: header, 65535 bytes of content, 255 of padding. */
#define FCGI_RECORD_MAX (8 + 65535 + 255)

typedef struct fcgi_parser fcgi_parser;

typedef struct fcgi_parser_limits {
    size_t max_params;  /* raw name-value bytes of one request */
    size_t max_body;    /* CONTENT_LENGTH above this is not read (body_too_large) */
    unsigned max_conns; /* answered to FCGI_GET_VALUES */
} fcgi_parser_limits;

typedef enum fcgi_parse_status {
    FCGI_PARSE_MORE,    /* every complete record is consumed; feed more bytes */
    FCGI_PARSE_REQUEST, /* a request is complete (params, body): serve it, then fcgi_parser_next */
    FCGI_PARSE_CLOSE,   /* the server ended the exchange (a refused request without
                           FCGI_KEEP_CONN): send the replies, then close */
    FCGI_PARSE_ERROR,   /* a protocol violation or a cap exceeded: close (fcgi_parser_error) */
} fcgi_parse_status;

typedef enum fcgi_parse_error {
    FCGI_ERROR_NONE,
    FCGI_ERROR_PROTOCOL,
    FCGI_ERROR_PARAMS_TOO_LARGE,
} fcgi_parse_error;

fcgi_parser *fcgi_parser_new(const fcgi_parser_limits *limits);
void fcgi_parser_free(fcgi_parser *p);

/*
 * Consumes the complete records at the start of data (*consumed says how many
 * bytes) and appends the replies to send to reply. Stops after the record that
 * completes a request. A partial record is left for the next call with more
 * bytes appended; it is never longer than FCGI_RECORD_MAX.
 */
fcgi_parse_status fcgi_parser_feed(fcgi_parser *p, const char *data, size_t len, size_t *consumed,
                                   buf *reply) __attribute__((warn_unused_result));
/* Why FCGI_PARSE_ERROR was returned, in words for the log. */
fcgi_parse_error fcgi_parser_error(const fcgi_parser *p, const char **detail);
/* True once bytes of a request (or any record) arrived since the last request ended. */
bool fcgi_parser_busy(const fcgi_parser *p);

/* The complete request: its id, whether the server keeps the connection, its params. */
int fcgi_parser_request_id(const fcgi_parser *p);
bool fcgi_parser_keep_conn(const fcgi_parser *p);
/* A param or NULL; valid until fcgi_parser_drop or fcgi_parser_next. First one wins. */
const char *fcgi_parser_param(const fcgi_parser *p, const char *name);
/* Whether the server has sent all of the request being served (its empty FCGI_STDIN came). */
bool fcgi_parser_input_ended(const fcgi_parser *p);
/*
 * A request served at its params' end (no body) leaves its empty FCGI_STDIN
 * unparsed in what was read: when pending starts with it, it is taken (the
 * input has ended) and its length returned, for the caller to consume; else 0.
 */
size_t fcgi_parser_take_input_end(fcgi_parser *p, const char *pending, size_t len);
/* The body read (CONTENT_LENGTH bytes, fewer if STDIN ended early). */
const char *fcgi_parser_body(const fcgi_parser *p, size_t *len, bool *body_too_large);
/* Frees the params and body of the request being served. */
void fcgi_parser_drop(fcgi_parser *p);
/* The request was answered: ready for the next one on a kept connection. */
void fcgi_parser_next(fcgi_parser *p);

/* Appends one record of type for request id with content data (no padding). */
void fcgi_record_frame(buf *out, int type, int id, const char *data, size_t len);
/*
 * Appends data to the content of the record framed at out->data + at, which
 * must be the last record in out; the caller keeps the content within
 * FCGI_MAX_LENGTH. So headers and body become one STDOUT record.
 */
void fcgi_record_extend(buf *out, size_t at, const char *data, size_t len);
/* Content bytes of the record framed at out->data + at. */
size_t fcgi_record_content_length(const buf *out, size_t at);

#endif
