/*
 * feedbench — holds N long polls or N Server-Sent Events streams through a web
 * server in front of one pgfeed daemon, publishes events from its own
 * PostgreSQL connection, and reports publish→delivery latency, lost and
 * duplicated deliveries, memory per held request and statements per publish.
 * tests/bench/run.sh starts everything around it; BENCHMARKS.md has the figures.
 *
 * One thread and one epoll set hold every client socket and the publishing
 * libpq connection, so a response is timestamped as soon as read() returns it,
 * even while a publish is still in flight. The bench shares the machine's
 * cores with pgfeed, the web server and PostgreSQL: every latency it reports
 * includes the time a ready socket waited for the bench's own turn.
 *
 * Latency of one delivery = (time the client's complete response, or the SSE
 * frame's closing blank line, was read) − (time just before the publishing
 * statement was handed to libpq). Both come from CLOCK_MONOTONIC.
 *
 * --target nchan runs the same load against Nchan (an nginx module) as the
 * baseline: events are published by HTTP POST to its publisher location on a
 * keep-alive connection in the same epoll set, each message's body is
 * {"version":N} so the same bookkeeping applies, and the held gauge is
 * "subscribers:" of nchan_stub_status. --mode repeat measures the server CPU
 * of one request sent over and over (a 304 of pgfeed, of Nchan's interval
 * poll, or of a static file), for µs per 304.
 *
 * --mode lag holds N long polls that re-poll at once, each from the cursor
 * its answer gave (limit= --limit), while the bench publishes --rate events
 * per second for --duration seconds with the real pgfeed.publish (each
 * statement publishes the events due since the last one, --batch-ms apart).
 * Every client must see every event once, in order; the report gives lag
 * (delivery − publish) p50/p99/max over all deliveries, how far the slowest
 * client was behind each second, and pgfeed's reads per second.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_MS INT64_C(1000000)
#define NS_PER_S INT64_C(1000000000)
#define EPOLL_BATCH 1024
#define READ_CHUNK 16384
#define MAX_CONNECTING 256  /* connects in flight while ramping: keeps backlogs short */
#define HELD_TIMEOUT_S 180  /* how long to wait for the held gauge to reach N */
#define METRICS_POLL_MS 100 /* how often the held gauge is read while waiting */
#define HTTP_LINE_MAX 2048  /* longest status or header line kept */
#define SSE_LINE_MAX 8192   /* longest SSE line kept */
#define PUBLISH_SQL "SELECT pgfeed.publish($1, 'bench', $2::jsonb)"
/* lag: the events due, one pgfeed.publish call each, in one statement (rows come in order). */
#define PUBLISH_MANY_SQL                                                                           \
    "SELECT pgfeed.publish($1, 'bench', jsonb_build_object('event', $3::bigint + g))"              \
    " FROM generate_series(1, $2::int) g"
#define LAG_BUCKET_NS 100000 /* lag histogram resolution: 0.1 ms */
#define LAG_BUCKETS 600000   /* up to 60 s; later deliveries count in the last */
#define LAG_MAX_BATCH 5000   /* events per publishing statement at most */

