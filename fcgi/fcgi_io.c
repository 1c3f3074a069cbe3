/*
 * fcgi_io — accepting FastCGI/CGI requests and writing responses without
 * blocking (see fcgi_io.h for why the writer is our own).
 */
#include "fcgi_io.h"
#include "buf.h"
#include "log.h"
#include "xalloc.h"

#include <errno.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define FCGI_VERSION 1
#define FCGI_RECORD_END_REQUEST 3
#define FCGI_RECORD_STDOUT 6
#define FCGI_MAX_CONTENT 65535

extern char **environ;

struct fcgi_conn {
    bool is_cgi;
    int fd;             /* FastCGI connection, or stdout for CGI */
    int request_id;     /* FastCGI request id, framed into every record */
    FCGX_Request *fcgx; /* while params are needed; NULL afterwards */
    buf body;
    bool body_too_large;
    buf out; /* bytes framed and not yet written */
    bool ended;
};

int fcgi_io_init(void)
{
    if (FCGX_Init() != 0) {
        log_error(0, "FCGX_Init failed");
        return -1;
    }
    return 0;
}

bool fcgi_io_is_fastcgi(void)
{
    return !FCGX_IsCGI();
}

static int set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL, 0);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -1;
    return 0;
}

int fcgi_io_prepare_listener(int fd)
{
    if (set_nonblocking(fd) < 0) {
        log_error(0, "cannot make listen fd %d non-blocking: %s", fd, strerror(errno));
        return -1;
    }
    return 0;
}

