/*
 * hub — locating, locking, starting and checking the per-host hub (see hub.h).
 */
#define _GNU_SOURCE /* struct ucred, closefrom */
#include "hub.h"
#include "log.h"
#include "xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define HUB_POLL_MS 10 /* how often a relay retries the lock or the new hub's socket */

struct hub {
    const pgfeed_config *cfg;
    char *dir;
    char *socket_path;
    char *lock_path;
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
    h->lock_path = path_join(h->dir, key, ".lock");
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
    free(h->lock_path);
    free(h);
}

const char *hub_socket_path(const hub *h)
{
    return h->socket_path;
}

/* ---- connecting and starting ---- */

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)ms * 1000000};
    nanosleep(&ts, NULL);
}

/* Connects to path; -1 with errno set. A full backlog blocks at most timeout_s. */
static int connect_unix(const char *path, int timeout_s)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = timeout_s};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    tv.tv_sec = 0;
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

/* Nobody listens there (a dead hub's socket) or nothing is there yet. */
static bool no_hub_listens(int err)
{
    return err == ENOENT || err == ECONNREFUSED;
}

static void export_setting(void *ctx, const char *name, const char *value)
{
    (void)ctx;
    if (strcmp(name, "PGFEED_LISTEN") != 0)
        setenv(name, value, 1);
}

/*
 * The hub, in the grandchild of a relay: its own session (no controlling
 * terminal, no signals meant for mod_fcgid's process group), nothing
 * inherited but stderr (the server's error log): fd 0 is mod_fcgid's
 * listening socket, which must close when mod_fcgid ends the relay.
 */
static void exec_hub(const hub *h)
{
    int null_fd = open("/dev/null", O_RDWR);
    if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 || dup2(null_fd, STDOUT_FILENO) < 0)
        _exit(127);
    closefrom(STDERR_FILENO + 1);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    /* The effective configuration, flags included, through the environment. */
    config_each(h->cfg, export_setting, NULL);
    unsetenv("PGFEED_LISTEN");
    char *argv[] = {(char *)h->exe, "--listen", h->socket_path, NULL};
    /* /proc/self/exe runs this very binary even if the file was replaced since. */
    execv("/proc/self/exe", argv);
    _exit(127);
}

/* Starts a detached hub; returns once the intermediate child is reaped. */
static int spawn_hub(const hub *h)
{
    pid_t pid = fork();
    if (pid < 0) {
        log_error(0, "hub: fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        /* Twice, so the hub is nobody's child here: mod_fcgid reaps and kills
         * its own processes, and the hub must outlive this relay. */
        if (setsid() < 0)
            _exit(1);
        pid_t hub_pid = fork();
        if (hub_pid < 0)
            _exit(1);
        if (hub_pid == 0)
            exec_hub(h);
        _exit(0);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        log_error(0, "hub: could not start a hub process");
        return -1;
    }
    return 0;
}

static int lock_wait(const char *path, int timeout_s)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        log_error(0, "hub: cannot open the lock file %s: %s", path, strerror(errno));
        return -1;
    }
    int64_t deadline = monotonic_ms() + (int64_t)timeout_s * 1000;
    while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if ((errno != EWOULDBLOCK && errno != EINTR) || monotonic_ms() >= deadline) {
            log_error(0, "hub: lock %s: %s", path,
                      errno == EWOULDBLOCK ? "still held by a relay starting the hub"
                                           : strerror(errno));
            close(fd);
            return -1;
        }
        sleep_ms(HUB_POLL_MS);
    }
    return fd;
}

/* Under the lock: nobody listens, so start a hub and wait until it does. */
static int start_and_connect(hub *h)
{
    struct stat st;
    if (lstat(h->socket_path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            log_error(0, "hub: %s is not a socket; refusing to replace it", h->socket_path);
            return -1;
        }
        /* Refused under the lock: the hub that bound it is gone. */
        log_warn(0, "hub: replacing %s, left by a hub that is gone", h->socket_path);
        if (unlink(h->socket_path) < 0 && errno != ENOENT) {
            log_error(0, "hub: cannot remove %s: %s", h->socket_path, strerror(errno));
            return -1;
        }
    }
    if (spawn_hub(h) < 0)
        return -1;
    int64_t deadline = monotonic_ms() + (int64_t)h->cfg->hub_start_timeout * 1000;
    while (true) {
        int fd = connect_unix(h->socket_path, h->cfg->hub_start_timeout);
        if (fd >= 0) {
            log_info(0, "hub: started a hub on %s", h->socket_path);
            return fd;
        }
        if (!no_hub_listens(errno) || monotonic_ms() >= deadline) {
            log_error(0, "hub: the hub started on %s does not answer within %d s: %s",
                      h->socket_path, h->cfg->hub_start_timeout, strerror(errno));
            return -1;
        }
        sleep_ms(HUB_POLL_MS);
    }
}

int hub_connect(hub *h)
{
    int fd = connect_unix(h->socket_path, h->cfg->hub_start_timeout);
    if (fd >= 0)
        return fd;
    if (!no_hub_listens(errno)) {
        log_error(0, "hub: connect %s: %s", h->socket_path, strerror(errno));
        return -1;
    }
    int lock = lock_wait(h->lock_path, h->cfg->hub_start_timeout);
    if (lock < 0)
        return -1;
    /* Whoever held the lock before us may have started it. */
    fd = connect_unix(h->socket_path, h->cfg->hub_start_timeout);
    if (fd < 0 && no_hub_listens(errno))
        fd = start_and_connect(h);
    else if (fd < 0)
        log_error(0, "hub: connect %s: %s", h->socket_path, strerror(errno));
    close(lock); /* releases the flock */
    return fd;
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
    size_t len = strlen(socket_path);
    const char suffix[] = ".sock";
    if (len < sizeof suffix || strcmp(socket_path + len - (sizeof suffix - 1), suffix) != 0) {
        /* Not a path hub_open made: nobody else locks it, so just leave. */
        return unlink(socket_path) == 0 || errno == ENOENT;
    }
    char *lock_path = xstrdup(socket_path);
    strcpy(lock_path + len - (sizeof suffix - 1), ".lock");
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