/* ---- small utilities --------------------------------------------------------- */

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("feedbench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        die("out of memory");
    return p;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static double ns_to_ms(int64_t ns)
{
    return (double)ns / (double)NS_PER_MS;
}

static int compare_int64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted[0..n): the smallest value with p% of samples at or below. */
static int64_t percentile(const int64_t *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t rank = (size_t)((p / 100.0) * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    return sorted[(rank > n ? n : rank) - 1];
}

/* A growable byte string; data is always NUL-terminated. */
typedef struct bytes {
    char *data;
    size_t len, cap;
} bytes;

static void bytes_append(bytes *b, const char *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 512;
        while (b->len + len + 1 > cap)
            cap *= 2;
        b->data = realloc(b->data, cap);
        if (!b->data)
            die("out of memory");
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

/* ---- options ------------------------------------------------------------------- */

typedef enum bench_mode { MODE_LONG_POLL, MODE_SSE, MODE_REPEAT } bench_mode;
#define MAX_EXTRA_HEADERS 4

typedef struct options {
    bench_mode mode;
    int clients;
    const char *host; /* the web server, IPv4 */
    int port;
    const char *prefix;  /* where pgfeed is mounted, e.g. /feed */
    const char *channel; /* the bench's channel; the bench must be its only publisher */
    int rounds;          /* long poll: publishes measured, each waited for */
    int events;          /* SSE: events published interval_ms apart */
    int interval_ms;
    int burst;            /* SSE: events published back to back for deliveries per second */
    int timeout_s;        /* a delivery not complete this long after its publish is lost */
    int wait_s;           /* long poll: the wait= of each request */
    int ramp_per_s;       /* new requests per second while opening clients */
    bool baseline;        /* measure the same with one client first */
    bool deferred_repoll; /* long poll: poll again only once every client has the event */
    long pgfeed_pid;
    long server_pid;
    long postgres_pid;       /* the postmaster: its backends' CPU is the database's share */
    int cpu;                 /* the server side's CPU, whose busy time /proc/stat gives; -1: none */
    const char *pgfeed_role; /* the database role pgfeed connects as (pg_stat_statements) */
    const char *server_name; /* what --server-pid is, in the report */
    const char *memory_cmd;  /* run as `CMD before|held N` around opening a phase */
    bool nchan;              /* --target nchan: Nchan, not pgfeed, serves the clients */
    const char *pub_prefix;  /* nchan: the publisher location, e.g. /pub */
    const char *metrics_path; /* the held gauge: pgfeed's /_metrics or nchan_stub_status */
    const char *path;         /* repeat: the request target sent over and over */
    const char *headers[MAX_EXTRA_HEADERS]; /* repeat: extra header lines */
    int n_headers;
    long requests;     /* repeat: answers to collect */
    int expect_status; /* repeat: every answer must have this status */
    const char *label; /* printed on the RESULT line run.sh collects */
    bool collapsed; /* a shared cache in front: pgfeed holds one request per URL, not one per client
                     */
    bool lag;       /* --mode lag: a long poll under a steady publish rate */
    int rate;       /* lag: events published per second */
    int duration_s; /* lag: for this long */
    int batch_ms;   /* lag: publishing statements this far apart (each carries what is due) */
    int limit;      /* limit= of each long poll; 0: pgfeed's default */
} options;

static void usage(void)
{
    fputs("usage: feedbench --mode longpoll|sse --clients N --port PORT --pgfeed-pid PID\n"
          "                 --server-pid PID [--host 127.0.0.1] [--prefix /feed]\n"
          "                 [--channel bench] [--rounds 5] [--events 20] [--interval-ms 200]\n"
          "                 [--burst 20] [--timeout 10] [--wait 300] [--ramp 2000]\n"
          "                 [--pgfeed-role ROLE] [--no-baseline] [--deferred-repoll]\n"
          "                 [--target pgfeed|nchan] [--pub-prefix /pub] [--metrics-path P]\n"
          "                 [--label TEXT] [--collapsed]\n"
          "                 [--server-name lighttpd] [--memory-cmd CMD] [--limit N]\n"
          "                 [--postgres-pid POSTMASTER] [--cpu N]\n"
          "       feedbench --mode lag [--rate 2000] [--duration 10] [--batch-ms 10]\n"
          "                 [--limit 1000] --clients N --port PORT ...\n"
          "       feedbench --mode repeat --path TARGET [--header 'Name: value']...\n"
          "                 [--requests 20000] [--expect 304] --clients N --port PORT ...\n"
          "--target nchan: --pgfeed-pid 0 (there is none), --prefix is the subscriber location.\n"
          "Publishes through libpq's PG* environment. See tests/bench/run.sh.\n",
          stderr);
    exit(2);
}

static long option_number(const char *name, const char *value, long min, long max)
{
    char *end;
    errno = 0;
    long n = strtol(value, &end, 10);
    if (errno || end == value || *end || n < min || n > max)
        die("%s: expected a number from %ld to %ld, not \"%s\"", name, min, max, value);
    return n;
}

static void options_parse(options *o, int argc, char **argv)
{
    *o = (options){.mode = MODE_LONG_POLL,
                   .clients = 1000,
                   .host = "127.0.0.1",
                   .prefix = "/feed",
                   .channel = "bench",
                   .rounds = 5,
                   .events = 20,
                   .interval_ms = 200,
                   .burst = 20,
                   .timeout_s = 10,
                   .wait_s = 300,
                   .ramp_per_s = 2000,
                   .server_name = "lighttpd",
                   .baseline = true,
                   .pub_prefix = "/pub",
                   .requests = 20000,
                   .expect_status = 304,
                   .label = "-",
                   .cpu = -1,
                   .rate = 2000,
                   .duration_s = 10,
                   .batch_ms = 10};
    for (int i = 1; i < argc; i++) {
        const char *name = argv[i];
        if (!strcmp(name, "--no-baseline")) {
            o->baseline = false;
            continue;
        }
        if (!strcmp(name, "--collapsed")) {
            o->collapsed = true;
            continue;
        }
        if (!strcmp(name, "--deferred-repoll")) {
            o->deferred_repoll = true;
            continue;
        }
        if (!strcmp(name, "--help") || i + 1 >= argc)
            usage();
        const char *value = argv[++i];
        if (!strcmp(name, "--mode")) {
            if (!strcmp(value, "longpoll"))
                o->mode = MODE_LONG_POLL;
            else if (!strcmp(value, "sse"))
                o->mode = MODE_SSE;
            else if (!strcmp(value, "repeat"))
                o->mode = MODE_REPEAT;
            else if (!strcmp(value, "lag"))
                o->mode = MODE_LONG_POLL, o->lag = true;
            else
                die("--mode: longpoll, sse, repeat or lag, not \"%s\"", value);
        } else if (!strcmp(name, "--target")) {
            if (strcmp(value, "pgfeed") && strcmp(value, "nchan"))
                die("--target: pgfeed or nchan, not \"%s\"", value);
            o->nchan = !strcmp(value, "nchan");
        } else if (!strcmp(name, "--pub-prefix")) {
            o->pub_prefix = value;
        } else if (!strcmp(name, "--metrics-path")) {
            o->metrics_path = value;
        } else if (!strcmp(name, "--path")) {
            o->path = value;
        } else if (!strcmp(name, "--header")) {
            if (o->n_headers == MAX_EXTRA_HEADERS)
                die("at most %d --header", MAX_EXTRA_HEADERS);
            o->headers[o->n_headers++] = value;
        } else if (!strcmp(name, "--requests")) {
            o->requests = option_number(name, value, 1, 100000000);
        } else if (!strcmp(name, "--expect")) {
            o->expect_status = (int)option_number(name, value, 100, 599);
        } else if (!strcmp(name, "--rate")) {
            o->rate = (int)option_number(name, value, 1, 1000000);
        } else if (!strcmp(name, "--duration")) {
            o->duration_s = (int)option_number(name, value, 1, 3600);
        } else if (!strcmp(name, "--batch-ms")) {
            o->batch_ms = (int)option_number(name, value, 1, 1000);
        } else if (!strcmp(name, "--limit")) {
            o->limit = (int)option_number(name, value, 1, 1000);
        } else if (!strcmp(name, "--label")) {
            o->label = value;
        } else if (!strcmp(name, "--clients")) {
            o->clients = (int)option_number(name, value, 1, 1000000);
        } else if (!strcmp(name, "--host")) {
            o->host = value;
        } else if (!strcmp(name, "--port")) {
            o->port = (int)option_number(name, value, 1, 65535);
        } else if (!strcmp(name, "--prefix")) {
            o->prefix = value;
        } else if (!strcmp(name, "--channel")) {
            o->channel = value;
        } else if (!strcmp(name, "--rounds")) {
            o->rounds = (int)option_number(name, value, 1, 1000);
        } else if (!strcmp(name, "--events")) {
            o->events = (int)option_number(name, value, 1, 10000);
        } else if (!strcmp(name, "--interval-ms")) {
            o->interval_ms = (int)option_number(name, value, 0, 60000);
        } else if (!strcmp(name, "--burst")) {
            o->burst = (int)option_number(name, value, 0, 10000);
        } else if (!strcmp(name, "--timeout")) {
            o->timeout_s = (int)option_number(name, value, 1, 3600);
        } else if (!strcmp(name, "--wait")) {
            o->wait_s = (int)option_number(name, value, 1, 3600);
        } else if (!strcmp(name, "--ramp")) {
            o->ramp_per_s = (int)option_number(name, value, 1, 1000000);
        } else if (!strcmp(name, "--pgfeed-pid")) {
            o->pgfeed_pid = option_number(name, value, 0, 1L << 30);
        } else if (!strcmp(name, "--server-pid")) {
            o->server_pid = option_number(name, value, 1, 1L << 30);
        } else if (!strcmp(name, "--postgres-pid")) {
            o->postgres_pid = option_number(name, value, 0, 1L << 30);
        } else if (!strcmp(name, "--cpu")) {
            o->cpu = (int)option_number(name, value, 0, 4095);
        } else if (!strcmp(name, "--pgfeed-role")) {
            o->pgfeed_role = value;
        } else if (!strcmp(name, "--server-name")) {
            o->server_name = value;
        } else if (!strcmp(name, "--memory-cmd")) {
            o->memory_cmd = value;
        } else {
            usage();
        }
    }
    if (!o->port || !o->server_pid || (!o->pgfeed_pid && !o->nchan && o->mode != MODE_REPEAT))
        usage();
    if (o->lag && (o->nchan || o->collapsed))
        die("--mode lag runs against pgfeed without a shared cache");
    if (o->lag && !o->limit)
        o->limit = 1000; /* a client behind takes the largest page there is */
    if (o->mode == MODE_REPEAT && !o->path)
        die("--mode repeat needs --path");
    if (!o->metrics_path)
        o->metrics_path = o->nchan ? "/nchan_status" : NULL; /* NULL: {prefix}/_metrics */
}

/* ---- HTTP responses, parsed incrementally ----------------------------------- */

typedef enum http_state {
    HTTP_STATUS_LINE,
    HTTP_HEADER,
    HTTP_BODY_LENGTH, /* Content-Length bytes */
    HTTP_BODY_EOF,    /* neither length nor chunks: the body ends when the server closes */
    HTTP_CHUNK_SIZE,
    HTTP_CHUNK_DATA,
    HTTP_CHUNK_END, /* the CRLF after a chunk's data */
    HTTP_TRAILER,
    HTTP_DONE,
} http_state;

typedef struct http_response {
    http_state state;
    int status;
    bool chunked;
    bool close; /* Connection: close: the connection is not reused */
    long long content_length;
    long long remaining; /* of the body or of the current chunk */
    char etag[64];
    char last_modified[64]; /* Nchan's long-poll cursor is Last-Modified + Etag */
    char link[256];         /* Link: <...>; rel="next": pgfeed's canonical next URL */
    char line[HTTP_LINE_MAX];
    size_t line_len;
    bool line_overflow;
} http_response;

static void http_reset(http_response *h)
{
    memset(h, 0, sizeof *h);
    h->content_length = -1;
}

/*
 * Collects one LF-terminated line (a CR before it is dropped) into h->line.
 * Returns the bytes used; *complete tells whether the line ended.
 */
static size_t http_take_line(http_response *h, const char *data, size_t len, bool *complete)
{
    const char *lf = memchr(data, '\n', len);
    size_t used = lf ? (size_t)(lf - data) + 1 : len;
    size_t text = lf ? used - 1 : used;
    if (h->line_len + text >= sizeof h->line) {
        h->line_overflow = true;
        text = sizeof h->line - 1 - h->line_len;
    }
    memcpy(h->line + h->line_len, data, text);
    h->line_len += text;
    *complete = lf != NULL;
    if (*complete) {
        if (h->line_len > 0 && h->line[h->line_len - 1] == '\r')
            h->line_len--;
        h->line[h->line_len] = '\0';
    }
    return used;
}

static bool header_is(const char *line, const char *name, const char **value)
{
    size_t n = strlen(name);
    if (strncasecmp(line, name, n) != 0 || line[n] != ':')
        return false;
    *value = line + n + 1;
    while (**value == ' ' || **value == '\t')
        (*value)++;
    return true;
}

/* One header line, or the blank line that ends them. Returns -1 if malformed. */
static int http_on_header(http_response *h)
{
    const char *value;
    if (h->line_len == 0) {
        if (h->status == 204 || h->status == 304 || (h->status >= 100 && h->status < 200))
            h->state = HTTP_DONE;
        else if (h->chunked)
            h->state = HTTP_CHUNK_SIZE;
        else if (h->content_length >= 0)
            h->state = h->content_length ? HTTP_BODY_LENGTH : HTTP_DONE;
        else
            h->state = HTTP_BODY_EOF;
        h->remaining = h->content_length;
    } else if (header_is(h->line, "Content-Length", &value)) {
        h->content_length = strtoll(value, NULL, 10);
    } else if (header_is(h->line, "Transfer-Encoding", &value)) {
        h->chunked = strcasecmp(value, "chunked") == 0;
    } else if (header_is(h->line, "Connection", &value)) {
        h->close = strcasecmp(value, "close") == 0;
    } else if (header_is(h->line, "ETag", &value)) {
        snprintf(h->etag, sizeof h->etag, "%s", value);
    } else if (header_is(h->line, "Link", &value)) {
        const char *end = strstr(value, ">; rel=\"next\"");
        if (value[0] == '<' && end && (size_t)(end - value) < sizeof h->link)
            snprintf(h->link, sizeof h->link, "%.*s", (int)(end - value - 1), value + 1);
    } else if (header_is(h->line, "Last-Modified", &value)) {
        snprintf(h->last_modified, sizeof h->last_modified, "%s", value);
    }
    return 0;
}

typedef void body_sink(void *ctx, const char *data, size_t len, int64_t t);

/*
 * Feeds bytes read at time t into the response; body bytes go to sink.
 * Returns the bytes used (fewer than len only once h->state is HTTP_DONE) or
 * -1 when the response is malformed.
 */
static long http_feed(http_response *h, const char *data, size_t len, int64_t t, body_sink *sink,
                      void *ctx)
{
    size_t pos = 0;
    while (pos < len && h->state != HTTP_DONE) {
        const char *p = data + pos;
        size_t left = len - pos;
        bool complete = false;
        switch (h->state) {
        case HTTP_STATUS_LINE:
        case HTTP_HEADER:
        case HTTP_CHUNK_SIZE:
        case HTTP_CHUNK_END:
        case HTTP_TRAILER:
            pos += http_take_line(h, p, left, &complete);
            if (!complete)
                break;
            if (h->line_overflow)
                return -1;
            if (h->state == HTTP_STATUS_LINE) {
                if (sscanf(h->line, "HTTP/%*d.%*d %d", &h->status) != 1)
                    return -1;
                h->state = HTTP_HEADER;
            } else if (h->state == HTTP_HEADER) {
                if (http_on_header(h) < 0)
                    return -1;
            } else if (h->state == HTTP_CHUNK_SIZE) {
                char *end;
                h->remaining = strtoll(h->line, &end, 16);
                if (end == h->line || h->remaining < 0)
                    return -1;
                h->state = h->remaining ? HTTP_CHUNK_DATA : HTTP_TRAILER;
            } else if (h->state == HTTP_CHUNK_END) {
                if (h->line_len != 0)
                    return -1;
                h->state = HTTP_CHUNK_SIZE;
            } else if (h->line_len == 0) {
                h->state = HTTP_DONE; /* the blank line after the (usually absent) trailers */
            }
            h->line_len = 0;
            break;
        case HTTP_BODY_LENGTH:
        case HTTP_CHUNK_DATA: {
            size_t n = left < (size_t)h->remaining ? left : (size_t)h->remaining;
            sink(ctx, p, n, t);
            pos += n;
            h->remaining -= (long long)n;
            if (h->remaining == 0)
                h->state = h->state == HTTP_CHUNK_DATA ? HTTP_CHUNK_END : HTTP_DONE;
            break;
        }
        case HTTP_BODY_EOF:
            sink(ctx, p, left, t);
            pos = len;
            break;
        case HTTP_DONE:
            break;
        }
    }
    return (long)pos;
}

/* ---- clients --------------------------------------------------------------- */

/*
 * A client's life. A client is one TCP connection to the web server carrying
 * one request at a time; a long poll sends its next request on the same
 * connection (HTTP keep-alive) or on a new one when the server closes it.
 */
typedef enum client_state {
    /* Not opened yet: the ramp has not reached it. */
    CL_IDLE,
    /* connect() in progress; epoll waits for writability. */
    CL_CONNECTING,
    /* Connected; the request is partly written and epoll waits for writability. */
    CL_SENDING,
    /* The request is out: a long poll is held, a stream is open. Reading. */
    CL_WAITING,
    /* Refused (a status other than 200), malformed or broken: closed and counted, not retried. */
    CL_FAILED,
    /* Long poll with --deferred-repoll: its answer is in; it polls again when every client's is. */
    CL_ANSWERED,
    /* Done: its last answer is in and it does not poll again. */
    CL_CLOSED,
} client_state;

typedef struct sse_parser {
    char line[SSE_LINE_MAX];
    size_t line_len;
    int64_t id;           /* the frame's id: line (one channel: the version) */
    int64_t data_version; /* "version" in the frame's data: line, -1 if none */
    bool has_data;
    bool is_reset; /* event: reset, pgfeed's "your cursor is gone" */
} sse_parser;

typedef struct bench bench;

typedef struct client {
    bench *b;
    int index;
    int fd;
    client_state state;
    int64_t cursor; /* since= of the next request */
    char request[512];
    size_t request_len, request_sent;
    http_response http;
    bytes body;         /* long poll: the body of the response being read */
    sse_parser sse;     /* SSE: the frame being read */
    bool stream_open;   /* SSE: a 200 and the retry: line have arrived */
    int64_t last_event; /* the newest version this client received */
    char nchan_etag[64], nchan_last_modified[64]; /* nchan long poll: the next request's cursor */
    char next_link[256]; /* the answer's Link rel="next" ("?since=..."), followed as given */
    long repeats;        /* repeat: answers this client has had */
} client;

/* ---- the bench: clients, publisher, measurements ---------------------------- */

typedef struct publisher {
    PGconn *conn;
    int http_fd;        /* nchan: keep-alive connection to the publisher location */
    http_response http; /* nchan: the answer to the POST in flight */
    bool in_flight;
    int queued;           /* publishes waiting behind the one in flight */
    int in_flight_n;      /* lag: events the statement in flight publishes */
    int64_t next_version; /* the bench is the channel's only publisher: versions are known */
} publisher;

struct bench {
    const options *opt;
    int epfd;
    struct sockaddr_in addr;
    PGconn *stats; /* probes; never busy, so it can be asked between publishes */
    publisher pub;

    /* The clients of the current phase. */
    client *clients;
    int n_clients;
    int n_opened;     /* the ramp has started this many */
    int n_connecting; /* CL_CONNECTING or CL_SENDING */
    int64_t ramp_start_ns;
    bool repoll; /* long poll: a client polls again after an answer */

    /* The events of the current phase: versions base_version+1 .. base_version+n_events. */
    int64_t base_version;
    int n_events;
    /* [event]: when the bench meant to publish it. Latency counts from here, not from
     * the send: a publisher that waits for the previous answer (Nchan answers a POST
     * only once it has written the message to every subscriber) must not slow the
     * load down for the server that is slow to answer (coordinated omission). */
    int64_t *due_ns;
    int64_t *publish_ns;   /* [event]: just before its statement went to libpq */
    int64_t *committed_ns; /* [event]: when its statement's result came back */
    int64_t *delivered_ns; /* [client * n_events + event]: when it arrived, 0 if not yet */
    int *delivered_count;  /* [event]: clients that have it */

    /* Anomalies of the current phase. */
    long status_count[600]; /* responses by status (long poll: every answer; SSE: the first) */
    long failed;            /* clients closed as refused, malformed or broken */
    long duplicates;        /* an event a client already had */
    long out_of_order;      /* an event older than one the client already had */
    long unexpected;        /* a version outside the phase's events */
    long mismatched;        /* SSE data whose version differs from its id */
    long resets;            /* SSE event: reset */
    long empty_answers;     /* long poll answered without an event (wait ran out) */
    long reconnects;        /* long poll: the server closed a keep-alive connection */
    long heartbeats;
    long repeat_answers; /* repeat: answers collected */
    int64_t last_delivery_ns;
    double mem_per_held_kb; /* pgfeed + server RSS growth per held request, last phase_open */
    int64_t nchan_head; /* nchan: the last version the bench published (it keeps no channel row) */

    /* lag: every delivery's lag in a histogram (clients × events samples would not fit). */
    uint32_t *lag_hist;
    int64_t lag_max_ns;
    long long lag_delivered;
    long long lag_lost; /* events a client's answers skipped (a gap in its versions) */
};

/* The epoll tag of the publisher's HTTP connection to Nchan (clients are tagged by pointer). */
static char nchan_publisher_tag;

static void client_fail(client *c, const char *why);
static void client_send_request(client *c);
static void bench_deliver(bench *b, client *c, int64_t version, int64_t t);

static void client_watch(client *c, uint32_t events, int op)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(c->b->epfd, op, c->fd, &ev) < 0)
        die("epoll_ctl: %s", strerror(errno));
}

static void client_close_fd(client *c)
{
    if (c->fd < 0)
        return;
    if (c->state == CL_CONNECTING || c->state == CL_SENDING)
        c->b->n_connecting--;
    close(c->fd); /* also leaves the epoll set */
    c->fd = -1;
}

static void client_format_request(client *c)
{
    const options *o = c->b->opt;
    int n;
    if (o->mode == MODE_REPEAT) {
        n = snprintf(c->request, sizeof c->request, "GET %s HTTP/1.1\r\nHost: %s\r\n", o->path,
                     o->host);
        for (int i = 0; i < o->n_headers && n > 0 && (size_t)n < sizeof c->request; i++)
            n += snprintf(c->request + n, sizeof c->request - (size_t)n, "%s\r\n", o->headers[i]);
        if (n > 0 && (size_t)n < sizeof c->request)
            n += snprintf(c->request + n, sizeof c->request - (size_t)n, "\r\n");
    } else if (o->nchan && o->mode == MODE_SSE)
        n = snprintf(c->request, sizeof c->request,
                     "GET %s/%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n",
                     o->prefix, o->channel, o->host);
    else if (o->nchan && c->nchan_etag[0])
        n = snprintf(c->request, sizeof c->request,
                     "GET %s/%s HTTP/1.1\r\nHost: %s\r\nIf-Modified-Since: %s\r\n"
                     "If-None-Match: %s\r\n\r\n",
                     o->prefix, o->channel, o->host, c->nchan_last_modified, c->nchan_etag);
    else if (o->nchan) /* the first poll: the location sends only messages newer than it */
        n = snprintf(c->request, sizeof c->request, "GET %s/%s HTTP/1.1\r\nHost: %s\r\n\r\n",
                     o->prefix, o->channel, o->host);
    else if (o->mode == MODE_LONG_POLL && c->next_link[0] == '?')
        n = snprintf(c->request, sizeof c->request, "GET %s/%s%s HTTP/1.1\r\nHost: %s\r\n\r\n",
                     o->prefix, o->channel, c->next_link, o->host);
    else if (o->mode == MODE_SSE)
        n = snprintf(c->request, sizeof c->request,
                     "GET %s/%s?since=%" PRId64 " HTTP/1.1\r\nHost: %s\r\n"
                     "Accept: text/event-stream\r\n\r\n",
                     o->prefix, o->channel, c->cursor, o->host);
    else if (o->limit)
        n = snprintf(c->request, sizeof c->request,
                     "GET %s/%s?since=%" PRId64 "&wait=%d&limit=%d HTTP/1.1\r\nHost: %s\r\n\r\n",
                     o->prefix, o->channel, c->cursor, o->wait_s, o->limit, o->host);
    else
        n = snprintf(c->request, sizeof c->request,
                     "GET %s/%s?since=%" PRId64 "&wait=%d HTTP/1.1\r\nHost: %s\r\n\r\n", o->prefix,
                     o->channel, c->cursor, o->wait_s, o->host);
    if (n < 0 || (size_t)n >= sizeof c->request)
        die("request longer than %zu bytes", sizeof c->request);
    c->request_len = (size_t)n;
    c->request_sent = 0;
}

/* Opens (or reopens) the client's connection; the request follows once connected. */
static void client_connect(client *c)
{
    bench *b = c->b;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die("socket: %s (raise ulimit -n: one descriptor per client)", strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = CL_CONNECTING;
    b->n_connecting++;
    if (connect(c->fd, (struct sockaddr *)&b->addr, sizeof b->addr) < 0 && errno != EINPROGRESS) {
        client_fail(c, strerror(errno));
        return;
    }
    client_watch(c, EPOLLOUT | EPOLLIN, EPOLL_CTL_ADD);
}

static void client_write_request(client *c)
{
    while (c->request_sent < c->request_len) {
        ssize_t n = write(c->fd, c->request + c->request_sent, c->request_len - c->request_sent);
        if (n > 0) {
            c->request_sent += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (c->state != CL_SENDING) {
                c->state = CL_SENDING;
                c->b->n_connecting++;
                client_watch(c, EPOLLOUT | EPOLLIN, EPOLL_CTL_MOD);
            }
            return;
        } else {
            client_fail(c, "write failed");
            return;
        }
    }
    if (c->state == CL_SENDING || c->state == CL_CONNECTING) {
        c->b->n_connecting--;
        client_watch(c, EPOLLIN, EPOLL_CTL_MOD);
    }
    c->state = CL_WAITING;
}

static void client_send_request(client *c)
{
    http_reset(&c->http);
    c->body.len = 0;
    memset(&c->sse, 0, sizeof c->sse);
    client_format_request(c);
    client_write_request(c);
}

static void client_fail(client *c, const char *why)
{
    if (c->state == CL_FAILED)
        return;
    if (c->b->failed < 5)
        fprintf(stderr, "feedbench: client %d failed: %s\n", c->index, why);
    client_close_fd(c);
    c->state = CL_FAILED;
    c->b->failed++;
}

/* ---- long poll answers ----------------------------------------------------------- */

static void poll_body_sink(void *ctx, const char *data, size_t len, int64_t t)
{
    (void)t; /* a long poll's events are timed when the whole answer is in */
    client *c = ctx;
    bytes_append(&c->body, data, len);
}

/* Every "version":N in the body names an event (the events' data carry no such key). */
static int poll_record_events(client *c, int64_t t)
{
    int found = 0;
    const char *key = "\"version\":";
    for (const char *p = c->body.data ? strstr(c->body.data, key) : NULL; p;
         p = strstr(p + 1, key)) {
        bench_deliver(c->b, c, strtoll(p + strlen(key), NULL, 10), t);
        found++;
    }
    return found;
}

/* A complete long-poll answer: record its events, then poll again from its cursor. */
static void poll_on_answer(client *c, int64_t t)
{
    bench *b = c->b;
    http_response *h = &c->http;
    b->status_count[h->status >= 0 && h->status < 600 ? h->status : 0]++;
    if (b->opt->mode == MODE_REPEAT) {
        if (h->status != b->opt->expect_status) {
            char why[64];
            snprintf(why, sizeof why, "HTTP status %d, not %d", h->status, b->opt->expect_status);
            client_fail(c, why);
            return;
        }
        c->repeats++;
        b->repeat_answers++;
        if (b->repeat_answers + b->n_clients > b->opt->requests) {
            client_close_fd(c);
            c->state = CL_CLOSED;
            return;
        }
    } else if (h->status != 200) {
        char why[64];
        snprintf(why, sizeof why, "HTTP status %d", h->status);
        client_fail(c, why);
        return;
    }
    if (b->opt->mode == MODE_REPEAT) {
        /* the same request again */
    } else if (poll_record_events(c, t) == 0)
        b->empty_answers++;
    /* The ETag is the cursor to send next: "N" for one channel; Nchan's is Etag + Last-Modified. */
    if (b->opt->nchan) {
        snprintf(c->nchan_etag, sizeof c->nchan_etag, "%s", h->etag);
        snprintf(c->nchan_last_modified, sizeof c->nchan_last_modified, "%s", h->last_modified);
    } else if (h->etag[0] == '"')
        c->cursor = strtoll(h->etag + 1, NULL, 10);
    /* A cacheable answer names the URL to poll next: clients of a shared cache follow it. */
    snprintf(c->next_link, sizeof c->next_link, "%s", h->link);
    if (!b->repoll) {
        client_close_fd(c);
        c->state = CL_CLOSED;
        return;
    }
    if (b->opt->deferred_repoll) {
        c->state = CL_ANSWERED;
        return;
    }
    if (h->close) {
        client_close_fd(c);
        b->reconnects++;
        client_format_request(c);
        client_connect(c);
        return;
    }
    client_send_request(c);
}

/* ---- SSE frames -------------------------------------------------------------- */

static int64_t json_version(const char *json)
{
    const char *p = strstr(json, "\"version\":");
    return p ? strtoll(p + strlen("\"version\":"), NULL, 10) : -1;
}

static void sse_on_line(client *c, const char *line, size_t len, int64_t t)
{
    sse_parser *s = &c->sse;
    bench *b = c->b;
    if (len == 0) {
        if (b->opt->nchan) /* Nchan's id: is its own time:tag; the version is in the data */
            s->id = s->data_version;
        if (s->has_data && s->is_reset)
            b->resets++;
        else if (s->has_data && s->data_version != s->id)
            b->mismatched++;
        else if (s->has_data)
            bench_deliver(b, c, s->id, t);
        s->has_data = s->is_reset = false;
        return;
    }
    if (line[0] == ':') {
        b->heartbeats++;
        c->stream_open |= b->opt->nchan; /* Nchan opens a stream with ": hi", not retry: */
    } else if (!strncmp(line, "retry:", 6))
        c->stream_open = true;
    else if (!strncmp(line, "id:", 3))
        s->id = strtoll(line + 3, NULL, 10);
    else if (!strncmp(line, "event:", 6))
        s->is_reset = strstr(line, "reset") != NULL;
    else if (!strncmp(line, "data:", 5)) {
        s->has_data = true;
        s->data_version = json_version(line + 5);
    }
}

static void sse_body_sink(void *ctx, const char *data, size_t len, int64_t t)
{
    client *c = ctx;
    sse_parser *s = &c->sse;
    for (size_t i = 0; i < len; i++) {
        if (data[i] != '\n') {
            if (s->line_len + 1 < sizeof s->line)
                s->line[s->line_len++] = data[i];
            continue;
        }
        if (s->line_len > 0 && s->line[s->line_len - 1] == '\r')
            s->line_len--;
        s->line[s->line_len] = '\0';
        sse_on_line(c, s->line, s->line_len, t);
        s->line_len = 0;
    }
}

/* ---- reading ------------------------------------------------------------------- */

static void client_on_bytes(client *c, const char *data, size_t len, int64_t t)
{
    bench *b = c->b;
    bool sse = b->opt->mode == MODE_SSE;
    while (len > 0 && c->state == CL_WAITING) {
        http_state before = c->http.state;
        long used = http_feed(&c->http, data, len, t, sse ? sse_body_sink : poll_body_sink, c);
        if (used < 0) {
            client_fail(c, "malformed HTTP response");
            return;
        }
        data += used;
        len -= (size_t)used;
        if (sse && before <= HTTP_HEADER && c->http.state > HTTP_HEADER) {
            b->status_count[c->http.status >= 0 && c->http.status < 600 ? c->http.status : 0]++;
            if (c->http.status != 200) {
                client_fail(c, "stream refused");
                return;
            }
        }
        if (c->http.state != HTTP_DONE)
            continue;
        if (sse) {
            client_fail(c, "the stream ended");
            return;
        }
        poll_on_answer(c, t);
        /* No pipelining: nothing should follow an answer before the next request. */
        return;
    }
}

/* The server closed the connection. */
static void client_on_eof(client *c, int64_t t)
{
    bench *b = c->b;
    http_response *h = &c->http;
    if (h->state == HTTP_BODY_EOF && b->opt->mode == MODE_LONG_POLL) {
        h->state = HTTP_DONE;
        h->close = true;
        poll_on_answer(c, t);
        return;
    }
    if (b->opt->mode == MODE_LONG_POLL && h->state == HTTP_STATUS_LINE && h->line_len == 0) {
        /* A keep-alive connection closed between answers: poll again on a new one. */
        client_close_fd(c);
        b->reconnects++;
        client_format_request(c);
        client_connect(c);
        return;
    }
    client_fail(c, "the server closed the connection");
}

static void client_on_event(client *c, uint32_t events)
{
    if (c->state == CL_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
            client_fail(c, err ? strerror(err) : "connect failed");
            return;
        }
        client_send_request(c);
        return;
    }
    if (c->state == CL_SENDING && (events & EPOLLOUT)) {
        client_write_request(c);
        return;
    }
    if (c->state != CL_WAITING)
        return;
    char chunk[READ_CHUNK];
    for (;;) {
        ssize_t n = read(c->fd, chunk, sizeof chunk);
        int64_t t = now_ns();
        if (n > 0) {
            client_on_bytes(c, chunk, (size_t)n, t);
            if (c->state != CL_WAITING)
                return;
            continue;
        }
        if (n == 0) {
            client_on_eof(c, t);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            client_fail(c, strerror(errno));
        return;
    }
}

/* ---- deliveries ------------------------------------------------------------------ */

/* lag: the client's next version must follow its last one. */
static void lag_deliver(bench *b, client *c, int64_t version, int64_t t)
{
    int64_t e = version - b->base_version - 1;
    if (version <= c->last_event) {
        b->duplicates++;
        return;
    }
    if (e < 0 || e >= b->n_events || !b->publish_ns[e]) {
        b->unexpected++;
        return;
    }
    b->lag_lost += version - c->last_event - 1;
    c->last_event = version;
    int64_t lag = t - b->publish_ns[e];
    int64_t bucket = lag / LAG_BUCKET_NS;
    b->lag_hist[bucket < 0 ? 0 : bucket >= LAG_BUCKETS ? LAG_BUCKETS - 1 : bucket]++;
    if (lag > b->lag_max_ns)
        b->lag_max_ns = lag;
    b->lag_delivered++;
    b->last_delivery_ns = t;
}

static void bench_deliver(bench *b, client *c, int64_t version, int64_t t)
{
    if (b->opt->lag) {
        lag_deliver(b, c, version, t);
        return;
    }
    if (version <= c->last_event)
        b->out_of_order += version < c->last_event;
    else
        c->last_event = version;
    int64_t e = version - b->base_version - 1;
    if (e < 0 || e >= b->n_events) {
        b->unexpected++;
        return;
    }
    int64_t *slot = &b->delivered_ns[(size_t)c->index * (size_t)b->n_events + (size_t)e];
    if (*slot) {
        b->duplicates++;
        return;
    }
    *slot = t;
    b->delivered_count[e]++;
    b->last_delivery_ns = t;
}

/* ---- publishing ------------------------------------------------------------------ */

static void pub_send_next(bench *b)
{
    publisher *p = &b->pub;
    if (p->in_flight || p->queued == 0)
        return;
    int64_t e = p->next_version - b->base_version - 1;
    if (e < 0 || e >= b->n_events)
        die("publishing more events than the phase planned");
    if (b->opt->nchan) {
        char body[64], request[512];
        int body_len = snprintf(body, sizeof body, "{\"version\":%" PRId64 "}", p->next_version);
        int len = snprintf(request, sizeof request,
                           "POST %s/%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                           "Content-Length: %d\r\n\r\n%s",
                           b->opt->pub_prefix, b->opt->channel, b->opt->host, body_len, body);
        http_reset(&p->http);
        b->publish_ns[e] = now_ns();
        /* A few hundred bytes into an idle keep-alive socket: one write takes them. */
        if (write(p->http_fd, request, (size_t)len) != len)
            die("publish to Nchan: %s", strerror(errno));
        p->in_flight = true;
        p->queued--;
        return;
    }
    char data[64];
    snprintf(data, sizeof data, "{\"event\":%" PRId64 "}", e);
    const char *params[2] = {b->opt->channel, data};
    b->publish_ns[e] = now_ns();
    /* Blocking mode: the statement is written at once; the result is read from epoll. */
    if (!PQsendQueryParams(p->conn, PUBLISH_SQL, 2, NULL, params, NULL, NULL, 0))
        die("publish: %s", PQerrorMessage(p->conn));
    p->in_flight = true;
    p->queued--;
}

/* Queues n publishes, due now, sent back to back on the publishing connection. */
static void pub_publish(bench *b, int n)
{
    int64_t first = b->pub.next_version - b->base_version - 1 + b->pub.in_flight + b->pub.queued;
    int64_t now = now_ns();
    for (int64_t e = first; e < first + n && e < b->n_events; e++)
        b->due_ns[e] = now;
    b->pub.queued += n;
    pub_send_next(b);
}

/* lag: one statement publishes every event due (at most LAG_MAX_BATCH). */
static void lag_pub_send(bench *b)
{
    publisher *p = &b->pub;
    if (p->in_flight || p->queued == 0)
        return;
    int n = p->queued < LAG_MAX_BATCH ? p->queued : LAG_MAX_BATCH;
    int64_t e = p->next_version - b->base_version - 1;
    if (e < 0 || e + n > b->n_events)
        die("publishing more events than the phase planned");
    char count[16], first[32];
    snprintf(count, sizeof count, "%d", n);
    snprintf(first, sizeof first, "%" PRId64, e);
    const char *params[3] = {b->opt->channel, count, first};
    int64_t t = now_ns();
    for (int i = 0; i < n; i++)
        b->publish_ns[e + i] = t;
    if (!PQsendQueryParams(p->conn, PUBLISH_MANY_SQL, 3, NULL, params, NULL, NULL, 0))
        die("publish: %s", PQerrorMessage(p->conn));
    p->in_flight = true;
    p->in_flight_n = n;
    p->queued -= n;
}

static void lag_pub_on_readable(bench *b)
{
    publisher *p = &b->pub;
    if (!PQconsumeInput(p->conn))
        die("publishing connection: %s", PQerrorMessage(p->conn));
    while (p->in_flight && !PQisBusy(p->conn)) {
        PGresult *res = PQgetResult(p->conn);
        if (!res) {
            int64_t e = p->next_version - b->base_version - 1;
            for (int i = 0; i < p->in_flight_n; i++)
                b->committed_ns[e + i] = now_ns();
            p->in_flight = false;
            p->next_version += p->in_flight_n;
            lag_pub_send(b);
            continue;
        }
        if (PQresultStatus(res) != PGRES_TUPLES_OK)
            die("publish failed: %s", PQresultErrorMessage(res));
        for (int i = 0; i < PQntuples(res); i++)
            if (strtoll(PQgetvalue(res, i, 0), NULL, 10) != p->next_version + i)
                die("published version %s, expected %" PRId64
                    ": is something else publishing to the channel?",
                    PQgetvalue(res, i, 0), p->next_version + i);
        PQclear(res);
    }
}

static void pub_on_readable(bench *b)
{
    publisher *p = &b->pub;
    if (b->opt->lag) {
        lag_pub_on_readable(b);
        return;
    }
    if (!PQconsumeInput(p->conn))
        die("publishing connection: %s", PQerrorMessage(p->conn));
    while (p->in_flight && !PQisBusy(p->conn)) {
        PGresult *res = PQgetResult(p->conn);
        if (!res) {
            int64_t e = p->next_version - b->base_version - 1;
            b->committed_ns[e] = now_ns();
            p->in_flight = false;
            p->next_version++;
            pub_send_next(b);
            continue;
        }
        if (PQresultStatus(res) != PGRES_TUPLES_OK)
            die("publish failed: %s", PQresultErrorMessage(res));
        int64_t version = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        if (version != p->next_version)
            die("published version %" PRId64 ", expected %" PRId64
                ": is something else publishing to the channel?",
                version, p->next_version);
        PQclear(res);
    }
}

static void discard_body(void *ctx, const char *data, size_t len, int64_t t)
{
    (void)ctx, (void)data, (void)len, (void)t;
}

/* Nchan answered a POST (202 with no subscriber, 201 with some): the message is out. */
static void nchan_pub_on_readable(bench *b)
{
    publisher *p = &b->pub;
    char chunk[4096];
    ssize_t n = read(p->http_fd, chunk, sizeof chunk);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        die("Nchan closed the publishing connection");
    }
    if (http_feed(&p->http, chunk, (size_t)n, now_ns(), discard_body, NULL) < 0)
        die("malformed answer from Nchan's publisher location");
    if (p->http.state != HTTP_DONE)
        return;
    if (p->http.status != 201 && p->http.status != 202)
        die("Nchan refused a publish: HTTP %d", p->http.status);
    int64_t e = p->next_version - b->base_version - 1;
    b->committed_ns[e] = now_ns();
    b->nchan_head = p->next_version;
    p->in_flight = false;
    p->next_version++;
    pub_send_next(b);
}

static bool pub_idle(const bench *b)
{
    return !b->pub.in_flight && b->pub.queued == 0;
}

/* ---- the loop ------------------------------------------------------------------- */

/* Opens as many clients as the ramp allows by now. */
static void bench_ramp(bench *b)
{
    if (b->n_opened >= b->n_clients)
        return;
    double elapsed_s = (double)(now_ns() - b->ramp_start_ns) / (double)NS_PER_S;
    long allowed = 64 + (long)(elapsed_s * b->opt->ramp_per_s);
    while (b->n_opened < b->n_clients && b->n_opened < allowed &&
           b->n_connecting < MAX_CONNECTING) {
        client *c = &b->clients[b->n_opened++];
        client_format_request(c);
        client_connect(c);
    }
}

typedef bool bench_done(const bench *b, int arg);

/* Runs the loop until done(b, arg) (if given) or until deadline_ns. Returns done's verdict. */
static bool bench_run(bench *b, int64_t deadline_ns, bench_done *done, int arg)
{
    struct epoll_event events[EPOLL_BATCH];
    for (;;) {
        bench_ramp(b);
        if (done && done(b, arg))
            return true;
        int64_t now = now_ns();
        if (now >= deadline_ns)
            return false;
        int64_t wait_ns = deadline_ns - now;
        if (b->n_opened < b->n_clients && wait_ns > 5 * NS_PER_MS)
            wait_ns = 5 * NS_PER_MS;
        int n =
            epoll_wait(b->epfd, events, EPOLL_BATCH, (int)((wait_ns + NS_PER_MS - 1) / NS_PER_MS));
        if (n < 0 && errno != EINTR)
            die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            if (events[i].data.ptr == NULL)
                pub_on_readable(
                    b); /* the publishing connection is the only watch without a client */
            else if (events[i].data.ptr == &nchan_publisher_tag)
                nchan_pub_on_readable(b);
            else
                client_on_event(events[i].data.ptr, events[i].events);
        }
    }
}

