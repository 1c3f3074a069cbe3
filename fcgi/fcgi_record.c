/*
 * fcgi_record — FastCGI records in, requests and protocol replies out (see
 * fcgi_record.h). Only the responder role; one request at a time per
 * connection (FCGI_MPXS_CONNS is 0, and no front server multiplexes).
 */
#include "fcgi_record.h"
#include "xalloc.h"

#include <fastcgi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Where the connection is in its current request. Records of a request id
 * that is not the current one (the STDIN end of a request already served, a
 * refused multiplexed request) are skipped, as the specification asks.
 */
typedef enum parser_phase {
    /* No request: waiting for FCGI_BEGIN_REQUEST; management records are answered. */
    PHASE_IDLE,
    /* BEGIN_REQUEST came: PARAMS records accumulate (capped) until the empty one. */
    PHASE_PARAMS,
    /* Params decoded: STDIN accumulates until CONTENT_LENGTH bytes or the empty STDIN. */
    PHASE_BODY,
    /* Handed to the caller: nothing is consumed until fcgi_parser_next. */
    PHASE_SERVING,
} parser_phase;

struct fcgi_parser {
    fcgi_parser_limits limits;
    parser_phase phase;
    int id;
    bool keep_conn;
    buf raw_params; /* name-value bytes as they arrive */
    char *params;   /* decoded, n_params times: name length, value length (uint32_t each),
                     * name NUL value NUL, so a lookup compares lengths before bytes */
    size_t n_params;
    buf body;
    size_t content_length;
    bool body_too_large;
    bool stdin_ended; /* the request's empty FCGI_STDIN came */
    fcgi_parse_error error;
    const char *detail;
};

fcgi_parser *fcgi_parser_new(const fcgi_parser_limits *limits)
{
    fcgi_parser *p = xcalloc(1, sizeof *p);
    p->limits = *limits;
    return p;
}

void fcgi_parser_drop(fcgi_parser *p)
{
    buf_free(&p->raw_params);
    free(p->params);
    p->params = NULL;
    buf_free(&p->body);
    p->n_params = 0;
}

void fcgi_parser_free(fcgi_parser *p)
{
    if (!p)
        return;
    fcgi_parser_drop(p);
    free(p);
}

void fcgi_record_frame(buf *out, int type, int id, const char *data, size_t len)
{
    const unsigned char header[FCGI_HEADER_LEN] = {FCGI_VERSION_1,
                                                   (unsigned char)type,
                                                   (unsigned char)(id >> 8),
                                                   (unsigned char)(id & 0xff),
                                                   (unsigned char)(len >> 8),
                                                   (unsigned char)(len & 0xff),
                                                   0,
                                                   0};
    buf_append(out, (const char *)header, sizeof header);
    if (len)
        buf_append(out, data, len);
}

size_t fcgi_record_content_length(const buf *out, size_t at)
{
    const unsigned char *h = (const unsigned char *)out->data + at;
    return (size_t)h[4] << 8 | h[5];
}

void fcgi_record_extend(buf *out, size_t at, const char *data, size_t len)
{
    size_t content = fcgi_record_content_length(out, at) + len;
    buf_append(out, data, len);
    unsigned char *h = (unsigned char *)out->data + at; /* after the append: it may move */
    h[4] = (unsigned char)(content >> 8);
    h[5] = (unsigned char)(content & 0xff);
}

static void reply_end_request(buf *reply, int id, unsigned char protocol_status)
{
    const FCGI_EndRequestBody body = {.protocolStatus = protocol_status};
    fcgi_record_frame(reply, FCGI_END_REQUEST, id, (const char *)&body, sizeof body);
}

static fcgi_parse_status parser_fail(fcgi_parser *p, fcgi_parse_error error, const char *detail)
{
    p->error = error;
    p->detail = detail;
    return FCGI_PARSE_ERROR;
}

/* A name-value length: one byte below 128, else four with the high bit set. */
static bool pair_length(const unsigned char **at, const unsigned char *end, size_t *out)
{
    if (*at >= end)
        return false;
    if (!(**at & 0x80)) {
        *out = *(*at)++;
        return true;
    }
    if (end - *at < 4)
        return false;
    const unsigned char *b = *at;
    *out = ((size_t)(b[0] & 0x7f) << 24) | ((size_t)b[1] << 16) | ((size_t)b[2] << 8) | b[3];
    *at += 4;
    return true;
}

typedef void (*pair_fn)(void *ctx, const char *name, size_t name_len, const char *value,
                        size_t value_len);

