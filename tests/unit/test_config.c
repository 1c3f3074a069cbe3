/*
 * test_config — defaults, PGFEED_* variables, flags in both spellings, and
 * every way a value or an argument can be wrong. Each test starts from an
 * environment with no PGFEED_* variable in it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"

extern char **environ;

/* Every integer option with its variable, its field, its default and its range. */
typedef struct int_option {
    const char *flag;
    const char *env;
    size_t offset;
    int default_value, min, max;
} int_option;

#define INT_OPTION(flag, env, field, def, min, max)                                                \
    {                                                                                              \
        flag, env, offsetof(pgfeed_config, field), def, min, max                                   \
    }

static const int_option int_options[] = {
    INT_OPTION("max-wait", "PGFEED_MAX_WAIT", max_wait, 30, 0, 3600),
    INT_OPTION("default-limit", "PGFEED_DEFAULT_LIMIT", default_limit, 100, 1, 1000),
    INT_OPTION("max-limit", "PGFEED_MAX_LIMIT", max_limit, 1000, 1, 1000),
    INT_OPTION("max-channels", "PGFEED_MAX_CHANNELS", max_channels, 16, 1, 1000),
    INT_OPTION("max-query", "PGFEED_MAX_QUERY", max_query, 4096, 64, 65536),
    INT_OPTION("max-held", "PGFEED_MAX_HELD", max_held, 10000, 0, 1000000),
    INT_OPTION("heartbeat", "PGFEED_HEARTBEAT", heartbeat, 15, 1, 3600),
    INT_OPTION("sse-lifetime", "PGFEED_SSE_LIFETIME", sse_lifetime, 240, 1, 86400),
    INT_OPTION("sse-retry", "PGFEED_SSE_RETRY", sse_retry_ms, 2000, 0, 600000),
    INT_OPTION("max-buffered", "PGFEED_MAX_BUFFERED", max_buffered, 262144, 4096, 1 << 30),
    INT_OPTION("ring-events", "PGFEED_RING_EVENTS", ring_events, 256, 1, 100000),
    INT_OPTION("ring-bytes", "PGFEED_RING_BYTES", ring_bytes, 1048576, 1024, 1 << 30),
    INT_OPTION("ring-seconds", "PGFEED_RING_SECONDS", ring_seconds, 0, 0, 3600),
    INT_OPTION("catchup-bytes", "PGFEED_CATCHUP_BYTES", catchup_bytes, 4194304, 0, 1 << 30),
    INT_OPTION("catchup-ms", "PGFEED_CATCHUP_MS", catchup_ms, 1000, 0, 60000),
    INT_OPTION("cache-bytes", "PGFEED_CACHE_BYTES", cache_bytes, 67108864, 65536, INT_MAX),
    INT_OPTION("load-queue", "PGFEED_LOAD_QUEUE", load_queue, 10000, 1, 1000000),
    INT_OPTION("load-batch", "PGFEED_LOAD_BATCH", load_batch, 1000, 1, 10000),
    INT_OPTION("prune-interval", "PGFEED_PRUNE_INTERVAL", prune_interval, 300, 0, 86400),
    INT_OPTION("sequence-ms", "PGFEED_SEQUENCE_MS", sequence_ms, 10, 0, 60000),
    INT_OPTION("sequence-batch", "PGFEED_SEQUENCE_BATCH", sequence_batch, 1000, 1, 100000),
    INT_OPTION("max-body", "PGFEED_MAX_BODY", max_body, 65536, 1, 1 << 24),
    INT_OPTION("hub-idle", "PGFEED_HUB_IDLE", hub_idle, 120, 1, 86400),
    INT_OPTION("hub-start-timeout", "PGFEED_HUB_START_TIMEOUT", hub_start_timeout, 5, 1, 60),
    INT_OPTION("relay-timeout", "PGFEED_RELAY_TIMEOUT", relay_timeout, 120, 1, 86400),
    INT_OPTION("relay-buffer", "PGFEED_RELAY_BUFFER", relay_buffer, 65536, 4096, 1 << 24),
    INT_OPTION("auth-cache-ttl", "PGFEED_AUTH_CACHE_TTL", auth_cache_ttl, 60, 1, 86400),
    INT_OPTION("auth-cache-max", "PGFEED_AUTH_CACHE_MAX", auth_cache_max, 100000, 1, 10000000),
    INT_OPTION("token-leeway", "PGFEED_TOKEN_LEEWAY", token_leeway, 30, 0, 600),
    INT_OPTION("token-max-bytes", "PGFEED_TOKEN_MAX_BYTES", token_max_bytes, 8192, 64, 65536),
    INT_OPTION("request-timeout", "PGFEED_REQUEST_TIMEOUT", request_timeout, 10, 1, 3600),
    INT_OPTION("keep-conn-timeout", "PGFEED_KEEP_CONN_TIMEOUT", keep_conn_timeout, 120, 1, 86400),
    INT_OPTION("max-params", "PGFEED_MAX_PARAMS", max_params, 32768, 1024, 1 << 24),
    INT_OPTION("max-connections", "PGFEED_MAX_CONNECTIONS", max_connections, 16384, 1, 1 << 24),
    INT_OPTION("max-answer-bytes", "PGFEED_MAX_ANSWER_BYTES", max_answer_bytes, 1048576, 1024,
               1 << 30),
    INT_OPTION("drain-timeout", "PGFEED_DRAIN_TIMEOUT", drain_timeout, 30, 1, 3600),
    INT_OPTION("notify-queue-warn", "PGFEED_NOTIFY_QUEUE_WARN", notify_queue_warn, 50, 1, 100),
};
#define N_INT_OPTIONS (sizeof int_options / sizeof *int_options)

