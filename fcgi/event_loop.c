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
    /* This turn's events: a watch forgotten while they are dispatched is struck out here. */
    struct epoll_event fired[EVENTS_PER_TURN];
    /* Watches whose events changed this turn; NULL where one was forgotten since. */
    event_watch **changes;
    size_t n_changes, changes_cap;
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
    free(loop->changes);
    free(loop);
}

int event_loop_watch(event_loop *loop, event_watch *w, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = w};
    w->change_slot = 0;
    w->fired_slot = 0;
    w->registered = false;
    if (epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, w->fd, &ev) < 0) {
        /* EPERM: a regular file (CGI output redirected), which needs no watching. */
        if (errno != EPERM)
            log_error(0, "epoll_ctl(ADD, fd %d): %s", w->fd, strerror(errno));
        return -1;
    }
    w->events = w->wanted = events;
    w->registered = true;
    return 0;
}

/* Puts w on the list of watches epoll is told about before the next wait. */
static void loop_queue_change(event_loop *loop, event_watch *w)
{
    if (loop->n_changes == loop->changes_cap) {
        loop->changes_cap = loop->changes_cap ? 2 * loop->changes_cap : 64;
        loop->changes = xrealloc(loop->changes, loop->changes_cap * sizeof *loop->changes);
    }
    loop->changes[loop->n_changes++] = w;
    w->change_slot = (int)loop->n_changes;
}

void event_loop_watch_later(event_loop *loop, event_watch *w, uint32_t events)
{
    w->fired_slot = 0;
    w->registered = false;
    w->events = 0;
    w->wanted = events;
    w->change_slot = 0;
    loop_queue_change(loop, w);
}

int event_loop_modify(event_loop *loop, event_watch *w, uint32_t events)
{
    w->wanted = events;
    if (w->change_slot || (w->registered && events == w->events))
        return 0;
    loop_queue_change(loop, w);
    return 0;
}

/* Tells epoll what changed since the last wait, once per watch. */
static void loop_apply_changes(event_loop *loop)
{
    for (size_t i = 0; i < loop->n_changes; i++) {
        event_watch *w = loop->changes[i];
        if (!w)
            continue; /* forgotten since */
        w->change_slot = 0;
        if (w->registered && w->wanted == w->events)
            continue; /* changed and changed back within the turn */
        struct epoll_event ev = {.events = w->wanted, .data.ptr = w};
        int op = w->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
        if (epoll_ctl(loop->epoll_fd, op, w->fd, &ev) < 0) {
            log_error(0, "epoll_ctl(%s, fd %d): %s", w->registered ? "MOD" : "ADD", w->fd,
                      strerror(errno));
            continue;
        }
        w->events = w->wanted;
        w->registered = true;
    }
    loop->n_changes = 0;
}

/* Strikes w from this turn's changes and events; del: tell epoll too. */
static void loop_forget(event_loop *loop, event_watch *w, bool del)
{
    if (w->change_slot)
        loop->changes[w->change_slot - 1] = NULL;
    if (w->fired_slot)
        loop->fired[w->fired_slot - 1].data.ptr = NULL; /* its object may be freed next */
    w->change_slot = w->fired_slot = 0;
    if (del && w->registered && w->fd >= 0)
        epoll_ctl(loop->epoll_fd, EPOLL_CTL_DEL, w->fd, NULL);
    w->registered = false;
    w->events = w->wanted = 0;
}

void event_loop_unwatch(event_loop *loop, event_watch *w)
{
    loop_forget(loop, w, true);
}

void event_loop_unwatch_closing(event_loop *loop, event_watch *w)
{
    loop_forget(loop, w, false);
}

void event_loop_run_once(event_loop *loop, int timeout_ms)
{
    loop_apply_changes(loop);
    int n = epoll_wait(loop->epoll_fd, loop->fired, EVENTS_PER_TURN, timeout_ms);
    if (n < 0) {
        if (errno != EINTR)
            log_error(0, "epoll_wait: %s", strerror(errno));
        return;
    }
    for (int i = 0; i < n; i++)
        ((event_watch *)loop->fired[i].data.ptr)->fired_slot = i + 1;
    for (int i = 0; i < n; i++) {
        event_watch *w = loop->fired[i].data.ptr;
        if (!w)
            continue; /* forgotten by an earlier handler of this turn */
        w->fired_slot = 0;
        w->handler(w->data, loop->fired[i].events);
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
