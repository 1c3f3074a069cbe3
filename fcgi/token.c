/*
 * token — JWK Set loading and compact JWS verification (see token.h).
 *
 * The order of checks is chosen so that untrusted bytes reach as little code
 * as possible before the signature is known good: the header (small, needed to
 * pick the key) is the only JSON parsed first; the payload is parsed only
 * after the MAC or ECDSA signature verified.
 */
#include "token.h"
#include "xalloc.h"

#include <json-c/json.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum key_alg { KEY_HS256, KEY_ES256 } key_alg;

typedef struct token_key {
    char *kid; /* NULL when the JWK has none */
    key_alg alg;
    unsigned char *secret; /* HS256 */
    size_t secret_len;
    EVP_PKEY *pkey; /* ES256 */
} token_key;

struct token_keys {
    token_key *keys;
    size_t n;
};

#define JSON_MAX_DEPTH 8
#define HS256_MIN_SECRET 32 /* RFC 7518 3.2: a key at least as long as the hash */
#define KEY_FILE_MAX (1 << 20)
#define TIME_CLAIM_MAX ((int64_t)1 << 52) /* seconds: some 140 million years */

static const char *alg_name(key_alg alg)
{
    return alg == KEY_HS256 ? "HS256" : "ES256";
}

/* ---- base64url (RFC 4648 section 5, no padding) -------------------------- */

/*
 * Decodes into a fresh buffer with libcrypto's EVP_DecodeBlock after mapping
 * the URL alphabet back and restoring the padding. Returns NULL for anything
 * that is not canonical unpadded base64url.
 */
static unsigned char *b64url_decode(const char *in, size_t len, size_t *out_len)
{
    if (len % 4 == 1)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return NULL;
    }
    /* The bits of the last character past the data must be zero (RFC 4648 3.5), or
     * several spellings would decode to one signature. */
    if (len % 4 != 0) {
        const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        unsigned last = (unsigned)(strchr(alphabet, in[len - 1]) - alphabet);
        if (last & (len % 4 == 2 ? 0x0f : 0x03))
            return NULL;
    }
    size_t pad = (4 - len % 4) % 4;
    char *std = xmalloc(len + pad + 1);
    for (size_t i = 0; i < len; i++)
        std[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
    memset(std + len, '=', pad);
    std[len + pad] = '\0';
    unsigned char *out = xmalloc((len + pad) / 4 * 3 + 1);
    int n = EVP_DecodeBlock(out, (const unsigned char *)std, (int)(len + pad));
    free(std);
    if (n < 0 || (size_t)n < pad) {
        free(out);
        return NULL;
    }
    *out_len = (size_t)n - pad;
    return out;
}

/* ---- JSON helpers ------------------------------------------------------- */

static json_object *json_parse_bounded(const char *text, size_t len)
{
    json_tokener *tok = json_tokener_new_ex(JSON_MAX_DEPTH);
    json_object *obj = json_tokener_parse_ex(tok, text, (int)len);
    /* Trailing bytes after the value are refused: one value, nothing else. */
    if (obj && (json_tokener_get_error(tok) != json_tokener_success ||
                json_tokener_get_parse_end(tok) != len)) {
        json_object_put(obj);
        obj = NULL;
    }
    json_tokener_free(tok);
    if (obj && !json_object_is_type(obj, json_type_object)) {
        json_object_put(obj);
        obj = NULL;
    }
    return obj;
}

/* A string with no NUL inside, which C code could otherwise read as a shorter one. */
static const char *json_plain_string(json_object *v)
{
    if (!json_object_is_type(v, json_type_string))
        return NULL;
    const char *s = json_object_get_string(v);
    return strlen(s) == (size_t)json_object_get_string_len(v) ? s : NULL;
}

/* The string member name of obj, or NULL when absent or not a plain string. */
static const char *json_string_member(json_object *obj, const char *name)
{
    json_object *v;
    if (!json_object_object_get_ex(obj, name, &v))
        return NULL;
    return json_plain_string(v);
}

/* ---- keys --------------------------------------------------------------- */

static void key_clear(token_key *k)
{
    free(k->kid);
    if (k->secret)
        OPENSSL_clear_free(k->secret, k->secret_len);
    EVP_PKEY_free(k->pkey);
    memset(k, 0, sizeof *k);
}

void token_keys_free(token_keys *keys)
{
    if (!keys)
        return;
    for (size_t i = 0; i < keys->n; i++)
        key_clear(&keys->keys[i]);
    free(keys->keys);
    free(keys);
}

size_t token_keys_count(const token_keys *keys)
{
    return keys ? keys->n : 0;
}

