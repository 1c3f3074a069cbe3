/*
 * test_metrics — status classes, and the Prometheus text read back line by
 * line: every sample belongs to a family declared once (HELP, then TYPE)
 * before its first sample, and every value is the one the counters hold.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "metrics.h"

static void test_status_classes(void **state)
{
    static const struct {
        int status;
        size_t counter; /* offset of the field it must bump */
    } cases[] = {
        {200, offsetof(metrics, responses_2xx)}, {201, offsetof(metrics, responses_2xx)},
        {204, offsetof(metrics, responses_2xx)}, {299, offsetof(metrics, responses_2xx)},
        {304, offsetof(metrics, responses_304)}, {400, offsetof(metrics, responses_4xx)},
        {403, offsetof(metrics, responses_4xx)}, {404, offsetof(metrics, responses_4xx)},
        {405, offsetof(metrics, responses_4xx)}, {410, offsetof(metrics, responses_4xx)},
        {413, offsetof(metrics, responses_4xx)}, {499, offsetof(metrics, responses_4xx)},
        {500, offsetof(metrics, responses_5xx)}, {503, offsetof(metrics, responses_5xx)},
        {599, offsetof(metrics, responses_5xx)},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        metrics m = {0};
        metrics_count_status(&m, cases[i].status);
        metrics_count_status(&m, cases[i].status);
        metrics want = {0};
        *(uint64_t *)((char *)&want + cases[i].counter) = 2;
        /* exactly one counter moved, by exactly the number of answers */
        assert_memory_equal(&m, &want, sizeof m);
    }
}

static void test_status_mix(void **state)
{
    metrics m = {0};
    const int statuses[] = {200, 200, 304, 404, 410, 503, 200, 304, 400};
    for (size_t i = 0; i < sizeof statuses / sizeof *statuses; i++)
        metrics_count_status(&m, statuses[i]);
    assert_int_equal(m.responses_2xx, 3);
    assert_int_equal(m.responses_304, 2);
    assert_int_equal(m.responses_4xx, 3);
    assert_int_equal(m.responses_5xx, 1);
}

/* Every family pgfeed exposes, with its type. */
static const struct family {
    const char *name;
    const char *type;
} families[] = {
    {"pgfeed_requests_total", "counter"},
    {"pgfeed_responses_total", "counter"},
    {"pgfeed_held_requests", "gauge"},
    {"pgfeed_held_rejected_total", "counter"},
    {"pgfeed_events_delivered_total", "counter"},
    {"pgfeed_notifications_total", "counter"},
    {"pgfeed_departed_clients_total", "counter"},
    {"pgfeed_slow_streams_ended_total", "counter"},
    {"pgfeed_undrained_closed_total", "counter"},
    {"pgfeed_fastcgi_connections", "gauge"},
    {"pgfeed_fastcgi_accepted_total", "counter"},
    {"pgfeed_fastcgi_closed_total", "counter"},
    {"pgfeed_fastcgi_kept_requests_total", "counter"},
    {"pgfeed_accept_fd_exhausted_total", "counter"},
    {"pgfeed_fds_limit", "gauge"},
    {"pgfeed_fds_open", "gauge"},
    {"pgfeed_fds_margin", "gauge"},
    {"pgfeed_notify_queue_usage", "gauge"},
    {"pgfeed_database_up", "gauge"},
    {"pgfeed_database_queries_total", "counter"},
    {"pgfeed_database_queue", "gauge"},
    {"pgfeed_channels_cached", "gauge"},
    {"pgfeed_cache_hits_total", "counter"},
    {"pgfeed_cache_misses_total", "counter"},
    {"pgfeed_catchup_total", "counter"},
    {"pgfeed_cache_bytes", "gauge"},
    {"pgfeed_cache_budget_bytes", "gauge"},
    {"pgfeed_cache_evictions_total", "counter"},
    {"pgfeed_cache_ring_trims_total", "counter"},
    {"pgfeed_head_loads_total", "counter"},
    {"pgfeed_head_queries_total", "counter"},
    {"pgfeed_head_loads_waiting", "gauge"},
    {"pgfeed_head_load_rejected_total", "counter"},
    {"pgfeed_sequenced_total", "counter"},
    {"pgfeed_sequencer", "gauge"},
    {"pgfeed_sequencer_queries_total", "counter"},
};
#define N_FAMILIES (sizeof families / sizeof *families)

