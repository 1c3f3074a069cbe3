/*
 * jose — the two encodings JWS and JWK share (RFC 7515, 7517): unpadded
 * base64url, and small JSON objects parsed with bounds. token.c reads tokens
 * with them, token_keys.c key sets; neither trusts its input.
 */
#ifndef PGFEED_JOSE_H
#define PGFEED_JOSE_H

#include <json-c/json.h>
#include <stddef.h>

/*
 * Decodes canonical unpadded base64url (RFC 4648 section 5) into a new buffer
 * the caller frees; *out_len is its length. NULL for anything else: padding,
 * the standard alphabet, whitespace, or unused low bits that are not zero
 * (several spellings of one signature).
 */
unsigned char *jose_b64url_decode(const char *in, size_t len, size_t *out_len)
    __attribute__((warn_unused_result));
/* One JSON object and nothing after it, nested at most a few levels; NULL otherwise. */
json_object *jose_json_parse(const char *text, size_t len) __attribute__((warn_unused_result));
/* v as a string with no NUL inside (C would read a shorter one), else NULL. */
const char *jose_json_string(json_object *v);
/* The string member name of obj, or NULL when absent or not such a string. */
const char *jose_json_member(json_object *obj, const char *name);

#endif
