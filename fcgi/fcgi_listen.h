/*
 * fcgi_listen — opens the socket a FastCGI daemon (--listen) accepts on, or
 * prepares the one it inherited on fd 0; fcgi_io's intake accepts from it.
 */
#ifndef PGFEED_FCGI_LISTEN_H
#define PGFEED_FCGI_LISTEN_H

/* How a Unix socket is created: its mode, and a group (NULL: the process's). */
typedef struct fcgi_listen_options {
    unsigned mode;
    const char *group;
} fcgi_listen_options;

/*
 * Opens a non-blocking listening socket on a Unix socket path (anything with a
 * '/') or HOST:PORT. Unlike FCGX_OpenSocket it returns -1 with a logged reason
 * instead of exiting. A Unix socket file that no process listens on (left by a
 * crash) is replaced; a live one, or a file that is not a socket, is refused.
 * opts may be NULL (mode 0660).
 */
int fcgi_listen_open(const char *address, int backlog, const fcgi_listen_options *opts)
    __attribute__((warn_unused_result));
/* Makes an inherited listening fd non-blocking so accepting never stalls the loop. */
int fcgi_listen_prepare(int fd) __attribute__((warn_unused_result));

#endif
