/*
 * hub — the hub's key and directory, handing over to the relay, and the hub's
 * own checks (see hub.h).
 */
#define _GNU_SOURCE /* struct ucred */
#include "hub.h"
#include "hub_link.h"
#include "relay.h"
#include "server.h"
#include "log.h"
#include "xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

extern char **environ;

struct hub {
    const pgfeed_config *cfg;
    char *dir;
    char *socket_path;
    char exe[PATH_MAX];
};

/* ---- the key ---- */

static void digest_add(EVP_MD_CTX *md, const char *text)
{
    /* The NUL separates fields, so ("ab","c") and ("a","bc") differ. */
    EVP_DigestUpdate(md, text, strlen(text) + 1);
}

static void digest_setting(void *ctx, const char *name, const char *value)
{
    /* The listen address is what the hub is given, not part of what it serves. */
    if (strcmp(name, "PGFEED_LISTEN") == 0)
        return;
    digest_add(ctx, name);
    digest_add(ctx, value);
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int hub_key(const pgfeed_config *cfg, uid_t uid, const char *exe, char *const *env, char *out)
{
    int rc = -1;
    size_t n_env = 0, n_pg = 0;
    for (char *const *e = env; e && *e; e++)
        n_env++;
    char **pg = xcalloc(n_env + 1, sizeof *pg);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char sum[EVP_MAX_MD_SIZE];
    unsigned int sum_len = 0;
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        goto cleanup;
    char text[64];
    snprintf(text, sizeof text, "pgfeed hub 1 uid %lu", (unsigned long)uid);
    digest_add(md, text);
    digest_add(md, exe);
    config_each(cfg, digest_setting, md);
    /* libpq's own variables choose the database as much as --db does; PGFEED_*
     * ones are in the effective configuration already. Sorted: the order of an
     * environment means nothing. */
    for (size_t i = 0; i < n_env; i++)
        if (strncmp(env[i], "PG", 2) == 0 && strncmp(env[i], "PGFEED_", 7) != 0)
            pg[n_pg++] = env[i];
    qsort(pg, n_pg, sizeof *pg, compare_strings);
    for (size_t i = 0; i < n_pg; i++)
        digest_add(md, pg[i]);
    if (EVP_DigestFinal_ex(md, sum, &sum_len) != 1 || sum_len * 2 < HUB_KEY_HEX)
        goto cleanup;
    for (size_t i = 0; i < HUB_KEY_HEX / 2; i++)
        snprintf(out + 2 * i, 3, "%02x", sum[i]);
    rc = 0;
cleanup:
    EVP_MD_CTX_free(md);
    free(pg);
    return rc;
}

/* ---- the directory ---- */

bool hub_dir_is_safe(const char *dir, uid_t uid, const char **why)
{
    struct stat st;
    if (lstat(dir, &st) < 0) {
        *why = strerror(errno);
        return false;
    }
    if (!S_ISDIR(st.st_mode)) {
        *why = S_ISLNK(st.st_mode) ? "it is a symbolic link" : "it is not a directory";
        return false;
    }
    if (st.st_uid != uid) {
        *why = "it belongs to another user";
        return false;
    }
    if ((st.st_mode & 07777) != 0700) {
        *why = "its mode is not 0700";
        return false;
    }
    return true;
}

static char *path_join(const char *dir, const char *key, const char *suffix)
{
    size_t len = strlen(dir) + strlen(key) + strlen(suffix) + 8;
    char *path = xmalloc(len);
    snprintf(path, len, "%s/hub-%s%s", dir, key, suffix);
    return path;
}

hub *hub_open(const pgfeed_config *cfg)
{
    hub *h = xcalloc(1, sizeof *h);
    h->cfg = cfg;
    uid_t uid = geteuid();
    ssize_t n = readlink("/proc/self/exe", h->exe, sizeof h->exe - 1);
    if (n <= 0) {
        log_error(0, "hub: cannot find this executable (/proc/self/exe): %s", strerror(errno));
        goto fail;
    }
    h->exe[n] = '\0';
    if (cfg->hub_dir && cfg->hub_dir[0]) {
        h->dir = xstrdup(cfg->hub_dir);
    } else {
        char dir[64];
        snprintf(dir, sizeof dir, "/tmp/pgfeed-hub-%lu", (unsigned long)uid);
        h->dir = xstrdup(dir);
    }
    /* Created with the right mode, or found: either way checked, never repaired. A
     * directory someone else made (or loosened) may be theirs to watch. */
    if (mkdir(h->dir, 0700) < 0 && errno != EEXIST) {
        log_error(0, "hub: cannot create the socket directory %s: %s", h->dir, strerror(errno));
        goto fail;
    }
    const char *why;
    if (!hub_dir_is_safe(h->dir, uid, &why)) {
        log_error(0,
                  "hub: refusing the socket directory %s: %s (it must be a directory of uid %lu "
                  "with mode 0700)",
                  h->dir, why, (unsigned long)uid);
        goto fail;
    }
    char key[HUB_KEY_HEX + 1];
    if (hub_key(cfg, uid, h->exe, environ, key) < 0) {
        log_error(0, "hub: SHA-256 of the configuration failed");
        goto fail;
    }
    h->socket_path = path_join(h->dir, key, ".sock");
    struct sockaddr_un sa;
    if (strlen(h->socket_path) >= sizeof sa.sun_path) {
        log_error(0, "hub: socket path %s is longer than %zu bytes; choose a shorter --hub-dir",
                  h->socket_path, sizeof sa.sun_path - 1);
        goto fail;
    }
    return h;
fail:
    hub_free(h);
    return NULL;
}

void hub_free(hub *h)
{
    if (!h)
        return;
    free(h->dir);
    free(h->socket_path);
    free(h);
}

const char *hub_socket_path(const hub *h)
{
    return h->socket_path;
}

int hub_relay(const pgfeed_config *cfg, char **argv)
{
    hub *h = hub_open(cfg);
    if (!h) {
        log_warn(0, "relay: no hub (reason above); this process serves its requests itself");
        return server_run(cfg);
    }
    char helper[PATH_MAX + 16];
    snprintf(helper, sizeof helper, "%s", h->exe);
    char *slash = strrchr(helper, '/');
    snprintf(slash ? slash + 1 : helper, sizeof helper - (size_t)(slash ? slash + 1 - helper : 0),
             "pgfeed-relay");
    setenv(HUB_LINK_SOCKET_ENV, h->socket_path, 1);
    setenv(HUB_LINK_EXE_ENV, h->exe, 1);
    /* Same arguments, so pgfeed-relay reads the very same configuration. */
    char *saved = argv[0];
    argv[0] = helper;
    execv(helper, argv);
    argv[0] = saved;
    log_warn(0, "relay: cannot run %s (%s); relaying from this larger process instead", helper,
             strerror(errno));
    unsetenv(HUB_LINK_SOCKET_ENV);
    unsetenv(HUB_LINK_EXE_ENV);
    hub_link link = {.cfg = cfg, .socket_path = h->socket_path, .exe = h->exe};
    int rc = relay_run(cfg, &link);
    hub_free(h);
    if (rc < 0) {
        log_warn(0, "relay: no hub (reason above); this process serves its requests itself");
        return server_run(cfg);
    }
    return rc;
}

/* ---- the hub's side ---- */

bool hub_is_serving(const pgfeed_config *cfg)
{
    return cfg->hub && cfg->listen;
}

bool hub_peer_allowed(int fd)
{
    struct ucred peer;
    socklen_t len = sizeof peer;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) < 0) {
        log_warn(0, "hub: SO_PEERCRED: %s; connection refused", strerror(errno));
        return false;
    }
    if (peer.uid != geteuid()) {
        log_warn(0, "hub: refused a connection from pid %ld uid %lu (this hub serves uid %lu only)",
                 (long)peer.pid, (unsigned long)peer.uid, (unsigned long)geteuid());
        return false;
    }
    return true;
}

bool hub_retire(const char *socket_path)
{
    char *lock_path = hub_link_lock_path(socket_path);
    if (!lock_path) /* not a path hub_open made: nobody else locks it */
        return unlink(socket_path) == 0 || errno == ENOENT;
    bool retired = false;
    int fd = open(lock_path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0) {
        retired = unlink(socket_path) == 0 || errno == ENOENT;
    } else if (fd < 0 && errno == ENOENT) {
        retired = unlink(socket_path) == 0 || errno == ENOENT;
    }
    if (fd >= 0)
        close(fd);
    free(lock_path);
    return retired;
}
