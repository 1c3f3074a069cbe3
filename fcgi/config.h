/*
 * config — every setting, from one table.
 *
 * Each option is a command-line flag and a PGFEED_* environment variable
 * (mod_fcgid passes those with FcgidInitialEnv); flags win. The database is
 * reached through libpq's own conventions unless --db gives a conninfo.
 */
#ifndef PGFEED_CONFIG_H
#define PGFEED_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

typedef struct pgfeed_config {
    const char *listen; /* NULL: inherited socket or CGI */
    const char *db;     /* conninfo; "" means PG* environment */
    const char *log_level;
    int max_wait; /* seconds a long poll may be held */
    int default_limit;
    int max_limit;
    int max_channels; /* per request */
    int max_query;    /* QUERY_STRING bytes */
    int max_held;     /* long polls + streams per process */
    int heartbeat;    /* seconds between SSE comments */
    int sse_lifetime; /* seconds before a stream ends so the client reconnects */
    int sse_retry_ms; /* retry: sent to EventSource */
    int max_buffered; /* bytes queued for one client before it counts as too slow */
    int ring_events;  /* recent events cached per channel */
    int ring_bytes;
    int prune_interval;        /* seconds between pgfeed.prune() runs; 0: never */
    bool publish;              /* POST /{channel} publishes */
    const char *publish_token; /* if set, POST needs Authorization: Bearer <token> */
    int max_body;
    /* Channels whose answers a shared cache may keep (comma-separated names, NAME* prefixes,
     * or *); NULL or "": none, every answer is private. */
    const char *cache_public;
} pgfeed_config;

/* Fills cfg from defaults, then PGFEED_* variables, then argv. Returns -1 on bad input
 * (reason printed), 1 when --help or --version was answered, 0 to run. */
int config_load(pgfeed_config *cfg, int argc, char **argv) __attribute__((warn_unused_result));
void config_usage(FILE *out);

#endif
