/*
 * backoff — capped exponential retry delays with jitter that differs per process.
 *
 * Used for reconnecting to PostgreSQL and for retrying reads that fail while
 * it is up. A delay is drawn uniformly from [step/2, step] ("equal jitter"),
 * then the step doubles up to the cap. The point of the jitter is that many
 * pgfeed processes retrying after one database restart spread over half a
 * step instead of arriving at the same instant, so the draws must differ
 * between processes: they come from getrandom(2), not from an unseeded rand().
 */
#ifndef PGFEED_BACKOFF_H
#define PGFEED_BACKOFF_H

typedef struct backoff {
    int min_ms;
    int max_ms;
    int step_ms; /* the upper bound of the next delay */
} backoff;

void backoff_init(backoff *b, int min_ms, int max_ms);
/* The delay before the next attempt; each call doubles the step, up to max_ms. */
int backoff_next(backoff *b);
/* After a success: the next failure waits min_ms-ish again. */
void backoff_reset(backoff *b);

#endif