static bool all_delivered(const bench *b, int event)
{
    return b->delivered_count[event] + b->failed >= b->n_clients;
}

static bool publisher_idle(const bench *b, int unused)
{
    (void)unused;
    return pub_idle(b);
}

/* ---- probes: pgfeed's metrics, process memory, PostgreSQL's statistics ---------- */

typedef struct pgfeed_metrics {
    long long held;
    long long queries;
    long long delivered;
    long long notifications;
    long long catchup[3]; /* pgfeed_catchup_total{served=read|joined|kept}; -1: no such metric */
} pgfeed_metrics;

static long long metric_value(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, name, n) && p[n] == ' ')
            return strtoll(p + n + 1, NULL, 10);
    return -1;
}

/* GET {prefix}/_metrics through the web server, blocking (the clients' sockets just buffer). */
static int metrics_fetch(const bench *b, pgfeed_metrics *m)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    bytes answer = {0};
    int rc = -1;
    char request[256];
    int len =
        b->opt->metrics_path
            ? snprintf(request, sizeof request, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n",
                       b->opt->metrics_path, b->opt->host)
            : snprintf(request, sizeof request, "GET %s/_metrics HTTP/1.0\r\nHost: %s\r\n\r\n",
                       b->opt->prefix, b->opt->host);
    if (connect(fd, (const struct sockaddr *)&b->addr, sizeof b->addr) < 0 ||
        write(fd, request, (size_t)len) != len)
        goto cleanup;
    char chunk[4096];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof chunk)) > 0)
        bytes_append(&answer, chunk, (size_t)n);
    if (n < 0 || !answer.data || strncmp(answer.data + 9, "200", 3) != 0)
        goto cleanup;
    if (b->opt->nchan) { /* nchan_stub_status: "subscribers: N"; it runs no queries */
        m->held = metric_value(answer.data, "subscribers:");
        m->queries = m->delivered = m->notifications = 0;
        rc = m->held >= 0 ? 0 : -1;
        goto cleanup;
    }
    m->held = metric_value(answer.data, "pgfeed_held_requests");
    m->queries = metric_value(answer.data, "pgfeed_database_queries_total");
    m->delivered = metric_value(answer.data, "pgfeed_events_delivered_total");
    m->notifications = metric_value(answer.data, "pgfeed_notifications_total");
    m->catchup[0] = metric_value(answer.data, "pgfeed_catchup_total{served=\"read\"}");
    m->catchup[1] = metric_value(answer.data, "pgfeed_catchup_total{served=\"joined\"}");
    m->catchup[2] = metric_value(answer.data, "pgfeed_catchup_total{served=\"kept\"}");
    rc = m->held >= 0 && m->queries >= 0 ? 0 : -1;
