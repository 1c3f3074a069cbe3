/*
 * fake_db — db's reads and the clock, played by the cmocka tests of the
 * modules that read through db (feed_cache, catchup, subscription).
 *
 * Those modules start pgfeed.read and head batches and hear the answer later,
 * from the event loop. Their tests link with -Wl,--wrap=db_read,
 * --wrap=db_read_heads, --wrap=db_can_read and --wrap=clock_now_ms
 * (pgfeed_fake_db_test in CMakeLists.txt), so that each read is recorded
 * here instead and answered by the test, synchronously and in any order it
 * likes, and time moves only when the test moves it. Nothing else of db runs:
 * no connection, no event loop, no database.
 */
#ifndef PGFEED_TEST_FAKE_DB_H
#define PGFEED_TEST_FAKE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "feed_cache.h"

#define FAKE_DB_NAMES 16 /* channels one head batch may ask for here */

/* A read or a head batch the code under test started and the test has not answered. */
typedef struct fake_db_read {
    /* a read, pgfeed.read(channel, after, limit) */
    char channel[64];
    int64_t after;
    int limit;
    db_read_cb cb;
    /* a head batch (heads_cb set): its channels, in the order asked */
    db_heads_cb heads_cb;
    size_t n_names;
    char names[FAKE_DB_NAMES][64];
    void *ctx;
} fake_db_read;

/* Nothing pending, reads accepted, epoch 1, the clock at 0, versions as few digits as they need. */
void fake_db_reset(void);

size_t fake_db_pending_count(void);
/* The i-th pending read or head batch, the oldest first; valid until the next starts or is
 * answered. */
const fake_db_read *fake_db_pending(size_t i);
/* The reads (not head batches) started since fake_db_reset. */
size_t fake_db_reads_started(void);

/* While refused, db_read and db_read_heads return NULL and db_can_read is false: the
 * database is down or reads are backing off. */
void fake_db_refuse_reads(bool refuse);
/* The channel incarnation answers report; a new one is a reset channel. */
void fake_db_set_epoch(int64_t epoch);
/* What clock_now_ms returns. */
void fake_db_set_now_ms(int64_t now_ms);
void fake_db_advance_ms(int64_t ms);
/* Event versions are printed with at least this many digits (zero first), so that every
 * event of a test has one size. */
void fake_db_set_version_digits(int digits);

/*
 * Answers pending read i as pgfeed.read would: with head, oldest and, of the
 * events with these versions, those after its cursor, at most its limit. An
 * event's json is {"version":N}.
 */
void fake_db_answer_versions(size_t i, int64_t head, int64_t oldest, const int64_t *versions,
                             size_t n);
/* The same with the events first..last (versions start at 1: none when first..last has none). */
void fake_db_answer_range(size_t i, int64_t head, int64_t oldest, int64_t first, int64_t last);
/* Answers pending read i with exactly these events, for a test of what pgfeed.read never sends. */
void fake_db_answer_events(size_t i, int64_t head, int64_t oldest, const db_event *events,
                           size_t n);
/* Answers pending head batch i: every channel of it has this head and oldest. */
void fake_db_answer_heads(size_t i, int64_t head, int64_t oldest);
/* Answers pending head batch i with heads[k] for its k-th channel (same name, same number). */
void fake_db_answer_each_head(size_t i, const db_head *heads, size_t n);
/*
 * Loads ch as a poll from cursor after would, with nothing else pending: the
 * turn's head batch is answered with head (oldest 1); a read of the events
 * after the cursor follows when it is behind the head, for the test to answer.
 */
void fake_db_load(feed_cache *c, feed_channel *ch, int64_t after, int64_t head);
/* Fails pending read or head batch i, as a database error would. */
void fake_db_fail(size_t i);

#endif
