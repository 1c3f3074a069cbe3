/*
 * token_keys — the keys app tokens are signed with, from a JWK Set file
 * (RFC 7517): {"keys":[{"kty":"oct","kid":"k1","alg":"HS256","k":"<base64url>"},
 * {"kty":"EC","crv":"P-256","kid":"k2","x":..,"y":..}]}. A token names its key
 * by "kid" (so keys rotate: publish the new key beside the old, then mint with
 * it); each key has one algorithm, which is the only one its tokens may use.
 * Signatures are checked with OpenSSL's libcrypto only (HMAC, ECDSA through
 * EVP, CRYPTO_memcmp).
 */
#ifndef PGFEED_TOKEN_KEYS_H
#define PGFEED_TOKEN_KEYS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct token_keys token_keys;
typedef struct token_key token_key;

/*
 * Reads a JWK Set file. Returns NULL with a sentence in err when the file
 * cannot be read or a key is unusable (a bad key is an error, not skipped, so
 * a typo shows at startup rather than as refused tokens).
 */
token_keys *token_keys_load(const char *path, char *err, size_t err_len)
    __attribute__((warn_unused_result));
/* Same, from JSON text already in memory (tests, fuzzing). */
token_keys *token_keys_parse(const char *json, size_t len, char *err, size_t err_len)
    __attribute__((warn_unused_result));
void token_keys_free(token_keys *keys);
size_t token_keys_count(const token_keys *keys);

/* The key called kid; without a kid, the only key when it has none. NULL: no such key. */
const token_key *token_keys_find(const token_keys *keys, const char *kid);
/* The JWS "alg" of key's tokens: "HS256" or "ES256". */
const char *token_keys_alg(const token_key *key);
/* Whether sig (raw bytes, r||s for ES256) signs input with key. */
bool token_keys_verify(const token_key *key, const char *input, size_t input_len,
                       const unsigned char *sig, size_t sig_len)
    __attribute__((warn_unused_result));

#endif
