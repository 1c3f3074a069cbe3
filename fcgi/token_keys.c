/*
 * token_keys — JWK Set loading and signature checks (see token_keys.h).
 */
#include "token_keys.h"
#include "jose.h"
#include "xalloc.h"

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

struct token_key {
    char *kid; /* NULL when the JWK has none */
    key_alg alg;
    unsigned char *secret; /* HS256 */
    size_t secret_len;
    EVP_PKEY *pkey; /* ES256 */
};

struct token_keys {
    token_key *keys;
    size_t n;
};

#define HS256_MIN_SECRET 32 /* RFC 7518 3.2: a key at least as long as the hash */
#define KEY_FILE_MAX (1 << 20)

/* ---- loading ------------------------------------------------------------ */

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
    const char *kty = jose_json_member(jwk, "kty");
    const char *alg = jose_json_member(jwk, "alg");
    const char *kid = jose_json_member(jwk, "kid");
    const char *use = jose_json_member(jwk, "use");
    if (use && strcmp(use, "sig") != 0) {
        snprintf(err, err_len, "keys[%zu]: \"use\" must be \"sig\"", index);
        return -1;
    }
    if (kty && !strcmp(kty, "oct") && (!alg || !strcmp(alg, "HS256"))) {
        const char *b64 = jose_json_member(jwk, "k");
        size_t n = 0;
        unsigned char *secret = b64 ? jose_b64url_decode(b64, strlen(b64), &n) : NULL;
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
        const char *crv = jose_json_member(jwk, "crv");
        const char *x64 = jose_json_member(jwk, "x");
        const char *y64 = jose_json_member(jwk, "y");
        size_t xn = 0, yn = 0;
        unsigned char *x = x64 ? jose_b64url_decode(x64, strlen(x64), &xn) : NULL;
        unsigned char *y = y64 ? jose_b64url_decode(y64, strlen(y64), &yn) : NULL;
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
    json_object *root = jose_json_parse(json, len);
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

/* ---- use ---------------------------------------------------------------- */

const token_key *token_keys_find(const token_keys *keys, const char *kid)
{
    if (!kid)
        return keys->n == 1 && !keys->keys[0].kid ? &keys->keys[0] : NULL;
    for (size_t i = 0; i < keys->n; i++)
        if (keys->keys[i].kid && !strcmp(keys->keys[i].kid, kid))
            return &keys->keys[i];
    return NULL;
}

const char *token_keys_alg(const token_key *key)
{
    return key->alg == KEY_HS256 ? "HS256" : "ES256";
}

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

bool token_keys_verify(const token_key *key, const char *input, size_t input_len,
                       const unsigned char *sig, size_t sig_len)
{
    return key->alg == KEY_HS256 ? verify_hs256(key, input, input_len, sig, sig_len)
                                 : verify_es256(key, input, input_len, sig, sig_len);
}
