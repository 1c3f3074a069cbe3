/*
 * request_registry — every request on its state's list; request_set_state moves it (request.h).
 */
#include "request_private.h"
#include "xalloc.h"

#include <stdlib.h>

static void list_remove(request_list *list, request *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        list->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
    list->n--;
}

static void list_push(request_list *list, request *r)
{
    r->prev = NULL;
    r->next = list->head;
    if (list->head)
        list->head->prev = r;
    list->head = r;
    list->n++;
}

static request_list *registry_list(request_registry *reg, request_state state)
{
    switch (state) {
    case REQ_STARTING:
        return &reg->starting;
    case REQ_AUTHORIZING:
        return &reg->authorizing;
    case REQ_WAITING_DB:
        return &reg->waiting_db;
    case REQ_HELD:
        return &reg->held;
    case REQ_STREAMING:
        return &reg->streaming;
    case REQ_FLUSHING:
        return &reg->flushing;
    case REQ_LINGERING:
        return &reg->lingering;
    case REQ_CLOSED:
        break;
    }
    return &reg->closed;
}

/* A long poll or stream counts against --max-held from its start until it is answered. */
static bool request_counts_held(const request *r, request_state state)
{
    return (state == REQ_WAITING_DB || state == REQ_HELD || state == REQ_STREAMING) &&
           r->fr.route == ROUTE_FEED && r->fr.method != METHOD_POST &&
           r->fr.transport != TRANSPORT_POLL;
}

static void ready_remove(request *r)
{
    if (!r->ready_on)
        return;
    if (r->ready_prev)
        r->ready_prev->ready_next = r->ready_next;
    else
        *r->ready_on = r->ready_next;
    if (r->ready_next)
        r->ready_next->ready_prev = r->ready_prev;
    r->ready_prev = r->ready_next = NULL;
    r->ready_on = NULL;
}

void request_schedule(request *r)
{
    if (r->ready_on)
        return;
    r->ready_on = &r->reg->ready;
    r->ready_prev = NULL;
    r->ready_next = r->reg->ready;
    if (r->ready_next)
        r->ready_next->ready_prev = r;
    r->reg->ready = r;
}

/*
 * The only writer of r->state: moves r to the list its new state names and
 * keeps the held count and the ready list true. A request new from
 * request_start is on no list yet.
 */
void request_set_state(request *r, request_state state)
{
    request_registry *reg = r->reg;
    if (r->list) {
        if (r->state == state)
            return;
        list_remove(r->list, r);
        if (request_counts_held(r, r->state))
            reg->n_held--;
    }
    if (state != REQ_STREAMING)
        ready_remove(r);
    if (request_counts_held(r, state))
        reg->n_held++;
    r->state = state;
    r->list = registry_list(reg, state);
    list_push(r->list, r);
    /* An answer is complete: it drains within --drain-timeout or the client is closed. */
    if (state == REQ_FLUSHING)
        r->deadline_ms = clock_now_ms() + (int64_t)reg->cfg->drain_timeout * 1000;
}

request_registry *request_registry_new(event_loop *loop, feed_cache *cache, db *database,
                                       const pgfeed_config *cfg, metrics *stats, guard *g)
{
    request_registry *reg = xcalloc(1, sizeof *reg);
    reg->loop = loop;
    reg->cache = cache;
    reg->database = database;
    reg->cfg = cfg;
    reg->stats = stats;
    reg->guard = g;
    catchup_limits catchup_lim = {.max_bytes = (size_t)cfg->catchup_bytes,
                                  .keep_ms = cfg->catchup_ms};
    reg->catchup = catchup_new(database, &catchup_lim);
    return reg;
}

void request_registry_free(request_registry *reg)
{
    if (!reg)
        return;
    request_list *open[] = {&reg->starting,  &reg->authorizing, &reg->waiting_db, &reg->held,
                            &reg->streaming, &reg->flushing,    &reg->lingering};
    for (size_t i = 0; i < sizeof open / sizeof open[0]; i++)
        while (open[i]->head)
            request_close(open[i]->head);
    request_reap(reg);
    catchup_free(reg->catchup); /* after the requests: they cancelled their waits */
    buf_free(&reg->head);
    free(reg);
}

size_t request_registry_active(const request_registry *reg)
{
    return reg->starting.n + reg->authorizing.n + reg->waiting_db.n + reg->held.n +
           reg->streaming.n + reg->flushing.n + reg->lingering.n;
}

size_t request_registry_held(const request_registry *reg)
{
    return reg->n_held;
}

bool request_registry_has_ready(const request_registry *reg)
{
    return reg->ready != NULL;
}

void request_reap(request_registry *reg)
{
    feed_poll_memo_forget(reg);
    sse_frame_memo_forget(reg);
    while (reg->closed.head) {
        request *r = reg->closed.head;
        list_remove(&reg->closed, r);
        feed_request_free(&r->fr);
        guard_identity_free(&r->who);
        buf_free(&r->cors);
        free(r->subs);
        free(r);
    }
}

void request_run_ready(request_registry *reg)
{
    /* A stream pumped here that schedules itself again waits for the next turn;
     * one that ends meanwhile leaves the pumping list through request_set_state. */
    reg->pumping = reg->ready;
    reg->ready = NULL;
    for (request *r = reg->pumping; r; r = r->ready_next)
        r->ready_on = &reg->pumping;
    while (reg->pumping) {
        request *r = reg->pumping;
        ready_remove(r);
        sse_pump(r);
    }
}
