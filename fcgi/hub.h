/*
 * hub — one pgfeed daemon per host, user and configuration, found or started
 * by the processes mod_fcgid spawns.
 *
 * mod_fcgid hands each process one request at a time, so without a hub every
 * held long poll or stream would cost a process with its own PostgreSQL
 * connection, LISTEN and cache. With --hub those processes only relay bytes
 * (relay.h) to the hub: the existing daemon (--listen) on a Unix socket.
 *
 * Where it lives: a directory only the spawning user can enter (0700, owned
 * by the effective uid, not a symlink; checked, never repaired), holding
 * hub-KEY.sock and hub-KEY.lock. KEY is SHA-256 (libcrypto) of the uid, the
 * executable and the whole effective configuration (every PGFEED_* setting
 * and libpq's PG* variables), so another database, other settings or another
 * suexec user get another hub, and a secret in the configuration shows only
 * as part of a hash inside the user's own directory.
 *
 Starting one is the relay's job (hub_link.h): under a lock file, the same
 * pgfeed binary is exec'd detached with `--listen SOCKET`, the configuration
 * passed through the environment. A hub's peers' uid must be its own (SO_PEERCRED): anyone
 * who could reach it could pass a forged REMOTE_USER. It leaves after
 * --hub-idle seconds without requests, unlinking its socket under the lock.
 */
#ifndef PGFEED_HUB_H
#define PGFEED_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "config.h"

#define HUB_KEY_HEX 32 /* 128 bits of the SHA-256 in hex: the path must fit sun_path */

typedef struct hub hub;

/*
 * The hub for cfg as seen by this process: computes the key and makes sure
 * the directory is safe (creating it 0700 when missing). NULL, with the
 * reason logged, when the directory is unsafe or unusable.
 */
hub *hub_open(const pgfeed_config *cfg) __attribute__((warn_unused_result));
void hub_free(hub *h);
/* The hub's socket path (valid while h lives). */
const char *hub_socket_path(const hub *h);
/*
 * The process mod_fcgid spawned becomes a relay (relay.h): finds the hub's
 * socket, then execs pgfeed-relay from pgfeed's own directory, a program
 * without libpq, json-c or libcrypto, so a relay keeps little private memory;
 * without it relays in this process. No safe directory: serves fd 0 itself
 * (server_run). Returns the exit status.
 */
int hub_relay(const pgfeed_config *cfg, char **argv);

/*
 * Hex key of a configuration for a uid (out: HUB_KEY_HEX + 1 bytes). env is
 * the environment to take PG* variables from (NULL-terminated, like environ).
 */
int hub_key(const pgfeed_config *cfg, uid_t uid, const char *exe, char *const *env, char *out)
    __attribute__((warn_unused_result));
/* True when dir is a safe place for a hub socket of uid; else why in *why. */
bool hub_dir_is_safe(const char *dir, uid_t uid, const char **why);

/* ---- the hub's own side (server.c) ---- */

/* True when this process is a hub: --hub with --listen. */
bool hub_is_serving(const pgfeed_config *cfg);
/* True when the peer of a connected Unix socket runs as our effective uid. */
bool hub_peer_allowed(int fd);
/*
 * An idle hub leaves: under the lock (so no relay is starting a new hub on
 * the same path meanwhile), unlinks the socket. A relay replaces the socket
 * only after a connect was refused under that lock, which a live hub never
 * does, so the file is still this hub's. Returns false when the lock is busy:
 * stay and try again later.
 */
bool hub_retire(const char *socket_path) __attribute__((warn_unused_result));

#endif
