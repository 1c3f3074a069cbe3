/*
 * sequencer — one pgfeed process per database moves the outbox into the feed.
 *
 * pgfeed.enqueue (sql/outbox.sql) commits events without versions; something
 * must call pgfeed.sequence to give them theirs, and only one caller at a
 * time does useful work (the function serializes its callers). So every
 * process tries a session advisory lock on its database connection
 * (pg_try_advisory_lock(1885824613, 4)); the one that gets it calls
 * pgfeed.sequence every --sequence-ms, and again at once while a call moved
 * a full --sequence-batch; the others try the lock again every few seconds,
 * so when the holder stops (or its connection breaks) another takes over.
 * The lock lives as long as the session: after a reconnect it is gone and
 * is tried again. Every statement goes through db's non-blocking queue.
 */
#ifndef PGFEED_SEQUENCER_H
#define PGFEED_SEQUENCER_H

#include <stdbool.h>
#include <stdint.h>

#include "db.h"

#define SEQUENCER_LOCK_KEY "1885824613" /* 'pgfe', install.sql's key */
#define SEQUENCER_LOCK_SUBKEY "4"       /* 1 install, 2 prune, 3 pgfeed.sequence */
#define SEQUENCER_RETRY_MS 2000         /* between tries of the lock by a process without it */
#define SEQUENCER_BACKOFF_MAX_MS 5000   /* between pgfeed.sequence calls that keep failing */

typedef struct sequencer sequencer;

/* interval_ms 0: this process never sequences (nor tries the lock). d is borrowed. */
sequencer *sequencer_new(db *d, int interval_ms, int batch);
void sequencer_free(sequencer *s);
/* Sends what is due (a try of the lock, a batch); call every turn of the loop. */
void sequencer_tick(sequencer *s, int64_t now_ms);
/* Milliseconds until sequencer_tick has something to do (0: now), or -1: only an answer
 * from the database, which wakes the loop by itself, moves it on. */
int64_t sequencer_timeout_ms(const sequencer *s, int64_t now_ms);
/* True while this process holds the sequencer lock (its session is the current one). */
bool sequencer_holds(const sequencer *s);
/* Events moved into the feed by this process's calls. */
uint64_t sequencer_moved(const sequencer *s);
/* Statements sent (lock tries and pgfeed.sequence calls). */
uint64_t sequencer_statements(const sequencer *s);

#endif