cleanup:
    free(answer.data);
    close(fd);
    return rc;
}

static void metrics_require(const bench *b, pgfeed_metrics *m)
{
    if (metrics_fetch(b, m) < 0)
        die("cannot read %s/_metrics through the web server", b->opt->prefix);
}

/* VmRSS of a process in kB, or -1. */
static long rss_kb(long pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static PGresult *stats_query(const bench *b, const char *sql, int n_params,
                             const char *const *params)
{
    PGresult *res = PQexecParams(b->stats, sql, n_params, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK) {
        fprintf(stderr, "feedbench: %s: %s", sql, PQresultErrorMessage(res));
        PQclear(res);
        return NULL;
    }
    return res;
}

/* What pgss_calls matches to count pgfeed.read statements alone. */
#define PGSS_READS "%pgfeed.read(%"

/*
 * Top-level statements pgfeed's role has executed (pg_stat_statements), or -1;
 * with like (NULL: all), only those whose text matches that LIKE pattern.
 */
static long long pgss_calls(const bench *b, const char *like)
{
    if (!b->opt->pgfeed_role)
        return -1;
    const char *params[2] = {b->opt->pgfeed_role, like}; /* NULL binds SQL NULL */
    PGresult *res = stats_query(b,
                                "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s"
                                " JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = $1"
                                " AND ($2::text IS NULL OR s.query LIKE $2)",
                                2, params);
    if (!res)
        return -1;
    long long calls = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return calls;
}

static void pgss_reset(const bench *b)
{
    PGresult *res =
        b->opt->pgfeed_role ? stats_query(b, "SELECT pg_stat_statements_reset()", 0, NULL) : NULL;
    PQclear(res);
}

/* What pgfeed's role ran since the last reset, one line a statement. */
static void pgss_print(const bench *b)
{
    if (!b->opt->pgfeed_role)
        return;
    const char *params[1] = {b->opt->pgfeed_role};
    PGresult *res = stats_query(b,
                                "SELECT calls, regexp_replace(query, '\\s+', ' ', 'g')"
                                " FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid"
                                " WHERE r.rolname = $1 ORDER BY calls DESC",
                                1, params);
    if (!res)
        return;
    printf("  statements pgfeed's role ran in this phase (pg_stat_statements):\n");
    for (int i = 0; i < PQntuples(res); i++)
        printf("    %6s  %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
    PQclear(res);
}

static int64_t channel_head(const bench *b)
{
    if (b->opt->nchan || !b->stats) /* Nchan keeps no channel row; repeat publishes nothing */
        return b->nchan_head;
    const char *params[1] = {b->opt->channel};
    PGresult *res = stats_query(
        b, "SELECT coalesce((SELECT head FROM pgfeed.channel WHERE name = $1), 0)", 1, params);
    if (!res)
        die("cannot read the channel's head");
    int64_t head = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return head;
}

/*
 * Runs the loop until pgfeed's held gauge shows every live client's request
 * (and, for SSE, every stream has its first frame). Returns the gauge's value.
 */
static long long bench_wait_held(bench *b)
{
    int64_t deadline = now_ns() + HELD_TIMEOUT_S * NS_PER_S;
    pgfeed_metrics m = {0};
    for (;;) {
        bench_run(b, now_ns() + METRICS_POLL_MS * NS_PER_MS, NULL, 0);
        long waiting = 0, open = 0, done = 0;
        for (int i = 0; i < b->n_clients; i++) {
            waiting += b->clients[i].state == CL_WAITING;
            open += b->clients[i].stream_open;
            done += b->clients[i].state == CL_CLOSED || b->clients[i].state == CL_FAILED;
        }
        bool opened = b->n_opened == b->n_clients &&
                      (b->opt->mode != MODE_SSE || open + b->failed >= b->n_clients);
        if (opened && waiting + done >= b->n_clients && metrics_fetch(b, &m) == 0 &&
            (b->opt->collapsed ? m.held >= (waiting > 0) : m.held >= waiting)) {
            if (b->opt->collapsed) /* the cache holds the rest: let their requests reach it */
                bench_run(b, now_ns() + 1000 * NS_PER_MS, NULL, 0);
            return m.held;
        }
        if (now_ns() > deadline) {
            fprintf(stderr,
                    "feedbench: after %d s only %lld requests are held (%ld clients waiting,"
                    " %ld failed); going on\n",
                    HELD_TIMEOUT_S, m.held, waiting, b->failed);
            return m.held;
        }
    }
}

/* Time on a CPU and time runnable but waiting for one (/proc/PID/schedstat); pid 0: the bench. */
typedef struct sched_time {
    int64_t run_ns;
    int64_t wait_ns;
    int64_t slices; /* times it was put on a CPU: deliveries per slice show the batching */
    int64_t writes; /* write and writev calls (/proc/PID/io syscw; send* is not counted) */
} sched_time;

static sched_time sched_of(long pid)
{
    char path[64];
    sched_time t = {0};
    if (pid <= 0) /* no such process (Nchan has no pgfeed) */
        return t;
    snprintf(path, sizeof path, "/proc/%ld/schedstat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return t;
    long long run, wait, slices;
    if (fscanf(f, "%lld %lld %lld", &run, &wait, &slices) == 3)
        t = (sched_time){run, wait, slices, 0};
    fclose(f);
    snprintf(path, sizeof path, "/proc/%ld/io", pid);
    if ((f = fopen(path, "r")) != NULL) {
        char line[128];
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "syscw: ", 7))
                t.writes = strtoll(line + 7, NULL, 10);
        fclose(f);
    }
    return t;
}

/* The summed schedstat of pid's children: PostgreSQL's backends under the postmaster. */
static sched_time sched_of_children(long pid)
{
    sched_time t = {0};
    if (pid <= 0)
        return t;
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/task/%ld/children", pid, pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return t;
    long child;
    while (fscanf(f, "%ld", &child) == 1) {
        sched_time c = sched_of(child);
        t.run_ns += c.run_ns;
        t.wait_ns += c.wait_ns;
        t.slices += c.slices;
        t.writes += c.writes;
    }
    fclose(f);
    return t;
}

/* ns CPU cpu was busy (everything but idle and iowait, /proc/stat in USER_HZ); -1: none. */
static int64_t cpu_busy_ns(int cpu)
{
    if (cpu < 0)
        return 0;
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return 0;
    char line[512], name[16];
    snprintf(name, sizeof name, "cpu%d ", cpu);
    int64_t busy = 0;
    while (fgets(line, sizeof line, f)) {
        long long v[8] = {0};
        if (strncmp(line, name, strlen(name)) ||
            sscanf(line + strlen(name), "%lld %lld %lld %lld %lld %lld %lld %lld", &v[0], &v[1],
                   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) != 8)
            continue;
        /* user nice system idle iowait irq softirq steal */
        busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) * (NS_PER_S / sysconf(_SC_CLK_TCK));
        break;
    }
    fclose(f);
    return busy;
}

