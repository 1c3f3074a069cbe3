/*
 * admin — GET /_health (a database round trip) and GET /_metrics (Prometheus text).
 */
#include "request_private.h"
#include "feed_format.h"

#include <dirent.h>
#include <string.h>

/*
 * Descriptors open now, for the margin /_metrics shows. Counted when asked: a
 * readdir of /proc/self/fd walks every descriptor (8,000 held requests made a
 * once-a-second count 5.6 % of the loop's time, with nobody answered meanwhile);
 * /_metrics is for --admin-allow's scrapers only, so a scrape pays it.
 */
static size_t admin_count_open_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    if (!dir)
        return 0;
    size_t n = 0;
    for (struct dirent *e; (e = readdir(dir));)
        n += e->d_name[0] != '.';
    closedir(dir);
    return n > 0 ? n - 1 : 0; /* the directory's own descriptor */
}

static void admin_on_ping(void *ctx, bool ok)
{
    request *r = ctx;
    r->query = NULL;
    if (!ok) {
        request_fail_unavailable(r);
        return;
    }
    buf body = BUF_INIT;
    feed_format_health(&body);
    request_respond(r, 200, "application/json", NULL, body.data, body.len);
    buf_free(&body);
}

void admin_metrics_answer(request *r)
{
    request_registry *reg = r->reg;
    feed_cache_stats cache;
    feed_cache_get_stats(reg->cache, &cache);
    metrics_snapshot snap = {.db_up = db_is_up(reg->database),
                             .db_queries = db_queries_sent(reg->database),
                             .db_queue = db_queue_length(reg->database),
                             .channels_cached = feed_cache_channel_count(reg->cache),
                             .cache_hits = feed_cache_hits(reg->cache),
                             .cache_misses = feed_cache_misses(reg->cache),
                             .cache_bytes = cache.bytes,
                             .cache_budget = (size_t)reg->cfg->cache_bytes,
                             .cache_evictions = cache.evictions,
                             .cache_ring_trims = cache.ring_trims,
                             .head_loads = cache.head_loads,
                             .head_queries = cache.head_queries,
                             .head_loads_waiting = cache.loads_waiting,
                             .head_load_rejected = cache.load_rejected,
                             .held_now = request_registry_held(reg)};
    reg->stats->fds_open = admin_count_open_fds();
    buf body = BUF_INIT;
    metrics_render(reg->stats, &snap, &body);
    request_respond(r, 200, "text/plain; version=0.0.4", NULL, body.data, body.len);
    buf_free(&body);
}

void admin_health_start(request *r)
{
    request_set_state(r, REQ_WAITING_DB);
    r->query = db_ping(r->reg->database, admin_on_ping, r);
    if (!r->query)
        request_fail_unavailable(r);
}
