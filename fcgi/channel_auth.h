/*
 * channel_auth — the authorization of one feed request's channels over its
 * whole life.
 *
 * At the start every channel of the request is checked (guard_read); those
 * only pgfeed.authorize can decide are asked of the database, in parallel,
 * and the request waits for the answers before it subscribes to anything.
 * Afterwards the decision holds until channel_auth_until(): the token's
 * expiry or the soonest cached SQL answer's. A long poll is answered by then;
 * a stream calls channel_auth_expire() then, which either says the token has
 * run out (end the stream) or re-asks pgfeed.authorize for the channels whose
 * answer expired. While that re-check runs nothing may be delivered
 * (channel_auth_pending); its answer comes through the same done callback.
 */
#ifndef PGFEED_CHANNEL_AUTH_H
#define PGFEED_CHANNEL_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "guard.h"

typedef struct channel_auth channel_auth;

typedef enum channel_auth_status {
    CHANNEL_AUTH_OK,      /* every channel allowed, until channel_auth_until() */
    CHANNEL_AUTH_REFUSED, /* *why says 401, 403 or 503 (database down) */
    CHANNEL_AUTH_PENDING, /* pgfeed.authorize asked; done() tells */
} channel_auth_status;

/* why NULL: every channel is allowed (again); else the refusal. */
typedef void (*channel_auth_done_cb)(void *ctx, const guard_refusal *why);

/*
 * Checks channels (copied) for id (not copied: it must outlive the
 * channel_auth). Returns the channel_auth in *out (always; free it) and the
 * outcome; done runs later only after CHANNEL_AUTH_PENDING.
 */
channel_auth_status channel_auth_start(guard *g, db *database, const guard_identity *id,
                                       const char *const *channels, size_t n_channels,
                                       int64_t now_ms, channel_auth_done_cb done, void *ctx,
                                       channel_auth **out, guard_refusal *why);
/* When the current decision runs out (ms); INT64_MAX when never. */
int64_t channel_auth_until(const channel_auth *ca);
/* A re-check is under way: deliver nothing until done() runs. */
bool channel_auth_pending(const channel_auth *ca);
/*
 * The decision ran out (now_ms >= channel_auth_until). Returns REFUSED with
 * the reason when the token expired or a cached answer is now no, PENDING
 * while pgfeed.authorize is asked again, OK when another request already
 * renewed the answers.
 */
channel_auth_status channel_auth_expire(channel_auth *ca, int64_t now_ms, guard_refusal *why);
/* Cancels what is in flight (done never runs after this). NULL is fine. */
void channel_auth_free(channel_auth *ca);

#endif