/*
 * CPU use of the processes that share the machine's cores during a fan-out,
 * and how busy the server side's core was in all (whoever ran there).
 */
typedef struct cpu_sample {
    sched_time pgfeed, server, bench, postgres;
    int64_t cpu_busy_ns, wall_ns;
} cpu_sample;

static cpu_sample cpu_now(const bench *b)
{
    return (cpu_sample){sched_of(b->opt->pgfeed_pid), sched_of(b->opt->server_pid),
                        sched_of((long)getpid()),     sched_of_children(b->opt->postgres_pid),
                        cpu_busy_ns(b->opt->cpu),     now_ns()};
}

static void sched_add(sched_time *total, const sched_time *from, const sched_time *to)
{
    total->run_ns += to->run_ns - from->run_ns;
    total->wait_ns += to->wait_ns - from->wait_ns;
    total->slices += to->slices - from->slices;
    total->writes += to->writes - from->writes;
}

/* Adds what each process used between the samples from and to into *used. */
static void cpu_add(cpu_sample *used, const cpu_sample *from, const cpu_sample *to)
{
    sched_add(&used->pgfeed, &from->pgfeed, &to->pgfeed);
    sched_add(&used->server, &from->server, &to->server);
    sched_add(&used->bench, &from->bench, &to->bench);
    /* A backend that ended in between would count negative: count none of it then. */
    sched_time pg = {0};
    sched_add(&pg, &from->postgres, &to->postgres);
    if (pg.run_ns > 0 && pg.wait_ns >= 0)
        sched_add(&used->postgres, &from->postgres, &to->postgres);
    used->cpu_busy_ns += to->cpu_busy_ns - from->cpu_busy_ns;
    used->wall_ns += to->wall_ns - from->wall_ns;
}

