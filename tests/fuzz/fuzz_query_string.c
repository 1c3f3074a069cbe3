/*
 * fuzz_query_string — libFuzzer harness for query-string decoding.
 *
 * Any text: parse either fails with a sentence or yields pairs that can all
 * be read back, none of them longer than the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "query_string.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    query_params *qp = NULL;
    const char *detail = NULL;
    if (query_params_parse(text, &qp, &detail) == 0) {
        static const char *const names[] = {"channel", "since", "limit", "wait", ""};
        for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
            size_t n = query_params_count(qp, names[i]);
            for (size_t k = 0; k < n; k++) {
                const char *v = query_params_get_nth(qp, names[i], k);
                if (!v || strlen(v) > size)
                    abort();
            }
            if (query_params_get_nth(qp, names[i], n))
                abort();
        }
    } else if (!detail || qp) {
        abort();
    }
    query_params_free(qp);
    free(text);
    return 0;
}
