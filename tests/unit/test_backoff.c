/*
 * test_backoff — delays stay in [step/2, step], the step doubles to its cap and
 * resets, and two processes draw different delays (the reason for jitter).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backoff.h"

static void test_delays_double_up_to_the_cap(void **state)
{
    backoff b;
    backoff_init(&b, 100, 5000);
    const int steps[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000};
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
        int delay = backoff_next(&b);
        assert_in_range(delay, steps[i] / 2, steps[i]);
    }
    backoff_reset(&b);
    assert_in_range(backoff_next(&b), 50, 100);
}

static void test_jitter_spreads_over_half_a_step(void **state)
{
    /* 2,000 draws at the cap: both halves of [2500, 5000] are hit. */
    backoff b;
    backoff_init(&b, 5000, 5000);
    int low = 0, high = 0;
    for (int i = 0; i < 2000; i++) {
        int delay = backoff_next(&b);
        assert_in_range(delay, 2500, 5000);
        if (delay < 3750)
            low++;
        else
            high++;
    }
    assert_true(low > 500 && high > 500);
}

/* Draws 16 delays at the cap in a child process and returns them through a pipe. */
static void draw_in_child(int out[16])
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        backoff b;
        backoff_init(&b, 5000, 5000);
        int delays[16];
        for (int i = 0; i < 16; i++)
            delays[i] = backoff_next(&b);
        _exit(write(fds[1], delays, sizeof delays) == (ssize_t)sizeof delays ? 0 : 1);
    }
    close(fds[1]);
    assert_int_equal(read(fds[0], out, 16 * sizeof *out), (ssize_t)(16 * sizeof *out));
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_two_processes_draw_different_delays(void **state)
{
    /* Each child starts from a fresh exec-like state: the same code, nothing shared but
     * what the process inherits. Identical sequences mean every process retries at once. */
    int a[16], b[16];
    draw_in_child(a);
    draw_in_child(b);
    assert_memory_not_equal(a, b, sizeof a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delays_double_up_to_the_cap),
        cmocka_unit_test(test_jitter_spreads_over_half_a_step),
        cmocka_unit_test(test_two_processes_draw_different_delays),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