/* What of the server core's busy time none of the measured processes used: other work. */
static int64_t cpu_others_ns(const bench *b, const cpu_sample *used)
{
    if (b->opt->cpu < 0)
        return 0;
    return used->cpu_busy_ns - used->pgfeed.run_ns - used->server.run_ns - used->postgres.run_ns;
}

/* The server core's share: who ran on it over the window, ms on a CPU / ms waiting for one. */
static void cpu_print_core(const bench *b, const cpu_sample *used)
{
    if (b->opt->cpu < 0)
        return;
    printf("  CPU %d over the %.0f ms: busy %.0f ms (%.0f%%); ms on a CPU/waiting (times put on"
           " one): pgfeed %.0f/%.0f (%" PRId64 "), %s %.0f/%.0f (%" PRId64 "), PostgreSQL"
           " %.0f/%.0f (%" PRId64 "); anything else on CPU %d %.0f ms\n",
           b->opt->cpu, ns_to_ms(used->wall_ns), ns_to_ms(used->cpu_busy_ns),
           used->wall_ns ? 100.0 * (double)used->cpu_busy_ns / (double)used->wall_ns : 0.0,
           ns_to_ms(used->pgfeed.run_ns), ns_to_ms(used->pgfeed.wait_ns), used->pgfeed.slices,
           b->opt->server_name, ns_to_ms(used->server.run_ns), ns_to_ms(used->server.wait_ns),
           used->server.slices, ns_to_ms(used->postgres.run_ns), ns_to_ms(used->postgres.wait_ns),
           used->postgres.slices, b->opt->cpu, ns_to_ms(cpu_others_ns(b, used)));
}

/* Prints "run/wait" ms of each process. */
static void cpu_print(const cpu_sample *used)
{
    const sched_time *t[3] = {&used->pgfeed, &used->server, &used->bench};
    for (int i = 0; i < 3; i++)
        printf(" %5.0f/%-4.0f", ns_to_ms(t[i]->run_ns), ns_to_ms(t[i]->wait_ns));
}

static void cpu_print_per_delivery(const bench *b, const char *label, const cpu_sample *used,
                                   size_t deliveries)
{
    double n = deliveries ? (double)deliveries : 1.0;
    printf("  CPU per delivery%s: pgfeed %.1f us, %s %.1f us, PostgreSQL %.2f us, feedbench %.1f"
           " us\n",
           label, (double)used->pgfeed.run_ns / 1000.0 / n, b->opt->server_name,
           (double)used->server.run_ns / 1000.0 / n, (double)used->postgres.run_ns / 1000.0 / n,
           (double)used->bench.run_ns / 1000.0 / n);
    /* A client woken for every frame costs the sender a wake-up (an IPI to the other core). */
    printf("  deliveries per time put on a CPU: %s %.1f, feedbench %.1f\n", b->opt->server_name,
           n / (double)(used->server.slices ? used->server.slices : 1),
           n / (double)(used->bench.slices ? used->bench.slices : 1));
    /* Deliveries per write: above 1 when a stream that was behind got several events at once. */
    printf("  write/writev calls per delivery: pgfeed %.3f, %s %.3f; CPU per such call: pgfeed %.2f"
           " us, %s %.2f us\n",
           (double)used->pgfeed.writes / n, b->opt->server_name, (double)used->server.writes / n,
           used->pgfeed.writes ? (double)used->pgfeed.run_ns / 1000.0 / (double)used->pgfeed.writes
                               : 0.0,
           b->opt->server_name,
           used->server.writes ? (double)used->server.run_ns / 1000.0 / (double)used->server.writes
                               : 0.0);
}

/* ---- phases -------------------------------------------------------------------- */

typedef struct memory_sample {
    long pgfeed_kb;
    long server_kb;
} memory_sample;

/* The 1-minute load average: how busy the shared machine was when a phase began. */
static double load_average(void)
{
    double load = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &load) != 1)
            load = -1;
        fclose(f);
    }
    return load;
}

static memory_sample memory_now(const bench *b)
{
    return (memory_sample){b->opt->pgfeed_pid ? rss_kb(b->opt->pgfeed_pid) : 0,
                           rss_kb(b->opt->server_pid)};
}

/* Sets up n clients and n_events events; the first event's version is the channel's head + 1. */
static void phase_begin(bench *b, int n_clients, int n_events)
{
    b->n_clients = n_clients;
    b->clients = xcalloc((size_t)n_clients, sizeof *b->clients);
    b->base_version = channel_head(b);
    b->pub.next_version = b->base_version + 1;
    for (int i = 0; i < n_clients; i++) {
        client *c = &b->clients[i];
        *c = (client){
            .b = b, .index = i, .fd = -1, .cursor = b->base_version, .last_event = b->base_version};
    }
    b->n_events = n_events;
    b->due_ns = xcalloc((size_t)n_events, sizeof *b->due_ns);
    b->publish_ns = xcalloc((size_t)n_events, sizeof *b->publish_ns);
    b->committed_ns = xcalloc((size_t)n_events, sizeof *b->committed_ns);
    /* lag keeps a histogram instead: its clients × events would not fit */
    b->delivered_ns =
        b->opt->lag ? NULL : xcalloc((size_t)n_clients * (size_t)n_events, sizeof *b->delivered_ns);
    b->delivered_count = xcalloc((size_t)n_events, sizeof *b->delivered_count);
    memset(b->status_count, 0, sizeof b->status_count);
    b->failed = b->duplicates = b->out_of_order = b->unexpected = b->mismatched = 0;
    b->resets = b->empty_answers = b->reconnects = b->heartbeats = 0;
    b->n_opened = b->n_connecting = 0;
    b->ramp_start_ns = now_ns();
    b->repoll = true;
}

static void phase_end(bench *b)
{
    for (int i = 0; i < b->n_clients; i++) {
        client *c = &b->clients[i];
        client_close_fd(c);
        free(c->body.data);
    }
    free(b->clients);
    free(b->due_ns);
    free(b->publish_ns);
    free(b->committed_ns);
    free(b->delivered_ns);
    free(b->delivered_count);
    b->clients = NULL;
    b->n_clients = 0;
}

/* Latency statistics of the deliveries of events [first, last). */
typedef struct latency_stats {
    size_t delivered; /* within the timeout */
    size_t lost;      /* not delivered, or later than the timeout */
    int64_t p50, p99, max;
} latency_stats;

static latency_stats latency_of(const bench *b, int first, int last)
{
    latency_stats s = {0};
    int64_t timeout = (int64_t)b->opt->timeout_s * NS_PER_S;
    int64_t *samples = xcalloc((size_t)b->n_clients * (size_t)(last - first), sizeof *samples);
    for (int c = 0; c < b->n_clients; c++)
        for (int e = first; e < last; e++) {
            int64_t t = b->delivered_ns[(size_t)c * (size_t)b->n_events + (size_t)e];
            if (t && t - b->due_ns[e] <= timeout)
                samples[s.delivered++] = t - b->due_ns[e];
            else
                s.lost++;
        }
    qsort(samples, s.delivered, sizeof *samples, compare_int64);
    s.p50 = percentile(samples, s.delivered, 50);
    s.p99 = percentile(samples, s.delivered, 99);
    s.max = s.delivered ? samples[s.delivered - 1] : 0;
    free(samples);
    return s;
}

static int64_t median_commit_ns(const bench *b, int first, int last)
{
    int64_t *rt = xcalloc((size_t)(last - first), sizeof *rt);
    for (int e = first; e < last; e++)
        rt[e - first] = b->committed_ns[e] - b->publish_ns[e];
    qsort(rt, (size_t)(last - first), sizeof *rt, compare_int64);
    int64_t median = percentile(rt, (size_t)(last - first), 50);
    free(rt);
    return median;
}

static void print_anomalies(const bench *b)
{
    printf("  responses by status:");
    for (int s = 0; s < 600; s++)
        if (b->status_count[s])
            printf(" %d×%ld", s, b->status_count[s]);
    printf("\n  failed clients %ld, duplicates %ld, out of order %ld, unexpected versions %ld,"
           " id/data mismatches %ld, resets %ld, empty answers %ld, reconnects %ld\n",
           b->failed, b->duplicates, b->out_of_order, b->unexpected, b->mismatched, b->resets,
           b->empty_answers, b->reconnects);
}

static void print_memory(const char *what, long before_kb, long held_kb, long n)
{
    printf("  %-8s RSS before %ld kB, all held %ld kB: %+.2f kB per held request\n", what,
           before_kb, held_kb, (double)(held_kb - before_kb) / (double)n);
}

static void print_latency(const char *label, const latency_stats *s)
{
    printf("  %s: delivered %zu, lost %zu; p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", label,
           s->delivered, s->lost, ns_to_ms(s->p50), ns_to_ms(s->p99), ns_to_ms(s->max));
}

/*
 * Runs --memory-cmd, which measures what the bench cannot see from two pids
 * (tests/bench/fcgid.sh: Apache's children, the relays, the hub). The clients
 * stay held meanwhile; nothing is published.
 */
static void memory_cmd_run(const bench *b, const char *when, int n)
{
    if (!b->opt->memory_cmd)
        return;
    char line[4096];
    snprintf(line, sizeof line, "%s %s %d", b->opt->memory_cmd, when, n);
    fflush(stdout);
    if (system(line) != 0)
        fprintf(stderr, "feedbench: --memory-cmd failed: %s\n", line);
    fflush(stdout);
}

/*
 * One line per measured phase, "RESULT key=value ...", which run.sh collects
 * to put every configuration of one run side by side.
 */
static void print_result_line(const bench *b, const char *mode, int n, const latency_stats *s,
                              const cpu_sample *used)
{
    double d = s->delivered ? (double)s->delivered : 1.0;
    printf("RESULT label=%s mode=%s n=%d delivered=%zu lost=%zu duplicates=%ld out_of_order=%ld"
           " failed=%ld p50_ms=%.2f p99_ms=%.2f max_ms=%.2f mem_kb_per_held=%.2f"
           " cpu_us_pgfeed=%.2f cpu_us_server=%.2f cpu_us_postgres=%.2f window_ms=%.0f"
           " core_busy_ms=%.0f core_others_ms=%.0f writes_pgfeed=%.3f writes_server=%.3f"
           " load=%.2f\n",
           b->opt->label, mode, n, s->delivered, s->lost, b->duplicates, b->out_of_order, b->failed,
           ns_to_ms(s->p50), ns_to_ms(s->p99), ns_to_ms(s->max), b->mem_per_held_kb,
           (double)used->pgfeed.run_ns / 1000.0 / d, (double)used->server.run_ns / 1000.0 / d,
           (double)used->postgres.run_ns / 1000.0 / d, ns_to_ms(used->wall_ns),
           ns_to_ms(used->cpu_busy_ns), ns_to_ms(cpu_others_ns(b, used)),
           (double)used->pgfeed.writes / d, (double)used->server.writes / d, load_average());
    fflush(stdout);
}

/* The first tenth of the answers: connections open, caches warm. */
static bool warmed_up(const bench *b, int unused)
{
    (void)unused;
    return b->repeat_answers >= b->opt->requests / 10 || b->failed;
}