/* Walks name-value pairs; false when they are malformed (a length runs past the end). */
static bool pairs_walk(const char *data, size_t len, pair_fn fn, void *ctx)
{
    if (len == 0)
        return true; /* data may be NULL (no params at all): no pointer arithmetic on it */
    const unsigned char *at = (const unsigned char *)data, *end = at + len;
    while (at < end) {
        size_t name_len, value_len;
        if (!pair_length(&at, end, &name_len) || !pair_length(&at, end, &value_len))
            return false;
        size_t left = (size_t)(end - at);
        if (name_len > left || value_len > left - name_len)
            return false;
        fn(ctx, (const char *)at, name_len, (const char *)at + name_len, value_len);
        at += name_len + value_len;
    }
    return true;
}

/* Decoding walks the pairs twice: to check and measure them, then to copy them into one
 * allocation of the exact size (growing it pair by pair was a tenth of a 304's CPU). */
typedef struct params_ctx {
    size_t size; /* of the decoded params */
    size_t n;
    bool has_nul;
    char *at; /* where the copy goes next; NULL while measuring */
} params_ctx;

static void params_add(void *data, const char *name, size_t name_len, const char *value,
                       size_t value_len)
{
    params_ctx *c = data;
    /* Both fit: the params are capped by --max-params, far below 4 GB. */
    const uint32_t lengths[2] = {(uint32_t)name_len, (uint32_t)value_len};
    if (!c->at) {
        /* A NUL would cut a name or value short and make two readers disagree on it. */
        if (memchr(name, '\0', name_len) || memchr(value, '\0', value_len) || name_len == 0)
            c->has_nul = true;
        c->size += sizeof lengths + name_len + 1 + value_len + 1;
        c->n++;
        return;
    }
    memcpy(c->at, lengths, sizeof lengths);
    c->at += sizeof lengths;
    memcpy(c->at, name, name_len);
    c->at[name_len] = '\0';
    c->at += name_len + 1;
    memcpy(c->at, value, value_len);
    c->at[value_len] = '\0';
    c->at += value_len + 1;
}

typedef struct values_ctx {
    const fcgi_parser *p;
    buf *result;
} values_ctx;

static void put_pair(buf *out, const char *name, const char *value)
{
    /* Both are short constants: one-byte lengths. */
    const char lengths[2] = {(char)strlen(name), (char)strlen(value)};
    buf_append(out, lengths, 2);
    buf_append_str(out, name);
    buf_append_str(out, value);
}

static void values_answer(void *data, const char *name, size_t name_len, const char *value,
                          size_t value_len)
{
    values_ctx *c = data;
    char number[24];
    snprintf(number, sizeof number, "%u", c->p->limits.max_conns);
    if (name_len == strlen(FCGI_MAX_CONNS) && !memcmp(name, FCGI_MAX_CONNS, name_len))
        put_pair(c->result, FCGI_MAX_CONNS, number);
    else if (name_len == strlen(FCGI_MAX_REQS) && !memcmp(name, FCGI_MAX_REQS, name_len))
        put_pair(c->result, FCGI_MAX_REQS, number); /* one request per connection */
    else if (name_len == strlen(FCGI_MPXS_CONNS) && !memcmp(name, FCGI_MPXS_CONNS, name_len))
        put_pair(c->result, FCGI_MPXS_CONNS, "0");
}

/* Records with request id 0. */
static fcgi_parse_status parser_management(fcgi_parser *p, int type, const char *content,
                                           size_t len, buf *reply)
{
    if (type != FCGI_GET_VALUES) {
        const FCGI_UnknownTypeBody body = {.type = (unsigned char)type};
        fcgi_record_frame(reply, FCGI_UNKNOWN_TYPE, FCGI_NULL_REQUEST_ID, (const char *)&body,
                          sizeof body);
        return FCGI_PARSE_MORE;
    }
    buf result = BUF_INIT;
    values_ctx c = {.p = p, .result = &result};
    bool ok = pairs_walk(content, len, values_answer, &c);
    if (ok)
        fcgi_record_frame(reply, FCGI_GET_VALUES_RESULT, FCGI_NULL_REQUEST_ID, result.data,
                          result.len);
    buf_free(&result);
    return ok ? FCGI_PARSE_MORE : parser_fail(p, FCGI_ERROR_PROTOCOL, "malformed FCGI_GET_VALUES");
}

/* CONTENT_LENGTH as CGI reads it: digits, else no body. Overflow counts as too large. */
static void parser_read_content_length(fcgi_parser *p)
{
    const char *text = fcgi_parser_param(p, "CONTENT_LENGTH");
    p->content_length = 0;
    p->body_too_large = false;
    if (!text || !*text)
        return;
    size_t n = 0;
    for (const char *c = text; *c; c++) {
        if (*c < '0' || *c > '9')
            return;
        n = n * 10 + (size_t)(*c - '0');
        if (n > p->limits.max_body) { /* n stays small, so the next step cannot overflow */
            p->body_too_large = true;
            return;
        }
    }
    p->content_length = n;
}

