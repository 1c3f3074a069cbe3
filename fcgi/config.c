/*
 * config — defaults, PGFEED_* environment and flags, from one table.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* OPT_LIST: a comma-separated string; a flag given twice appends ("--allow a --allow b"). */
typedef enum option_type { OPT_STRING, OPT_INT, OPT_BOOL, OPT_LIST } option_type;

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
    OPT("log-level-file", OPT_STRING, log_level_file, NULL, 0, 0,
        "file holding the log level, read at start and on SIGHUP (wins over --log-level)"),
    OPT("log-format", OPT_STRING, log_format, "text", 0, 0,
        "text (timestamped lines), journal (systemd) or json"),
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
    OPT("ring-seconds", OPT_INT, ring_seconds, "0", 0, 3600,
        "also keep every event cached in the last N seconds, within --ring-bytes (0: off)"),
    OPT("catchup-bytes", OPT_INT, catchup_bytes, "4194304", 0, 1 << 30,
        "bytes of catch-up reads kept for the next client at the same cursor (0: none)"),
    OPT("catchup-ms", OPT_INT, catchup_ms, "1000", 0, 60000,
        "ms a kept catch-up read serves later clients"),
    OPT("cache-bytes", OPT_INT, cache_bytes, "67108864", 65536, INT_MAX,
        "bytes of the channel cache; least recently used channels without subscribers go beyond"),
    OPT("load-queue", OPT_INT, load_queue, "10000", 1, 1000000,
        "channels waiting for their head at most (503 busy beyond)"),
    OPT("load-batch", OPT_INT, load_batch, "1000", 1, 10000, "channel heads read per query"),
    OPT("prune-interval", OPT_INT, prune_interval, "300", 0, 86400,
        "seconds between pgfeed.prune() runs (0: never)"),
    /* issue 14: one process per database moves pgfeed.enqueue's outbox into the feed */
    OPT("sequence-ms", OPT_INT, sequence_ms, "10", 0, 60000,
        "ms between pgfeed.sequence() runs while this process holds the sequencer (0: never)"),
    OPT("sequence-batch", OPT_INT, sequence_batch, "1000", 1, 100000,
        "events one pgfeed.sequence() call moves at most (a full batch runs again at once)"),
    OPT("publish", OPT_BOOL, publish, "0", 0, 1, "allow POST /{channel} to publish"),
    OPT("max-body", OPT_INT, max_body, "65536", 1, 1 << 24, "largest POST body, bytes"),
    OPT("hub", OPT_BOOL, hub, "0", 0, 1,
        "share one daemon per host and configuration (mod_fcgid): relay to it, or be it"),
    OPT("hub-dir", OPT_STRING, hub_dir, NULL, 0, 0,
        "0700 directory for the hub's socket [/tmp/pgfeed-hub-UID]"),
    OPT("hub-idle", OPT_INT, hub_idle, "120", 1, 86400,
        "seconds without requests before a hub exits"),
    OPT("hub-start-timeout", OPT_INT, hub_start_timeout, "5", 1, 60,
        "seconds a relay waits for the hub it started"),
    OPT("relay-timeout", OPT_INT, relay_timeout, "120", 1, 86400,
        "seconds a relayed request may be silent both ways (above max-wait and heartbeat)"),
    OPT("relay-buffer", OPT_INT, relay_buffer, "65536", 4096, 1 << 24,
        "bytes a relay buffers per direction"),
    /* Authorization (issue 10): who may read, publish and see the admin routes. */
    OPT("allow", OPT_LIST, allow, NULL, 0, 0, "channel patterns anyone may read (public:*,news)"),
    OPT("allow-user", OPT_LIST, allow_user, NULL, 0, 0,
        "channel patterns a principal may read, {user} = principal (user:{user})"),
    OPT("authorize-sql", OPT_BOOL, authorize_sql, "0", 0, 1,
        "ask pgfeed.authorize(principal, channel) for channels no rule allows"),
    OPT("auth-cache-ttl", OPT_INT, auth_cache_ttl, "60", 1, 86400,
        "seconds a pgfeed.authorize answer is kept (the revocation bound)"),
    OPT("auth-cache-max", OPT_INT, auth_cache_max, "100000", 1, 10000000,
        "pgfeed.authorize answers kept at most"),
    OPT("token-keys", OPT_STRING, token_keys, NULL, 0, 0,
        "JWK Set file of the keys app tokens are signed with (re-read on SIGHUP)"),
    OPT("token-cookie", OPT_STRING, token_cookie, NULL, 0, 0,
        "cookie that carries the token (for EventSource)"),
    OPT("token-leeway", OPT_INT, token_leeway, "30", 0, 600,
        "seconds of clock skew allowed on exp, nbf, iat"),
    OPT("token-max-bytes", OPT_INT, token_max_bytes, "8192", 64, 65536, "longest token accepted"),
    OPT("publish-allow-user", OPT_LIST, publish_allow_user, NULL, 0, 0,
        "channel patterns a principal may POST to, {user} = principal"),
    OPT("publish-token-file", OPT_STRING, publish_token_file, NULL, 0, 0,
        "file holding a shared bearer token that may POST to any channel"),
    OPT("admin-allow", OPT_LIST, admin_allow, "loopback", 0, 0,
        "who gets /_health and /_metrics: loopback, any, user:NAME"),
    OPT("cors-origin", OPT_LIST, cors_origin, NULL, 0, 0,
        "origins whose pages may read cross-origin (https://app.example, or *)"),
    OPT("request-timeout", OPT_INT, request_timeout, "10", 1, 3600,
        "seconds for a FastCGI request's params and body to arrive"),
    OPT("keep-conn-timeout", OPT_INT, keep_conn_timeout, "120", 1, 86400,
        "seconds a kept FastCGI connection may idle between requests"),
    OPT("max-params", OPT_INT, max_params, "32768", 1024, 1 << 24,
        "bytes of FastCGI params (headers, query) per request"),
    OPT("max-connections", OPT_INT, max_connections, "16384", 1, 1 << 24,
        "FastCGI connections open at once (capped by the descriptor limit)"),
    OPT("socket-mode", OPT_STRING, socket_mode, "0660", 0, 0,
        "mode of the --listen Unix socket (octal; never writable by others)"),
    OPT("socket-group", OPT_STRING, socket_group, NULL, 0, 0,
        "group of the --listen Unix socket (default: the process's)"),
    OPT("max-answer-bytes", OPT_INT, max_answer_bytes, "1048576", 1024, 1 << 30,
        "event bytes per poll answer; more: true says the rest follows"),
    OPT("drain-timeout", OPT_INT, drain_timeout, "30", 1, 3600,
        "seconds a client may take to read a finished answer before it is closed"),
    OPT("notify-queue-warn", OPT_INT, notify_queue_warn, "50", 1, 100,
        "percent of PostgreSQL's NOTIFY queue in use that logs a warning"),
    OPT("cache-public", OPT_LIST, cache_public, NULL, 0, 0,
        "channels a shared cache may keep answers of: names, NAME* prefixes or * (default: none;"
        " only for channels anyone may read)"),
};

