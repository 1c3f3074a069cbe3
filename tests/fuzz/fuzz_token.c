/*
 * fuzz_token — libFuzzer harness for the token parser (fcgi/token.c) and the
 * rules it feeds (fcgi/authz.c).
 *
 * The first byte of an input picks what the rest is:
 *   0  a compact token, verified against a fixed HS256 + ES256 key set;
 *   1  a JWK Set, parsed;
 *   2  "header\0payload": the harness signs them with the HS256 key, so the
 *      fuzzer reaches the claims parser and the rules behind the signature.
 * Any crash, leak or sanitizer report is a finding; there is nothing to assert.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "authz.h"
#include "jws_mint.h"
#include "token.h"

#define SECRET "0123456789abcdef0123456789abcdef"
static const char jwks[] = "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"k1\",\"alg\":\"HS256\","
                           "\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"},"
                           "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"e1\",\"alg\":\"ES256\","
                           "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
                           "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}]}";

static token_keys *keys;
static authz *rules;
static const token_limits limits = {.max_bytes = 8192, .leeway = 30};

static void check(const char *token, size_t len)
{
    token_claims c;
    if (token_verify(keys, &limits, token, len, 1700000000, &c) == TOKEN_OK) {
        (void)authz_read(rules, c.sub, &c, "user:alice");
        (void)authz_publish(rules, c.sub, &c, "room:1");
        token_claims_free(&c);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!keys) {
        char err[256];
        keys = token_keys_parse(jwks, sizeof jwks - 1, err, sizeof err);
        authz_settings s = {.allow_user = "user:{user}",
                            .publish_allow_user = "room:{user}",
                            .sql = true,
                            .cache_ttl = 60,
                            .cache_max = 16};
        rules = authz_new(&s, err, sizeof err);
        if (!keys || !rules)
            abort();
    }
    if (size < 1 || size > 8192)
        return 0;
    const char *rest = (const char *)data + 1;
    size_t n = size - 1;
    if (data[0] == 0) {
        check(rest, n);
    } else if (data[0] == 1) {
        char err[256];
        token_keys_free(token_keys_parse(rest, n, err, sizeof err));
    } else if (data[0] == 2) {
        const char *nul = memchr(rest, '\0', n);
        if (!nul)
            return 0;
        size_t hl = (size_t)(nul - rest);
        char *token = jws_mint_hs256(rest, hl, nul + 1, n - hl - 1, SECRET, 32);
        check(token, strlen(token));
        free(token);
    }
    return 0;
}