static size_t family_index(const char *name, size_t len)
{
    for (size_t i = 0; i < N_FAMILIES; i++)
        if (strlen(families[i].name) == len && !memcmp(families[i].name, name, len))
            return i;
    fail_msg("unknown metric family \"%.*s\"", (int)len, name);
    return 0;
}

/* How far a family has got in the text: HELP seen, TYPE seen, samples seen. */
typedef struct family_seen {
    int help, type, samples;
} family_seen;

static void check_comment(const char *line, size_t len, family_seen *seen)
{
    if (!strncmp(line, "# HELP ", 7)) {
        const char *name = line + 7;
        const char *space = memchr(name, ' ', len - 7);
        assert_non_null(space);
        assert_true(space + 1 < line + len); /* the help text is not empty */
        family_seen *f = &seen[family_index(name, (size_t)(space - name))];
        assert_int_equal(f->help + f->type + f->samples, 0);
        f->help++;
        return;
    }
    assert_memory_equal(line, "# TYPE ", 7);
    const char *name = line + 7;
    const char *space = memchr(name, ' ', len - 7);
    assert_non_null(space);
    size_t i = family_index(name, (size_t)(space - name));
    size_t type_len = (size_t)(line + len - space - 1);
    assert_int_equal(type_len, strlen(families[i].type));
    assert_memory_equal(space + 1, families[i].type, type_len);
    assert_int_equal(seen[i].help, 1);
    assert_int_equal(seen[i].type + seen[i].samples, 0);
    seen[i].type++;
}

static void check_sample(const char *line, size_t len, family_seen *seen)
{
    size_t name_len = strcspn(line, "{ ");
    assert_true(name_len < len);
    family_seen *f = &seen[family_index(line, name_len)];
    assert_int_equal(f->type, 1);
    f->samples++;
    const char *value = memchr(line, ' ', len);
    assert_non_null(value);
    if (line[name_len] == '{')
        assert_memory_equal(value - 1, "}", 1);
    value++;
    assert_true(value < line + len);
    /* Counters and gauges are whole numbers; the one ratio has a decimal point. */
    size_t digits = strspn(value, "0123456789");
    if (value[digits] == '.')
        digits += 1 + strspn(value + digits + 1, "0123456789");
    assert_int_equal(digits, (size_t)(line + len - value));
}

/* Reads the exposition line by line and checks its grammar and declaration order. */
static void check_exposition(const buf *b)
{
    family_seen seen[N_FAMILIES] = {{0}};
    assert_non_null(b->data);
    assert_int_equal(strlen(b->data), b->len);
    assert_true(b->len > 0 && b->data[b->len - 1] == '\n');
    for (const char *line = b->data; *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = (size_t)(nl - line);
        assert_true(len > 0); /* no blank lines */
        if (line[0] == '#')
            check_comment(line, len, seen);
        else
            check_sample(line, len, seen);
        line = nl + 1;
    }
    for (size_t i = 0; i < N_FAMILIES; i++) {
        assert_int_equal(seen[i].help, 1);
        assert_int_equal(seen[i].type, 1);
        assert_true(seen[i].samples >= 1);
    }
}

/* Exactly one line of the text is the sample "<series> <value>". */
static void expect_sample(const buf *b, const char *series, uint64_t value)
{
    char line[160];
    snprintf(line, sizeof line, "\n%s %llu\n", series, (unsigned long long)value);
    const char *at = strstr(b->data, line);
    assert_non_null(at);
    assert_null(strstr(at + 1, line));
}

