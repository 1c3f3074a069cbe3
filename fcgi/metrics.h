/*
 * metrics — the process's counters and gauges, rendered for Prometheus.
 *
 * Plain fields bumped where things happen; /_metrics renders them with the
 * values only other modules know (cache, database) passed in at render time.
 */
#ifndef PGFEED_METRICS_H
#define PGFEED_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef struct metrics {
    uint64_t requests_poll;
    uint64_t requests_long_poll;
    uint64_t requests_sse;
    uint64_t requests_other;
    uint64_t responses_2xx;
    uint64_t responses_304;
    uint64_t responses_4xx;
    uint64_t responses_5xx;
    uint64_t events_delivered;
    uint64_t notifications;
    uint64_t departed_clients;
    uint64_t slow_streams_ended;
    uint64_t held_rejected;
    uint64_t undrained_closed; /* answers not read within --drain-timeout */
    /* Catch-up reads behind the ring (catchup.h): started, joined in flight, served kept. */
    uint64_t catchup_reads;
    uint64_t catchup_joined;
    uint64_t catchup_hits;
    /* FastCGI intake (fcgi_intake_stats, copied by the server each turn) */
    uint64_t fcgi_accepted;
    uint64_t fcgi_refused;
    uint64_t fcgi_timed_out;
    uint64_t fcgi_too_large;
    uint64_t fcgi_protocol_errors;
    uint64_t fcgi_kept_requests;
    uint64_t fcgi_fd_exhausted;
    size_t fcgi_connections;
    size_t fds_limit; /* RLIMIT_NOFILE after raising it */
    size_t fds_open;
    double notify_queue_usage; /* pg_notification_queue_usage(), 0..1, checked periodically */
    uint64_t sequenced;        /* outbox events this process moved into the feed (sequencer.h) */
    bool sequencer_held;       /* this process holds the sequencer lock */
    uint64_t sequencer_statements; /* lock tries and pgfeed.sequence calls */
} metrics;

typedef struct metrics_snapshot {
    bool db_up;
    uint64_t db_queries;
    size_t db_queue;
    size_t channels_cached;
    uint64_t cache_hits;
    uint64_t cache_misses;
    /* the channel cache's budget and head batches (feed_cache_stats) */
    size_t cache_bytes;
    size_t cache_budget;
    uint64_t cache_evictions;
    uint64_t cache_ring_trims;
    uint64_t head_loads;
    uint64_t head_queries;
    size_t head_loads_waiting;
    uint64_t head_load_rejected;
    size_t held_now; /* long polls and streams, counted by the request registry */
} metrics_snapshot;

void metrics_count_status(metrics *m, int status);
void metrics_render(const metrics *m, const metrics_snapshot *s, buf *out);

#endif
