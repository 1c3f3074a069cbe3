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

static void metric(buf *out, const char *name, const char *type, const char *help,
                   const char *labels, uint64_t value)
{
    if (help)
        buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    buf_printf(out, "%s%s %" PRIu64 "\n", name, labels ? labels : "", value);
}

void metrics_render(const metrics *m, const metrics_snapshot *s, buf *out)
{
    const char *requests = "pgfeed_requests_total";
    metric(out, requests, "counter", "Feed requests by transport.", "{transport=\"poll\"}",
           m->requests_poll);
    metric(out, requests, NULL, NULL, "{transport=\"long_poll\"}", m->requests_long_poll);
    metric(out, requests, NULL, NULL, "{transport=\"sse\"}", m->requests_sse);
    metric(out, requests, NULL, NULL, "{transport=\"other\"}", m->requests_other);
    const char *responses = "pgfeed_responses_total";
    metric(out, responses, "counter", "Answers by status class.", "{status=\"2xx\"}",
           m->responses_2xx);
    metric(out, responses, NULL, NULL, "{status=\"304\"}", m->responses_304);
    metric(out, responses, NULL, NULL, "{status=\"4xx\"}", m->responses_4xx);
    metric(out, responses, NULL, NULL, "{status=\"5xx\"}", m->responses_5xx);
    metric(out, "pgfeed_held_requests", "gauge", "Long polls and streams held now.", NULL,
           m->held_now);
    metric(out, "pgfeed_held_rejected_total", "counter",
           "Requests refused with 503 because the held limit was reached.", NULL, m->held_rejected);
    metric(out, "pgfeed_events_delivered_total", "counter", "Events written to clients.", NULL,
           m->events_delivered);
    metric(out, "pgfeed_notifications_total", "counter", "NOTIFY messages received.", NULL,
           m->notifications);
    metric(out, "pgfeed_departed_clients_total", "counter",
           "Held requests whose server connection closed before the answer.", NULL,
           m->departed_clients);
    metric(out, "pgfeed_slow_streams_ended_total", "counter",
           "Streams ended because the reader fell too far behind.", NULL, m->slow_streams_ended);
    metric(out, "pgfeed_database_up", "gauge", "1 when the LISTEN connection is up.", NULL,
           s->db_up);
    metric(out, "pgfeed_database_queries_total", "counter", "Statements sent to PostgreSQL.", NULL,
           s->db_queries);
    metric(out, "pgfeed_database_queue", "gauge", "Statements waiting for the connection.", NULL,
           s->db_queue);
    metric(out, "pgfeed_channels_cached", "gauge", "Channels held in memory.", NULL,
           s->channels_cached);
    metric(out, "pgfeed_cache_hits_total", "counter", "Reads answered from memory.", NULL,
           s->cache_hits);
    metric(out, "pgfeed_cache_misses_total", "counter", "Channel reads sent to PostgreSQL.", NULL,
           s->cache_misses);
}
