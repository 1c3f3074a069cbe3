/*
 * hub_link — connecting to the hub, starting it under the lock (see hub_link.h).
 */
#define _GNU_SOURCE /* closefrom */
#include "hub_link.h"
#include "log.h"
#include "xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
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

#define HUB_POLL_MS 10 /* how often a relay retries the lock or the new hub's socket */

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
static void exec_hub(const hub_link *h)
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
    unsetenv(HUB_LINK_SOCKET_ENV);
    unsetenv(HUB_LINK_EXE_ENV);
    char *argv[] = {(char *)h->exe, "--listen", (char *)h->socket_path, NULL};
    execv(h->exe, argv);
    _exit(127);
}

/* Starts a detached hub; returns once the intermediate child is reaped. */
static int spawn_hub(const hub_link *h)
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
static int start_and_connect(const hub_link *h)
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

char *hub_link_lock_path(const char *socket_path)
{
    const char suffix[] = ".sock";
    size_t len = strlen(socket_path), n = sizeof suffix - 1;
    if (len <= n || strcmp(socket_path + len - n, suffix) != 0)
        return NULL;
    char *lock = xstrdup(socket_path);
    strcpy(lock + len - n, ".lock");
    return lock;
}

int hub_link_connect(const hub_link *h)
{
    int fd = connect_unix(h->socket_path, h->cfg->hub_start_timeout);
    if (fd >= 0)
        return fd;
    if (!no_hub_listens(errno)) {
        log_error(0, "hub: connect %s: %s", h->socket_path, strerror(errno));
        return -1;
    }
    char *lock_path = hub_link_lock_path(h->socket_path);
    if (!lock_path) {
        log_error(0, "hub: %s is not a hub socket path (*.sock)", h->socket_path);
        return -1;
    }
    int lock = lock_wait(lock_path, h->cfg->hub_start_timeout);
    free(lock_path);
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
