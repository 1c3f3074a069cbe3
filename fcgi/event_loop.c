/*
 * event_loop — epoll dispatch (see event_loop.h).
 */
#include "event_loop.h"
#include "log.h"
#include "xalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EVENTS_PER_TURN 256

struct event_loop {
    int epoll_fd;
};

event_loop *event_loop_new(void)
{
    int fd = epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0) {
        log_error(0, "epoll_create1: %s", strerror(errno));
        return NULL;
    }
    event_loop *loop = xcalloc(1, sizeof *loop);
    loop->epoll_fd = fd;
    return loop;
}

void event_loop_free(event_loop *loop)
{
    if (!loop)
        return;
    close(loop->epoll_fd);
    free(loop);
}

int event_loop_watch(event_loop *loop, event_watch *w, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = w};
    if (epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, w->fd, &ev) < 0) {
        /* EPERM: a regular file (CGI output redirected), which needs no watching. */
        if (errno != EPERM)
            log_error(0, "epoll_ctl(ADD, fd %d): %s", w->fd, strerror(errno));
        return -1;
    }
    w->events = events;
    return 0;
}

int event_loop_modify(event_loop *loop, event_watch *w, uint32_t events)
{
    if (w->events == events)
        return 0;
    struct epoll_event ev = {.events = events, .data.ptr = w};
    if (epoll_ctl(loop->epoll_fd, EPOLL_CTL_MOD, w->fd, &ev) < 0) {
        log_error(0, "epoll_ctl(MOD, fd %d): %s", w->fd, strerror(errno));
        return -1;
    }
    w->events = events;
    return 0;
}

void event_loop_unwatch(event_loop *loop, event_watch *w)
{
    if (w->fd >= 0)
        epoll_ctl(loop->epoll_fd, EPOLL_CTL_DEL, w->fd, NULL);
    w->events = 0;
}

void event_loop_run_once(event_loop *loop, int timeout_ms)
{
    struct epoll_event events[EVENTS_PER_TURN];
    int n = epoll_wait(loop->epoll_fd, events, EVENTS_PER_TURN, timeout_ms);
    if (n < 0) {
        if (errno != EINTR)
            log_error(0, "epoll_wait: %s", strerror(errno));
        return;
    }
    for (int i = 0; i < n; i++) {
        event_watch *w = events[i].data.ptr;
        w->handler(w->data, events[i].events);
    }
}

int64_t clock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_wall_s(void)
{
    /* Not time(): glibc reads the coarse clock there, up to a tick behind, so a token
     * issued this very second by another process could look issued in the future. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}
