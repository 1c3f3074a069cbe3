/*
 * pg_test — what the tests against the throwaway cluster share.
 *
 * Connections come from libpq's PG* variables, which ctest sets from
 * PGFEED_TEST_PG_ENV. Every helper fails the running cmocka test on an
 * unexpected result, so they are for the test's own thread only; code running
 * in other threads reports errors back instead.
 *
 * Tests of different files may run at the same time on the same database
 * (ctest -j), so each test works on channels of its own: pg_test_name().
 */
#ifndef PGFEED_PG_TEST_H
#define PGFEED_PG_TEST_H

#include <stdbool.h>
#include <libpq-fe.h>

/* A new connection from the environment; fails the test if it cannot. */
PGconn *pg_test_connect(void);

/* cmocka group fixtures for files whose tests share one connection: each
 * test gets it as *state. */
int pg_test_setup(void **state);
int pg_test_teardown(void **state);

/* Runs statements that must succeed; their result is discarded. */
void pg_test_exec(PGconn *conn, const char *sql);

/* The same for SQL formatted printf-style (names of the test's own making only). */
void pg_test_execf(PGconn *conn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A connection for another thread: NULL with libpq's reason in error (no cmocka call). */
PGconn *pg_test_thread_connect(char *error, size_t size);

/* The same for one statement with parameters. */
void pg_test_exec_params(PGconn *conn, const char *sql, int nparams, const char *const *params);

/* Runs a parameterized query that must return rows; the caller PQclear()s. */
PGresult *pg_test_query(PGconn *conn, const char *sql, int nparams, const char *const *params);

/* The first column of the first row as a new string (NULL for SQL NULL); the
 * caller frees it. The query must return exactly one row. */
char *pg_test_value(PGconn *conn, const char *sql, int nparams, const char *const *params);

/* pg_test_value() read as a number. */
long long pg_test_number(PGconn *conn, const char *sql, int nparams, const char *const *params);

/* Runs a statement that must fail with SQLSTATE sqlstate. */
void pg_test_expect_error(PGconn *conn, const char *sqlstate, const char *sql, int nparams,
                          const char *const *params);

/* "prefix-<pid>-<n>": a channel or object name no other run or test uses. */
char *pg_test_name(const char *prefix);

/* Waits up to timeout_ms for a NOTIFY on conn whose payload ends with
 * " <channel>"; copies the payload into payload (size bytes) and returns true,
 * or returns false on timeout. Other channels' notifications are dropped. */
bool pg_test_wait_notify(PGconn *conn, const char *channel, int timeout_ms, char *payload,
                         size_t size);

/* The same for notifications on PostgreSQL channel pg_channel (e.g. "pgfeed_reset"). */
bool pg_test_wait_notify_on(PGconn *conn, const char *pg_channel, const char *channel,
                            int timeout_ms, char *payload, size_t size);

#endif