#define N_OPTIONS (sizeof options / sizeof options[0])

/* Lists built from repeated flags; kept here (reachable) until the next config_load. */
static char *list_values[N_OPTIONS];

/* A repeated list flag appends to what the first one set. */
static const char *list_append(size_t index, const char *value)
{
    char *old = list_values[index];
    size_t old_len = old ? strlen(old) : 0, len = strlen(value);
    char *joined = malloc(old_len + 1 + len + 1);
    if (!joined)
        abort();
    if (old)
        memcpy(joined, old, old_len);
    if (old)
        joined[old_len++] = ',';
    memcpy(joined + old_len, value, len + 1);
    free(old);
    list_values[index] = joined;
    return joined;
}

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
    if (o->type == OPT_STRING || o->type == OPT_LIST) {
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
            "Every flag can also be set by its PGFEED_* environment variable.\n\n"
            "  --%-16s %-24s %s\n  --%-16s %-24s %s\n",
            "help", "-h", "print this list and exit", "version", "-V",
            "print the version and exit");
    char name[64];
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        const option_spec *o = &options[i];
        fprintf(out, "  --%-16s %-24s %s%s%s%s\n", o->flag, env_name(o->flag, name, sizeof name),
                o->help, o->default_value ? " [" : "", o->default_value ? o->default_value : "",
                o->default_value ? "]" : "");
    }
}

