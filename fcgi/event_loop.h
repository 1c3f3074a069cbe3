/*
 * event_loop — the one thread's epoll loop.
 *
 * Every fd pgfeed waits on (listen socket, FastCGI connections, the database
 * connection) is watched here; signals only set a flag the loop checks after
 * each turn, which its timeout bounds. Objects embed an event_watch
 * so watching allocates nothing; the loop calls the watch's handler with the
 * epoll events that fired.
 */
#ifndef PGFEED_EVENT_LOOP_H
#define PGFEED_EVENT_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

typedef struct event_loop event_loop;

typedef struct event_watch {
    int fd;
    uint32_t events; /* what is currently registered */
    uint32_t wanted; /* asked for by event_loop_modify; registered before the next wait */
    int change_slot; /* 1 + its index in the loop's list of changes; 0: none pending */
    int fired_slot;  /* 1 + its index in the turn's fired events; 0: not waiting for dispatch */
    bool registered; /* epoll knows fd (event_loop_watch_later registers it before the wait) */
    void (*handler)(void *data, uint32_t events);
    void *data;
} event_watch;

event_loop *event_loop_new(void);
void event_loop_free(event_loop *loop);

/* Registers w->fd for events; w must stay put until unwatched. */
int event_loop_watch(event_loop *loop, event_watch *w, uint32_t events)
    __attribute__((warn_unused_result));
/*
 * Registers w->fd for events just before the loop next waits, unless it is
 * unwatched before then: a FastCGI connection read at once after accept and
 * answered within the same turn (a connection per request, as lighttpd makes)
 * costs no epoll_ctl at all. A failure then is logged, and retried at the next
 * event_loop_modify.
 */
void event_loop_watch_later(event_loop *loop, event_watch *w, uint32_t events);
/*
 * Changes the events w waits for. epoll is told once, just before the loop
 * next waits, and only if they differ then: a connection that goes from
 * reading a request to answering it and back within one turn (a 304 on a kept
 * FastCGI connection) costs no epoll_ctl at all. A failure then is logged.
 */
int event_loop_modify(event_loop *loop, event_watch *w, uint32_t events)
    __attribute__((warn_unused_result));
/* Forgets w (call before closing its fd); an event of this turn not yet dispatched is dropped. */
void event_loop_unwatch(event_loop *loop, event_watch *w);
/*
 * The same for a watch whose fd is closed right after and is the only
 * descriptor of its file (never dup'ed, no fork holds it): closing it takes
 * it out of epoll, so no EPOLL_CTL_DEL is sent.
 */
void event_loop_unwatch_closing(event_loop *loop, event_watch *w);

/* Waits up to timeout_ms (-1: forever) and dispatches what fired. */
void event_loop_run_once(event_loop *loop, int timeout_ms);

/* Monotonic milliseconds, for deadlines and latency. */
int64_t clock_now_ms(void);
/* Seconds since the epoch (the clock tokens' exp, nbf and iat are written in). */
int64_t clock_wall_s(void);

#endif