static void expect_all_samples(const buf *b, const metrics *m, const metrics_snapshot *s)
{
    expect_sample(b, "pgfeed_requests_total{transport=\"poll\"}", m->requests_poll);
    expect_sample(b, "pgfeed_requests_total{transport=\"long_poll\"}", m->requests_long_poll);
    expect_sample(b, "pgfeed_requests_total{transport=\"sse\"}", m->requests_sse);
    expect_sample(b, "pgfeed_requests_total{transport=\"other\"}", m->requests_other);
    expect_sample(b, "pgfeed_responses_total{status=\"2xx\"}", m->responses_2xx);
    expect_sample(b, "pgfeed_responses_total{status=\"304\"}", m->responses_304);
    expect_sample(b, "pgfeed_responses_total{status=\"4xx\"}", m->responses_4xx);
    expect_sample(b, "pgfeed_responses_total{status=\"5xx\"}", m->responses_5xx);
    expect_sample(b, "pgfeed_held_requests", s->held_now);
    expect_sample(b, "pgfeed_held_rejected_total", m->held_rejected);
    expect_sample(b, "pgfeed_events_delivered_total", m->events_delivered);
    expect_sample(b, "pgfeed_notifications_total", m->notifications);
    expect_sample(b, "pgfeed_departed_clients_total", m->departed_clients);
    expect_sample(b, "pgfeed_slow_streams_ended_total", m->slow_streams_ended);
    expect_sample(b, "pgfeed_undrained_closed_total", m->undrained_closed);
    expect_sample(b, "pgfeed_fastcgi_connections", m->fcgi_connections);
    expect_sample(b, "pgfeed_fastcgi_accepted_total", m->fcgi_accepted);
    expect_sample(b, "pgfeed_fastcgi_closed_total{reason=\"max_connections\"}", m->fcgi_refused);
    expect_sample(b, "pgfeed_fastcgi_closed_total{reason=\"request_timeout\"}", m->fcgi_timed_out);
    expect_sample(b, "pgfeed_fastcgi_closed_total{reason=\"params_too_large\"}", m->fcgi_too_large);
    expect_sample(b, "pgfeed_fastcgi_closed_total{reason=\"protocol_error\"}",
                  m->fcgi_protocol_errors);
    expect_sample(b, "pgfeed_fastcgi_kept_requests_total", m->fcgi_kept_requests);
    expect_sample(b, "pgfeed_accept_fd_exhausted_total", m->fcgi_fd_exhausted);
    expect_sample(b, "pgfeed_fds_limit", m->fds_limit);
    expect_sample(b, "pgfeed_fds_open", m->fds_open);
    expect_sample(b, "pgfeed_fds_margin",
                  m->fds_limit > m->fds_open ? m->fds_limit - m->fds_open : 0);
    char ratio[64];
    snprintf(ratio, sizeof ratio, "\npgfeed_notify_queue_usage %.6f\n", m->notify_queue_usage);
    assert_non_null(strstr(b->data, ratio));
    expect_sample(b, "pgfeed_database_up", s->db_up);
    expect_sample(b, "pgfeed_database_queries_total", s->db_queries);
    expect_sample(b, "pgfeed_database_queue", s->db_queue);
    expect_sample(b, "pgfeed_channels_cached", s->channels_cached);
    expect_sample(b, "pgfeed_cache_hits_total", s->cache_hits);
    expect_sample(b, "pgfeed_cache_misses_total", s->cache_misses);
    expect_sample(b, "pgfeed_cache_bytes", s->cache_bytes);
    expect_sample(b, "pgfeed_cache_budget_bytes", s->cache_budget);
    expect_sample(b, "pgfeed_cache_evictions_total", s->cache_evictions);
    expect_sample(b, "pgfeed_cache_ring_trims_total", s->cache_ring_trims);
    expect_sample(b, "pgfeed_head_loads_total", s->head_loads);
    expect_sample(b, "pgfeed_head_queries_total", s->head_queries);
    expect_sample(b, "pgfeed_head_loads_waiting", s->head_loads_waiting);
    expect_sample(b, "pgfeed_head_load_rejected_total", s->head_load_rejected);
    expect_sample(b, "pgfeed_sequenced_total", m->sequenced);
    expect_sample(b, "pgfeed_sequencer", m->sequencer_held);
    expect_sample(b, "pgfeed_sequencer_queries_total", m->sequencer_statements);
}

