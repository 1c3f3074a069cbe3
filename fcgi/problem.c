/*
 * problem — RFC 9457 problem+json bodies (see problem.h).
 *
 * Bodies are built with json-c rather than printf so that a detail echoing
 * client input (a channel name, a path) is always escaped correctly.
 */
#include "problem.h"
#include "http_status.h"

void problem_body(buf *out, int status, const char *detail, const json_object *extra)
{
    problem_body_typed(out, status, "about:blank", http_status_reason(status), detail, extra);
}

void problem_body_typed(buf *out, int status, const char *type, const char *title,
                        const char *detail, const json_object *extra)
{
    json_object *body = json_object_new_object();
    json_object_object_add(body, "type", json_object_new_string(type));
    json_object_object_add(body, "title", json_object_new_string(title));
    json_object_object_add(body, "status", json_object_new_int(status));
    if (detail != NULL)
        json_object_object_add(body, "detail", json_object_new_string(detail));
    if (extra != NULL && json_object_is_type(extra, json_type_object)) {
        json_object_object_foreach(extra, key, value)
        {
            /* The standard members describe this answer; extra cannot contradict them. */
            if (json_object_object_get_ex(body, key, NULL))
                continue;
            json_object_object_add(body, key, json_object_get(value));
        }
    }
    /* No slash escaping: a detail naming "/_foo" should read as written. */
    buf_append_str(out, json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN |
                                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(body);
}
