/*
 * server — the process's event loop and its three modes: CGI, FastCGI on an
 * inherited socket, FastCGI daemon on --listen (see server.h).
 */
#include "server.h"
#include "db.h"
#include "event_loop.h"
#include "fcgi_io.h"
#include "fcgi_listen.h"
#include "feed_cache.h"
#include "guard.h"
#include "hub.h"
#include "log.h"
#include "metrics.h"
#include "request.h"
#include "sequencer.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define TICK_MS 100   /* deadlines and heartbeats are checked this often */
#define FD_RESERVE 64 /* descriptors kept for the database, logs, the listener and accept */
#define CACHE_SWEEP_MS 5000
#define SHUTDOWN_GRACE_MS 5000
/* As deep as the kernel allows (net.core.somaxconn caps it): lighttpd opens a
 * connection per request, and 8,000 re-polls after one publish overflowed 1,024. */
#define LISTEN_BACKLOG SOMAXCONN

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reload_requested; /* SIGHUP: --token-keys, --log-level-file */

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
    int listen_fd;
    fcgi_intake *intake;
    sequencer *sequencer;     /* issue 14: the outbox's sequencer, if this process gets the job */
    bool notify_queue_warned; /* above --notify-queue-warn since the last warning */
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

static void server_on_request(void *ctx, fcgi_conn *conn)
{
    server *s = ctx;
    request_start(s->requests, conn);
}

/*
 * Raises the soft descriptor limit to the hard one: every held request is a
 * descriptor, and the common soft limit of 1024 would be reached by ~1,000
 * long polls. Returns the limit now in force.
 */
static size_t raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit want = {.rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &want) == 0)
            rl.rlim_cur = rl.rlim_max;
        else
            log_warn(0, "cannot raise the descriptor limit to %llu: %s",
                     (unsigned long long)rl.rlim_max, strerror(errno));
    }
    return rl.rlim_cur == RLIM_INFINITY ? (size_t)1 << 20 : (size_t)rl.rlim_cur;
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
    const pgfeed_config *cfg = s->cfg;
    int fd;
    if (cfg->listen) {
        char *end;
        unsigned long mode = strtoul(cfg->socket_mode ? cfg->socket_mode : "0660", &end, 8);
        if (*end || mode > 0777) {
            log_error(0, "--socket-mode %s: expected an octal mode such as 0660", cfg->socket_mode);
            return -1;
        }
        fcgi_listen_options opts = {.mode = (unsigned)mode, .group = cfg->socket_group};
        fd = fcgi_listen_open(cfg->listen, LISTEN_BACKLOG, &opts);
        if (fd < 0)
            return -1;
        log_info(0, "listening on %s", cfg->listen);
    } else {
        fd = 0;
        if (fcgi_listen_prepare(fd) < 0)
            return -1;
    }
    s->listen_fd = fd;
    size_t max_connections = (size_t)cfg->max_connections;
    if (s->stats.fds_limit > FD_RESERVE && max_connections > s->stats.fds_limit - FD_RESERVE) {
        max_connections = s->stats.fds_limit - FD_RESERVE;
        log_info(0, "--max-connections %d lowered to %zu by the descriptor limit %zu",
                 cfg->max_connections, max_connections, s->stats.fds_limit);
    }
    fcgi_intake_limits limits = {.max_params = (size_t)cfg->max_params,
                                 .max_body = (size_t)cfg->max_body,
                                 .request_timeout_ms = cfg->request_timeout * 1000,
                                 .idle_timeout_ms = cfg->keep_conn_timeout * 1000,
                                 .max_connections = max_connections};
    s->intake = fcgi_intake_new(s->loop, fd, &limits, server_on_request, s);
    /* issue 11: a hub serves its own user's relays only, checked before it reads a byte (hub.h) */
    if (s->intake && hub_is_serving(s->cfg))
        fcgi_intake_filter_peers(s->intake, hub_peer_allowed);
    return s->intake ? 0 : -1;
}

/* Copies what the intake and the process know into the metrics /_metrics renders. */
static void server_update_metrics(server *s)
{
    if (s->intake) {
        const fcgi_intake_stats *in = fcgi_intake_get_stats(s->intake);
        s->stats.fcgi_accepted = in->accepted;
        s->stats.fcgi_refused = in->refused;
        s->stats.fcgi_timed_out = in->timed_out;
        s->stats.fcgi_too_large = in->too_large;
        s->stats.fcgi_protocol_errors = in->protocol_errors;
        s->stats.fcgi_kept_requests = in->kept_requests;
        s->stats.fcgi_fd_exhausted = in->fd_exhausted;
        s->stats.fcgi_connections = in->open;
    }
    double usage = db_notify_queue_usage(s->database);
    double warn = s->cfg->notify_queue_warn / 100.0;
    if (usage >= warn && !s->notify_queue_warned) {
        log_warn(0,
                 "PostgreSQL's NOTIFY queue is %.1f%% full (warning at %d%%): a listening session "
                 "is not reading (see pg_stat_activity for the oldest LISTEN backend); when it is "
                 "full, every transaction that publishes fails",
                 usage * 100, s->cfg->notify_queue_warn);
        s->notify_queue_warned = true;
    } else if (usage < warn / 2 && s->notify_queue_warned) {
        log_info(0, "PostgreSQL's NOTIFY queue is down to %.1f%%", usage * 100);
        s->notify_queue_warned = false;
    }
    s->stats.notify_queue_usage = usage;
    s->stats.sequenced = sequencer_moved(s->sequencer);
    s->stats.sequencer_held = sequencer_holds(s->sequencer);
    s->stats.sequencer_statements = sequencer_statements(s->sequencer);
}