static bool all_repeated(const bench *b, int unused)
{
    (void)unused;
    int done = 0;
    for (int i = 0; i < b->n_clients; i++)
        done += b->clients[i].state == CL_CLOSED || b->clients[i].state == CL_FAILED;
    return done == b->n_clients;
}

/*
 * Repeat: n keep-alive connections send the same request (say a conditional
 * GET answered 304) until `requests` answers are in; reports the server's and
 * pgfeed's CPU per answer. The first answers warm caches and are not timed.
 */
static void repeat_phase(bench *b, int n)
{
    const options *o = b->opt;
    printf("\n== repeat GET %s on %d connections, %ld answers, load average %.2f ==\n", o->path, n,
           o->requests, load_average());
    phase_begin(b, n, 1);
    b->repeat_answers = 0;
    bench_run(b, now_ns() + 30 * NS_PER_S, warmed_up, 0);
    long warm = b->repeat_answers;
    cpu_sample cpu0 = cpu_now(b), used = {0};
    int64_t start = now_ns();
    bool done = bench_run(b, now_ns() + 600 * NS_PER_S, all_repeated, 0);
    cpu_sample cpu1 = cpu_now(b);
    cpu_add(&used, &cpu0, &cpu1);
    double answers = (double)(b->repeat_answers - warm);
    double secs = (double)(now_ns() - start) / (double)NS_PER_S;
    if (!done || answers <= 0)
        die("repeat: only %ld answers", b->repeat_answers);
    printf("  %.0f answers in %.2f s (%.0f/s); CPU per answer: pgfeed %.2f us, server %.2f us,"
           " feedbench %.2f us\n",
           answers, secs, answers / secs, (double)used.pgfeed.run_ns / 1000.0 / answers,
           (double)used.server.run_ns / 1000.0 / answers,
           (double)used.bench.run_ns / 1000.0 / answers);
    print_anomalies(b);
    printf("RESULT label=%s mode=repeat n=%d answers=%.0f failed=%ld cpu_us_pgfeed=%.2f"
           " cpu_us_server=%.2f cpu_us_total=%.2f load=%.2f\n",
           o->label, n, answers, b->failed, (double)used.pgfeed.run_ns / 1000.0 / answers,
           (double)used.server.run_ns / 1000.0 / answers,
           (double)(used.pgfeed.run_ns + used.server.run_ns) / 1000.0 / answers, load_average());
    if (b->failed)
        die("repeat: %ld connections failed", b->failed);
    phase_end(b);
}

/*
 * Opens a phase's n clients for n_events events, waits until pgfeed holds them
 * all, and prints how long that took and what it cost in memory. Returns
 * pgfeed's held gauge.
 */
static long long phase_open(bench *b, const char *transport, const char *what, int n, int n_events,
                            const char *label)
{
    printf("\n== %s, %d %s (%s), load average %.2f ==\n", transport, n, what, label,
           load_average());
    fflush(stdout);
    memory_cmd_run(b, "before", n);
    memory_sample before = memory_now(b);
    phase_begin(b, n, n_events);
    pgss_reset(b);
    int64_t t_open = now_ns();
    long long held = bench_wait_held(b);
    memory_sample held_mem = memory_now(b);
    printf("  opened %d %s in %.1f s; pgfeed_held_requests %lld\n", n, what,
           (double)(now_ns() - t_open) / (double)NS_PER_S, held);
    print_memory("pgfeed", before.pgfeed_kb, held_mem.pgfeed_kb, n);
    print_memory(b->opt->server_name, before.server_kb, held_mem.server_kb, n);
    memory_cmd_run(b, "held", n);
    fflush(stdout); /* "opened" tells a watcher (perf record -p) that the phase begins */
    b->mem_per_held_kb =
        (double)(held_mem.pgfeed_kb - before.pgfeed_kb + held_mem.server_kb - before.server_kb) /
        (double)n;
    return held;
}

/* The figures a phase hands back so the load phase can be put against the baseline. */
typedef struct phase_result {
    latency_stats latency;
} phase_result;

/*
 * Long poll: n clients held, then rounds × (publish one event, wait until
 * every client has it or the timeout passed, wait until every client's next
 * poll is held again). Statements per publish are counted between two
 * all-held points, so they include what the re-polls cost.
 */
static phase_result long_poll_phase(bench *b, int n, const char *label)
{
    const options *o = b->opt;
    long long held =
        phase_open(b, "long poll", n == 1 ? "long poll" : "long polls", n, o->rounds, label);

    pgfeed_metrics m0, m1;
    metrics_require(b, &m0);
    long long calls0 = pgss_calls(b, NULL);
    printf("  cpu: ms on a CPU / ms runnable but waiting for one, from the publish to the last"
           " delivery\n");
    printf("  round  held  delivered  lost  p50_ms  p99_ms  max_ms  commit_ms  pg_stmts  "
           "pgfeed_queries  cpu: pgfeed  %s  feedbench\n",
           o->server_name);
    cpu_sample used = {0};
    for (int r = 0; r < o->rounds; r++) {
        /* After the last answer the clients stop, so no held request outlives the phase. */
        b->repoll = r + 1 < o->rounds;
        cpu_sample cpu0 = cpu_now(b);
        pub_publish(b, 1);
        bench_run(b, now_ns() + (int64_t)o->timeout_s * NS_PER_S, all_delivered, r);
        cpu_sample cpu1 = cpu_now(b), round_used = {0};
        cpu_add(&round_used, &cpu0, &cpu1);
        cpu_add(&used, &cpu0, &cpu1);
        for (int i = 0; i < n; i++)
            if (b->clients[i].state == CL_ANSWERED)
                client_send_request(&b->clients[i]);
        bench_run(b, now_ns() + (int64_t)o->timeout_s * NS_PER_S, publisher_idle, 0);
        long long next_held = bench_wait_held(b);
        metrics_require(b, &m1);
        long long calls1 = pgss_calls(b, NULL);
        latency_stats s = latency_of(b, r, r + 1);
        printf("  %5d %5lld %10zu %5zu %7.2f %7.2f %7.2f %10.2f %9lld %15lld      ", r + 1, held,
               s.delivered, s.lost, ns_to_ms(s.p50), ns_to_ms(s.p99), ns_to_ms(s.max),
               ns_to_ms(b->committed_ns[r] - b->publish_ns[r]), calls0 >= 0 ? calls1 - calls0 : -1,
               m1.queries - m0.queries);
        cpu_print(&round_used);
        putchar('\n');
        fflush(stdout);
        held = next_held;
        m0 = m1;
        calls0 = calls1;
    }
    phase_result result = {.latency = latency_of(b, 0, o->rounds)};
    print_latency("all rounds", &result.latency);
    cpu_print_per_delivery(b, ", publish to last delivery (incl. the re-polls meanwhile)", &used,
                           result.latency.delivered);
    cpu_print_core(b, &used);
    if (n > 1)
        print_result_line(b, "longpoll", n, &result.latency, &used);
    print_anomalies(b);
    pgss_print(b);
    phase_end(b);
    return result;
}

/* Nearest-rank percentile of the lag histogram: the upper edge of its bucket. */
static int64_t lag_percentile(const bench *b, double p)
{
    if (!b->lag_delivered)
        return 0;
    long long rank = (long long)((p / 100.0) * (double)b->lag_delivered + 0.999999), seen = 0;
    for (size_t i = 0; i < LAG_BUCKETS; i++) {
        seen += b->lag_hist[i];
        if (seen >= (rank < 1 ? 1 : rank)) {
            int64_t edge = (int64_t)(i + 1) * LAG_BUCKET_NS;
            return edge < b->lag_max_ns ? edge : b->lag_max_ns;
        }
    }
    return b->lag_max_ns;
}

/* The newest version the bench has seen committed. */
static int64_t lag_committed(const bench *b)
{
    return b->pub.next_version - 1;
}

/* Events the slowest live client is behind what was committed. */
static int64_t lag_backlog(const bench *b)
{
    int64_t worst = 0;
    for (int i = 0; i < b->n_clients; i++)
        if (b->clients[i].state != CL_FAILED && lag_committed(b) - b->clients[i].last_event > worst)
            worst = lag_committed(b) - b->clients[i].last_event;
    return worst;
}

static bool lag_caught_up(const bench *b, int unused)
{
    (void)unused;
    return pub_idle(b) && lag_committed(b) == b->base_version + b->n_events && lag_backlog(b) == 0;
}

/*
 * Lag: n long polls re-polling at once while --rate events per second are
 * published for --duration seconds; then until every client has the last
 * one (or --timeout passed). Prints a line per second and the totals.
 */
static void lag_phase(bench *b, int n)
{
    const options *o = b->opt;
    int total = o->rate * o->duration_s;
    phase_open(b, "long poll under a publish rate", "long polls", n, total, "lag");
    b->lag_hist = xcalloc(LAG_BUCKETS, sizeof *b->lag_hist);
    b->lag_max_ns = 0;
    b->lag_delivered = b->lag_lost = 0;
    pgfeed_metrics m0, m1;
    metrics_require(b, &m0);
    long long reads0 = pgss_calls(b, PGSS_READS), reads_prev = reads0;
    long answers0 = b->status_count[200], answers_prev = answers0;
    cpu_sample cpu0 = cpu_now(b);
    printf("  %d events/s for %d s, limit=%d, one publishing statement per %d ms\n", o->rate,
           o->duration_s, o->limit, o->batch_ms);
    printf("  second  committed  slowest client behind (events)  answers/s  pgfeed.read/s\n");
    int64_t start = now_ns(), next_report = start + NS_PER_S, worst = 0;
    long long sent = 0;
    for (int second = 1; sent < total;) {
        int64_t now = now_ns();
        long long due = (long long)((now - start) / NS_PER_MS) * o->rate / 1000;
        if (due > total)
            due = total;
        if (due > sent) {
            b->pub.queued += (int)(due - sent);
            sent = due;
            lag_pub_send(b);
        }
        int64_t backlog = lag_backlog(b);
        worst = backlog > worst ? backlog : worst;
        if (now >= next_report) {
            long long reads = pgss_calls(b, PGSS_READS);
            printf("  %6d %10" PRId64 " %32" PRId64 " %10ld %14lld\n", second++,
                   lag_committed(b) - b->base_version, backlog, b->status_count[200] - answers_prev,
                   reads >= 0 ? reads - reads_prev : -1);
            fflush(stdout);
            answers_prev = b->status_count[200];
            reads_prev = reads;
            next_report += NS_PER_S;
        }
        bench_run(b, now + (int64_t)o->batch_ms * NS_PER_MS, NULL, 0);
    }
    bench_run(b, now_ns() + (int64_t)o->timeout_s * NS_PER_S, publisher_idle, 0);
    int64_t published = now_ns();
    double publishing_s = (double)(published - start) / (double)NS_PER_S;
    bool caught_up = bench_run(b, now_ns() + (int64_t)o->timeout_s * NS_PER_S, lag_caught_up, 0);
    double tail_s = (double)(now_ns() - published) / (double)NS_PER_S;
    cpu_sample cpu1 = cpu_now(b), used = {0};
    cpu_add(&used, &cpu0, &cpu1);
    metrics_require(b, &m1);
    long long reads1 = pgss_calls(b, PGSS_READS);
    long long behind = 0; /* events clients never got */
    for (int i = 0; i < n; i++)
        if (b->clients[i].state != CL_FAILED)
            behind += b->base_version + b->n_events - b->clients[i].last_event;
    long long lost = b->lag_lost + behind;
    double seconds = publishing_s + tail_s;
    double answers = (double)(b->status_count[200] - answers0);
    printf(
        "  published %d events in %.2f s (%.0f/s); every client had the last one %.2f s later%s\n",
        total, publishing_s, total / publishing_s, tail_s,
        caught_up ? "" : " — NOT: the timeout passed first");
    printf("  deliveries %lld of %lld, lost %lld (gaps %lld, never delivered %lld), duplicates %ld;"
           " slowest client at most %" PRId64 " events behind\n",
           b->lag_delivered, (long long)n * total, lost, b->lag_lost, behind, b->duplicates, worst);
    printf("  lag (delivery − publish): p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
           ns_to_ms(lag_percentile(b, 50)), ns_to_ms(lag_percentile(b, 99)),
           ns_to_ms(b->lag_max_ns));
    printf("  per second over %.2f s: %.0f answers, %.1f pgfeed.read (pg_stat_statements),"
           " %.1f pgfeed statements (pgfeed_database_queries_total)\n",
           seconds, answers / seconds, reads1 >= 0 ? (double)(reads1 - reads0) / seconds : -1.0,
           (double)(m1.queries - m0.queries) / seconds);
    if (m1.catchup[0] >= 0 && m0.catchup[0] >= 0)
        printf(
            "  clients behind the ring: %lld catch-up reads, %lld joined one in flight, %lld served"
            " from a kept page\n",
            m1.catchup[0] - m0.catchup[0], m1.catchup[1] - m0.catchup[1],
            m1.catchup[2] - m0.catchup[2]);
    printf("  cpu, ms on a CPU / ms runnable but waiting: pgfeed  %s  feedbench\n   ",
           o->server_name);
    cpu_print(&used);
    putchar('\n');
    print_anomalies(b);
    printf(
        "RESULT label=%s mode=lag n=%d rate=%d delivered=%lld lost=%lld duplicates=%ld"
        " failed=%ld p50_ms=%.2f p99_ms=%.2f max_ms=%.2f behind_max=%" PRId64
        " caught_up_s=%.2f reads_per_s=%.1f queries_per_s=%.1f answers_per_s=%.0f"
        " cpu_pgfeed_pct=%.0f load=%.2f\n",
        o->label, n, o->rate, b->lag_delivered, lost, b->duplicates, b->failed,
        ns_to_ms(lag_percentile(b, 50)), ns_to_ms(lag_percentile(b, 99)), ns_to_ms(b->lag_max_ns),
        worst, caught_up ? tail_s : -1.0, reads1 >= 0 ? (double)(reads1 - reads0) / seconds : -1.0,
        (double)(m1.queries - m0.queries) / seconds, answers / seconds,
        100.0 * (double)used.pgfeed.run_ns / ((double)seconds * (double)NS_PER_S), load_average());
    pgss_print(b);
    free(b->lag_hist);
    b->lag_hist = NULL;
    phase_end(b);
}

