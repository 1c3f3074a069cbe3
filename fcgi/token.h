/*
 * token — verifying the JWTs an application signs for its users (RFC 7519).
 *
 * Keys come from a JWK Set (token_keys.h) and are chosen by the token's
 * "kid"; the algorithm is the key's, never the token's: a header whose "alg"
 * differs from the key's, "none" included, is refused before anything else is
 * looked at.
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

#include "token_keys.h"

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
