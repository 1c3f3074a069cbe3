/*
 * jose — unpadded base64url and bounded JSON for tokens and key sets (see
 * jose.h).
 */
#include "jose.h"
#include "xalloc.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 8

/*
 * libcrypto's EVP_DecodeBlock does the decoding once the URL alphabet is
 * mapped back and the padding restored; what it would accept beyond canonical
 * base64url is refused here first.
 */
unsigned char *jose_b64url_decode(const char *in, size_t len, size_t *out_len)
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

json_object *jose_json_parse(const char *text, size_t len)
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

const char *jose_json_string(json_object *v)
{
    if (!json_object_is_type(v, json_type_string))
        return NULL;
    const char *s = json_object_get_string(v);
    return strlen(s) == (size_t)json_object_get_string_len(v) ? s : NULL;
}

const char *jose_json_member(json_object *obj, const char *name)
{
    json_object *v;
    if (!json_object_object_get_ex(obj, name, &v))
        return NULL;
    return jose_json_string(v);
}
