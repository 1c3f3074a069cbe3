/*
 * relay — a process mod_fcgid spawned, passing its connections to the hub.
 *
 * With --hub on an inherited socket, pgfeed does not serve requests itself:
 * for each connection mod_fcgid makes on fd 0 it connects to the host's hub
 * (hub.h, started on demand) and copies the FastCGI bytes both ways, unparsed,
 * until the hub ends the answer. So it holds no PostgreSQL connection, no
 * cache and no parsed request, only two bounded buffers, and never blocks
 * forever: poll() with --relay-timeout over both sockets.
 *
 * The one thing it reads is the request id in the first record header, so
 * that when the hub goes away before answering (killed, crashed) the relay can
 * answer 503 with Retry-After itself, and the client retries against the next
 * hub instead of getting Apache's 500. If no hub can be had at all (unsafe
 * socket directory, a hub that does not start), the process logs why and
 * serves requests itself, as without --hub.
 *
 * It runs as pgfeed-relay (relay_main.c), exec'd by pgfeed once the hub's
 * socket is known (hub_relay): that program links only libc and json-c, since
 * the relocated data of libpq's and OpenSSL's libraries would otherwise be
 * most of a relay's private memory.
 */
#ifndef PGFEED_RELAY_H
#define PGFEED_RELAY_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "hub_link.h"

/* How one relayed connection ended. */
typedef enum relay_end {
    RELAY_ANSWERED,    /* the hub answered and closed; everything reached the server */
    RELAY_HUB_LOST,    /* the hub closed before answering: the relay answered 503 */
    RELAY_SERVER_GONE, /* the web server closed or reset (its client left) */
    RELAY_TIMEOUT,     /* nothing moved either way for relay_timeout seconds */
    RELAY_STOPPED,     /* SIGTERM or SIGINT arrived */
} relay_end;

/* True when this process should relay: --hub, no --listen, fd 0 a listening socket. */
bool relay_wanted(const pgfeed_config *cfg);
/*
 * Relays fd 0's connections to the hub until SIGTERM (returns 0), or until no
 * hub can be had (returns -1, reason logged, the waiting connection still on
 * fd 0 for whoever serves it instead).
 */
int relay_run(const pgfeed_config *cfg, const hub_link *link) __attribute__((warn_unused_result));
/*
 * Copies bytes between a web server's connection and the hub's, both
 * non-blocking, buffering at most buffer_size per direction, until one of the
 * ends above. Closes neither.
 */
relay_end relay_copy(int server_fd, int hub_fd, size_t buffer_size, int timeout_ms);

#endif