static fcgi_parse_status parser_begin(fcgi_parser *p, int id, const char *content, size_t len,
                                      buf *reply)
{
    if (len != sizeof(FCGI_BeginRequestBody))
        return parser_fail(p, FCGI_ERROR_PROTOCOL, "FCGI_BEGIN_REQUEST of the wrong length");
    const FCGI_BeginRequestBody *body = (const FCGI_BeginRequestBody *)content;
    bool keep = body->flags & FCGI_KEEP_CONN;
    if (p->phase != PHASE_IDLE) {
        if (id == p->id)
            return parser_fail(p, FCGI_ERROR_PROTOCOL, "FCGI_BEGIN_REQUEST twice for one id");
        reply_end_request(reply, id, FCGI_CANT_MPX_CONN);
        return FCGI_PARSE_MORE;
    }
    int role = (body->roleB1 << 8) | body->roleB0;
    if (role != FCGI_RESPONDER) {
        reply_end_request(reply, id, FCGI_UNKNOWN_ROLE);
        return keep ? FCGI_PARSE_MORE : FCGI_PARSE_CLOSE;
    }
    fcgi_parser_drop(p);
    p->id = id;
    p->keep_conn = keep;
    p->stdin_ended = false;
    p->phase = PHASE_PARAMS;
    p->content_length = 0;
    p->body_too_large = false;
    return FCGI_PARSE_MORE;
}

static fcgi_parse_status parser_serve(fcgi_parser *p)
{
    p->phase = PHASE_SERVING;
    return FCGI_PARSE_REQUEST;
}

/* The params are all here (raw, len): decodes them and moves to the body. */
static fcgi_parse_status parser_params_end(fcgi_parser *p, const char *raw, size_t len)
{
    params_ctx c = {0};
    bool ok = pairs_walk(raw, len, params_add, &c);
    if (!ok || c.has_nul)
        return parser_fail(p, FCGI_ERROR_PROTOCOL,
                           ok ? "a param with a NUL byte or an empty name" : "malformed params");
    p->params = c.at = xmalloc(c.size ? c.size : 1);
    p->n_params = c.n;
    (void)pairs_walk(raw, len, params_add, &c); /* checked above */
    parser_read_content_length(p);
    p->phase = PHASE_BODY;
    if (p->body_too_large || p->content_length == 0)
        return parser_serve(p);
    return FCGI_PARSE_MORE;
}

static fcgi_parse_status parser_params(fcgi_parser *p, const char *content, size_t len)
{
    if (p->phase == PHASE_BODY)
        return parser_fail(p, FCGI_ERROR_PROTOCOL, "FCGI_PARAMS after the params ended");
    if (len > p->limits.max_params - p->raw_params.len)
        return parser_fail(p, FCGI_ERROR_PARAMS_TOO_LARGE, "params larger than --max-params");
    if (len > 0) {
        buf_append(&p->raw_params, content, len);
        return FCGI_PARSE_MORE;
    }
    fcgi_parse_status status = parser_params_end(p, p->raw_params.data, p->raw_params.len);
    buf_free(&p->raw_params);
    return status;
}

/*
 * Length of the empty FCGI_PARAMS record of request id at the start of data
 * (n bytes), or 0 when data does not start with one, whole.
 */
static size_t params_end_record(const char *data, size_t n, int id)
{
    const FCGI_Header *h = (const FCGI_Header *)data;
    if (n < FCGI_HEADER_LEN || h->version != FCGI_VERSION_1 || h->type != FCGI_PARAMS ||
        (h->requestIdB1 << 8 | h->requestIdB0) != id || h->contentLengthB1 != 0 ||
        h->contentLengthB0 != 0 || n < (size_t)FCGI_HEADER_LEN + h->paddingLength)
        return 0;
    return (size_t)FCGI_HEADER_LEN + h->paddingLength;
}

static fcgi_parse_status parser_stdin(fcgi_parser *p, const char *content, size_t len)
{
    if (p->phase == PHASE_PARAMS)
        return parser_fail(p, FCGI_ERROR_PROTOCOL, "FCGI_STDIN before the params ended");
    if (len == 0) {
        p->stdin_ended = true;
        return parser_serve(p); /* STDIN ended early: what came is the body */
    }
    size_t want = p->content_length - p->body.len;
    buf_append(&p->body, content, len < want ? len : want);
    return p->body.len >= p->content_length ? parser_serve(p) : FCGI_PARSE_MORE;
}

