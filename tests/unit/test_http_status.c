/*
 * test_http_status — the reason phrase of every status pgfeed answers with.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "http_status.h"

static void test_reasons(void **state)
{
    static const struct {
        int status;
        const char *reason;
    } cases[] = {
        {200, "OK"},
        {201, "Created"},
        {204, "No Content"},
        {304, "Not Modified"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {410, "Gone"},
        {413, "Content Too Large"},
        {414, "URI Too Long"},
        {415, "Unsupported Media Type"},
        {422, "Unprocessable Content"},
        {429, "Too Many Requests"},
        {500, "Internal Server Error"},
        {503, "Service Unavailable"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        assert_string_equal(http_status_reason(cases[i].status), cases[i].reason);
}

static void test_unknown_reasons(void **state)
{
    const int odd[] = {0, -1, 99, 418, 599, 1000, 2147483647};
    for (size_t i = 0; i < sizeof odd / sizeof *odd; i++)
        assert_string_equal(http_status_reason(odd[i]), "Unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reasons),
        cmocka_unit_test(test_unknown_reasons),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