static int int_field(const pgfeed_config *cfg, const int_option *o)
{
    return *(const int *)((const char *)cfg + o->offset);
}

/* Runs before every test: the variables of the shell running ctest must not leak in. */
static int clear_pgfeed_env(void **state)
{
    char names[64][128];
    size_t n;
    do {
        n = 0;
        for (char **e = environ; *e && n < 64; e++) {
            const char *eq = strchr(*e, '=');
            if (strncmp(*e, "PGFEED_", 7) == 0 && eq && (size_t)(eq - *e) < sizeof names[0]) {
                memcpy(names[n], *e, (size_t)(eq - *e));
                names[n++][eq - *e] = '\0';
            }
        }
        for (size_t i = 0; i < n; i++)
            unsetenv(names[i]);
    } while (n == 64);
    return 0;
}

/* config_load with "pgfeed" and then args (NULL-terminated) as its command line. */
static int load(pgfeed_config *cfg, const char *const *args)
{
    char *argv[32] = {"pgfeed"};
    int argc = 1;
    for (; args[argc - 1]; argc++) {
        assert_true(argc < 31);
        argv[argc] = (char *)args[argc - 1];
    }
    return config_load(cfg, argc, argv);
}

#define LOAD(cfg, ...) load((cfg), (const char *const[]){__VA_ARGS__, NULL})

static void load_ok(pgfeed_config *cfg, const char *const *args)
{
    assert_int_equal(load(cfg, args), 0);
}

#define LOAD_OK(cfg, ...) load_ok((cfg), (const char *const[]){__VA_ARGS__, NULL})

static void load_env_ok(pgfeed_config *cfg)
{
    assert_int_equal(LOAD(cfg, NULL), 0);
}

/* The options this file knows that are not integers (int_options has the rest),
 * and the two --help lists before them. */
static const char *const other_options[] = {"help",
                                            "version",
                                            "listen",
                                            "db",
                                            "log-level",
                                            "log-level-file",
                                            "log-format",
                                            "publish",
                                            "publish-token-file",
                                            "allow",
                                            "allow-user",
                                            "publish-allow-user",
                                            "authorize-sql",
                                            "token-keys",
                                            "token-cookie",
                                            "admin-allow",
                                            "cors-origin",
                                            "hub",
                                            "hub-dir",
                                            "socket-mode",
                                            "socket-group",
                                            "cache-public"};

static bool known_option(const char *flag, size_t len, const char *shown_default)
{
    for (size_t i = 0; i < N_INT_OPTIONS; i++) {
        if (strlen(int_options[i].flag) != len || strncmp(int_options[i].flag, flag, len) != 0)
            continue;
        char want[32];
        snprintf(want, sizeof want, "[%d]", int_options[i].default_value);
        assert_non_null(shown_default);
        assert_string_equal(shown_default, want);
        return true;
    }
    for (size_t i = 0; i < sizeof other_options / sizeof *other_options; i++)
        if (strlen(other_options[i]) == len && strncmp(other_options[i], flag, len) == 0)
            return true;
    return false;
}

/*
 * Every option config.c has (its --help lists them all, from the one table)
 * is one this file checks, with the same default: an option added without a
 * test, or a default changed on one side only, fails here.
 */
