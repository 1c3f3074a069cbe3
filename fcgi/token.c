/*
 * token — compact JWS verification and the claims of a JWT (see token.h).
 *
 * The order of checks is chosen so that untrusted bytes reach as little code
 * as possible before the signature is known good: the header (small, needed to
 * pick the key) is the only JSON parsed first; the payload is parsed only
 * after the MAC or ECDSA signature verified (token_keys_verify).
 */
#include "token.h"
#include "jose.h"
#include "xalloc.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#define TIME_CLAIM_MAX ((int64_t)1 << 52) /* seconds: some 140 million years */

/* A NumericDate member: absent is fine (*present false), a non-number is not. */
static bool claim_time(json_object *payload, const char *name, bool *present, int64_t *out)
{
    json_object *v;
    *present = json_object_object_get_ex(payload, name, &v);
    if (!*present)
        return true;
    /* Bounded far beyond any real date, so exp + leeway cannot overflow; json-c
     * saturates integers too long for int64 to INT64_MAX, which this refuses. */
    if (json_object_is_type(v, json_type_int)) {
        int64_t t = json_object_get_int64(v);
        if (t <= -TIME_CLAIM_MAX || t >= TIME_CLAIM_MAX)
            return false;
        *out = t;
        return true;
    }
    if (json_object_is_type(v, json_type_double)) {
        double d = json_object_get_double(v);
        if (!(d > (double)-TIME_CLAIM_MAX && d < (double)TIME_CLAIM_MAX)) /* false for NaN */
            return false;
        *out = (int64_t)d;
        return true;
    }
    return false;
}

/* An optional array of strings; absent leaves *out NULL. */
static bool claim_strings(json_object *payload, const char *name, char ***out, size_t *n_out)
{
    json_object *v;
    *out = NULL;
    *n_out = 0;
    if (!json_object_object_get_ex(payload, name, &v))
        return true;
    if (!json_object_is_type(v, json_type_array))
        return false;
    size_t n = json_object_array_length(v);
    for (size_t i = 0; i < n; i++)
        if (!jose_json_string(json_object_array_get_idx(v, i)))
            return false;
    *out = xcalloc(n + 1, sizeof **out);
    for (size_t i = 0; i < n; i++)
        (*out)[i] = xstrdup(json_object_get_string(json_object_array_get_idx(v, i)));
    *n_out = n;
    return true;
}

static token_status claims_read(json_object *payload, const token_limits *limits, int64_t now,
                                token_claims *out)
{
    bool has_exp, has_nbf, has_iat;
    int64_t exp = 0, nbf = 0, iat = 0;
    if (!claim_time(payload, "exp", &has_exp, &exp) || !has_exp ||
        !claim_time(payload, "nbf", &has_nbf, &nbf) || !claim_time(payload, "iat", &has_iat, &iat))
        return TOKEN_BAD_CLAIMS;
    /* No sub is allowed: such a token grants its channels to nobody in particular. */
    json_object *sub_obj;
    const char *sub = jose_json_member(payload, "sub");
    if (json_object_object_get_ex(payload, "sub", &sub_obj) && (!sub || !*sub))
        return TOKEN_BAD_CLAIMS;
    if (now >= exp + limits->leeway)
        return TOKEN_EXPIRED;
    if ((has_nbf && nbf > now + limits->leeway) || (has_iat && iat > now + limits->leeway))
        return TOKEN_NOT_YET;
    if (!claim_strings(payload, "channels", &out->channels, &out->n_channels) ||
        !claim_strings(payload, "publish", &out->publish, &out->n_publish))
        return TOKEN_BAD_CLAIMS;
    out->sub = sub ? xstrdup(sub) : NULL;
    out->exp = exp;
    return TOKEN_OK;
}

token_status token_verify(const token_keys *keys, const token_limits *limits, const char *token,
                          size_t len, int64_t now, token_claims *out)
{
    memset(out, 0, sizeof *out);
    if (!keys)
        return TOKEN_UNKNOWN_KEY;
    if (len > limits->max_bytes)
        return TOKEN_TOO_LARGE;
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
        return TOKEN_MALFORMED;

    token_status st = TOKEN_MALFORMED;
    json_object *header = NULL, *payload = NULL;
    unsigned char *header_raw = NULL, *payload_raw = NULL, *sig = NULL;
    size_t header_len, payload_len, sig_len;
    header_raw = jose_b64url_decode(token, (size_t)(dot1 - token), &header_len);
    if (!header_raw || !(header = jose_json_parse((char *)header_raw, header_len)))
        goto cleanup;
    json_object *crit;
    if (json_object_object_get_ex(header, "crit", &crit))
        goto cleanup; /* RFC 7515 4.1.11: extensions we do not know must be refused */
    const char *alg = jose_json_member(header, "alg");
    json_object *kid_obj;
    const char *kid = jose_json_member(header, "kid");
    if (!alg || (json_object_object_get_ex(header, "kid", &kid_obj) && !kid))
        goto cleanup;
    const token_key *key = token_keys_find(keys, kid);
    if (!key) {
        st = TOKEN_UNKNOWN_KEY;
        goto cleanup;
    }
    if (strcmp(alg, token_keys_alg(key)) != 0) {
        st = TOKEN_WRONG_ALG;
        goto cleanup;
    }
    sig = jose_b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), &sig_len);
    if (!sig)
        goto cleanup;
    size_t input_len = (size_t)(dot2 - token);
    if (!token_keys_verify(key, token, input_len, sig, sig_len)) {
        st = TOKEN_BAD_SIGNATURE;
        goto cleanup;
    }
    payload_raw = jose_b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &payload_len);
    if (!payload_raw || !(payload = jose_json_parse((char *)payload_raw, payload_len)))
        goto cleanup;
    st = claims_read(payload, limits, now, out);
    if (st != TOKEN_OK)
        token_claims_free(out);
cleanup:
    json_object_put(header);
    json_object_put(payload);
    free(header_raw);
    free(payload_raw);
    free(sig);
    return st;
}

static void strings_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void token_claims_free(token_claims *claims)
{
    if (!claims)
        return;
    free(claims->sub);
    strings_free(claims->channels, claims->n_channels);
    strings_free(claims->publish, claims->n_publish);
    memset(claims, 0, sizeof *claims);
}

const char *token_status_text(token_status status)
{
    switch (status) {
    case TOKEN_OK:
        return "the token is valid";
    case TOKEN_MALFORMED:
        return "the token is not a compact JWS (header.payload.signature, base64url, JSON)";
    case TOKEN_TOO_LARGE:
        return "the token is longer than --token-max-bytes";
    case TOKEN_UNKNOWN_KEY:
        return "the token's kid names no key in --token-keys";
    case TOKEN_WRONG_ALG:
        return "the token's alg is not the algorithm of its key";
    case TOKEN_BAD_SIGNATURE:
        return "the token's signature does not verify";
    case TOKEN_BAD_CLAIMS:
        return "the token lacks exp, or a claim has the wrong type";
    case TOKEN_EXPIRED:
        return "the token has expired";
    case TOKEN_NOT_YET:
        return "the token is not valid yet (nbf or iat in the future)";
    }
    return "the token is invalid";
}
