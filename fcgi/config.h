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
    const char *log_level_file; /* NULL: --log-level only; else re-read on SIGHUP */
    const char *log_format;     /* text, journal or json */
    int max_wait;               /* seconds a long poll may be held */
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
    int ring_seconds;   /* and every event younger than this, still within ring_bytes */
    int catchup_bytes;  /* catch-up pages kept for later clients at the same cursor */
    int catchup_ms;     /* and for how long */
    int cache_bytes;    /* the channel cache's budget (feed_cache.h) */
    int load_queue;     /* channels waiting for a head batch at most */
    int load_batch;     /* channels per head batch */
    int prune_interval; /* seconds between pgfeed.prune() runs; 0: never */
    int sequence_ms;    /* ms between pgfeed.sequence() runs (sequencer.h); 0: never */
    int sequence_batch; /* events per pgfeed.sequence() call */
    bool publish;       /* POST /{channel} publishes (never anonymously: see guard.h) */
    int max_body;
    /* issue 11: one hub per host and configuration under mod_fcgid (hub.h, relay.h) */
    bool hub;              /* inherited socket: relay to the hub; with listen: be the hub */
    const char *hub_dir;   /* 0700 directory of the hub's socket; NULL: /tmp/pgfeed-hub-UID */
    int hub_idle;          /* seconds without requests before a hub exits */
    int hub_start_timeout; /* seconds a relay waits for a hub it started to listen */
    int relay_timeout;     /* seconds a relayed connection may stay silent both ways */
    int relay_buffer;      /* bytes buffered per direction per relayed connection */
    /* Authorization (see authz.h, token.h); lists are comma-separated patterns. */
    const char *allow;
    const char *allow_user;
    bool authorize_sql;
    int auth_cache_ttl;
    int auth_cache_max;
    const char *token_keys; /* JWK Set file */
    const char *token_cookie;
    int token_leeway;
    int token_max_bytes;
    const char *publish_allow_user;
    const char *publish_token_file;
    const char *admin_allow; /* loopback, any, user:NAME */
    const char *cors_origin;
    int request_timeout;      /* seconds for a FastCGI request's params and body to arrive */
    int keep_conn_timeout;    /* seconds a kept FastCGI connection may wait for its next request */
    int max_params;           /* bytes of FastCGI params per request */
    int max_connections;      /* FastCGI connections open at once */
    const char *socket_mode;  /* octal mode of the --listen Unix socket */
    const char *socket_group; /* its group; NULL: the process's */
    int max_answer_bytes;     /* event bytes in one poll answer (the first event always goes) */
    int drain_timeout;        /* seconds a client may take to read a finished answer */
    int notify_queue_warn;    /* percent of the NOTIFY queue in use that logs a warning */
    /* Channels whose answers a shared cache may keep (comma-separated names, NAME* prefixes,
     * or *); NULL or "": none, every answer is private. */
    const char *cache_public;
} pgfeed_config;

/* Fills cfg from defaults, then PGFEED_* variables, then argv (list flags may repeat;
 * their joined strings live until the next config_load). Returns -1 on bad input
 * (reason printed), 1 when --help or --version was answered, 0 to run. */
int config_load(pgfeed_config *cfg, int argc, char **argv) __attribute__((warn_unused_result));
void config_usage(FILE *out);
/*
 * Calls fn with each set option as its PGFEED_* variable and its value as
 * text, in table order: what a hub inherits from the relay that starts it, and
 * what tells two configurations apart.
 */
void config_each(const pgfeed_config *cfg,
                 void (*fn)(void *ctx, const char *name, const char *value), void *ctx);
/* The OPTIONS section of pgfeed(1) in roff, from the same table (packaging/pgfeed_man.c). */
void config_man_options(FILE *out);

#endif
