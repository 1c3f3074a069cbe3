/*
 * test_clock_wall — token times are read on the precise wall clock. glibc's
 * time() reads the coarse clock, up to a tick behind CLOCK_REALTIME, so a token
 * another process minted this very second (iat = now) looked issued in the
 * future and was refused at --token-leeway 0 (seen once in e2e_auth_tokens
 * under load). The clocks are the test's (-Wl,--wrap=clock_gettime,--wrap=time):
 * the precise one just past a second, the coarse one still in the last.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "event_loop.h"
#include "jws_mint.h"
#include "token.h"

#define SECOND 1700000000 /* what CLOCK_REALTIME says: 2 ms into this second */
#define SECRET "0123456789abcdef0123456789abcdef"

int __real_clock_gettime(clockid_t id, struct timespec *ts);

int __wrap_clock_gettime(clockid_t id, struct timespec *ts)
{
    if (id == CLOCK_REALTIME) {
        ts->tv_sec = SECOND;
        ts->tv_nsec = 2000000;
        return 0;
    }
    if (id == CLOCK_REALTIME_COARSE) {
        ts->tv_sec = SECOND - 1;
        ts->tv_nsec = 999000000;
        return 0;
    }
    return __real_clock_gettime(id, ts);
}

time_t __wrap_time(time_t *t)
{
    if (t)
        *t = SECOND - 1; /* the coarse clock, a tick behind */
    return SECOND - 1;
}

static void test_token_issued_this_second(void **state)
{
    const char *jwks = "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"k1\",\"alg\":\"HS256\","
                       "\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}]}";
    char err[256] = "";
    token_keys *keys = token_keys_parse(jwks, strlen(jwks), err, sizeof err);
    assert_non_null(keys);
    char payload[128];
    snprintf(payload, sizeof payload, "{\"sub\":\"alice\",\"iat\":%d,\"nbf\":%d,\"exp\":%d}",
             SECOND, SECOND, SECOND + 60);
    const char *header = "{\"alg\":\"HS256\",\"kid\":\"k1\"}";
    char *token = jws_mint_hs256(header, strlen(header), payload, strlen(payload), SECRET, 32);

    token_limits no_leeway = {.max_bytes = 8192, .leeway = 0};
    token_claims claims;
    token_status st = token_verify(keys, &no_leeway, token, strlen(token), clock_wall_s(), &claims);
    if (st != TOKEN_OK)
        fail_msg("a token issued this second: %s", token_status_text(st));
    assert_string_equal(claims.sub, "alice");
    token_claims_free(&claims);
    assert_int_equal(clock_wall_s(), SECOND); /* the test's clock, not the machine's */
    free(token);
    token_keys_free(keys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_issued_this_second),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
