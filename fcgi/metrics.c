/*
 * metrics — Prometheus text exposition of pgfeed's counters (see metrics.h).
 */
#include "metrics.h"

#include <inttypes.h>

void metrics_count_status(metrics *m, int status)
{
    if (status == 304)
        m->responses_304++;
    else if (status >= 500)
        m->responses_5xx++;
    else if (status >= 400)
        m->responses_4xx++;
    else
        m->responses_2xx++;
}

typedef struct metric_row {
    const char *name;
    const char *type; /* NULL: another sample of the family above */
    const char *help;
    const char *labels;
    uint64_t value;
} metric_row;

void metrics_render(const metrics *m, const metrics_snapshot *s, buf *out)
{
    const metric_row rows[] = {
        {"pgfeed_requests_total", "counter", "Feed requests by transport.", "{transport=\"poll\"}",
         m->requests_poll},
        {"pgfeed_requests_total", NULL, NULL, "{transport=\"long_poll\"}", m->requests_long_poll},
        {"pgfeed_requests_total", NULL, NULL, "{transport=\"sse\"}", m->requests_sse},
        {"pgfeed_requests_total", NULL, NULL, "{transport=\"other\"}", m->requests_other},
        {"pgfeed_responses_total", "counter", "Answers by status class.", "{status=\"2xx\"}",
         m->responses_2xx},
        {"pgfeed_responses_total", NULL, NULL, "{status=\"304\"}", m->responses_304},
        {"pgfeed_responses_total", NULL, NULL, "{status=\"4xx\"}", m->responses_4xx},
        {"pgfeed_responses_total", NULL, NULL, "{status=\"5xx\"}", m->responses_5xx},
        {"pgfeed_held_requests", "gauge", "Long polls and streams held now.", NULL, s->held_now},
        {"pgfeed_held_rejected_total", "counter",
         "Requests refused with 503 because the held limit was reached.", NULL, m->held_rejected},
        {"pgfeed_events_delivered_total", "counter", "Events written to clients.", NULL,
         m->events_delivered},
        {"pgfeed_notifications_total", "counter", "NOTIFY messages received.", NULL,
         m->notifications},
        {"pgfeed_departed_clients_total", "counter",
         "Held requests whose server connection closed before the answer.", NULL,
         m->departed_clients},
        {"pgfeed_slow_streams_ended_total", "counter",
         "Streams ended because the reader fell too far behind.", NULL, m->slow_streams_ended},
        {"pgfeed_undrained_closed_total", "counter",
         "Clients closed for not reading their answer within --drain-timeout.", NULL,
         m->undrained_closed},
        {"pgfeed_fastcgi_connections", "gauge", "FastCGI connections open (reading or served).",
         NULL, m->fcgi_connections},
        {"pgfeed_fastcgi_accepted_total", "counter", "FastCGI connections accepted.", NULL,
         m->fcgi_accepted},
        {"pgfeed_fastcgi_closed_total", "counter",
         "FastCGI connections closed by the intake, by reason.", "{reason=\"max_connections\"}",
         m->fcgi_refused},
        {"pgfeed_fastcgi_closed_total", NULL, NULL, "{reason=\"request_timeout\"}",
         m->fcgi_timed_out},
        {"pgfeed_fastcgi_closed_total", NULL, NULL, "{reason=\"params_too_large\"}",
         m->fcgi_too_large},
        {"pgfeed_fastcgi_closed_total", NULL, NULL, "{reason=\"protocol_error\"}",
         m->fcgi_protocol_errors},
        {"pgfeed_fastcgi_kept_requests_total", "counter",
         "Requests that came over a kept (FCGI_KEEP_CONN) connection.", NULL,
         m->fcgi_kept_requests},
        {"pgfeed_accept_fd_exhausted_total", "counter",
         "Episodes of accept() failing at the descriptor limit (listener paused).", NULL,
         m->fcgi_fd_exhausted},
        {"pgfeed_fds_limit", "gauge", "Descriptor limit (soft RLIMIT_NOFILE, raised to hard).",
         NULL, m->fds_limit},
        {"pgfeed_fds_open", "gauge", "Descriptors open.", NULL, m->fds_open},
        {"pgfeed_fds_margin", "gauge", "Descriptors left before the limit.", NULL,
         m->fds_limit > m->fds_open ? m->fds_limit - m->fds_open : 0},
        {"pgfeed_database_up", "gauge", "1 when the LISTEN connection is up.", NULL, s->db_up},
        {"pgfeed_database_queries_total", "counter",
         "Statements sent to PostgreSQL for the feed (the sequencer's are counted apart).", NULL,
         s->db_queries},
        {"pgfeed_database_queue", "gauge", "Statements waiting for the connection.", NULL,
         s->db_queue},
        {"pgfeed_channels_cached", "gauge", "Channels held in memory.", NULL, s->channels_cached},
        {"pgfeed_cache_hits_total", "counter", "Reads answered from memory.", NULL, s->cache_hits},
        {"pgfeed_cache_misses_total", "counter",
         "Channels read from PostgreSQL (a head load or a read of events, one each).", NULL,
         s->cache_misses},
        {"pgfeed_catchup_total", "counter",
         "Reads of clients behind the ring, by how they were served.", "{served=\"read\"}",
         m->catchup_reads},
        {"pgfeed_catchup_total", NULL, NULL, "{served=\"joined\"}", m->catchup_joined},
        {"pgfeed_catchup_total", NULL, NULL, "{served=\"kept\"}", m->catchup_hits},
        {"pgfeed_cache_bytes", "gauge",
         "Bytes the channel cache holds (entries, names, ring slots and events, table).", NULL,
         s->cache_bytes},
        {"pgfeed_cache_budget_bytes", "gauge", "--cache-bytes.", NULL, s->cache_budget},
        {"pgfeed_cache_evictions_total", "counter",
         "Channels without subscribers evicted to keep within --cache-bytes.", NULL,
         s->cache_evictions},
        {"pgfeed_cache_ring_trims_total", "counter",
         "Rings of subscribed channels emptied to keep within --cache-bytes.", NULL,
         s->cache_ring_trims},
        {"pgfeed_head_loads_total", "counter", "Channels loaded through head batches.", NULL,
         s->head_loads},
        {"pgfeed_head_queries_total", "counter", "Head batches sent (one statement each).", NULL,
         s->head_queries},
        {"pgfeed_head_loads_waiting", "gauge", "Channels queued for a head batch or in flight.",
         NULL, s->head_loads_waiting},
        {"pgfeed_sequenced_total", "counter",
         "Outbox events this process moved into the feed (pgfeed.sequence).", NULL, m->sequenced},
        {"pgfeed_sequencer", "gauge", "1 while this process holds the outbox sequencer.", NULL,
         m->sequencer_held},
        {"pgfeed_sequencer_queries_total", "counter",
         "Statements the sequencer sent (not in pgfeed_database_queries_total).", NULL,
         m->sequencer_statements},
        {"pgfeed_head_load_rejected_total", "counter",
         "Channel loads refused with 503 because --load-queue channels were waiting.", NULL,
         s->head_load_rejected},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const metric_row *r = &rows[i];
        if (r->type)
            buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", r->name, r->help, r->name, r->type);
        buf_printf(out, "%s%s %" PRIu64 "\n", r->name, r->labels ? r->labels : "", r->value);
    }
    /* The one ratio: how full PostgreSQL's NOTIFY queue is (alert well before 1). */
    buf_printf(out,
               "# HELP pgfeed_notify_queue_usage Fraction of PostgreSQL's NOTIFY queue in use.\n"
               "# TYPE pgfeed_notify_queue_usage gauge\npgfeed_notify_queue_usage %.6f\n",
               m->notify_queue_usage);
}
