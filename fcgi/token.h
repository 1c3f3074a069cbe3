/*
 * token — verifying the JWTs an application signs for its users (RFC 7519).
 *
 * Keys come from a JWK Set file (RFC 7517): {"keys":[{"kty":"oct","kid":"k1",
 * "alg":"HS256","k":"<base64url>"}, {"kty":"EC","crv":"P-256","kid":"k2",
 * "x":..,"y":..}]}. A token names its key by "kid" (so keys rotate: publish the
 * new key beside the old, then mint with it), and the algorithm is the key's,
 * never the token's: a header whose "alg" differs from the key's, "none"
 * included, is refused before anything else is looked at. Crypto is OpenSSL's
 * libcrypto only (HMAC, ECDSA through EVP, CRYPTO_memcmp).
 *
 * Only compact JWS with a JSON payload; "exp" is required, "nbf" and "iat" are
 * honoured with a leeway; "sub" is the principal; "channels" and "publish" are
 * optional arrays of channel patterns (see authz.h).
 */
#ifndef PGFEED_TOKEN_H
#define PGFEED_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct token_keys token_keys;

/* Bounds of what is parsed; every one is a setting. */
typedef struct token_limits {
    size_t max_bytes; /* the whole compact token */
    int leeway;       /* seconds of clock difference allowed on exp, nbf, iat */
} token_limits;

typedef enum token_status {
    TOKEN_OK,
    TOKEN_MALFORMED,     /* not a compact JWS with JSON header and payload */
    TOKEN_TOO_LARGE,     /* longer than max_bytes */
    TOKEN_UNKNOWN_KEY,   /* no key with its kid (or no kid and several keys) */
    TOKEN_WRONG_ALG,     /* header alg is not the key's */
    TOKEN_BAD_SIGNATURE, /* signature does not verify */
    TOKEN_BAD_CLAIMS,    /* exp missing, a claim of the wrong type */
    TOKEN_EXPIRED,       /* exp passed (beyond leeway) */
    TOKEN_NOT_YET,       /* nbf or iat in the future (beyond leeway) */
} token_status;

/* What a verified token says; owned by the caller, freed with token_claims_free. */
typedef struct token_claims {
    char *sub;       /* NULL when the token has none */
    int64_t exp;     /* seconds since the epoch */
    char **channels; /* patterns granted for reading; NULL when absent */
    size_t n_channels;
    char **publish; /* patterns granted for publishing; NULL when absent */
    size_t n_publish;
} token_claims;

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

/*
 * Verifies a compact JWS (header.payload.signature) at time now (seconds). On
 * TOKEN_OK *out holds the claims; otherwise *out is zeroed. The token is never
 * copied into error text: see token_status_text.
 */
token_status token_verify(const token_keys *keys, const token_limits *limits, const char *token,
                          size_t len, int64_t now, token_claims *out)
    __attribute__((warn_unused_result));
void token_claims_free(token_claims *claims);
/* A sentence for a problem detail ("the token has expired"). */
const char *token_status_text(token_status status);

#endif
