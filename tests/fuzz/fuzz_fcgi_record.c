/*
 * fuzz_fcgi_record — libFuzzer harness for the FastCGI record reader.
 *
 * The input is a byte stream from a hostile web server, fed to the parser in
 * pieces whose sizes come from the input's first byte (servers split records
 * anywhere). Every request the parser completes is read back (params, body)
 * and released as fcgi_io does, so a kept connection's next request starts
 * from the same state it would in the process. Checks the parser's promises:
 * it never consumes more than it was given, and what it leaves unconsumed is
 * less than one record.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fcgi_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t piece = (size_t)data[0] * 7 + 1;
    data++;
    size--;
    fcgi_parser_limits limits = {.max_params = 4096, .max_body = 1024, .max_conns = 100};
    fcgi_parser *p = fcgi_parser_new(&limits);
    buf in = BUF_INIT, reply = BUF_INIT;
    size_t at = 0;
    bool done = false;
    while (!done && (at < size || in.len > 0)) {
        size_t n = size - at < piece ? size - at : piece;
        buf_append(&in, (const char *)data + at, n);
        at += n;
        size_t consumed = 0;
        fcgi_parse_status status =
            fcgi_parser_feed(p, in.data ? in.data : "", in.len, &consumed, &reply);
        if (consumed > in.len)
            abort();
        buf_consume(&in, consumed);
        const char *detail;
        size_t body_len;
        bool too_large;
        switch (status) {
        case FCGI_PARSE_REQUEST:
            (void)fcgi_parser_param(p, "REQUEST_METHOD");
            (void)fcgi_parser_param(p, "CONTENT_LENGTH");
            if (fcgi_parser_body(p, &body_len, &too_large) == NULL || body_len > limits.max_body)
                abort();
            fcgi_parser_drop(p);
            fcgi_parser_next(p);
            break;
        case FCGI_PARSE_MORE:
            if (in.len >= FCGI_RECORD_MAX)
                abort();
            done = at >= size; /* nothing more will come */
            break;
        case FCGI_PARSE_CLOSE:
            done = true;
            break;
        case FCGI_PARSE_ERROR:
            if (fcgi_parser_error(p, &detail) == FCGI_ERROR_NONE || !detail)
                abort();
            done = true;
            break;
        }
        buf_reset(&reply);
    }
    buf_free(&in);
    buf_free(&reply);
    fcgi_parser_free(p);
    return 0;
}