void config_each(const pgfeed_config *cfg,
                 void (*fn)(void *ctx, const char *name, const char *value), void *ctx)
{
    char name[64], number[16];
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        const option_spec *o = &options[i];
        const void *field = (const char *)cfg + o->offset;
        const char *value = number;
        if (o->type == OPT_STRING || o->type == OPT_LIST)
            value = *(const char *const *)field;
        else if (o->type == OPT_BOOL)
            value = *(const bool *)field ? "1" : "0";
        else
            snprintf(number, sizeof number, "%d", *(const int *)field);
        if (value)
            fn(ctx, env_name(o->flag, name, sizeof name), value);
    }
}

/* Writes text for a roff paragraph: backslashes escaped, no line starts a request. */
static void man_text(FILE *out, const char *text)
{
    if (*text == '.' || *text == '\'')
        fputs("\\&", out);
    for (const char *p = text; *p; p++) {
        if (*p == '\\')
            fputs("\\e", out);
        else if (*p == '-')
            fputs("\\-", out);
        else
            fputc(*p, out);
    }
}

void config_man_options(FILE *out)
{
    char name[64];
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        const option_spec *o = &options[i];
        fputs(".TP\n.B \\-\\-", out);
        man_text(out, o->flag);
        if (o->type == OPT_INT)
            fputs(" \\fIN\\fR", out);
        else if (o->type == OPT_STRING || o->type == OPT_LIST)
            fputs(" \\fIVALUE\\fR", out);
        fputs("\n", out);
        man_text(out, o->help);
        if (o->type == OPT_INT)
            fprintf(out, " (%d to %d)", o->min, o->max);
        if (o->default_value && *o->default_value) {
            fputs(". Default: ", out);
            man_text(out, o->type == OPT_BOOL ? (strcmp(o->default_value, "0") ? "on" : "off")
                                              : o->default_value);
        }
        fprintf(out, ". Environment: \\fB%s\\fR.\n", env_name(o->flag, name, sizeof name));
    }
}

static bool option_given(const bool *given, const char *flag)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (!strcmp(options[i].flag, flag))
            return given[i];
    return false;
}

/*
 * Options that bound each other. A default above its maximum is a mistake
 * when it was given, and follows the maximum when it was not (so lowering
 * --max-limit alone keeps working).
 */
static int config_check(pgfeed_config *cfg, const bool *given)
{
    if (cfg->default_limit > cfg->max_limit) {
        if (option_given(given, "default-limit")) {
            fprintf(stderr, "pgfeed: --default-limit %d is above --max-limit %d\n",
                    cfg->default_limit, cfg->max_limit);
            return -1;
        }
        cfg->default_limit = cfg->max_limit;
    }
    return 0;
}

int config_load(pgfeed_config *cfg, int argc, char **argv)
{
    memset(cfg, 0, sizeof *cfg);
    bool given[N_OPTIONS] = {false};
    bool list_flag_seen[N_OPTIONS] = {false};
    for (size_t i = 0; i < N_OPTIONS; i++) {
        free(list_values[i]);
        list_values[i] = NULL;
    }
    char name[64];
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        const option_spec *o = &options[i];
        if (o->default_value && option_set(cfg, o, o->default_value, "default") < 0)
            return -1;
        const char *env = getenv(env_name(o->flag, name, sizeof name));
        if (env && option_set(cfg, o, env, name) < 0)
            return -1;
        given[i] = env != NULL;
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            config_usage(stdout);
            return 1;
        }
        if (!strcmp(arg, "--version") || !strcmp(arg, "-V")) {
            printf("pgfeed %s\n", PGFEED_VERSION);
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
        size_t index = 0;
        for (size_t i = 0; i < N_OPTIONS; i++)
            if (strlen(options[i].flag) == flag_len && !strncmp(options[i].flag, flag, flag_len)) {
                o = &options[index = i];
                given[i] = true;
            }
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
        if (o->type == OPT_LIST) {
            /* The first flag replaces the default or variable; later ones add to it. */
            if (!list_flag_seen[index]) {
                free(list_values[index]);
                list_values[index] = NULL;
            }
            list_flag_seen[index] = true;
            value = list_append(index, value);
        }
        char source[80]; /* the flag alone: "--max-wait", not "--max-wait=soon" */
        snprintf(source, sizeof source, "--%s", o->flag);
        if (option_set(cfg, o, value, source) < 0)
            return -1;
    }
    return config_check(cfg, given);
}