static void server_free(server *s)
{
    sequencer_free(s->sequencer);
    request_registry_free(s->requests);
    fcgi_intake_free(s->intake);
    feed_cache_free(s->cache);
    guard_free(s->guard);
    db_free(s->database);
    event_loop_free(s->loop);
}

/* --log-level-file, at start and on SIGHUP; a bad file changes nothing. 1: none given. */
static int server_read_log_level(const pgfeed_config *cfg, log_level *level, char *err,
                                 size_t err_len)
{
    if (!cfg->log_level_file)
        return 1;
    if (log_level_read(cfg->log_level_file, level, err, err_len) < 0)
        return -1;
    log_set_level(*level);
    return 0;
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
    log_level level;
    if (server_read_log_level(cfg, &level, err, sizeof err) < 0) {
        log_error(0, "%s", err);
        return 2;
    }
    s.guard = guard_new(cfg, err, sizeof err);
    if (!s.guard) {
        log_error(0, "%s", err);
        return 2;
    }
    const char *advice = guard_closed_advice(s.guard);
    if (advice && !cgi)
        log_warn(0, "%s", advice);
    s.stats.fds_limit = raise_fd_limit();
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
                                .ring_ms = (int64_t)cfg->ring_seconds * 1000,
                                .read_batch = cfg->max_limit,
                                .idle_ms = 60000,
                                .cache_bytes = (size_t)cfg->cache_bytes,
                                .load_queue = (size_t)cfg->load_queue,
                                .load_batch = (size_t)cfg->load_batch};
    s.cache = feed_cache_new(s.database, &limits);
    s.requests = request_registry_new(s.loop, s.cache, s.database, cfg, &s.stats, s.guard);
    s.sequencer = sequencer_new(s.database, cgi ? 0 : cfg->sequence_ms, cfg->sequence_batch);
    s.listen_fd = -1;

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
        int64_t wait = sequencer_timeout_ms(s.sequencer, now);
        if (wait < 0 || wait > TICK_MS)
            wait = TICK_MS;
        event_loop_run_once(s.loop, request_registry_has_ready(s.requests) ? 0 : (int)wait);
        now = clock_now_ms();
        db_tick(s.database, now);
        sequencer_tick(s.sequencer, now);
        if (s.intake)
            fcgi_intake_tick(s.intake, now);
        server_update_metrics(&s);
        /* The sweep walks every request: once a tick, not once per wake-up. */
        if (now - last_sweep >= TICK_MS) {
            request_sweep(s.requests, now);
            last_sweep = now;
        }
        if (reload_requested) {
            reload_requested = 0;
            /* The level first: what the rest of the reload logs is at the new one. */
            int read = server_read_log_level(cfg, &level, err, sizeof err);
            if (read < 0)
                log_error(0, "SIGHUP: keeping the old log level: %s", err);
            else if (read == 0) /* warn: still shown after a switch to warn */
                log_warn(0, "SIGHUP: log level %s", log_level_name(level));
            if (guard_reload_keys(s.guard, err, sizeof err) < 0)
                log_error(0, "SIGHUP: keeping the old token keys: %s", err);
            else
                log_info(0, "SIGHUP: token keys re-read");
        }
        if (stop_requested && !stop_deadline) {
            log_info(0, "stopping: answering %zu held requests", request_registry_held(s.requests));
            if (s.intake)
                fcgi_intake_stop(s.intake);
            request_shutdown(s.requests);
            stop_deadline = now + SHUTDOWN_GRACE_MS;
        }
        if (now - last_cache_sweep >= CACHE_SWEEP_MS) {
            feed_cache_sweep(s.cache, now);
            if (!cgi)
                db_check_notify_queue(s.database);
            last_cache_sweep = now;
        }
        if (cfg->prune_interval && !cgi &&
            now - last_prune >= (int64_t)cfg->prune_interval * 1000) {
            db_prune(s.database);
            last_prune = now;
        }
        request_run_ready(s.requests);
        feed_cache_end_turn(s.cache); /* this turn's head batch; evictions for the budget */
        request_reap(s.requests);
        /* issue 11: a hub idle for --hub-idle s unlinks its socket and stops like
         * on SIGTERM (hub.h); a relay that connected in that instant gets 503 +
         * Retry-After from its relay and comes back to a new hub */
        if (request_registry_active(s.requests))
            busy_at = now;
        else if (hub_is_serving(cfg) && !stop_deadline &&
                 now - busy_at >= (int64_t)cfg->hub_idle * 1000) {
            busy_at = now;
            if (hub_retire(cfg->listen)) {
                log_info(0, "hub: idle for %d s, leaving", cfg->hub_idle);
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
