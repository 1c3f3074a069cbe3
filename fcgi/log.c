/*
 * log — leveled logging to stderr, one line per record (see log.h).
 */
#include "log.h"

#include <json-c/json.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_MESSAGE_MAX 2048 /* longer messages are cut; a record stays one write */
#define LOG_RECORD_MAX (4 * LOG_MESSAGE_MAX + 256)
#define LOG_LEVEL_FILE_MAX 64

static log_level current_level = LOG_INFO;
static log_format current_format = LOG_FORMAT_TEXT;
static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const format_names[] = {"text", "journal", "json"};
/* syslog priorities (err, warning, info, debug) for journald's <N> prefix */
static const int level_priorities[] = {3, 4, 6, 7};

void log_set_level(log_level level)
{
    current_level = level;
}

void log_set_format(log_format format)
{
    current_format = format;
}

int log_level_parse(const char *name, log_level *out)
{
    for (int i = 0; i <= LOG_DEBUG; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (log_level)i;
            return 0;
        }
    }
    return -1;
}

const char *log_level_name(log_level level)
{
    return level_names[level];
}

int log_level_read(const char *path, log_level *out, char *err, size_t err_len)
{
    char text[LOG_LEVEL_FILE_MAX + 1];
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, err_len, "--log-level-file %s: cannot open", path);
        return -1;
    }
    size_t n = fread(text, 1, sizeof text, f);
    bool failed = ferror(f);
    fclose(f);
    if (failed || n > LOG_LEVEL_FILE_MAX) {
        snprintf(err, err_len, "--log-level-file %s: unreadable or over %d bytes", path,
                 LOG_LEVEL_FILE_MAX);
        return -1;
    }
    text[n] = '\0';
    /* echo debug > file: the word, without what the shell put around it */
    const char *word = text + strspn(text, " \t\r\n");
    size_t len = strcspn(word, " \t\r\n");
    if (word[len + strspn(word + len, " \t\r\n")] == '\0') {
        char name[LOG_LEVEL_FILE_MAX + 1];
        memcpy(name, word, len);
        name[len] = '\0';
        if (log_level_parse(name, out) == 0)
            return 0;
    }
    snprintf(err, err_len, "--log-level-file %s: expected error, warn, info or debug", path);
    return -1;
}

int log_format_parse(const char *name, log_format *out)
{
    for (int i = 0; i <= LOG_FORMAT_JSON; i++) {
        if (strcmp(name, format_names[i]) == 0) {
            *out = (log_format)i;
            return 0;
        }
    }
    return -1;
}

/* The current time as 2026-12-01T10:07:07.123Z (ISO 8601, UTC, milliseconds). */
static void log_timestamp(char *out, size_t cap)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, cap - n, ".%03ldZ", now.tv_nsec / 1000000);
}

/*
 * Appends msg to out with every control character escaped (\n, \r, \t, \xHH)
 * and backslashes doubled, so that the record stays one line and an escape in
 * the log always means one in the message. Bytes >= 0x80 pass: UTF-8 text
 * stays readable. Returns the new length; out always has room for the '\n'.
 */
static size_t log_escape(char *out, size_t len, size_t cap, const char *msg)
{
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)msg; *p && len + 5 < cap; p++) {
        unsigned char c = *p;
        if (c >= 0x20 && c != 0x7f && c != '\\') {
            out[len++] = (char)c;
            continue;
        }
        out[len++] = '\\';
        switch (c) {
        case '\\':
            out[len++] = '\\';
            break;
        case '\n':
            out[len++] = 'n';
            break;
        case '\r':
            out[len++] = 'r';
            break;
        case '\t':
            out[len++] = 't';
            break;
        default:
            out[len++] = 'x';
            out[len++] = hex[c >> 4];
            out[len++] = hex[c & 15];
        }
    }
    return len;
}

static size_t log_format_json(char *out, size_t cap, log_level level, unsigned long request_id,
                              const char *msg)
{
    char time[40];
    log_timestamp(time, sizeof time);
    json_object *record = json_object_new_object();
    json_object_object_add(record, "time", json_object_new_string(time));
    json_object_object_add(record, "level", json_object_new_string(level_names[level]));
    json_object_object_add(record, "pid", json_object_new_int((int)getpid()));
    if (request_id)
        json_object_object_add(record, "req", json_object_new_int64((int64_t)request_id));
    json_object_object_add(record, "msg", json_object_new_string(msg));
    /* PLAIN: no newlines; json-c escapes every control character in strings. */
    const char *text = json_object_to_json_string_ext(record, JSON_C_TO_STRING_PLAIN |
                                                                  JSON_C_TO_STRING_NOSLASHESCAPE);
    size_t len = strlen(text);
    if (len > cap - 1)
        len = 0; /* cannot happen: msg is bounded and escapes at most sextuple it */
    memcpy(out, text, len);
    json_object_put(record);
    return len;
}

void log_msg(log_level level, unsigned long request_id, const char *fmt, ...)
{
    if (level > current_level)
        return;
    char msg[LOG_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* libpq's messages end in a newline: the record's own end is enough. */
    size_t msg_len = strlen(msg);
    while (msg_len && (msg[msg_len - 1] == '\n' || msg[msg_len - 1] == ' '))
        msg[--msg_len] = '\0';

    char line[LOG_RECORD_MAX];
    size_t len;
    char req[32] = "";
    if (request_id)
        snprintf(req, sizeof req, " req=%lu", request_id);
    if (current_format == LOG_FORMAT_JSON) {
        len = log_format_json(line, sizeof line, level, request_id, msg);
    } else if (current_format == LOG_FORMAT_JOURNAL) {
        len = (size_t)snprintf(line, sizeof line, "<%d>%s%s: ", level_priorities[level],
                               level_names[level], req);
        len = log_escape(line, len, sizeof line, msg);
    } else {
        char time[40];
        log_timestamp(time, sizeof time);
        len = (size_t)snprintf(line, sizeof line, "%s pgfeed[%d] %s%s: ", time, (int)getpid(),
                               level_names[level], req);
        len = log_escape(line, len, sizeof line, msg);
    }
    /* One write per record keeps records whole when several processes share the log. */
    line[len++] = '\n';
    if (write(STDERR_FILENO, line, len) < 0) {
        /* nowhere left to report it */
    }
}
