/*
 * bench_token — what a token check costs per request: token_verify (HS256 and
 * ES256) plus the rule check, timed over a loop on one core.
 *
 *   build/test/tests/bench/bench_token [iterations]
 *
 * Built with the pgfeed build (it links pgfeed_core), never run by ctest.
 */
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "authz.h"
#include "jws_mint.h"
#include "token.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void run(const char *name, const token_keys *keys, const authz *rules, const char *token,
                long iterations)
{
    const token_limits limits = {.max_bytes = 8192, .leeway = 30};
    size_t len = strlen(token);
    long allowed = 0;
    double t0 = now_s();
    for (long i = 0; i < iterations; i++) {
        token_claims c;
        if (token_verify(keys, &limits, token, len, time(NULL), &c) != TOKEN_OK) {
            fprintf(stderr, "bench_token: %s did not verify\n", name);
            exit(1);
        }
        allowed += authz_read(rules, c.sub, &c, "user:alice") == AUTHZ_ALLOW;
        token_claims_free(&c);
    }
    double dt = now_s() - t0;
    printf("%-6s %ld checks in %.3f s: %.2f us per check (%ld allowed), %zu-byte token\n", name,
           iterations, dt, dt / (double)iterations * 1e6, allowed, len);
}

int main(int argc, char **argv)
{
    long iterations = argc > 1 ? atol(argv[1]) : 200000;
    /* HS256 */
    const char *secret = "0123456789abcdef0123456789abcdef";
    char payload[256];
    snprintf(payload, sizeof payload,
             "{\"sub\":\"alice\",\"exp\":%ld,\"iat\":%ld,\"channels\":[\"team:7\",\"news:*\"]}",
             (long)time(NULL) + 3600, (long)time(NULL));
    const char *hs_header = "{\"alg\":\"HS256\",\"kid\":\"k1\",\"typ\":\"JWT\"}";
    char *hs_token =
        jws_mint_hs256(hs_header, strlen(hs_header), payload, strlen(payload), secret, 32);

    /* ES256: a fresh P-256 key; its public half goes into the JWK Set. */
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    unsigned char point[65];
    size_t point_len = 0;
    EVP_PKEY_get_octet_string_param(pkey, "encoded-pub-key", point, sizeof point, &point_len);
    char *x = jws_b64url(point + 1, 32), *y = jws_b64url(point + 33, 32);
    const char *es_header = "{\"alg\":\"ES256\",\"kid\":\"e1\",\"typ\":\"JWT\"}";
    char *in = jws_signing_input(es_header, strlen(es_header), payload, strlen(payload));
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char der[80];
    size_t der_len = sizeof der;
    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey);
    EVP_DigestSign(md, der, &der_len, (unsigned char *)in, strlen(in));
    const unsigned char *dp = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &dp, (long)der_len);
    unsigned char raw[64];
    BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32);
    char *sig = jws_b64url(raw, 64);
    char es_token[1024];
    snprintf(es_token, sizeof es_token, "%s.%s", in, sig);

    char jwks[1024], err[256];
    snprintf(jwks, sizeof jwks,
             "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"k1\",\"alg\":\"HS256\",\"k\":"
             "\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"},{\"kty\":\"EC\",\"kid\":\"e1\","
             "\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}]}",
             x, y);
    token_keys *keys = token_keys_parse(jwks, strlen(jwks), err, sizeof err);
    authz_settings s = {.allow_user = "user:{user}", .cache_ttl = 60, .cache_max = 1000};
    authz *rules = authz_new(&s, err, sizeof err);
    if (!keys || !rules) {
        fprintf(stderr, "bench_token: %s\n", err);
        return 1;
    }
    run("HS256", keys, rules, hs_token, iterations);
    run("ES256", keys, rules, es_token, iterations / 20);
    token_keys_free(keys);
    authz_free(rules);
    ECDSA_SIG_free(es);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pkey);
    free(hs_token);
    free(in);
    free(sig);
    free(x);
    free(y);
    return 0;
}
