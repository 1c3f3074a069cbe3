/*
 * fcgi_listen — the listening socket a FastCGI daemon accepts on (see fcgi_listen.h).
 */
#include "fcgi_listen.h"
#include "log.h"
#include "xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL, 0);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -1;
    return 0;
}

int fcgi_listen_prepare(int fd)
{
    if (set_nonblocking(fd) < 0) {
        log_error(0, "cannot make listen fd %d non-blocking: %s", fd, strerror(errno));
        return -1;
    }
    return 0;
}

/*
 * A socket file already at path: one no process listens on (a crashed run) is
 * removed; a live one belongs to another pgfeed, and anything else is not ours.
 */
static int unix_path_claim(const char *path, const struct sockaddr_un *sa)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISSOCK(st.st_mode)) {
        log_error(0, "--listen %s: the path exists and is not a socket; not replacing it", path);
        return -1;
    }
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0)
        return -1;
    int rc = connect(probe, (const struct sockaddr *)sa, sizeof *sa);
    int err = errno;
    close(probe);
    if (rc == 0) {
        log_error(0, "--listen %s: another process is listening on this socket", path);
        return -1;
    }
    if (err != ECONNREFUSED) {
        log_error(0, "--listen %s: cannot tell whether the socket is in use: %s", path,
                  strerror(err));
        return -1;
    }
    log_info(0, "--listen %s: replacing a stale socket nobody listens on", path);
    return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

static int group_id(const char *group, gid_t *gid)
{
    struct group *g = getgrnam(group);
    if (g) {
        *gid = g->gr_gid;
        return 0;
    }
    char *end;
    long n = strtol(group, &end, 10);
    if (*group && !*end && n >= 0) {
        *gid = (gid_t)n;
        return 0;
    }
    return -1;
}

static int listen_unix(const char *path, int backlog, const fcgi_listen_options *opts)
{
    unsigned mode = opts ? opts->mode : 0660;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        log_error(0, "--listen %s: Unix socket path is longer than %zu bytes", path,
                  sizeof sa.sun_path - 1);
        return -1;
    }
    if (mode & ~0777u || mode & 0002) {
        log_error(0, "--socket-mode %o: a mode of at most 0777 that others cannot write", mode);
        return -1;
    }
    gid_t gid = (gid_t)-1;
    if (opts && opts->group && *opts->group && group_id(opts->group, &gid) < 0) {
        log_error(0, "--socket-group %s: no such group", opts->group);
        return -1;
    }
    strcpy(sa.sun_path, path);
    if (unix_path_claim(path, &sa) < 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_error(0, "socket: %s", strerror(errno));
        return -1;
    }
    /* Created owner-only, then opened up to mode: never more open than asked, even briefly. */
    mode_t old_umask = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old_umask);
    if (rc < 0 || (gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) < 0) ||
        chmod(path, (mode_t)mode) < 0 || listen(fd, backlog) < 0) {
        log_error(0, "--listen %s: %s", path, strerror(errno));
        if (rc == 0)
            unlink(path);
        close(fd);
        return -1;
    }
    return fd;
}

static int listen_tcp(const char *address, int backlog)
{
    const char *colon = strrchr(address, ':');
    if (!colon || colon == address || colon[1] == '\0') {
        log_error(0, "--listen %s: expected a Unix socket path or HOST:PORT", address);
        return -1;
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 1 || port > 65535) {
        log_error(0, "--listen %s: the port must be a number from 1 to 65535", address);
        return -1;
    }
    char *host = xstrndup(address, (size_t)(colon - address));
    /* [::1]:9000 */
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    free(host);
    if (rc != 0) {
        log_error(0, "--listen %s: %s", address, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, backlog) == 0)
            break;
        log_error(0, "--listen %s: %s", address, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

int fcgi_listen_open(const char *address, int backlog, const fcgi_listen_options *opts)
{
    int fd =
        strchr(address, '/') ? listen_unix(address, backlog, opts) : listen_tcp(address, backlog);
    if (fd >= 0 && set_nonblocking(fd) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}