static void test_every_option_is_covered(void **state)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    assert_non_null(out);
    config_usage(out);
    assert_int_equal(fclose(out), 0);
    size_t listed = 0;
    for (char *line = strstr(text, "\n  --"); line; line = strstr(line + 1, "\n  --")) {
        const char *flag = line + 5;
        size_t len = strcspn(flag, " ");
        const char *end = strchr(flag, '\n');
        const char *open = end;
        while (open > flag && *open != '[')
            open--;
        char shown[32] = "";
        if (*open == '[' && (size_t)(end - open) < sizeof shown)
            memcpy(shown, open, (size_t)(end - open));
        if (!known_option(flag, len, shown[0] ? shown : NULL))
            fail_msg("--%.*s is not checked by test_config", (int)len, flag);
        listed++;
    }
    assert_int_equal(listed, N_INT_OPTIONS + sizeof other_options / sizeof *other_options);
    free(text);
}

static void test_defaults(void **state)
{
    pgfeed_config cfg;
    load_env_ok(&cfg);
    assert_null(cfg.listen);
    assert_string_equal(cfg.db, "");
    assert_string_equal(cfg.log_level, "info");
    assert_null(cfg.log_level_file);
    assert_false(cfg.publish);
    assert_null(cfg.publish_token_file);
    assert_null(cfg.cache_public); /* nothing is public unless the operator says so */
    for (size_t i = 0; i < N_INT_OPTIONS; i++)
        assert_int_equal(int_field(&cfg, &int_options[i]), int_options[i].default_value);
}

static void test_unknown_variables_are_ignored(void **state)
{
    setenv("PGFEED_NO_SUCH_OPTION", "banana", 1);
    setenv("PGFEED_", "1", 1);
    setenv("pgfeed_max_wait", "7", 1); /* variables are upper case only */
    pgfeed_config cfg;
    load_env_ok(&cfg);
    assert_int_equal(cfg.max_wait, 30);
    unsetenv("pgfeed_max_wait");
}

static void test_int_limits_from_the_environment(void **state)
{
    char text[32];
    for (size_t i = 0; i < N_INT_OPTIONS; i++) {
        const int_option *o = &int_options[i];
        pgfeed_config cfg;
        const long ok[] = {o->min, o->max};
        for (size_t k = 0; k < 2; k++) {
            snprintf(text, sizeof text, "%ld", ok[k]);
            setenv(o->env, text, 1);
            load_env_ok(&cfg);
            assert_int_equal(int_field(&cfg, o), ok[k]);
        }
        const long bad[] = {(long)o->min - 1, (long)o->max + 1};
        for (size_t k = 0; k < 2; k++) {
            snprintf(text, sizeof text, "%ld", bad[k]);
            setenv(o->env, text, 1);
            assert_int_equal(LOAD(&cfg, NULL), -1);
        }
        unsetenv(o->env);
    }
}

static void test_int_limits_from_flags(void **state)
{
    char joined[96], value[32];
    for (size_t i = 0; i < N_INT_OPTIONS; i++) {
        const int_option *o = &int_options[i];
        char flag[48];
        snprintf(flag, sizeof flag, "--%s", o->flag);
        pgfeed_config cfg;
        const long ok[] = {o->min, o->max};
        for (size_t k = 0; k < 2; k++) {
            snprintf(value, sizeof value, "%ld", ok[k]);
            snprintf(joined, sizeof joined, "%s=%s", flag, value);
            LOAD_OK(&cfg, joined);
            assert_int_equal(int_field(&cfg, o), ok[k]);
            LOAD_OK(&cfg, flag, value);
            assert_int_equal(int_field(&cfg, o), ok[k]);
        }
        const long bad[] = {(long)o->min - 1, (long)o->max + 1};
        for (size_t k = 0; k < 2; k++) {
            snprintf(value, sizeof value, "%ld", bad[k]);
            snprintf(joined, sizeof joined, "%s=%s", flag, value);
            assert_int_equal(LOAD(&cfg, joined), -1);
            assert_int_equal(LOAD(&cfg, flag, value), -1);
        }
    }
}

static const char *const not_numbers[] = {
    "",
    "abc",
    "12abc",
    "12 ",
    "1e3",
    "0x10",
    "1.5",
    "3 0",
    "--",
    "99999999999999999999",
    "-99999999999999999999",
    "\xff",
};

