/*
 * pg_test — what the tests against the throwaway cluster share.
 */
#include "pg_test.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "xalloc.h"

PGconn *pg_test_connect(void)
{
    PGconn *conn = PQconnectdb("");
    if (PQstatus(conn) != CONNECTION_OK) {
        fail_msg("cannot connect (are PGHOST, PGPORT, PGDATABASE set?): %s", PQerrorMessage(conn));
    }
    /* "does not exist, skipping" and the like are expected: keep the log for failures. */
    pg_test_exec(conn, "SET client_min_messages = warning");
    return conn;
}

int pg_test_setup(void **state)
{
    *state = pg_test_connect();
    return 0;
}

int pg_test_teardown(void **state)
{
    PQfinish(*state);
    return 0;
}

static PGresult *run(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
    return PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
}

/* Fails the test unless res is a success; clears it either way. */
static void expect_ok(PGconn *conn, PGresult *res, const char *sql)
{
    ExecStatusType status = PQresultStatus(res);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
        fail_msg("%s\nfailed: %s", sql, PQerrorMessage(conn));
    }
    PQclear(res);
}

void pg_test_exec(PGconn *conn, const char *sql)
{
    expect_ok(conn, PQexec(conn, sql), sql);
}

void pg_test_execf(PGconn *conn, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof sql);
    pg_test_exec(conn, sql);
}

PGconn *pg_test_thread_connect(char *error, size_t size)
{
    PGconn *conn = PQconnectdb("");
    if (PQstatus(conn) != CONNECTION_OK) {
        snprintf(error, size, "connect: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

void pg_test_exec_params(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
    expect_ok(conn, run(conn, sql, nparams, params), sql);
}

PGresult *pg_test_query(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
    PGresult *res = run(conn, sql, nparams, params);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fail_msg("%s\nfailed: %s", sql, PQerrorMessage(conn));
    }
    return res;
}

char *pg_test_value(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
    PGresult *res = pg_test_query(conn, sql, nparams, params);
    if (PQntuples(res) != 1) {
        fail_msg("%s\nreturned %d rows, expected 1", sql, PQntuples(res));
    }
    char *value = PQgetisnull(res, 0, 0) ? NULL : xstrdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return value;
}

long long pg_test_number(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
    char *value = pg_test_value(conn, sql, nparams, params);
    assert_non_null(value);
    long long number = strtoll(value, NULL, 10);
    free(value);
    return number;
}

void pg_test_expect_error(PGconn *conn, const char *sqlstate, const char *sql, int nparams,
                          const char *const *params)
{
    PGresult *res = run(conn, sql, nparams, params);
    if (PQresultStatus(res) != PGRES_FATAL_ERROR) {
        fail_msg("%s\nsucceeded, expected SQLSTATE %s", sql, sqlstate);
    }
    const char *got = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (got == NULL || strcmp(got, sqlstate) != 0) {
        fail_msg("%s\nfailed with SQLSTATE %s, expected %s: %s", sql, got ? got : "(none)",
                 sqlstate, PQresultErrorMessage(res));
    }
    PQclear(res);
}

char *pg_test_name(const char *prefix)
{
    static unsigned counter;
    char name[128];
    snprintf(name, sizeof name, "%s-%ld-%u", prefix, (long)getpid(), ++counter);
    return xstrdup(name);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The libpq way: wait for the socket, PQconsumeInput, then drain PQnotifies. */
bool pg_test_wait_notify_on(PGconn *conn, const char *pg_channel, const char *channel,
                            int timeout_ms, char *payload, size_t size)
{
    long long deadline = now_ms() + timeout_ms;
    size_t channel_len = strlen(channel);
    for (;;) {
        if (PQconsumeInput(conn) == 0) {
            fail_msg("PQconsumeInput: %s", PQerrorMessage(conn));
        }
        PGnotify *notify;
        while ((notify = PQnotifies(conn)) != NULL) {
            size_t len = strlen(notify->extra);
            bool ours = strcmp(notify->relname, pg_channel) == 0 && len > channel_len &&
                        notify->extra[len - channel_len - 1] == ' ' &&
                        strcmp(notify->extra + len - channel_len, channel) == 0;
            if (ours) {
                snprintf(payload, size, "%s", notify->extra);
            }
            PQfreemem(notify);
            if (ours) {
                return true;
            }
        }
        long long left = deadline - now_ms();
        if (left <= 0) {
            return false;
        }
        struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
        poll(&pfd, 1, (int)left);
    }
}

bool pg_test_wait_notify(PGconn *conn, const char *channel, int timeout_ms, char *payload,
                         size_t size)
{
    return pg_test_wait_notify_on(conn, "pgfeed", channel, timeout_ms, payload, size);
}