typedef struct sse_result {
    latency_stats paced;
    double deliveries_per_s;
} sse_result;

/*
 * Where an event's time goes, per paced event, ms after it was due: sent (the
 * publisher was free), committed (the publish answered), and its first,
 * median and last delivery. first − committed is the path to the first
 * stream (NOTIFY, pgfeed's read, its first write, the front's forward);
 * last − first is the fan-out to every stream.
 */
static void sse_print_path(const bench *b, int first, int last)
{
    printf("  per event, ms after due: sent  committed  first  p50  last delivery\n");
    int64_t *t = xcalloc((size_t)b->n_clients, sizeof *t);
    for (int e = first; e < last; e++) {
        size_t n = 0;
        for (int c = 0; c < b->n_clients; c++) {
            int64_t d = b->delivered_ns[(size_t)c * (size_t)b->n_events + (size_t)e];
            if (d)
                t[n++] = d - b->due_ns[e];
        }
        qsort(t, n, sizeof *t, compare_int64);
        printf("  %8d %9.1f %10.1f %6.1f %6.1f %6.1f\n", e + 1,
               ns_to_ms(b->publish_ns[e] - b->due_ns[e]),
               ns_to_ms(b->committed_ns[e] - b->due_ns[e]), n ? ns_to_ms(t[0]) : -1.0,
               ns_to_ms(percentile(t, n, 50)), n ? ns_to_ms(t[n - 1]) : -1.0);
    }
    free(t);
}

/*
 * SSE: n streams opened from the channel's head, then `events` events
 * interval_ms apart (latency, losses, duplicates), then `burst` events back
 * to back (deliveries per second at saturation).
 */
static sse_result sse_phase(bench *b, int n, const char *label)
{
    const options *o = b->opt;
    phase_open(b, "SSE", n == 1 ? "stream" : "streams", n, o->events + o->burst, label);

    pgfeed_metrics m0, m1, m2;
    metrics_require(b, &m0);
    long long calls0 = pgss_calls(b, NULL);
    cpu_sample cpu0 = cpu_now(b);
    int64_t start = now_ns();
    for (int e = 0; e < o->events; e++) {
        bench_run(b, start + (int64_t)e * o->interval_ms * NS_PER_MS, NULL, 0);
        pub_publish(b, 1);
    }
    bench_run(b, now_ns() + (int64_t)o->timeout_s * NS_PER_S, all_delivered, o->events - 1);
    cpu_sample cpu1 = cpu_now(b), used = {0};
    cpu_add(&used, &cpu0, &cpu1);
    int64_t paced_ns = now_ns() - start;
    bench_run(b, now_ns() + (int64_t)o->timeout_s * NS_PER_S, publisher_idle, 0);
    metrics_require(b, &m1);
    long long calls1 = pgss_calls(b, NULL);
    sse_result result = {.paced = latency_of(b, 0, o->events)};
    printf("  %d events %d ms apart, publish statement p50 %.2f ms\n", o->events, o->interval_ms,
           ns_to_ms(median_commit_ns(b, 0, o->events)));
    print_latency("paced events", &result.paced);
    printf("  cpu over those %.2f s, ms on a CPU / ms runnable but waiting: pgfeed  %s "
           " feedbench\n                                                     ",
           (double)paced_ns / (double)NS_PER_S, o->server_name);
    cpu_print(&used);
    putchar('\n');
    cpu_print_per_delivery(b, "", &used, result.paced.delivered);
    cpu_print_core(b, &used);
    if (n > 1)
        sse_print_path(b, 0, o->events);
    if (n > 1)
        print_result_line(b, "sse", n, &result.paced, &used);
    printf("  statements per publish: pg_stat_statements %.2f, pgfeed_database_queries_total"
           " %.2f\n",
           calls0 >= 0 ? (double)(calls1 - calls0) / o->events : -1.0,
           (double)(m1.queries - m0.queries) / o->events);

    if (o->burst > 0) {
        int64_t burst_start = now_ns();
        pub_publish(b, o->burst);
        bench_run(b, now_ns() + (int64_t)o->timeout_s * NS_PER_S, all_delivered,
                  o->events + o->burst - 1);
        int64_t burst_end = b->last_delivery_ns;
        bench_run(b, now_ns() + (int64_t)o->timeout_s * NS_PER_S, publisher_idle, 0);
        metrics_require(b, &m2);
        latency_stats s = latency_of(b, o->events, o->events + o->burst);
        double elapsed_s = (double)(burst_end - burst_start) / (double)NS_PER_S;
        result.deliveries_per_s = (double)s.delivered / elapsed_s;
        printf("  burst of %d events back to back: %zu deliveries in %.3f s = %.0f deliveries/s"
               " (publishing took %.3f s; pgfeed queries %lld)\n",
               o->burst, s.delivered, elapsed_s, result.deliveries_per_s,
               ns_to_ms(b->committed_ns[o->events + o->burst - 1] - burst_start) / 1000.0,
               m2.queries - m1.queries);
        print_latency("burst events", &s);
    }
    print_anomalies(b);
    printf("  heartbeats seen %ld\n", b->heartbeats);
    pgss_print(b);
    phase_end(b);
    return result;
}

static void print_ratio(const char *what, int64_t load, int64_t base)
{
    printf("  %s: %.2f ms at load / %.2f ms with one client = %.1f×\n", what, ns_to_ms(load),
           ns_to_ms(base), base ? (double)load / (double)base : 0.0);
}

/* ---- main ---------------------------------------------------------------------- */

static PGconn *pg_connect(void)
{
    PGconn *conn = PQconnectdb("");
    if (PQstatus(conn) != CONNECTION_OK)
        die("cannot connect to PostgreSQL (PG* environment): %s", PQerrorMessage(conn));
    return conn;
}

int main(int argc, char **argv)
{
    options o;
    options_parse(&o, argc, argv);
    bench b = {.opt = &o};
    b.addr.sin_family = AF_INET;
    b.addr.sin_port = htons((uint16_t)o.port);
    if (inet_pton(AF_INET, o.host, &b.addr.sin_addr) != 1)
        die("--host: an IPv4 address, not \"%s\"", o.host);
    b.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (b.epfd < 0)
        die("epoll_create1: %s", strerror(errno));
    if (o.mode == MODE_REPEAT) {
        repeat_phase(&b, o.clients);
        close(b.epfd);
        return 0;
    }
    if (o.nchan) {
        b.pub.http_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(b.pub.http_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (b.pub.http_fd < 0 ||
            connect(b.pub.http_fd, (const struct sockaddr *)&b.addr, sizeof b.addr) < 0)
            die("cannot connect to Nchan's publisher: %s", strerror(errno));
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &nchan_publisher_tag};
        if (epoll_ctl(b.epfd, EPOLL_CTL_ADD, b.pub.http_fd, &ev) < 0)
            die("epoll_ctl: %s", strerror(errno));
    } else {
        b.stats = pg_connect();
        b.pub.conn = pg_connect();
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        if (epoll_ctl(b.epfd, EPOLL_CTL_ADD, PQsocket(b.pub.conn), &ev) < 0)
            die("epoll_ctl: %s", strerror(errno));
        /* The session's first publish compiles pgfeed.publish's plan: keep it out of the rounds. */
        const char *warm_params[2] = {o.channel, "{\"warmup\":true}"};
        PQclear(PQexecParams(b.pub.conn, PUBLISH_SQL, 2, NULL, warm_params, NULL, NULL, 0));
    }

    printf("feedbench: %s, %d clients via http://%s:%d%s/%s; pgfeed pid %ld, server pid %ld\n",
           o.mode == MODE_SSE ? "SSE" : "long poll", o.clients, o.host, o.port, o.prefix, o.channel,
           o.pgfeed_pid, o.server_pid);
    printf("latency = complete response (SSE: frame) read by the bench − just before the publish"
           " statement was sent; lost = not delivered within %d s\n",
           o.timeout_s);
    if (o.lag) {
        lag_phase(&b, o.clients);
    } else if (o.mode == MODE_LONG_POLL) {
        phase_result base = {0};
        if (o.baseline)
            base = long_poll_phase(&b, 1, "baseline");
        phase_result load = long_poll_phase(&b, o.clients, "load");
        if (o.baseline) {
            printf("\n== long poll, %d clients against 1, same run ==\n", o.clients);
            print_ratio("p50", load.latency.p50, base.latency.p50);
            print_ratio("p99", load.latency.p99, base.latency.p99);
        }
    } else {
        sse_result base = {0};
        if (o.baseline)
            base = sse_phase(&b, 1, "baseline");
        sse_result load = sse_phase(&b, o.clients, "load");
        if (o.baseline) {
            printf("\n== SSE, %d streams against 1, same run ==\n", o.clients);
            print_ratio("p50", load.paced.p50, base.paced.p50);
            print_ratio("p99", load.paced.p99, base.paced.p99);
            printf("  deliveries/s at saturation: %.0f with %d streams\n", load.deliveries_per_s,
                   o.clients);
        }
    }
    if (o.nchan)
        close(b.pub.http_fd);
    PQfinish(b.pub.conn);
    PQfinish(b.stats);
    close(b.epfd);
    return 0;
}
