/*
 * request_private — struct request and what the request modules share (not for other modules).
 */
#ifndef PGFEED_REQUEST_PRIVATE_H
#define PGFEED_REQUEST_PRIVATE_H

#include "request.h"

#include <json-c/json.h>

#include "buf.h"
#include "catchup.h"
#include "channel_auth.h"
#include "cursor.h"
#include "feed_request.h"

/*
 * The life of a request. Each state names the registry list the request sits
 * on, and request_set_state() is the only code that changes a request's state,
 * so it is the one place a request moves between lists.
 */
typedef enum request_state {
    /* reg->starting: just accepted, being parsed and routed; nothing else holds
     * it yet, and nothing but its own start can call it. */
    REQ_STARTING,
    /* reg->authorizing: pgfeed.authorize is being asked about some of the
     * request's channels (channel_auth); nothing is subscribed yet, and its
     * answer either starts the feed or refuses the request. */
    REQ_AUTHORIZING,
    /* reg->waiting_db: needs the database first (a channel load, its own history
     * read, a publish or a ping). A feed request's subscriptions are already on
     * their channels' lists, so a channel load finishing wakes it. */
    REQ_WAITING_DB,
    /* reg->held: a long poll with nothing new; its subscriptions wait on their
     * channels' lists until one moves or the sweep finds the deadline passed. */
    REQ_HELD,
    /* reg->streaming: SSE, the header is out; subscriptions on their channels'
     * lists; events and heartbeats are written until the lifetime ends. A
     * stream with more to write than one turn allows is also on reg->ready. */
    REQ_STREAMING,
    /* reg->flushing: answered, no subscriptions; queued output drains as the
     * server takes it. */
    REQ_FLUSHING,
    /* reg->lingering: everything written and our side shut; the server's
     * remaining input is read and dropped until it closes (or LINGER_MS), so it
     * never sees a broken pipe. */
    REQ_LINGERING,
    /* reg->closed: detached from everything that could call it back; freed by
     * request_reap at the end of the turn. */
    REQ_CLOSED,
} request_state;

/* An intrusive list of requests (they link through request.prev/next). */
typedef struct request_list {
    request *head;
    size_t n;
} request_list;

struct request_registry {
    event_loop *loop;
    feed_cache *cache;
    db *database;
    const pgfeed_config *cfg;
    metrics *stats;
    guard *guard; /* who may read, publish, see the admin routes */
    /* One list per state (see request_state). */
    request_list starting, authorizing, waiting_db, held, streaming, flushing, lingering, closed;
    request *ready;   /* streams with more to write this turn (request_run_ready) */
    request *pumping; /* the ready streams request_run_ready is pumping now */
    size_t n_held;    /* long polls and streams not yet answered, against --max-held */
    catchup *catchup; /* catch-up reads behind the rings, shared (subscription.c) */
    /* feed_poll: the last poll answer formatted this loop turn, for identical requests. */
    struct feed_poll_memo *poll_memo;
    struct feed_sse_memo
        *sse_memo; /* sse: the turn's last one-channel event frame (feed_format.h) */
    unsigned long next_id;
    bool shutting_down;
    buf head; /* request_respond's header block, reused: an answer allocates none */
};

/* Events of one channel beyond what the ring holds: a catch-up page, maybe shared. */
typedef catchup_page history;

typedef struct subscription {
    feed_subscriber node; /* first: the cache hands it back to subscription_on_wake */
    request *req;
    int64_t cursor;      /* the last version the client has (CURSOR_NOW until resolved) */
    bool from_oldest;    /* no cursor given: start at the oldest retained, whatever it is */
    catchup_wait *query; /* the catch-up read this subscription waits for, while in flight */
    history *hist;       /* a reference to its catch-up page */
} subscription;

struct request {
    unsigned long id;
    request_registry *reg;
    request_state state;
    fcgi_conn *conn;
    feed_request fr;
    subscription *subs;
    size_t n_subs;
    db_query *query;             /* ping or publish in flight */
    bool watched;                /* false for CGI output to a file, which epoll cannot watch */
    int64_t deadline_ms;         /* long poll: answer by; SSE: end of the stream */
    int64_t last_write_ms;       /* SSE heartbeats */
    int64_t backlogged_since_ms; /* SSE: output above the high-water mark since */
    request_list *list;          /* the list of its state */
    request *prev, *next;        /* on *list */
    request **ready_on;          /* &reg->ready (or &reg->pumping) while it has more to write */
    request *ready_prev, *ready_next;
    guard_identity who; /* who asks; valid while the request lives */
    channel_auth *auth; /* a feed's channels' authorization, NULL for other routes */
    buf cors;           /* CORS headers every answer of this request carries */
};