static void test_non_numeric_values(void **state)
{
    pgfeed_config cfg;
    char joined[64];
    for (size_t i = 0; i < sizeof not_numbers / sizeof *not_numbers; i++) {
        snprintf(joined, sizeof joined, "--heartbeat=%s", not_numbers[i]);
        assert_int_equal(LOAD(&cfg, joined), -1);
        assert_int_equal(LOAD(&cfg, "--heartbeat", not_numbers[i]), -1);
        setenv("PGFEED_HEARTBEAT", not_numbers[i], 1);
        assert_int_equal(LOAD(&cfg, NULL), -1);
        unsetenv("PGFEED_HEARTBEAT");
    }
}

static void test_strings_from_the_environment(void **state)
{
    setenv("PGFEED_LISTEN", "/run/pgfeed/pgfeed.sock", 1);
    setenv("PGFEED_DB", "service=feeds application_name=pgfeed", 1);
    setenv("PGFEED_LOG_LEVEL", "debug", 1);
    setenv("PGFEED_PUBLISH_TOKEN_FILE", "s3cret", 1);
    pgfeed_config cfg;
    load_env_ok(&cfg);
    assert_string_equal(cfg.listen, "/run/pgfeed/pgfeed.sock");
    assert_string_equal(cfg.db, "service=feeds application_name=pgfeed");
    assert_string_equal(cfg.log_level, "debug");
    assert_string_equal(cfg.publish_token_file, "s3cret");
}

static void test_strings_from_flags(void **state)
{
    pgfeed_config cfg;
    LOAD_OK(&cfg, "--listen", "127.0.0.1:9000", "--db=host=db port=5433",
            "--publish-token-file=a=b", "--log-level", "warn", "--cache-public", "news,public:*");
    assert_string_equal(cfg.cache_public, "news,public:*");
    assert_string_equal(cfg.listen, "127.0.0.1:9000");
    assert_string_equal(cfg.db, "host=db port=5433"); /* split at the first '=' only */
    assert_string_equal(cfg.publish_token_file, "a=b");
    assert_string_equal(cfg.log_level, "warn");

    LOAD_OK(&cfg, "--db=", "--listen", "");
    assert_string_equal(cfg.db, "");
    assert_string_equal(cfg.listen, "");
}

static void test_flags_override_the_environment(void **state)
{
    setenv("PGFEED_MAX_WAIT", "60", 1);
    setenv("PGFEED_LISTEN", "/env.sock", 1);
    setenv("PGFEED_PUBLISH", "yes", 1);
    setenv("PGFEED_HEARTBEAT", "5", 1);
    pgfeed_config cfg;
    LOAD_OK(&cfg, "--max-wait", "10", "--listen=/flag.sock", "--publish=off");
    assert_int_equal(cfg.max_wait, 10);
    assert_string_equal(cfg.listen, "/flag.sock");
    assert_false(cfg.publish);
    assert_int_equal(cfg.heartbeat, 5); /* not on the command line: the variable holds */

    load_env_ok(&cfg);
    assert_int_equal(cfg.max_wait, 60);
    assert_string_equal(cfg.listen, "/env.sock");
    assert_true(cfg.publish);
}

static void test_a_bad_variable_fails_even_when_a_flag_would_override_it(void **state)
{
    setenv("PGFEED_MAX_WAIT", "forever", 1);
    pgfeed_config cfg;
    assert_int_equal(LOAD(&cfg, "--max-wait=5"), -1);
}

static void test_last_flag_wins(void **state)
{
    pgfeed_config cfg;
    LOAD_OK(&cfg, "--max-wait=5", "--max-wait", "7", "--publish", "--publish=no");
    assert_int_equal(cfg.max_wait, 7);
    assert_false(cfg.publish);
}

/* List options (--allow, --cors-origin, ...): a repeated flag appends, the first replaces. */
static void test_list_flags_append(void **state)
{
    pgfeed_config cfg;
    LOAD_OK(&cfg, "--allow", "public:*", "--allow=news", "--allow-user", "user:{user}");
    assert_string_equal(cfg.allow, "public:*,news");
    assert_string_equal(cfg.allow_user, "user:{user}");
    assert_string_equal(cfg.admin_allow, "loopback");
    setenv("PGFEED_ALLOW", "from-env", 1);
    LOAD_OK(&cfg, "--log-level", "info");
    assert_string_equal(cfg.allow, "from-env");
    LOAD_OK(&cfg, "--allow", "a", "--allow", "b");
    assert_string_equal(cfg.allow, "a,b");
    unsetenv("PGFEED_ALLOW");
    LOAD_OK(&cfg, "--admin-allow", "user:ops");
    assert_string_equal(cfg.admin_allow, "user:ops");
    LOAD_OK(&cfg, "--cache-public", "news", "--cache-public=public:*");
    assert_string_equal(cfg.cache_public, "news,public:*");
    /* A secret never goes on the command line: the old flag is gone. */
    assert_int_equal(LOAD(&cfg, "--publish-token", "s3cret"), -1);
}

