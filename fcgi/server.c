/*
 * server — the process's event loop and its three modes: CGI, FastCGI on an
 * inherited socket, FastCGI daemon on --listen (see server.h).
 */
#include "server.h"
#include "db.h"
#include "event_loop.h"
#include "fcgi_io.h"
#include "feed_cache.h"
#include "guard.h"
#include "hub.h"
#include "log.h"
#include "metrics.h"
#include "request.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TICK_MS 100         /* deadlines and heartbeats are checked this often */
#define ACCEPTS_PER_TURN 64 /* so a burst of connections cannot starve held requests */
#define CACHE_SWEEP_MS 5000
#define SHUTDOWN_GRACE_MS 5000
#define LISTEN_BACKLOG 1024

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reload_requested; /* SIGHUP: re-read --token-keys */

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void on_reload_signal(int sig)
{
    (void)sig;
    reload_requested = 1;
}

typedef struct server {
    const pgfeed_config *cfg;
    event_loop *loop;
    db *database;
    feed_cache *cache;
    guard *guard;
    metrics stats;
    request_registry *requests;
    event_watch listener;
} server;

static void server_on_db_up(void *ctx)
{
    server *s = ctx;
    feed_cache_on_db_up(s->cache);
    if (s->requests)
        request_on_database(s->requests, true);
}

static void server_on_db_down(void *ctx)
{
    server *s = ctx;
    feed_cache_on_db_down(s->cache);
    if (s->requests)
        request_on_database(s->requests, false);
}

static void server_on_notify(void *ctx, const char *channel, int64_t version)
{
    server *s = ctx;
    s->stats.notifications++;
    feed_cache_on_notify(s->cache, channel, version);
}

static void server_on_reset(void *ctx, const char *channel)
{
    server *s = ctx;
    feed_cache_on_reset(s->cache, channel);
}

static void server_on_pruned(void *ctx, const char *channel, int64_t oldest)
{
    server *s = ctx;
    feed_cache_on_pruned(s->cache, channel, oldest);
}

static void server_on_listener(void *data, uint32_t events)
{
    server *s = data;
    for (int i = 0; i < ACCEPTS_PER_TURN; i++) {
        bool would_block = false;
        fcgi_conn *conn = fcgi_io_accept(s->listener.fd, (size_t)s->cfg->max_body, &would_block);
        if (!conn) {
            if (would_block)
                return;
            continue; /* a broken connection; others may be waiting */
        }
        /* issue 11: a hub serves its own user's relays only (hub.h) */
        if (hub_is_serving(s->cfg) && !hub_peer_allowed(fcgi_conn_fd(conn))) {
            fcgi_conn_close(conn);
            continue;
        }
        request_start(s->requests, conn);
    }
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    /* After FCGX_Init, which installs its own SIGTERM handler that only sets a private flag. */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_reload_signal;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a departed server shows as EPIPE on write */
}

static int server_open_listener(server *s)
{
    int fd;
    if (s->cfg->listen) {
        fd = fcgi_io_listen(s->cfg->listen, LISTEN_BACKLOG);
        if (fd < 0)
            return -1;
        log_info(0, "listening on %s", s->cfg->listen);
    } else {
        fd = 0;
        if (fcgi_io_prepare_listener(fd) < 0)
            return -1;
    }
    s->listener = (event_watch){.fd = fd, .handler = server_on_listener, .data = s};
    return event_loop_watch(s->loop, &s->listener, EPOLLIN);
}

static void server_free(server *s)
{
    request_registry_free(s->requests);
    feed_cache_free(s->cache);
    guard_free(s->guard);
    db_free(s->database);
    event_loop_free(s->loop);
}

