/*
 * config — defaults, PGFEED_* environment and flags, from one table.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef enum option_type { OPT_STRING, OPT_INT, OPT_BOOL } option_type;

typedef struct option_spec {
    const char *flag; /* --flag; the variable is PGFEED_ + upper case with '_' */
    option_type type;
    size_t offset;
    const char *default_value;
    int min, max;
    const char *help;
} option_spec;

#define OPT(flag, type, field, def, min, max, help)                                                \
    {                                                                                              \
        flag, type, offsetof(pgfeed_config, field), def, min, max, help                            \
    }

static const option_spec options[] = {
    OPT("listen", OPT_STRING, listen, NULL, 0, 0,
        "run as a FastCGI daemon on a Unix socket PATH or HOST:PORT"),
    OPT("db", OPT_STRING, db, "", 0, 0, "libpq conninfo (default: PG* environment)"),
    OPT("log-level", OPT_STRING, log_level, "info", 0, 0, "error, warn, info or debug"),
    OPT("max-wait", OPT_INT, max_wait, "30", 0, 3600, "longest long poll, seconds"),
    OPT("default-limit", OPT_INT, default_limit, "100", 1, 1000, "events per answer"),
    OPT("max-limit", OPT_INT, max_limit, "1000", 1, 1000, "largest limit= accepted"),
    OPT("max-channels", OPT_INT, max_channels, "16", 1, 1000, "channels per request"),
    OPT("max-query", OPT_INT, max_query, "4096", 64, 65536, "longest query string, bytes"),
    OPT("max-held", OPT_INT, max_held, "10000", 0, 1000000,
        "long polls and streams held per process"),
    OPT("heartbeat", OPT_INT, heartbeat, "15", 1, 3600, "seconds between SSE heartbeats"),
    OPT("sse-lifetime", OPT_INT, sse_lifetime, "240", 1, 86400,
        "seconds before a stream ends and the client resumes"),
    OPT("sse-retry", OPT_INT, sse_retry_ms, "2000", 0, 600000,
        "reconnect delay sent to EventSource, ms"),
    OPT("max-buffered", OPT_INT, max_buffered, "262144", 4096, 1 << 30,
        "bytes queued for a slow client before its stream is ended"),
    OPT("ring-events", OPT_INT, ring_events, "256", 1, 100000, "recent events cached per channel"),
    OPT("ring-bytes", OPT_INT, ring_bytes, "1048576", 1024, 1 << 30,
        "bytes of recent events cached per channel"),
    OPT("prune-interval", OPT_INT, prune_interval, "300", 0, 86400,
        "seconds between pgfeed.prune() runs (0: never)"),
    OPT("publish", OPT_BOOL, publish, "0", 0, 1, "allow POST /{channel} to publish"),
    OPT("publish-token", OPT_STRING, publish_token, NULL, 0, 0,
        "bearer token POST must carry (recommended with --publish)"),
    OPT("max-body", OPT_INT, max_body, "65536", 1, 1 << 24, "largest POST body, bytes"),
    OPT("cache-public", OPT_STRING, cache_public, NULL, 0, 0,
        "channels a shared cache may keep answers of: names, NAME* prefixes or * (default: none;"
        " only for channels anyone may read)"),
};

static char *env_name(const char *flag, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "PGFEED_");
    for (const char *p = flag; *p && n + 1 < cap; p++)
        out[n++] = *p == '-' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    out[n] = '\0';
    return out;
}

static int option_set(pgfeed_config *cfg, const option_spec *o, const char *value,
                      const char *source)
{
    void *field = (char *)cfg + o->offset;
    if (o->type == OPT_STRING) {
        *(const char **)field = value;
        return 0;
    }
    if (o->type == OPT_BOOL) {
        if (!strcmp(value, "1") || !strcmp(value, "true") || !strcmp(value, "yes") ||
            !strcmp(value, "on"))
            *(bool *)field = true;
        else if (!strcmp(value, "0") || !strcmp(value, "false") || !strcmp(value, "no") ||
                 !strcmp(value, "off") || !strcmp(value, ""))
            *(bool *)field = false;
        else {
            fprintf(stderr, "pgfeed: %s: expected 1/0, true/false, yes/no or on/off, not \"%s\"\n",
                    source, value);
            return -1;
        }
        return 0;
    }
    char *end;
    errno = 0;
    long n = strtol(value, &end, 10);
    if (errno || end == value || *end || n < o->min || n > o->max) {
        fprintf(stderr, "pgfeed: %s: expected a whole number from %d to %d, not \"%s\"\n", source,
                o->min, o->max, value);
        return -1;
    }
    *(int *)field = (int)n;
    return 0;
}

void config_usage(FILE *out)
{
    fprintf(out,
            "usage: pgfeed [--flag value ...]\n"
            "Serves PostgreSQL change feeds over FastCGI (inherited socket or --listen) or CGI.\n"
            "Every flag can also be set by its PGFEED_* environment variable.\n\n");
    char name[64];
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        const option_spec *o = &options[i];
        fprintf(out, "  --%-16s %-24s %s%s%s%s\n", o->flag, env_name(o->flag, name, sizeof name),
                o->help, o->default_value ? " [" : "", o->default_value ? o->default_value : "",
                o->default_value ? "]" : "");
    }
}

int config_load(pgfeed_config *cfg, int argc, char **argv)
{
    memset(cfg, 0, sizeof *cfg);
    char name[64];
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        const option_spec *o = &options[i];
        if (o->default_value && option_set(cfg, o, o->default_value, "default") < 0)
            return -1;
        const char *env = getenv(env_name(o->flag, name, sizeof name));
        if (env && option_set(cfg, o, env, name) < 0)
            return -1;
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            config_usage(stdout);
            return 1;
        }
        if (!strcmp(arg, "--version")) {
            printf("pgfeed 0.1.0\n");
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0) {
            fprintf(stderr, "pgfeed: unexpected argument \"%s\" (see --help)\n", arg);
            return -1;
        }
        const char *flag = arg + 2;
        const char *eq = strchr(flag, '=');
        size_t flag_len = eq ? (size_t)(eq - flag) : strlen(flag);
        const option_spec *o = NULL;
        for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
            if (strlen(options[i].flag) == flag_len && !strncmp(options[i].flag, flag, flag_len))
                o = &options[i];
        if (!o) {
            fprintf(stderr, "pgfeed: unknown option \"%s\" (see --help)\n", arg);
            return -1;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (!value && o->type == OPT_BOOL)
            value = "1";
        else if (!value && a + 1 < argc)
            value = argv[++a];
        if (!value) {
            fprintf(stderr, "pgfeed: %s needs a value\n", arg);
            return -1;
        }
        if (option_set(cfg, o, value, arg) < 0)
            return -1;
    }
    return 0;
}
