/*
 * test_hub — the hub's key and the checks on its socket directory: what makes
 * two configurations share a hub or not, and which directories are refused.
 * Directories are made in a private temporary directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "hub.h"

static pgfeed_config config_from(const char *const *args)
{
    pgfeed_config cfg;
    char *argv[16] = {"pgfeed"};
    int argc = 1;
    for (; args[argc - 1]; argc++)
        argv[argc] = (char *)args[argc - 1];
    assert_int_equal(config_load(&cfg, argc, argv), 0);
    return cfg;
}

#define CONFIG(...) config_from((const char *const[]){__VA_ARGS__, NULL})

static char *const base_env[] = {"PGHOST=/run/pg", "PGDATABASE=app", "HOME=/var/www", NULL};

static void key_of(const pgfeed_config *cfg, uid_t uid, char *const *env, char *out)
{
    assert_int_equal(hub_key(cfg, uid, "/usr/bin/pgfeed", env, out), 0);
    assert_int_equal(strlen(out), HUB_KEY_HEX);
    assert_int_equal(strspn(out, "0123456789abcdef"), HUB_KEY_HEX);
}

static void test_the_same_configuration_shares_a_hub(void **state)
{
    pgfeed_config a = CONFIG("--hub", "--max-wait", "20");
    pgfeed_config b = CONFIG("--max-wait=20", "--hub");
    char ka[HUB_KEY_HEX + 1], kb[HUB_KEY_HEX + 1];
    key_of(&a, 33, base_env, ka);
    /* The order of the environment means nothing. */
    char *const shuffled[] = {"HOME=/var/www", "PGDATABASE=app", "PGHOST=/run/pg", NULL};
    key_of(&b, 33, shuffled, kb);
    assert_string_equal(ka, kb);
    /* Neither does what is not PG*, nor the address the hub is given. */
    char *const other[] = {"PGHOST=/run/pg", "PGDATABASE=app", "HOME=/x", "TERM=dumb", NULL};
    pgfeed_config c = CONFIG("--hub", "--max-wait", "20", "--listen", "/tmp/x.sock");
    key_of(&c, 33, other, kb);
    assert_string_equal(ka, kb);
}

static void test_anything_that_changes_the_service_gets_another_hub(void **state)
{
    pgfeed_config cfg = CONFIG("--hub");
    char base[HUB_KEY_HEX + 1], k[HUB_KEY_HEX + 1];
    key_of(&cfg, 33, base_env, base);

    key_of(&cfg, 1000, base_env, k); /* another (suexec) user */
    assert_string_not_equal(base, k);

    char *const other_db[] = {"PGHOST=/run/pg", "PGDATABASE=other", "HOME=/var/www", NULL};
    key_of(&cfg, 33, other_db, k);
    assert_string_not_equal(base, k);

    char *const password[] = {"PGHOST=/run/pg", "PGDATABASE=app", "PGPASSWORD=s", NULL};
    key_of(&cfg, 33, password, k);
    assert_string_not_equal(base, k);

    const char *variants[][3] = {
        {"--max-wait", "10", NULL}, {"--db", "dbname=other", NULL},
        {"--publish", NULL, NULL},  {"--publish-token-file", "/etc/pgfeed/publish", NULL},
        {"--allow", "news", NULL},  {"--token-keys", "/etc/pgfeed/keys.json", NULL},
        {"--hub-idle", "5", NULL}};
    for (size_t i = 0; i < sizeof variants / sizeof *variants; i++) {
        const char *args[] = {"--hub", variants[i][0], variants[i][1], NULL};
        pgfeed_config v = config_from(args);
        key_of(&v, 33, base_env, k);
        assert_string_not_equal(base, k);
    }
    assert_int_equal(hub_key(&cfg, 33, "/opt/pgfeed-2/pgfeed", base_env, k), 0);
    assert_string_not_equal(base, k);
}

static char tmp[] = "/tmp/pgfeed-unit-hub-XXXXXX";

static const char *make_dir(const char *name, mode_t mode)
{
    static char path[sizeof tmp + 32];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

static void test_only_a_private_directory_of_the_user_is_safe(void **state)
{
    assert_non_null(mkdtemp(tmp));
    const char *why = NULL;
    assert_true(hub_dir_is_safe(make_dir("ok", 0700), geteuid(), &why));

    const mode_t unsafe[] = {0755, 0750, 0701, 0710, 01700, 0777, 0500};
    for (size_t i = 0; i < sizeof unsafe / sizeof *unsafe; i++) {
        char name[16];
        snprintf(name, sizeof name, "m%o", (unsigned)unsafe[i]);
        why = NULL;
        assert_false(hub_dir_is_safe(make_dir(name, unsafe[i]), geteuid(), &why));
        assert_string_equal(why, "its mode is not 0700");
    }
    why = NULL;
    assert_false(hub_dir_is_safe(make_dir("theirs", 0700), geteuid() + 1, &why));
    assert_string_equal(why, "it belongs to another user");

    char link[sizeof tmp + 16], target[sizeof tmp + 16], file[sizeof tmp + 16];
    snprintf(target, sizeof target, "%s/ok", tmp);
    snprintf(link, sizeof link, "%s/link", tmp);
    assert_int_equal(symlink(target, link), 0);
    assert_false(hub_dir_is_safe(link, geteuid(), &why));
    assert_string_equal(why, "it is a symbolic link");
    snprintf(file, sizeof file, "%s/file", tmp);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    assert_false(hub_dir_is_safe(file, geteuid(), &why));
    assert_string_equal(why, "it is not a directory");
    assert_false(hub_dir_is_safe("/nonexistent/pgfeed-hub", geteuid(), &why));

    char cmd[sizeof tmp + 16];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_same_configuration_shares_a_hub),
        cmocka_unit_test(test_anything_that_changes_the_service_gets_another_hub),
        cmocka_unit_test(test_only_a_private_directory_of_the_user_is_safe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
