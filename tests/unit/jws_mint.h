/*
 * jws_mint — minting compact JWS in tests, benchmarks and the fuzz harness:
 * the signer side pgfeed itself never needs. Header-only so each of them
 * (cmocka tests, bench_token, the clang-built fuzz_token) can include it.
 */
#ifndef PGFEED_JWS_MINT_H
#define PGFEED_JWS_MINT_H

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Unpadded base64url of len bytes, in a new string. */
static inline char *jws_b64url(const void *data, size_t len)
{
    char *out = malloc(len / 3 * 4 + 8);
    if (!out)
        abort();
    int n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    while (n > 0 && out[n - 1] == '=')
        n--;
    out[n] = '\0';
    for (char *p = out; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    return out;
}

/* "b64url(header).b64url(payload)", in a new string with room for a signature. */
static inline char *jws_signing_input(const char *header, size_t header_len, const char *payload,
                                      size_t payload_len)
{
    char *h = jws_b64url(header, header_len), *p = jws_b64url(payload, payload_len);
    char *in = malloc(strlen(h) + strlen(p) + 200);
    if (!in)
        abort();
    sprintf(in, "%s.%s", h, p);
    free(h);
    free(p);
    return in;
}

/* A complete HS256 token over header and payload, in a new string. */
static inline char *jws_mint_hs256(const char *header, size_t header_len, const char *payload,
                                   size_t payload_len, const void *secret, size_t secret_len)
{
    char *token = jws_signing_input(header, header_len, payload, payload_len);
    size_t in_len = strlen(token);
    unsigned char mac[32];
    unsigned int mac_len;
    HMAC(EVP_sha256(), secret, (int)secret_len, (unsigned char *)token, in_len, mac, &mac_len);
    char *s = jws_b64url(mac, mac_len);
    sprintf(token + in_len, ".%s", s);
    free(s);
    return token;
}

#endif
