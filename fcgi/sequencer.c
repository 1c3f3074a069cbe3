/*
 * sequencer — who runs pgfeed.sequence, and when (see sequencer.h).
 */
#include "sequencer.h"

#include "backoff.h"
#include "event_loop.h"
#include "log.h"
#include "xalloc.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char TRY_LOCK_SQL[] =
    "SELECT pg_try_advisory_lock(" SEQUENCER_LOCK_KEY ", " SEQUENCER_LOCK_SUBKEY ")";
static const char SEQUENCE_SQL[] = "SELECT pgfeed.sequence($1::int)";

/*
 * A sequencer is in exactly one state; in the two in-flight states `query` is
 * the statement's handle, in the others NULL.
 */
typedef enum sequencer_state {
    /* --sequence-ms 0 (or CGI): never asks for anything. */
    SEQ_OFF,
    /* Not holding the lock: tries it at next_at_ms, once the database is up. */
    SEQ_WAITING,
    /* pg_try_advisory_lock in flight. */
    SEQ_TRYING,
    /* Holds the lock on session `session`: the next batch at next_at_ms. */
    SEQ_HOLDING,
    /* Holds it; a pgfeed.sequence call in flight. */
    SEQ_RUNNING,
} sequencer_state;

struct sequencer {
    db *database;
    int interval_ms;
    int batch;
    char batch_text[16]; /* the bound parameter */
    sequencer_state state;
    int64_t next_at_ms;
    uint64_t session; /* db_sessions() when the lock was taken */
    db_query *query;
    backoff failures; /* between pgfeed.sequence calls that fail */
    bool failing;     /* the last call failed: log the next success */
    uint64_t moved;
    uint64_t statements; /* sent through db_call, which db_queries_sent leaves out */
};

sequencer *sequencer_new(db *d, int interval_ms, int batch)
{
    sequencer *s = xcalloc(1, sizeof *s);
    s->database = d;
    s->interval_ms = interval_ms;
    s->batch = batch > 0 ? batch : 1;
    snprintf(s->batch_text, sizeof s->batch_text, "%d", s->batch);
    s->state = interval_ms > 0 ? SEQ_WAITING : SEQ_OFF;
    backoff_init(&s->failures, interval_ms > 100 ? interval_ms : 100, SEQUENCER_BACKOFF_MAX_MS);
    return s;
}

void sequencer_free(sequencer *s)
{
    if (!s)
        return;
    db_query_cancel(s->query);
    free(s);
}

/* The session the lock was taken on is gone (a reconnect, or down): so is the lock. */
static bool sequencer_session_lost(const sequencer *s)
{
    return !db_is_up(s->database) || db_sessions(s->database) != s->session;
}

static void sequencer_lost(sequencer *s, int64_t now_ms)
{
    log_info(0, "sequencer: the database session holding the sequencer lock ended; trying again");
    s->state = SEQ_WAITING;
    s->next_at_ms = now_ms; /* at once: whoever gets it first runs the job */
}

static void sequencer_on_lock(void *ctx, const db_call_result *r)
{
    sequencer *s = ctx;
    int64_t now = clock_now_ms();
    s->query = NULL;
    if (r->ok && r->value && strcmp(r->value, "t") == 0) {
        s->state = SEQ_HOLDING;
        s->session = db_sessions(s->database);
        s->next_at_ms = now;
        log_info(0, "sequencer: this process runs pgfeed.sequence every %d ms", s->interval_ms);
        return;
    }
    if (!r->ok)
        log_debug(0, "sequencer: cannot try the lock: %s", r->error);
    s->state = SEQ_WAITING;
    s->next_at_ms = now + SEQUENCER_RETRY_MS;
}

static void sequencer_on_batch(void *ctx, const db_call_result *r)
{
    sequencer *s = ctx;
    int64_t now = clock_now_ms();
    s->query = NULL;
    if (sequencer_session_lost(s)) {
        sequencer_lost(s, now);
        return;
    }
    s->state = SEQ_HOLDING;
    if (r->ok) {
        long long moved = r->value ? strtoll(r->value, NULL, 10) : 0;
        if (moved > 0)
            s->moved += (uint64_t)moved;
        if (s->failing)
            log_info(0, "sequencer: pgfeed.sequence works again");
        s->failing = false;
        backoff_reset(&s->failures);
        /* A full batch: more may be waiting, so do not sleep on them. */
        s->next_at_ms = moved >= s->batch ? now : now + s->interval_ms;
        return;
    }
    /* 55P03: a channel row held past the function's lock_timeout by a
     * publishing transaction: routine under load, the rows stay queued. */
    bool routine = r->sqlstate && strcmp(r->sqlstate, "55P03") == 0;
    log_msg(routine || s->failing ? LOG_DEBUG : LOG_WARN, 0,
            "sequencer: pgfeed.sequence failed: %s (SQLSTATE %s); retrying with backoff", r->error,
            r->sqlstate ? r->sqlstate : "none");
    s->failing = s->failing || !routine;
    s->next_at_ms = now + backoff_next(&s->failures);
}

void sequencer_tick(sequencer *s, int64_t now_ms)
{
    switch (s->state) {
    case SEQ_OFF:
    case SEQ_TRYING:
    case SEQ_RUNNING:
        return;
    case SEQ_HOLDING:
        if (sequencer_session_lost(s)) {
            sequencer_lost(s, now_ms);
            return;
        }
        if (now_ms < s->next_at_ms)
            return;
        {
            const char *params[] = {s->batch_text};
            s->query = db_call(s->database, SEQUENCE_SQL, 1, params, sequencer_on_batch, s);
        }
        if (s->query) {
            s->state = SEQ_RUNNING;
            s->statements++;
        } else
            s->next_at_ms = now_ms + s->interval_ms;
        return;
    case SEQ_WAITING:
        if (now_ms < s->next_at_ms || !db_is_up(s->database))
            return;
        s->query = db_call(s->database, TRY_LOCK_SQL, 0, NULL, sequencer_on_lock, s);
        if (s->query) {
            s->state = SEQ_TRYING;
            s->statements++;
        } else
            s->next_at_ms = now_ms + SEQUENCER_RETRY_MS;
        return;
    }
}

int64_t sequencer_timeout_ms(const sequencer *s, int64_t now_ms)
{
    /* While the database is down nothing can be sent: db's reconnect, on the
     * loop's own tick, comes first (a 0 here would spin the loop). */
    if ((s->state != SEQ_HOLDING && s->state != SEQ_WAITING) || !db_is_up(s->database))
        return -1;
    return s->next_at_ms > now_ms ? s->next_at_ms - now_ms : 0;
}

bool sequencer_holds(const sequencer *s)
{
    return (s->state == SEQ_HOLDING || s->state == SEQ_RUNNING) && !sequencer_session_lost(s);
}

uint64_t sequencer_moved(const sequencer *s)
{
    return s->moved;
}

uint64_t sequencer_statements(const sequencer *s)
{
    return s->statements;
}