#define LINGER_MS 2000
#define SSE_HISTORY_PAGE 100

/* request_registry.c: the lists of states. */
void request_set_state(request *r, request_state state);
/* Pumps this stream again at the end of the loop turn, after others had theirs. */
void request_schedule(request *r);

/* request.c: the life of a request. */
void request_close(request *r);
void request_flush(request *r);
void request_respond(request *r, int status, const char *content_type, const char *extra_headers,
                     const char *body, size_t body_len);
/* The same with the Cache-Control value given (NULL: no-cache, no-store for errors). */
void request_respond_cache(request *r, int status, const char *content_type,
                           const char *cache_control, const char *extra_headers, const char *body,
                           size_t body_len);
void request_fail_allow(request *r, int status, const char *detail, json_object *extra,
                        const char *allow);
void request_fail(request *r, int status, const char *detail, json_object *extra);
/* 503 (or 500) naming why the database cannot answer: down, or reads failing. */
void request_fail_unavailable(request *r);
/* A 401, 403 (with WWW-Authenticate where due) or 503 from guard or channel_auth. */
void request_refuse(request *r, const guard_refusal *why);
/* True while reads fail with the database up: held requests are answered, not kept. */
bool request_reads_failing(const request *r);
void request_evaluate(request *r);

/*
 * subscription.c: a channel cursor and its history read. A request owns its
 * subs array and each subscription owns its hist and its in-flight query;
 * the channel (feed_cache's) only links the node while subscribed.
 */
/* Allocates r->subs from r->fr and puts each on its channel's list. */
void subscription_init_all(request *r);
/* Drops this holder's reference to h; h may be NULL. */
void subscription_history_free(history *h);
/* Takes every subscription off its channel, cancels its read, frees its history;
 * r->subs itself stays until request_reap (a closed request may still be on a stack). */
void subscription_release_all(request *r);
/*
 * Makes every subscription ready to be answered from memory or from its own
 * history. Returns 1 when all are, 0 when reads are under way, -1 when the
 * database is needed and cannot be asked (down, or reads failing: the caller
 * decides what that means).
 */
int subscription_prepare_all(request *r) __attribute__((warn_unused_result));

/* Where a subscription's events come from once prepared. */
typedef struct subscription_source {
    int64_t head;
    int64_t oldest;
    bool gone;  /* the cursor is older than what is retained */
    bool ahead; /* the cursor is newer than the head: the feed was reset */
} subscription_source;

subscription_source subscription_source_of(const subscription *s);
bool subscription_needs_read(const subscription *s);
/* The prepared event after version, or NULL; the cache or s->hist owns it. */
const feed_event *subscription_event_after(const subscription *s, int64_t version);
/* Past the source's last event the cursor may jump to its head: versions can have holes. */
int64_t subscription_caught_up(const subscription *s, const subscription_source *src,
                               int64_t cursor);
void subscription_format_cursor(request *r, const int64_t *versions, buf *out);

/* feed_poll.c: short and long polls. */
typedef struct feed_poll_memo feed_poll_memo;
void feed_poll_evaluate(request *r);
/* Drops this turn's formatted answer (request_reap, at the end of every turn). */
void feed_poll_memo_forget(request_registry *reg);
void feed_poll_time_out(request *r);

/* sse.c: Server-Sent Events streams. */
/* Drops the turn's formatted event frame (request_reap, at the end of every turn). */
void sse_frame_memo_forget(request_registry *reg);
void sse_start(request *r);
void sse_pump(request *r);
void sse_end(request *r);
/* Its authorization ran out: a last "event: auth" frame, then the end. */
void sse_end_auth(request *r, const char *reason);
/* channel_auth's re-check said yes again: deliver what waited. */
void sse_resume(request *r);
void sse_sweep(request *r, int64_t now_ms);
/* Writes an `event: status` frame: the database went down or came back. */
void sse_send_status(request *r, bool database_up);

/* publish.c: POST /{channel}. */
void publish_start(request *r);

/* admin.c: /_health and /_metrics. */
void admin_health_start(request *r);
void admin_metrics_answer(request *r);

#endif
