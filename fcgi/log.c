/*
 * log — leveled logging to stderr (see log.h).
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static log_level current_level = LOG_INFO;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_set_level(log_level level)
{
    current_level = level;
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

void log_msg(log_level level, unsigned long request_id, const char *fmt, ...)
{
    if (level > current_level)
        return;
    char line[1024];
    int n;
    if (request_id)
        n = snprintf(line, sizeof line, "pgfeed[%d] %s req=%lu: ", (int)getpid(),
                     level_names[level], request_id);
    else
        n = snprintf(line, sizeof line, "pgfeed[%d] %s: ", (int)getpid(), level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    /* One write per line keeps lines whole when several processes share the log. */
    size_t len = strlen(line);
    line[len++] = '\n';
    if (write(STDERR_FILENO, line, len) < 0) {
        /* nowhere left to report it */
    }
}