static void test_bool_values(void **state)
{
    const char *const yes[] = {"1", "true", "yes", "on"};
    const char *const no[] = {"0", "false", "no", "off", ""};
    const char *const bad[] = {"2", "-1", "maybe", "y", "n", "truee", " 1", "on "};
    char joined[32];
    pgfeed_config cfg;
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        snprintf(joined, sizeof joined, "--publish=%s", yes[i]);
        LOAD_OK(&cfg, joined);
        assert_true(cfg.publish);
        setenv("PGFEED_PUBLISH", yes[i], 1);
        load_env_ok(&cfg);
        assert_true(cfg.publish);
    }
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
        snprintf(joined, sizeof joined, "--publish=%s", no[i]);
        setenv("PGFEED_PUBLISH", "1", 1);
        LOAD_OK(&cfg, joined);
        assert_false(cfg.publish);
        setenv("PGFEED_PUBLISH", no[i], 1);
        load_env_ok(&cfg);
        assert_false(cfg.publish);
    }
    unsetenv("PGFEED_PUBLISH");
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(joined, sizeof joined, "--publish=%s", bad[i]);
        assert_int_equal(LOAD(&cfg, joined), -1);
        setenv("PGFEED_PUBLISH", bad[i], 1);
        assert_int_equal(LOAD(&cfg, NULL), -1);
        unsetenv("PGFEED_PUBLISH");
    }
}

static void test_bool_flag_without_a_value(void **state)
{
    setenv("PGFEED_PUBLISH", "0", 1);
    pgfeed_config cfg;
    LOAD_OK(&cfg, "--publish");
    assert_true(cfg.publish);
    /* A bare boolean does not take the next argument as its value. */
    LOAD_OK(&cfg, "--publish", "--max-wait", "5");
    assert_true(cfg.publish);
    assert_int_equal(cfg.max_wait, 5);
    assert_int_equal(LOAD(&cfg, "--publish", "off"), -1);
}

static void test_missing_values(void **state)
{
    pgfeed_config cfg;
    assert_int_equal(LOAD(&cfg, "--max-wait"), -1);
    assert_int_equal(LOAD(&cfg, "--listen"), -1);
    assert_int_equal(LOAD(&cfg, "--publish-token-file"), -1);
    assert_int_equal(LOAD(&cfg, "--max-wait="), -1);
    assert_int_equal(LOAD(&cfg, "--max-wait", "--publish"), -1);
}

static void test_unknown_and_malformed_arguments(void **state)
{
    const char *const bad[] = {
        "--nope",     "--nope=1",       "--max",     "--max-wai", "--max-wait-x=3",
        "--MAX-WAIT", "--max_wait=3",   "-x",        "-v",        "max-wait",
        "--",         "---max-wait=3",  "--=5",      "-",         "",
        "--help=1",   "--max-wait\n=3", "--listen ",
    };
    pgfeed_config cfg;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(LOAD(&cfg, bad[i], "5"), -1);
    /* A stray word after good flags is as wrong as one before them. */
    assert_int_equal(LOAD(&cfg, "--max-wait=5", "extra"), -1);
}

static void test_help_and_version(void **state)
{
    pgfeed_config cfg;
    assert_int_equal(LOAD(&cfg, "--help"), 1);
    assert_int_equal(LOAD(&cfg, "-h"), 1);
    assert_int_equal(LOAD(&cfg, "--version"), 1);
    assert_int_equal(LOAD(&cfg, "--max-wait=5", "--help", "--nope"), 1);
    /* Arguments are read in order: an error before --help is still an error. */
    assert_int_equal(LOAD(&cfg, "--nope", "--help"), -1);
    /* A flag's value is never taken for --help. */
    LOAD_OK(&cfg, "--publish-token-file", "--help");
    assert_string_equal(cfg.publish_token_file, "--help");
}