int server_run(const pgfeed_config *cfg)
{
    if (fcgi_io_init() < 0)
        return 1;
    install_signals();
    bool cgi = !cfg->listen && !fcgi_io_is_fastcgi();

    server s;
    memset(&s, 0, sizeof s);
    s.cfg = cfg;
    /* Bad authorization settings stop pgfeed before it serves anything. */
    char err[512];
    s.guard = guard_new(cfg, err, sizeof err);
    if (!s.guard) {
        log_error(0, "%s", err);
        return 2;
    }
    const char *advice = guard_closed_advice(s.guard);
    if (advice && !cgi)
        log_warn(0, "%s", advice);
    s.loop = event_loop_new();
    if (!s.loop) {
        guard_free(s.guard);
        return 1;
    }
    db_callbacks callbacks = {.ctx = &s,
                              .up = server_on_db_up,
                              .down = server_on_db_down,
                              .notify = server_on_notify,
                              .pruned = server_on_pruned,
                              .reset = server_on_reset};
    s.database = db_new(s.loop, cfg->db, &callbacks);
    feed_cache_limits limits = {.ring_events = (size_t)cfg->ring_events,
                                .ring_bytes = (size_t)cfg->ring_bytes,
                                .read_batch = cfg->max_limit,
                                .idle_ms = 60000};
    s.cache = feed_cache_new(s.database, &limits);
    s.requests = request_registry_new(s.loop, s.cache, s.database, cfg, &s.stats, s.guard);
    s.listener.fd = -1;

    /* A daemon that cannot listen says so before it touches the database. */
    if (!cgi && server_open_listener(&s) < 0) {
        server_free(&s);
        return 1;
    }
    int64_t now = clock_now_ms();
    db_tick(s.database, now);
    if (cgi)
        request_start(s.requests, fcgi_io_cgi((size_t)cfg->max_body));

    int64_t last_cache_sweep = now, last_prune = now, last_sweep = now, stop_deadline = 0;
    int64_t busy_at = now;
    while (true) {
        /* Streams with more to write must not wait a tick for the next turn. */
        event_loop_run_once(s.loop, request_registry_has_ready(s.requests) ? 0 : TICK_MS);
        now = clock_now_ms();
        db_tick(s.database, now);
        /* The sweep walks every request: once a tick, not once per wake-up. */
        if (now - last_sweep >= TICK_MS) {
            request_sweep(s.requests, now);
            last_sweep = now;
        }
        if (reload_requested) {
            reload_requested = 0;
            if (guard_reload_keys(s.guard, err, sizeof err) < 0)
                log_error(0, "SIGHUP: keeping the old token keys: %s", err);
            else
                log_info(0, "SIGHUP: token keys re-read");
        }
        if (stop_requested && !stop_deadline) {
            log_info(0, "stopping: answering %zu held requests", request_registry_held(s.requests));
            if (s.listener.fd >= 0)
                event_loop_unwatch(s.loop, &s.listener);
            request_shutdown(s.requests);
            stop_deadline = now + SHUTDOWN_GRACE_MS;
        }
        if (now - last_cache_sweep >= CACHE_SWEEP_MS) {
            feed_cache_sweep(s.cache, now);
            last_cache_sweep = now;
        }
        if (cfg->prune_interval && !cgi &&
            now - last_prune >= (int64_t)cfg->prune_interval * 1000) {
            db_prune(s.database);
            last_prune = now;
        }
        request_run_ready(s.requests);
        request_reap(s.requests);
        /* issue 11: a hub idle for --hub-idle s unlinks its socket, takes what
         * reached it before that, and stops like on SIGTERM (hub.h) */
        if (request_registry_active(s.requests))
            busy_at = now;
        else if (hub_is_serving(cfg) && !stop_deadline &&
                 now - busy_at >= (int64_t)cfg->hub_idle * 1000) {
            busy_at = now;
            if (hub_retire(cfg->listen)) {
                log_info(0, "hub: idle for %d s, leaving", cfg->hub_idle);
                server_on_listener(&s, EPOLLIN);
                stop_requested = 1;
            }
        }
        if (cgi && request_registry_active(s.requests) == 0)
            break;
        if (stop_deadline && (request_registry_active(s.requests) == 0 || now >= stop_deadline))
            break;
    }
    server_free(&s);
    return 0;
}
