/*
 * log — leveled logging to stderr, one line per record.
 *
 * stdout is the response in CGI mode, so nothing is ever logged there. Every
 * record about a request carries its id, so one request can be followed through
 * a busy log. Apache and lighttpd put a FastCGI process's stderr in their
 * error log, one line per line; systemd puts it in the journal.
 *
 * A record is always exactly one line: control characters in the message
 * (PostgreSQL's errors are multi-line and may quote client-chosen strings) are
 * escaped, so nobody can forge or split records. Formats:
 *   text     2026-12-01T10:07:07.123Z pgfeed[42] warn req=7: message
 *   journal  <4>warn req=7: message     (journald reads the <N> priority and
 *                                        keeps time and pid itself)
 *   json     {"time":"…","level":"warn","pid":42,"req":7,"msg":"message"}
 */
#ifndef PGFEED_LOG_H
#define PGFEED_LOG_H

#include <stddef.h>

typedef enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG } log_level;
typedef enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JOURNAL, LOG_FORMAT_JSON } log_format;

void log_set_level(log_level level);
void log_set_format(log_format format);
/* Parses "error", "warn", "info" or "debug"; returns -1 for anything else. */
int log_level_parse(const char *name, log_level *out) __attribute__((warn_unused_result));
/* The name log_level_parse reads for level ("debug"). */
const char *log_level_name(log_level level);
/*
 * Reads a level from the file at path (--log-level-file): one word, spaces and
 * newlines around it ignored. Returns -1 with a sentence in err when the file
 * cannot be read or holds anything else.
 */
int log_level_read(const char *path, log_level *out, char *err, size_t err_len)
    __attribute__((warn_unused_result));
/* Parses "text", "journal" or "json"; returns -1 for anything else. */
int log_format_parse(const char *name, log_format *out) __attribute__((warn_unused_result));
/* request_id 0 means the record is about the process, not a request. */
void log_msg(log_level level, unsigned long request_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(id, ...) log_msg(LOG_ERROR, (id), __VA_ARGS__)
#define log_warn(id, ...) log_msg(LOG_WARN, (id), __VA_ARGS__)
#define log_info(id, ...) log_msg(LOG_INFO, (id), __VA_ARGS__)
#define log_debug(id, ...) log_msg(LOG_DEBUG, (id), __VA_ARGS__)

#endif