static fcgi_parse_status parser_record(fcgi_parser *p, int type, int id, const char *content,
                                       size_t len, buf *reply)
{
    if (id == FCGI_NULL_REQUEST_ID)
        return parser_management(p, type, content, len, reply);
    bool current = p->phase != PHASE_IDLE && id == p->id;
    switch (type) {
    case FCGI_BEGIN_REQUEST:
        return parser_begin(p, id, content, len, reply);
    case FCGI_PARAMS:
        return current ? parser_params(p, content, len) : FCGI_PARSE_MORE;
    case FCGI_STDIN:
        return current ? parser_stdin(p, content, len) : FCGI_PARSE_MORE;
    case FCGI_DATA:
        return FCGI_PARSE_MORE; /* only the filter role reads it */
    case FCGI_ABORT_REQUEST:
        if (!current)
            return FCGI_PARSE_MORE;
        reply_end_request(reply, id, FCGI_REQUEST_COMPLETE);
        fcgi_parser_drop(p);
        p->phase = PHASE_IDLE;
        return p->keep_conn ? FCGI_PARSE_MORE : FCGI_PARSE_CLOSE;
    default:
        return parser_fail(p, FCGI_ERROR_PROTOCOL, "a record type an application never receives");
    }
}

fcgi_parse_status fcgi_parser_feed(fcgi_parser *p, const char *data, size_t len, size_t *consumed,
                                   buf *reply)
{
    size_t at = 0;
    fcgi_parse_status status = FCGI_PARSE_MORE;
    while (status == FCGI_PARSE_MORE && p->phase != PHASE_SERVING && len - at >= FCGI_HEADER_LEN) {
        const FCGI_Header *h = (const FCGI_Header *)(data + at);
        if (h->version != FCGI_VERSION_1) {
            status = parser_fail(p, FCGI_ERROR_PROTOCOL, "not FastCGI version 1");
            break;
        }
        size_t content_len = (size_t)h->contentLengthB1 << 8 | h->contentLengthB0;
        size_t total = FCGI_HEADER_LEN + content_len + h->paddingLength;
        if (len - at < total)
            break;
        int id = h->requestIdB1 << 8 | h->requestIdB0;
        const char *content = data + at + FCGI_HEADER_LEN;
        /* The usual request (nginx, lighttpd, Apache): the params in one record, their empty
         * record right behind it. They are decoded where they lie, not gathered first. */
        size_t end = 0;
        if (h->type == FCGI_PARAMS && p->phase == PHASE_PARAMS && id == p->id && content_len > 0 &&
            p->raw_params.len == 0 && content_len <= p->limits.max_params)
            end = params_end_record(data + at + total, len - at - total, id);
        if (end) {
            status = parser_params_end(p, content, content_len);
            at += total + end;
            continue;
        }
        status = parser_record(p, h->type, id, content, content_len, reply);
        at += total;
    }
    *consumed = at;
    return status;
}

fcgi_parse_error fcgi_parser_error(const fcgi_parser *p, const char **detail)
{
    *detail = p->detail ? p->detail : "";
    return p->error;
}

bool fcgi_parser_busy(const fcgi_parser *p)
{
    return p->phase != PHASE_IDLE;
}

int fcgi_parser_request_id(const fcgi_parser *p)
{
    return p->id;
}

bool fcgi_parser_keep_conn(const fcgi_parser *p)
{
    return p->keep_conn;
}

const char *fcgi_parser_param(const fcgi_parser *p, const char *name)
{
    size_t want = strlen(name);
    const char *at = p->params;
    for (size_t i = 0; i < p->n_params; i++) {
        uint32_t lengths[2];
        memcpy(lengths, at, sizeof lengths); /* not aligned */
        const char *entry_name = at + sizeof lengths;
        if (lengths[0] == want && !memcmp(entry_name, name, want))
            return entry_name + want + 1;
        at = entry_name + lengths[0] + 1 + lengths[1] + 1;
    }
    return NULL;
}

bool fcgi_parser_input_ended(const fcgi_parser *p)
{
    return p->stdin_ended;
}

size_t fcgi_parser_take_input_end(fcgi_parser *p, const char *pending, size_t len)
{
    const FCGI_Header *h = (const FCGI_Header *)pending;
    if (p->phase != PHASE_SERVING || p->stdin_ended || len < FCGI_HEADER_LEN ||
        h->version != FCGI_VERSION_1 || h->type != FCGI_STDIN ||
        (h->requestIdB1 << 8 | h->requestIdB0) != p->id || h->contentLengthB1 != 0 ||
        h->contentLengthB0 != 0 || len < (size_t)FCGI_HEADER_LEN + h->paddingLength)
        return 0;
    p->stdin_ended = true;
    return (size_t)FCGI_HEADER_LEN + h->paddingLength;
}

const char *fcgi_parser_body(const fcgi_parser *p, size_t *len, bool *body_too_large)
{
    *len = p->body.len;
    *body_too_large = p->body_too_large;
    return p->body.data ? p->body.data : "";
}

void fcgi_parser_next(fcgi_parser *p)
{
    fcgi_parser_drop(p);
    p->phase = PHASE_IDLE; /* p->id stays: the served request's late STDIN is skipped */
    p->body_too_large = false;
    p->content_length = 0;
}
