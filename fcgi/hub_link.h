/*
 * hub_link — a relay's way to its hub: connect, or start the hub first.
 *
 * Separate from hub.c so that pgfeed-relay, the small program a relay runs
 * as, needs no libcrypto: the key and the directory checks
 * are done by pgfeed before it hands over (hub.h).
 *
 * Starting one: the relay takes the lock file next to the socket (flock),
 * tries once more (whoever held the lock may have started it), replaces a
 * socket nobody listens on (a hub that died: connect refused under the lock,
 * which a live hub never does), and execs pgfeed detached with `--listen
 * SOCKET`, the configuration passed through the environment, never on the
 * command line; then waits until the socket answers.
 */
#ifndef PGFEED_HUB_LINK_H
#define PGFEED_HUB_LINK_H

#include "config.h"

/* How pgfeed tells pgfeed-relay where the hub is and what becomes one. */
#define HUB_LINK_SOCKET_ENV "PGFEED_HUB_SOCKET"
#define HUB_LINK_EXE_ENV "PGFEED_HUB_EXE"

typedef struct hub_link {
    const pgfeed_config *cfg;
    const char *socket_path; /* DIR/hub-KEY.sock, in a directory hub_open checked */
    const char *exe;         /* pgfeed, which becomes the hub */
} hub_link;

/*
 * A connected, blocking socket to the hub, starting the hub first if none
 * listens. -1 with the reason logged when there is no hub to be had.
 */
int hub_link_connect(const hub_link *link) __attribute__((warn_unused_result));
/* The lock file of a hub socket (malloc'd), or NULL when the path is not *.sock. */
char *hub_link_lock_path(const char *socket_path);

#endif
