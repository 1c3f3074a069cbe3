/*
 * log — leveled logging to stderr.
 *
 * stdout is the response in CGI mode, so nothing is ever logged there. Every
 * line about a request carries its id, so one request can be followed through
 * a busy log. Apache and lighttpd put a FastCGI process's stderr in their
 * error log.
 */
#ifndef PGFEED_LOG_H
#define PGFEED_LOG_H

typedef enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG } log_level;

void log_set_level(log_level level);
/* Parses "error", "warn", "info" or "debug"; returns -1 for anything else. */
int log_level_parse(const char *name, log_level *out) __attribute__((warn_unused_result));
/* request_id 0 means the line is about the process, not a request. */
void log_msg(log_level level, unsigned long request_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(id, ...) log_msg(LOG_ERROR, (id), __VA_ARGS__)
#define log_warn(id, ...) log_msg(LOG_WARN, (id), __VA_ARGS__)
#define log_info(id, ...) log_msg(LOG_INFO, (id), __VA_ARGS__)
#define log_debug(id, ...) log_msg(LOG_DEBUG, (id), __VA_ARGS__)

#endif
