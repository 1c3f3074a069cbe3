/*
 * publish — POST /{channel}: checks the token and body, runs pgfeed.publish(), answers 201.
 */
#include "request_private.h"
#include "feed_format.h"

#include <string.h>
#include <strings.h>

static void publish_on_result(void *ctx, const db_publish_result *res)
{
    request *r = ctx;
    r->query = NULL;
    if (!res->ok) {
        if (res->client_error)
            request_fail(r, 400, res->error ? res->error : "the event was refused", NULL);
        else
            request_fail_unavailable(r);
        return;
    }
    buf body = BUF_INIT;
    feed_format_published(&body, r->fr.channels[0], res->version);
    request_respond(r, 201, "application/json", NULL, body.data, body.len);
    buf_free(&body);
}

/* Checks a POST and starts pgfeed.publish(); runs while the params are still there. */
void publish_start(request *r)
{
    const pgfeed_config *cfg = r->reg->cfg;
    if (cfg->publish_token && *cfg->publish_token) {
        const char *auth = fcgi_conn_param(r->conn, "HTTP_AUTHORIZATION");
        size_t token_len = strlen(cfg->publish_token);
        if (!auth || strncasecmp(auth, "Bearer ", 7) != 0 || strlen(auth + 7) != token_len ||
            memcmp(auth + 7, cfg->publish_token, token_len) != 0) {
            request_fail(r, 403, "publishing needs Authorization: Bearer <publish token>", NULL);
            return;
        }
    }
    const char *content_type = fcgi_conn_param(r->conn, "CONTENT_TYPE");
    if (!content_type || strncasecmp(content_type, "application/json", 16) != 0) {
        request_fail(r, 415, "POST a JSON body with Content-Type: application/json", NULL);
        return;
    }
    size_t len;
    bool too_large;
    const char *text = fcgi_conn_body(r->conn, &len, &too_large);
    if (too_large) {
        request_fail(r, 413, "the body is larger than the configured --max-body", NULL);
        return;
    }
    json_tokener *tok = json_tokener_new();
    json_object *doc = json_tokener_parse_ex(tok, text, (int)len);
    bool complete = json_tokener_get_error(tok) == json_tokener_success &&
                    json_tokener_get_parse_end(tok) == len;
    json_tokener_free(tok);
    json_object *type = NULL, *data = NULL;
    if (!complete || !json_object_is_type(doc, json_type_object) ||
        !json_object_object_get_ex(doc, "type", &type) ||
        !json_object_is_type(type, json_type_string)) {
        json_object_put(doc);
        request_fail(r, 400, "the body must be a JSON object {\"type\": string, \"data\": any}",
                     NULL);
        return;
    }
    json_object_object_get_ex(doc, "data", &data);
    const char *data_json =
        data ? json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN) : "{}";
    request_set_state(r, REQ_WAITING_DB);
    r->query = db_publish(r->reg->database, r->fr.channels[0], json_object_get_string(type),
                          data_json, publish_on_result, r);
    json_object_put(doc);
    if (!r->query)
        request_fail_unavailable(r);
}
