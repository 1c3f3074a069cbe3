/*
 * fuzz_cursor — libFuzzer harness for cursor and If-None-Match parsing.
 *
 * The input is a cursor (since=, Last-Event-ID, an ETag's text) for a request
 * on three channels, and the same text as an If-None-Match header. A parsed
 * cursor holds only positions, and formatting it parses back to the same.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cursor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const channels[] = {"orders", "user:42", "a.b-c_d"};
    enum { n = sizeof channels / sizeof *channels };
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    int64_t versions[n] = {0, 0, 0};
    if (cursor_parse(text, size, n, channels, versions) == 0) {
        for (size_t i = 0; i < n; i++)
            if (versions[i] < 0 && versions[i] != CURSOR_NOW)
                abort();
        bool positions = true;
        for (size_t i = 0; i < n; i++)
            positions = positions && versions[i] >= 0;
        if (positions) {
            buf out = BUF_INIT;
            cursor_format(&out, n, channels, versions);
            int64_t again[n] = {0, 0, 0};
            if (cursor_parse(out.data, out.len, n, channels, again) != 0 ||
                memcmp(again, versions, sizeof again) != 0)
                abort();
            buf_free(&out);
        }
    }
    int64_t version;
    (void)cursor_parse_version(text, size, &version);
    const char *tag;
    size_t tag_len;
    if (cursor_from_if_none_match(text, &tag, &tag_len) &&
        (tag < text || tag + tag_len > text + size))
        abort();
    free(text);
    return 0;
}
