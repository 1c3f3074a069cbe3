/*
 * notify_latency — how long an event takes from its producer's statement to
 * the NOTIFY a subscriber's connection sees (tests/bench/publish.sh runs it).
 *
 *   notify_latency enqueue|publish N GAP_MS CHANNEL
 *
 * One connection LISTENs on "pgfeed" as pgfeed does; another runs N times,
 * GAP_MS apart, `SELECT pgfeed.enqueue(CHANNEL, ...)` or pgfeed.publish
 * (autocommit: the statement's round trip includes its commit) and then
 * waits for the notification naming CHANNEL. With enqueue the event has no
 * version until a sequencer (a pgfeed daemon, --sequence-ms) moves it, so the
 * figure is what a subscriber of an enqueued event waits beyond a publish.
 * Connections come from libpq's PG* environment. Prints nearest-rank
 * percentiles in ms; a notification that does not come within 5 s is lost.
 */
#define _POSIX_C_SOURCE 200809L
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAIT_MS 5000

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static PGconn *connect_or_die(void)
{
    PGconn *c = PQconnectdb("");
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "notify_latency: %s", PQerrorMessage(c));
        exit(1);
    }
    return c;
}

/* True once a notification whose payload ends with " channel" arrived, within WAIT_MS. */
static int wait_notify(PGconn *c, const char *channel, double started)
{
    size_t len = strlen(channel);
    for (;;) {
        if (!PQconsumeInput(c))
            return 0;
        PGnotify *n;
        int found = 0;
        while ((n = PQnotifies(c)) != NULL) {
            size_t plen = strlen(n->extra);
            if (plen > len && n->extra[plen - len - 1] == ' ' &&
                strcmp(n->extra + plen - len, channel) == 0)
                found = 1;
            PQfreemem(n);
        }
        if (found)
            return 1;
        int left = (int)(started + WAIT_MS - now_ms());
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
        if (poll(&p, 1, left) < 0)
            return 0;
    }
}

static int compare(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double rank(const double *sorted, int n, double q)
{
    int i = (int)(q * n + 0.999999) - 1;
    return sorted[i < 0 ? 0 : i >= n ? n - 1 : i];
}

int main(int argc, char **argv)
{
    if (argc != 5 || (strcmp(argv[1], "enqueue") && strcmp(argv[1], "publish"))) {
        fprintf(stderr, "usage: notify_latency enqueue|publish N GAP_MS CHANNEL\n");
        return 2;
    }
    int n = atoi(argv[2]), gap_ms = atoi(argv[3]);
    const char *channel = argv[4];
    if (n < 1 || gap_ms < 0) {
        fprintf(stderr, "notify_latency: N >= 1 and GAP_MS >= 0\n");
        return 2;
    }
    PGconn *listener = connect_or_die(), *producer = connect_or_die();
    PQclear(PQexec(listener, "LISTEN pgfeed"));
    PGresult *res =
        PQprepare(producer, "p",
                  strcmp(argv[1], "enqueue") == 0 ? "SELECT pgfeed.enqueue($1, 'latency', '{}')"
                                                  : "SELECT pgfeed.publish($1, 'latency', '{}')",
                  1, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        fprintf(stderr, "notify_latency: %s", PQerrorMessage(producer));
        return 1;
    }
    PQclear(res);
    double *latency = calloc((size_t)n, sizeof *latency);
    double *statement = calloc((size_t)n, sizeof *statement);
    int got = 0, lost = 0;
    const char *params[] = {channel};
    for (int i = 0; i < n; i++) {
        double t0 = now_ms();
        res = PQexecPrepared(producer, "p", 1, params, NULL, NULL, 0);
        double t1 = now_ms();
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            fprintf(stderr, "notify_latency: %s", PQerrorMessage(producer));
            return 1;
        }
        PQclear(res);
        if (wait_notify(listener, channel, t0)) {
            latency[got] = now_ms() - t0;
            statement[got++] = t1 - t0;
        } else {
            lost++;
        }
        struct timespec gap = {.tv_sec = gap_ms / 1000, .tv_nsec = (long)(gap_ms % 1000) * 1000000};
        nanosleep(&gap, NULL);
    }
    if (got == 0) {
        printf("notify_latency: %s: 0 of %d notifications arrived\n", argv[1], n);
        return 1;
    }
    qsort(latency, (size_t)got, sizeof *latency, compare);
    qsort(statement, (size_t)got, sizeof *statement, compare);
    printf("notify_latency: %s, %d events %d ms apart: statement → NOTIFY seen p50 %.2f p90 %.2f "
           "p99 %.2f max %.2f ms (statement alone p50 %.2f ms), %d lost\n",
           argv[1], n, gap_ms, rank(latency, got, 0.5), rank(latency, got, 0.9),
           rank(latency, got, 0.99), latency[got - 1], rank(statement, got, 0.5), lost);
    free(latency);
    free(statement);
    PQfinish(listener);
    PQfinish(producer);
    return lost ? 1 : 0;
}