/* An EC P-256 public key from the JWK's x and y (32 bytes each). */
static EVP_PKEY *ec_key_from_xy(const unsigned char *x, const unsigned char *y)
{
    unsigned char point[65];
    point[0] = 0x04; /* uncompressed point, SEC 1 2.3.3 */
    memcpy(point + 1, x, 32);
    memcpy(point + 33, y, 32);
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (!bld || !ctx ||
        !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point))
        goto cleanup;
    params = OSSL_PARAM_BLD_to_param(bld);
    if (!params || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
        goto cleanup;
    }
    /* fromdata does not check that the point is on the curve; do it here. */
    EVP_PKEY_CTX *check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (!check || EVP_PKEY_public_check(check) <= 0) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    EVP_PKEY_CTX_free(check);
cleanup:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    return pkey;
}

static int key_from_jwk(json_object *jwk, token_key *k, size_t index, char *err, size_t err_len)
{
    memset(k, 0, sizeof *k);
    if (!json_object_is_type(jwk, json_type_object)) {
        snprintf(err, err_len, "keys[%zu] is not an object", index);
        return -1;
    }
    const char *kty = json_string_member(jwk, "kty");
    const char *alg = json_string_member(jwk, "alg");
    const char *kid = json_string_member(jwk, "kid");
    const char *use = json_string_member(jwk, "use");
    if (use && strcmp(use, "sig") != 0) {
        snprintf(err, err_len, "keys[%zu]: \"use\" must be \"sig\"", index);
        return -1;
    }
    if (kty && !strcmp(kty, "oct") && (!alg || !strcmp(alg, "HS256"))) {
        const char *b64 = json_string_member(jwk, "k");
        size_t n = 0;
        unsigned char *secret = b64 ? b64url_decode(b64, strlen(b64), &n) : NULL;
        if (!secret || n < HS256_MIN_SECRET) {
            if (secret)
                OPENSSL_clear_free(secret, n);
            snprintf(err, err_len,
                     "keys[%zu]: \"k\" must be base64url of at least %d bytes for HS256", index,
                     HS256_MIN_SECRET);
            return -1;
        }
        k->alg = KEY_HS256;
        k->secret = secret;
        k->secret_len = n;
    } else if (kty && !strcmp(kty, "EC") && (!alg || !strcmp(alg, "ES256"))) {
        const char *crv = json_string_member(jwk, "crv");
        const char *x64 = json_string_member(jwk, "x");
        const char *y64 = json_string_member(jwk, "y");
        size_t xn = 0, yn = 0;
        unsigned char *x = x64 ? b64url_decode(x64, strlen(x64), &xn) : NULL;
        unsigned char *y = y64 ? b64url_decode(y64, strlen(y64), &yn) : NULL;
        if (crv && !strcmp(crv, "P-256") && x && y && xn == 32 && yn == 32)
            k->pkey = ec_key_from_xy(x, y);
        free(x);
        free(y);
        if (!k->pkey) {
            snprintf(err, err_len, "keys[%zu]: not a valid P-256 public key (crv, x, y)", index);
            return -1;
        }
        k->alg = KEY_ES256;
    } else {
        snprintf(err, err_len,
                 "keys[%zu]: only {\"kty\":\"oct\",\"alg\":\"HS256\"} and "
                 "{\"kty\":\"EC\",\"crv\":\"P-256\",\"alg\":\"ES256\"} keys are supported",
                 index);
        return -1;
    }
    k->kid = kid ? xstrdup(kid) : NULL;
    return 0;
}

token_keys *token_keys_parse(const char *json, size_t len, char *err, size_t err_len)
{
    token_keys *keys = NULL;
    json_object *root = json_parse_bounded(json, len);
    json_object *arr;
    if (!root || !json_object_object_get_ex(root, "keys", &arr) ||
        !json_object_is_type(arr, json_type_array) || json_object_array_length(arr) == 0) {
        snprintf(err, err_len, "not a JWK Set: expected {\"keys\":[...]} with at least one key");
        goto cleanup;
    }
    keys = xcalloc(1, sizeof *keys);
    size_t n = json_object_array_length(arr);
    keys->keys = xcalloc(n, sizeof *keys->keys);
    for (size_t i = 0; i < n; i++) {
        if (key_from_jwk(json_object_array_get_idx(arr, i), &keys->keys[i], i, err, err_len) < 0)
            goto fail;
        keys->n++;
        for (size_t j = 0; j < i; j++) {
            const char *a = keys->keys[i].kid, *b = keys->keys[j].kid;
            if ((!a && !b) || (a && b && !strcmp(a, b))) {
                snprintf(err, err_len, "keys[%zu] has the same kid as keys[%zu]", i, j);
                goto fail;
            }
        }
    }
    goto cleanup;
fail:
    token_keys_free(keys);
    keys = NULL;
cleanup:
    json_object_put(root);
    return keys;
}

