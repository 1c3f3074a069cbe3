/*
 * channel_auth — one request's channels, checked at the start and again when
 * their decision runs out (see channel_auth.h).
 */
#include "channel_auth.h"
#include "event_loop.h"
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct channel_state {
    channel_auth *owner;
    char *name;
    int64_t until;   /* this channel's decision holds until */
    db_query *query; /* pgfeed.authorize in flight */
} channel_state;

struct channel_auth {
    guard *g;
    db *database;
    const guard_identity *id;
    channel_state *channels;
    size_t n;
    size_t pending; /* queries in flight */
    bool refused;   /* an answer said no: the rest no longer matter */
    guard_refusal why;
    channel_auth_done_cb done;
    void *ctx;
};

static void on_answer(void *ctx, bool ok, bool allowed)
{
    channel_state *c = ctx;
    channel_auth *ca = c->owner;
    c->query = NULL;
    ca->pending--;
    if (!ok) {
        ca->refused = true;
        ca->why = (guard_refusal){.status = 503};
        snprintf(ca->why.detail, sizeof ca->why.detail,
                 "pgfeed.authorize could not be asked about channel \"%s\"; retry shortly",
                 c->name);
    } else {
        int64_t now = clock_now_ms();
        c->until = guard_sql_answer(ca->g, ca->id, c->name, allowed, now);
        if (!allowed && !ca->refused) {
            ca->refused = true;
            guard_refuse_channel(ca->id, c->name, &ca->why);
        }
    }
    if (ca->pending > 0)
        return;
    /* Cancel nothing else: every query has answered. The callback may free ca. */
    guard_refusal why = ca->why;
    bool refused = ca->refused;
    ca->refused = false;
    ca->done(ca->ctx, refused ? &why : NULL);
}

/* Decides channel c now; asks the database when only pgfeed.authorize can. */
static channel_auth_status check_one(channel_auth *ca, channel_state *c, int64_t now_ms,
                                     guard_refusal *why)
{
    switch (guard_read(ca->g, ca->id, c->name, now_ms, &c->until, why)) {
    case AUTHZ_ALLOW:
        return CHANNEL_AUTH_OK;
    case AUTHZ_DENY:
        return CHANNEL_AUTH_REFUSED;
    case AUTHZ_ASK_SQL:
        break;
    }
    c->query = db_authorize(ca->database, ca->id->principal, c->name, on_answer, c);
    if (!c->query) {
        *why = (guard_refusal){.status = 503};
        snprintf(why->detail, sizeof why->detail,
                 "the database is unreachable, so channel \"%s\" cannot be authorized; retry "
                 "shortly",
                 c->name);
        return CHANNEL_AUTH_REFUSED;
    }
    ca->pending++;
    return CHANNEL_AUTH_PENDING;
}

/* Checks the channels whose decision is over (all of them at the start). */
static channel_auth_status check_due(channel_auth *ca, int64_t now_ms, guard_refusal *why)
{
    for (size_t i = 0; i < ca->n; i++) {
        channel_state *c = &ca->channels[i];
        if (c->until > now_ms || c->query)
            continue;
        if (check_one(ca, c, now_ms, why) == CHANNEL_AUTH_REFUSED) {
            for (size_t j = 0; j < ca->n; j++) {
                db_query_cancel(ca->channels[j].query);
                ca->channels[j].query = NULL;
            }
            ca->pending = 0;
            return CHANNEL_AUTH_REFUSED;
        }
    }
    return ca->pending ? CHANNEL_AUTH_PENDING : CHANNEL_AUTH_OK;
}

channel_auth_status channel_auth_start(guard *g, db *database, const guard_identity *id,
                                       const char *const *channels, size_t n_channels,
                                       int64_t now_ms, channel_auth_done_cb done, void *ctx,
                                       channel_auth **out, guard_refusal *why)
{
    channel_auth *ca = xcalloc(1, sizeof *ca);
    ca->g = g;
    ca->database = database;
    ca->id = id;
    ca->done = done;
    ca->ctx = ctx;
    ca->n = n_channels;
    ca->channels = xcalloc(n_channels ? n_channels : 1, sizeof *ca->channels);
    for (size_t i = 0; i < n_channels; i++)
        ca->channels[i] = (channel_state){.owner = ca, .name = xstrdup(channels[i]), .until = 0};
    *out = ca;
    return check_due(ca, now_ms, why);
}

int64_t channel_auth_until(const channel_auth *ca)
{
    int64_t until = INT64_MAX;
    for (size_t i = 0; ca && i < ca->n; i++)
        if (ca->channels[i].until < until)
            until = ca->channels[i].until;
    return until;
}

bool channel_auth_pending(const channel_auth *ca)
{
    return ca && ca->pending > 0;
}

channel_auth_status channel_auth_expire(channel_auth *ca, int64_t now_ms, guard_refusal *why)
{
    if (ca->pending)
        return CHANNEL_AUTH_PENDING;
    if (now_ms >= ca->id->expires_ms) {
        *why = (guard_refusal){.status = 401};
        snprintf(why->detail, sizeof why->detail, "the token has expired");
        return CHANNEL_AUTH_REFUSED;
    }
    return check_due(ca, now_ms, why);
}

void channel_auth_free(channel_auth *ca)
{
    if (!ca)
        return;
    for (size_t i = 0; i < ca->n; i++) {
        db_query_cancel(ca->channels[i].query);
        free(ca->channels[i].name);
    }
    free(ca->channels);
    free(ca);
}
