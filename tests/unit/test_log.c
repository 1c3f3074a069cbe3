/*
 * test_log — every record is one line with an ISO 8601 UTC timestamp (text),
 * a syslog priority (journal) or a JSON object (json), the request id as
 * prefix, and control characters from the message escaped: a PostgreSQL error
 * quoting a client's string must not split or forge records.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* Runs log_msg with stderr sent to a temporary file; returns what was written. */
static char *capture(log_format format, unsigned long request_id, const char *msg)
{
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
    log_set_format(format);
    log_msg(LOG_WARN, request_id, "%s", msg);
    log_set_format(LOG_FORMAT_TEXT);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    static char out[16384];
    rewind(tmp);
    size_t n = fread(out, 1, sizeof out - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
    return out;
}

static void assert_matches(const char *text, const char *pattern)
{
    regex_t re;
    assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
    int rc = regexec(&re, text, 0, NULL, 0);
    regfree(&re);
    if (rc != 0)
        fail_msg("\"%s\" does not match /%s/", text, pattern);
}

static size_t count_newlines(const char *text)
{
    size_t n = 0;
    for (; *text; text++)
        n += *text == '\n';
    return n;
}

/* What libpq says when a client-chosen channel name meets an error: three lines. */
static const char *const pg_error = "ERROR:  invalid input \"x\nFAKE pgfeed[1] error: forged\"\n"
                                    "DETAIL:  tab\there, bell\a, cr\r, backslash \\n\n";

static void test_text_record_is_one_timestamped_line(void **state)
{
    (void)state;
    const char *out = capture(LOG_FORMAT_TEXT, 0, "database is down");
    assert_matches(out, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
                        "pgfeed\\[[0-9]+\\] warn: database is down\n$");
}

static void test_text_record_carries_the_request_id(void **state)
{
    (void)state;
    const char *out = capture(LOG_FORMAT_TEXT, 42, "client went away");
    assert_matches(out, "Z pgfeed\\[[0-9]+\\] warn req=42: client went away\n$");
}

static void test_control_characters_are_escaped(void **state)
{
    (void)state;
    const char *out = capture(LOG_FORMAT_TEXT, 7, pg_error);
    assert_int_equal(count_newlines(out), 1);
    assert_non_null(strstr(out,
                           "req=7: ERROR:  invalid input \"x\\nFAKE pgfeed[1] error: forged\"\\n"
                           "DETAIL:  tab\\there, bell\\x07, cr\\r, backslash \\\\n\n"));
}

static void test_journal_record_has_a_priority_and_no_timestamp(void **state)
{
    (void)state;
    const char *out = capture(LOG_FORMAT_JOURNAL, 3, pg_error);
    assert_int_equal(count_newlines(out), 1);
    assert_matches(out, "^<4>warn req=3: ERROR:  invalid input \"x\\\\nFAKE");
}

static void test_json_record_is_one_object_per_line(void **state)
{
    (void)state;
    const char *out = capture(LOG_FORMAT_JSON, 9, pg_error);
    assert_int_equal(count_newlines(out), 1);
    json_object *record = json_tokener_parse(out);
    assert_non_null(record);
    json_object *field;
    assert_true(json_object_object_get_ex(record, "msg", &field));
    /* The message, whole, with only the trailing newline dropped. */
    assert_int_equal(strlen(json_object_get_string(field)), strlen(pg_error) - 1);
    assert_true(json_object_object_get_ex(record, "req", &field));
    assert_int_equal(json_object_get_int(field), 9);
    assert_true(json_object_object_get_ex(record, "level", &field));
    assert_string_equal(json_object_get_string(field), "warn");
    assert_true(json_object_object_get_ex(record, "time", &field));
    assert_matches(json_object_get_string(field), "^[0-9-]{10}T[0-9:]{8}\\.[0-9]{3}Z$");
    json_object_put(record);
}

static void test_a_long_message_is_cut_but_stays_one_line(void **state)
{
    (void)state;
    static char msg[10000];
    memset(msg, '\n', sizeof msg - 1);
    const char *out = capture(LOG_FORMAT_TEXT, 0, msg);
    assert_int_equal(count_newlines(out), 1);
    assert_true(out[strlen(out) - 1] == '\n');
}

static void test_formats_parse(void **state)
{
    (void)state;
    log_format format;
    assert_int_equal(log_format_parse("journal", &format), 0);
    assert_int_equal(format, LOG_FORMAT_JOURNAL);
    assert_int_equal(log_format_parse("json", &format), 0);
    assert_int_equal(format, LOG_FORMAT_JSON);
    assert_int_equal(log_format_parse("text", &format), 0);
    assert_int_equal(format, LOG_FORMAT_TEXT);
    assert_int_equal(log_format_parse("syslog", &format), -1);
}

/* --log-level-file: one word, what echo and editors put around it ignored. */
static void test_level_file(void **state)
{
    char dir[] = "/tmp/pgfeed-test-log-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/level", dir);
    struct {
        const char *text;
        int rc;
        log_level level;
    } cases[] = {
        {"debug\n", 0, LOG_DEBUG}, {"  warn \r\n\n", 0, LOG_WARN},
        {"error", 0, LOG_ERROR},   {"", -1, 0},
        {"loud\n", -1, 0},         {"info debug\n", -1, 0},
        {"INFO\n", -1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(cases[i].text, f);
        fclose(f);
        log_level level = LOG_INFO;
        char err[256] = "";
        int rc = log_level_read(path, &level, err, sizeof err);
        if (rc != cases[i].rc)
            fail_msg("\"%s\": %d (%s)", cases[i].text, rc, err);
        if (rc == 0)
            assert_int_equal(level, cases[i].level);
        else
            assert_non_null(strstr(err, "--log-level-file"));
    }
    /* Longer than any level: refused without reading on. */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 100; i++)
        fputs("debug ", f);
    fclose(f);
    log_level level;
    char err[256];
    assert_int_equal(log_level_read(path, &level, err, sizeof err), -1);
    unlink(path);
    assert_int_equal(log_level_read(path, &level, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot open"));
    rmdir(dir);
    assert_string_equal(log_level_name(LOG_DEBUG), "debug");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_record_is_one_timestamped_line),
        cmocka_unit_test(test_text_record_carries_the_request_id),
        cmocka_unit_test(test_control_characters_are_escaped),
        cmocka_unit_test(test_journal_record_has_a_priority_and_no_timestamp),
        cmocka_unit_test(test_json_record_is_one_object_per_line),
        cmocka_unit_test(test_a_long_message_is_cut_but_stays_one_line),
        cmocka_unit_test(test_formats_parse),
        cmocka_unit_test(test_level_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