static void test_usage_names_every_option(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    config_usage(out);
    assert_int_equal(fclose(out), 0);
    char want[96];
    for (size_t i = 0; i < N_INT_OPTIONS; i++) {
        const int_option *o = &int_options[i];
        snprintf(want, sizeof want, "--%s ", o->flag);
        assert_non_null(strstr(text, want));
        snprintf(want, sizeof want, " %s ", o->env);
        assert_non_null(strstr(text, want));
        snprintf(want, sizeof want, "[%d]\n", o->default_value);
        assert_non_null(strstr(text, want));
    }
    const char *const others[] = {"--listen ",
                                  " PGFEED_LISTEN ",
                                  "--db ",
                                  " PGFEED_DB ",
                                  "--log-level ",
                                  " PGFEED_LOG_LEVEL ",
                                  "--publish ",
                                  " PGFEED_PUBLISH ",
                                  "--publish-token-file ",
                                  " PGFEED_PUBLISH_TOKEN_FILE "};
    for (size_t i = 0; i < sizeof others / sizeof *others; i++)
        assert_non_null(strstr(text, others[i]));
    free(text);
}

/* --default-limit above --max-limit would make every request without limit= a 400 or worse. */
static void test_options_checked_against_each_other(void **state)
{
    pgfeed_config cfg;
    assert_int_equal(LOAD(&cfg, "--default-limit", "500", "--max-limit", "100"), -1);
    assert_int_equal(LOAD(&cfg, "--max-limit=100", "--default-limit=101"), -1);
    setenv("PGFEED_DEFAULT_LIMIT", "500", 1);
    assert_int_equal(LOAD(&cfg, "--max-limit", "100"), -1);
    unsetenv("PGFEED_DEFAULT_LIMIT");
    /* Not given, the default follows a lower maximum. */
    LOAD_OK(&cfg, "--max-limit", "50");
    assert_int_equal(cfg.default_limit, 50);
    LOAD_OK(&cfg, "--default-limit", "100", "--max-limit", "100");
    assert_int_equal(cfg.default_limit, 100);
}

/* config_each renders what a hub inherits: every set option, flags included. */
static void collect(void *ctx, const char *name, const char *value)
{
    buf *out = ctx;
    buf_printf(out, "%s=%s;", name, value);
}

static void test_each_renders_the_effective_configuration(void **state)
{
    pgfeed_config cfg;
    setenv("PGFEED_MAX_WAIT", "7", 1);
    setenv("PGFEED_HUB_DIR", "/run/user/33/pgfeed", 1);
    LOAD_OK(&cfg, "--hub", "--db", "dbname=x", "--heartbeat=9", "--allow", "news",
            "--allow=public:*");
    assert_true(cfg.hub);
    assert_string_equal(cfg.hub_dir, "/run/user/33/pgfeed");
    buf out = BUF_INIT;
    config_each(&cfg, collect, &out);
    assert_non_null(strstr(out.data, "PGFEED_MAX_WAIT=7;"));
    assert_non_null(strstr(out.data, "PGFEED_HEARTBEAT=9;"));
    assert_non_null(strstr(out.data, "PGFEED_DB=dbname=x;"));
    assert_non_null(strstr(out.data, "PGFEED_HUB=1;"));
    assert_non_null(strstr(out.data, "PGFEED_PUBLISH=0;"));
    /* Unset strings are left out rather than rendered as something. */
    assert_null(strstr(out.data, "PGFEED_LISTEN="));
    assert_null(strstr(out.data, "PGFEED_TOKEN_KEYS="));
    /* A repeated list flag reaches the hub as the list it made. */
    assert_non_null(strstr(out.data, "PGFEED_ALLOW=news,public:*;"));
    buf_free(&out);
}

#define TEST(f) cmocka_unit_test_setup(f, clear_pgfeed_env)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_defaults),
        TEST(test_every_option_is_covered),
        TEST(test_list_flags_append),
        TEST(test_unknown_variables_are_ignored),
        TEST(test_int_limits_from_the_environment),
        TEST(test_int_limits_from_flags),
        TEST(test_non_numeric_values),
        TEST(test_strings_from_the_environment),
        TEST(test_strings_from_flags),
        TEST(test_flags_override_the_environment),
        TEST(test_a_bad_variable_fails_even_when_a_flag_would_override_it),
        TEST(test_last_flag_wins),
        TEST(test_bool_values),
        TEST(test_bool_flag_without_a_value),
        TEST(test_missing_values),
        TEST(test_unknown_and_malformed_arguments),
        TEST(test_options_checked_against_each_other),
        TEST(test_help_and_version),
        TEST(test_usage_names_every_option),
        TEST(test_each_renders_the_effective_configuration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