static int listen_unix(const char *path, int backlog)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        log_error(0, "--listen %s: Unix socket path is longer than %zu bytes", path,
                  sizeof sa.sun_path - 1);
        return -1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_error(0, "socket: %s", strerror(errno));
        return -1;
    }
    /* A socket file left by an earlier run would make bind fail; only a socket is removed. */
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, backlog) < 0) {
        log_error(0, "--listen %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    /* The web server usually runs as another user. */
    chmod(path, 0777);
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

int fcgi_io_listen(const char *address, int backlog)
{
    int fd = strchr(address, '/') ? listen_unix(address, backlog) : listen_tcp(address, backlog);
    if (fd >= 0 && set_nonblocking(fd) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void read_fcgx_body(fcgi_conn *conn, size_t max_body)
{
    const char *length_text = FCGX_GetParam("CONTENT_LENGTH", conn->fcgx->envp);
    long long length = length_text ? atoll(length_text) : 0;
    if (length <= 0)
        return;
    if ((unsigned long long)length > max_body) {
        conn->body_too_large = true;
        return;
    }
    /* Never ask for more than CONTENT_LENGTH: FCGX_GetStr waits for what it was asked. */
    char chunk[4096];
    int n;
    while (conn->body.len < (size_t)length) {
        size_t want = (size_t)length - conn->body.len;
        n = FCGX_GetStr(chunk, (int)(want < sizeof chunk ? want : sizeof chunk), conn->fcgx->in);
        if (n <= 0)
            break;
        buf_append(&conn->body, chunk, (size_t)n);
    }
}

fcgi_conn *fcgi_io_accept(int listen_fd, size_t max_body, bool *would_block)
{
    FCGX_Request *req = xcalloc(1, sizeof *req);
    FCGX_InitRequest(req, listen_fd, 0);
    int rc = FCGX_Accept_r(req);
    if (rc < 0) {
        *would_block = (rc == -EAGAIN || rc == -EWOULDBLOCK);
        if (!*would_block)
            log_warn(0, "FCGX_Accept_r: %s", rc > -4096 ? strerror(-rc) : "protocol error");
        /* Closes a connection that broke while its params were read. */
        FCGX_Free(req, 1);
        free(req);
        return NULL;
    }
    *would_block = false;
    fcgi_conn *conn = xcalloc(1, sizeof *conn);
    conn->fcgx = req;
    conn->fd = req->ipcFd;
    conn->request_id = req->requestId;
    read_fcgx_body(conn, max_body);
    /* Our writer never blocks; accept4 flags are out of reach inside libfcgi. */
    set_nonblocking(conn->fd);
    return conn;
}

fcgi_conn *fcgi_io_cgi(size_t max_body)
{
    fcgi_conn *conn = xcalloc(1, sizeof *conn);
    conn->is_cgi = true;
    conn->fd = STDOUT_FILENO;
    const char *length_text = getenv("CONTENT_LENGTH");
    long long length = length_text ? atoll(length_text) : 0;
    if (length > 0 && (unsigned long long)length > max_body) {
        conn->body_too_large = true;
    } else if (length > 0) {
        char chunk[4096];
        ssize_t n;
        while (conn->body.len < (size_t)length) {
            size_t want = (size_t)length - conn->body.len;
            n = read(STDIN_FILENO, chunk, want < sizeof chunk ? want : sizeof chunk);
            if (n <= 0)
                break;
            buf_append(&conn->body, chunk, (size_t)n);
        }
    }
    return conn;
}

const char *fcgi_conn_param(fcgi_conn *conn, const char *name)
{
    if (conn->is_cgi)
        return getenv(name);
    return conn->fcgx ? FCGX_GetParam(name, conn->fcgx->envp) : NULL;
}

const char *fcgi_conn_body(fcgi_conn *conn, size_t *len, bool *body_too_large)
{
    *len = conn->body.len;
    *body_too_large = conn->body_too_large;
    return conn->body.data ? conn->body.data : "";
}

void fcgi_conn_drop_params(fcgi_conn *conn)
{
    if (!conn->fcgx)
        return;
    /* Frees libfcgi's streams and params but keeps the connection: it is ours now. */
    FCGX_Free(conn->fcgx, 0);
    free(conn->fcgx);
    conn->fcgx = NULL;
    buf_free(&conn->body);
}

int fcgi_conn_fd(const fcgi_conn *conn)
{
    return conn->fd;
}

uint32_t fcgi_conn_hangup_events(const fcgi_conn *conn)
{
    /* A FastCGI server closing the connection shows as a read hangup. A CGI's stdout
     * may be the same socket as its stdin (mod_cgid), whose read side ends with the
     * body, so only a full hangup (always reported by epoll) counts there. */
    return conn->is_cgi ? 0 : EPOLLRDHUP;
}

static void frame_record(fcgi_conn *conn, int type, const char *data, size_t len)
{
    unsigned char header[8] = {FCGI_VERSION,
                               (unsigned char)type,
                               (unsigned char)(conn->request_id >> 8),
                               (unsigned char)(conn->request_id & 0xff),
                               (unsigned char)(len >> 8),
                               (unsigned char)(len & 0xff),
                               0,
                               0};
    buf_append(&conn->out, (const char *)header, sizeof header);
    buf_append(&conn->out, data, len);
}

void fcgi_conn_send(fcgi_conn *conn, const char *data, size_t len)
{
    if (conn->ended)
        return;
    if (conn->is_cgi) {
        buf_append(&conn->out, data, len);
        return;
    }
    while (len > 0) {
        size_t chunk = len > FCGI_MAX_CONTENT ? FCGI_MAX_CONTENT : len;
        frame_record(conn, FCGI_RECORD_STDOUT, data, chunk);
        data += chunk;
        len -= chunk;
    }
}

void fcgi_conn_end(fcgi_conn *conn)
{
    if (conn->ended)
        return;
    conn->ended = true;
    if (conn->is_cgi)
        return;
    /* An empty STDOUT record closes the stream; END_REQUEST carries app status 0. */
    frame_record(conn, FCGI_RECORD_STDOUT, NULL, 0);
    const char end_body[8] = {0, 0, 0, 0, 0 /* FCGI_REQUEST_COMPLETE */, 0, 0, 0};
    frame_record(conn, FCGI_RECORD_END_REQUEST, end_body, sizeof end_body);
}

size_t fcgi_conn_pending(const fcgi_conn *conn)
{
    return conn->out.len;
}

int fcgi_conn_flush(fcgi_conn *conn)
{
    size_t written = 0;
    while (written < conn->out.len) {
        ssize_t n = write(conn->fd, conn->out.data + written, conn->out.len - written);
        if (n > 0) {
            written += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        buf_consume(&conn->out, written);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return -1;
    }
    buf_free(&conn->out); /* an idle held request keeps no output buffer */
    return 1;
}

bool fcgi_conn_peer_closed(fcgi_conn *conn)
{
    if (conn->is_cgi)
        return true; /* only asked after epoll reported a full hangup or an error */
    /* The server may still have unread FCGI_STDIN records queued; skip them to find EOF. */
    char scratch[512];
    for (int i = 0; i < 64; i++) {
        ssize_t n = recv(conn->fd, scratch, sizeof scratch, MSG_DONTWAIT);
        if (n == 0)
            return true;
        if (n < 0)
            return !(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
    }
    return false; /* still sending: not a hangup we can see yet */
}

bool fcgi_conn_shutdown_output(fcgi_conn *conn)
{
    if (conn->is_cgi)
        return false;
    return shutdown(conn->fd, SHUT_WR) == 0;
}

/*
 * Reads and drops what the server still sends (unread STDIN records, a CGI body
 * nobody asked for). Closing a socket with unread input makes the kernel reset
 * the connection, and the server may then lose the end of our answer.
 */
static void drain_input(int fd, int wait_ms)
{
    char scratch[4096];
    for (int i = 0; i < 256; i++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, wait_ms) <= 0)
            return;
        ssize_t n = read(fd, scratch, sizeof scratch);
        if (n <= 0 && !(n < 0 && errno == EINTR))
            return;
    }
}

void fcgi_conn_close(fcgi_conn *conn)
{
    if (!conn)
        return;
    if (conn->is_cgi) {
        /* Under mod_cgid stdin and stdout are one socket: end the answer, then read
         * what is left until the server closes, so it is not reset before it read
         * our answer (a reset makes Apache drop it). */
        shutdown(STDOUT_FILENO, SHUT_WR);
        drain_input(STDIN_FILENO, 200);
    } else if (conn->fd >= 0) {
        drain_input(conn->fd, 0);
    }
    if (conn->fcgx) {
        FCGX_Free(conn->fcgx, 0);
        free(conn->fcgx);
    }
    if (!conn->is_cgi && conn->fd >= 0)
        close(conn->fd);
    buf_free(&conn->body);
    buf_free(&conn->out);
    free(conn);
}