token_keys *token_keys_load(const char *path, char *err, size_t err_len)
{
    token_keys *keys = NULL;
    char *text = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "%s: cannot open", path);
        goto cleanup;
    }
    text = xmalloc(KEY_FILE_MAX + 1);
    size_t n = fread(text, 1, KEY_FILE_MAX + 1, f);
    if (ferror(f) || n > KEY_FILE_MAX) {
        snprintf(err, err_len, "%s: unreadable or larger than %d bytes", path, KEY_FILE_MAX);
        goto cleanup;
    }
    char why[200];
    keys = token_keys_parse(text, n, why, sizeof why);
    if (!keys)
        snprintf(err, err_len, "%s: %s", path, why);
cleanup:
    if (text)
        OPENSSL_clear_free(text, KEY_FILE_MAX + 1);
    if (f)
        fclose(f);
    return keys;
}

/* ---- verification ------------------------------------------------------- */

static bool verify_hs256(const token_key *k, const char *input, size_t input_len,
                         const unsigned char *sig, size_t sig_len)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (!HMAC(EVP_sha256(), k->secret, (int)k->secret_len, (const unsigned char *)input, input_len,
              mac, &mac_len))
        return false;
    return sig_len == mac_len && CRYPTO_memcmp(mac, sig, mac_len) == 0;
}

/* JWS carries ECDSA as r||s (RFC 7518 3.4); libcrypto wants DER, so re-encode. */
static bool verify_es256(const token_key *k, const char *input, size_t input_len,
                         const unsigned char *sig, size_t sig_len)
{
    if (sig_len != 64)
        return false;
    bool ok = false;
    unsigned char *der = NULL;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!es || !r || !s || !md || !ECDSA_SIG_set0(es, r, s)) {
        BN_free(r);
        BN_free(s);
        goto cleanup;
    }
    int der_len = i2d_ECDSA_SIG(es, &der);
    ok = der_len > 0 && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
         EVP_DigestVerify(md, der, (size_t)der_len, (const unsigned char *)input, input_len) == 1;
cleanup:
    OPENSSL_free(der);
    EVP_MD_CTX_free(md);
    ECDSA_SIG_free(es);
    return ok;
}

static const token_key *key_for(const token_keys *keys, const char *kid)
{
    if (!kid)
        return keys->n == 1 && !keys->keys[0].kid ? &keys->keys[0] : NULL;
    for (size_t i = 0; i < keys->n; i++)
        if (keys->keys[i].kid && !strcmp(keys->keys[i].kid, kid))
            return &keys->keys[i];
    return NULL;
}

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
        if (!json_plain_string(json_object_array_get_idx(v, i)))
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
    const char *sub = json_string_member(payload, "sub");
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
    header_raw = b64url_decode(token, (size_t)(dot1 - token), &header_len);
    if (!header_raw || !(header = json_parse_bounded((char *)header_raw, header_len)))
        goto cleanup;
    json_object *crit;
    if (json_object_object_get_ex(header, "crit", &crit))
        goto cleanup; /* RFC 7515 4.1.11: extensions we do not know must be refused */
    const char *alg = json_string_member(header, "alg");
    json_object *kid_obj;
    const char *kid = json_string_member(header, "kid");
    if (!alg || (json_object_object_get_ex(header, "kid", &kid_obj) && !kid))
        goto cleanup;
    const token_key *key = key_for(keys, kid);
    if (!key) {
        st = TOKEN_UNKNOWN_KEY;
        goto cleanup;
    }
    if (strcmp(alg, alg_name(key->alg)) != 0) {
        st = TOKEN_WRONG_ALG;
        goto cleanup;
    }
    sig = b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), &sig_len);
    if (!sig)
        goto cleanup;
    size_t input_len = (size_t)(dot2 - token);
    bool good = key->alg == KEY_HS256 ? verify_hs256(key, token, input_len, sig, sig_len)
                                      : verify_es256(key, token, input_len, sig, sig_len);
    if (!good) {
        st = TOKEN_BAD_SIGNATURE;
        goto cleanup;
    }
    payload_raw = b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &payload_len);
    if (!payload_raw || !(payload = json_parse_bounded((char *)payload_raw, payload_len)))
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