static void test_render_zero(void **state)
{
    metrics m = {0};
    metrics_snapshot s = {0};
    buf b = BUF_INIT;
    metrics_render(&m, &s, &b);
    check_exposition(&b);
    expect_all_samples(&b, &m, &s);
    assert_memory_equal(b.data, "# HELP pgfeed_requests_total ", 29);
    buf_free(&b);
}

static void test_render_distinct_values(void **state)
{
    /* Every value different, so a sample wired to the wrong field shows. */
    metrics m = {
        .requests_poll = 101,
        .requests_long_poll = 102,
        .requests_sse = 103,
        .requests_other = 104,
        .responses_2xx = 105,
        .responses_304 = 106,
        .responses_4xx = 107,
        .responses_5xx = 108,
        .events_delivered = 109,
        .notifications = 110,
        .departed_clients = 111,
        .slow_streams_ended = 112,
        .held_rejected = 113,
        .undrained_closed = 130,
        .fcgi_accepted = 120,
        .fcgi_refused = 121,
        .fcgi_timed_out = 122,
        .fcgi_too_large = 123,
        .fcgi_protocol_errors = 124,
        .fcgi_kept_requests = 125,
        .fcgi_fd_exhausted = 126,
        .fcgi_connections = 127,
        .fds_limit = 1000,
        .fds_open = 129,
        .notify_queue_usage = 0.25,
        .sequenced = 150,
        .sequencer_held = true,
        .sequencer_statements = 151,
    };
    metrics_snapshot s = {
        .db_up = true,
        .db_queries = 115,
        .db_queue = 116,
        .channels_cached = 117,
        .cache_hits = 118,
        .cache_misses = 119,
        .cache_bytes = 140,
        .cache_budget = 141,
        .cache_evictions = 142,
        .cache_ring_trims = 143,
        .head_loads = 144,
        .head_queries = 145,
        .head_loads_waiting = 146,
        .head_load_rejected = 147,
        .held_now = 114,
    };
    buf b = BUF_INIT;
    metrics_render(&m, &s, &b);
    check_exposition(&b);
    expect_all_samples(&b, &m, &s);
    buf_free(&b);
}

static void test_render_extremes(void **state)
{
    metrics m = {.requests_poll = UINT64_MAX, .events_delivered = UINT64_MAX - 1};
    metrics_snapshot s = {
        .db_up = false, .cache_hits = UINT64_MAX, .db_queue = SIZE_MAX, .held_now = SIZE_MAX};
    buf b = BUF_INIT;
    metrics_render(&m, &s, &b);
    check_exposition(&b);
    expect_all_samples(&b, &m, &s);
    assert_non_null(strstr(b.data, "{transport=\"poll\"} 18446744073709551615\n"));
    buf_free(&b);
}

static void test_render_appends(void **state)
{
    metrics m = {.notifications = 3};
    metrics_snapshot s = {.db_up = true};
    buf first = BUF_INIT, twice = BUF_INIT;
    metrics_render(&m, &s, &first);
    buf_append_str(&twice, "x\n");
    metrics_render(&m, &s, &twice);
    metrics_render(&m, &s, &twice);
    assert_int_equal(twice.len, 2 + 2 * first.len);
    assert_memory_equal(twice.data + 2, first.data, first.len);
    assert_memory_equal(twice.data + 2 + first.len, first.data, first.len);
    buf_free(&first);
    buf_free(&twice);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_classes),  cmocka_unit_test(test_status_mix),
        cmocka_unit_test(test_render_zero),     cmocka_unit_test(test_render_distinct_values),
        cmocka_unit_test(test_render_extremes), cmocka_unit_test(test_render_appends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
