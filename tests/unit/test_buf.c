/*
 * test_buf — the growable buffer every response is built in: growth across
 * many reallocations, printf output on both sides of its 256-byte fast path,
 * consuming written bytes as a queue, and reuse after reset and free.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"

/* The invariants every operation keeps: length, terminating NUL, room for it. */
static void expect_contents(const buf *b, const char *want, size_t want_len)
{
    assert_int_equal(b->len, want_len);
    assert_non_null(b->data);
    assert_true(b->cap > b->len);
    assert_memory_equal(b->data, want, want_len);
    assert_int_equal(b->data[b->len], '\0');
}

/* n bytes of a pattern that does not repeat with any power-of-two period. */
static void fill_pattern(char *out, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (char)('a' + (i * 7 + seed) % 23);
}

static void test_init_is_empty(void **state)
{
    buf b = BUF_INIT;
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    buf_free(&b); /* freeing a buffer that never grew is fine */
    assert_null(b.data);
}

static void test_empty_append_allocates_a_terminated_string(void **state)
{
    buf b = BUF_INIT;
    buf_append(&b, NULL, 0); /* fcgi_io frames empty records this way */
    expect_contents(&b, "", 0);
    buf_append_str(&b, "");
    expect_contents(&b, "", 0);
    buf_free(&b);
}

static void test_append_keeps_bytes_across_growth(void **state)
{
    enum { total = 100000 };
    static char want[total];
    fill_pattern(want, total, 3);
    buf b = BUF_INIT;
    size_t len = 0;
    size_t step = 1;
    size_t reallocs = 0;
    while (len < total) {
        size_t n = step < total - len ? step : total - len;
        size_t cap_before = b.cap;
        buf_append(&b, want + len, n);
        len += n;
        reallocs += b.cap != cap_before;
        expect_contents(&b, want, len);
        step = step * 3 + 1; /* odd sizes land on and beside every capacity */
    }
    assert_true(reallocs >= 5);
    buf_free(&b);
}

static void test_append_exactly_filling_the_capacity(void **state)
{
    char want[200];
    fill_pattern(want, sizeof want, 1);
    buf b = BUF_INIT;
    buf_append(&b, want, 1);
    size_t cap = b.cap;
    /* Fill to cap - 1 bytes: the NUL takes the last byte, no reallocation. */
    buf_append(&b, want + 1, cap - 2);
    assert_int_equal(b.cap, cap);
    expect_contents(&b, want, cap - 1);
    /* One more byte must grow the buffer rather than write the NUL past it. */
    buf_append(&b, want + cap - 1, 1);
    assert_true(b.cap > cap);
    expect_contents(&b, want, cap);
    buf_free(&b);
}

static void test_append_keeps_embedded_nul_bytes(void **state)
{
    buf b = BUF_INIT;
    buf_append(&b, "a\0b", 3);
    buf_append(&b, "\0", 1);
    buf_append_str(&b, "c");
    expect_contents(&b, "a\0b\0c", 5);
    buf_free(&b);
}

static void test_append_respects_len(void **state)
{
    buf b = BUF_INIT;
    buf_append(&b, "hello, world", 5);
    expect_contents(&b, "hello", 5);
    buf_free(&b);
}

static void test_printf_short(void **state)
{
    buf b = BUF_INIT;
    buf_printf(&b, "%s=%d", "head", 41);
    buf_printf(&b, "%s", "");
    buf_printf(&b, ",%c%05.1f", 'x', 2.25);
    expect_contents(&b, "head=41,x002.2", 14);
    buf_free(&b);
}

/* Appends prefix, then a printf of width + 1 bytes, and checks the whole text. */
static void expect_printf_of_width(const char *prefix, int width)
{
    char want[5000];
    size_t prefix_len = strlen(prefix);
    size_t out_len = (size_t)width + 1;
    assert_true(prefix_len + out_len < sizeof want);
    memcpy(want, prefix, prefix_len);
    memset(want + prefix_len, ' ', out_len - 2);
    memcpy(want + prefix_len + out_len - 2, "7|", 2);

    buf b = BUF_INIT;
    buf_append_str(&b, prefix);
    buf_printf(&b, "%*d|", width, 7);
    expect_contents(&b, want, prefix_len + out_len);
    buf_free(&b);
}

static void test_printf_around_the_fast_path_limit(void **state)
{
    /* The output is width + 1 bytes; 256 and more take the second vsnprintf. */
    const int widths[] = {1, 254, 255, 256, 257, 300, 4000};
    for (size_t i = 0; i < sizeof widths / sizeof *widths; i++) {
        expect_printf_of_width("", widths[i]);
        expect_printf_of_width("already here: ", widths[i]);
    }
}

static void test_printf_long_string_argument(void **state)
{
    enum { n = 70000 };
    static char arg[n + 1];
    fill_pattern(arg, n, 5);
    arg[n] = '\0';
    static char want[n + 16];
    memcpy(want, "<", 1);
    memcpy(want + 1, arg, n);
    memcpy(want + 1 + n, ">42", 3);

    buf b = BUF_INIT;
    buf_printf(&b, "<%s>%d", arg, 42);
    expect_contents(&b, want, n + 4);
    /* A long printf into a buffer that already has room must not disturb it. */
    buf_reset(&b);
    buf_printf(&b, "<%s>%d", arg, 42);
    expect_contents(&b, want, n + 4);
    buf_free(&b);
}

static void test_consume_partial(void **state)
{
    buf b = BUF_INIT;
    buf_append_str(&b, "hello world");
    buf_consume(&b, 0);
    expect_contents(&b, "hello world", 11);
    buf_consume(&b, 6);
    expect_contents(&b, "world", 5);
    buf_consume(&b, 4);
    expect_contents(&b, "d", 1);
    buf_free(&b);
}

static void test_consume_all_and_more(void **state)
{
    buf b = BUF_INIT;
    buf_append_str(&b, "abc");
    size_t cap = b.cap;
    buf_consume(&b, 3);
    expect_contents(&b, "", 0);
    assert_int_equal(b.cap, cap); /* memory kept for the next write */
    buf_append_str(&b, "xyz");
    buf_consume(&b, (size_t)-1);
    expect_contents(&b, "", 0);
    buf_free(&b);

    buf never = BUF_INIT;
    buf_consume(&never, 0);
    buf_consume(&never, 10);
    assert_null(never.data);
    assert_int_equal(never.len, 0);
}

/* Output is queued at the back and written from the front, in pieces. */
static void test_consume_as_a_queue(void **state)
{
    enum { total = 50000 };
    static char stream[total];
    fill_pattern(stream, total, 11);
    buf b = BUF_INIT;
    size_t queued = 0, written = 0;
    for (unsigned round = 0; written < total; round++) {
        size_t add = (round * 997) % 1500;
        if (add > total - queued)
            add = total - queued;
        buf_append(&b, stream + queued, add);
        queued += add;
        size_t take = (round * 389) % 1700;
        if (queued == total && take == 0)
            take = 1; /* everything is queued: keep draining */
        if (take > b.len)
            take = b.len;
        buf_consume(&b, take);
        written += take;
        expect_contents(&b, stream + written, queued - written);
    }
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

static void test_reset_keeps_memory_for_reuse(void **state)
{
    buf b = BUF_INIT;
    buf_printf(&b, "%300s", "x");
    char *data = b.data;
    size_t cap = b.cap;
    buf_reset(&b);
    expect_contents(&b, "", 0);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    buf_append_str(&b, "again");
    assert_ptr_equal(b.data, data);
    expect_contents(&b, "again", 5);
    buf_free(&b);

    buf never = BUF_INIT;
    buf_reset(&never);
    assert_null(never.data);
    assert_int_equal(never.len, 0);
}

static void test_free_then_reuse(void **state)
{
    buf b = BUF_INIT;
    buf_append_str(&b, "first life");
    buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    buf_free(&b); /* twice is harmless */
    buf_printf(&b, "second %s", "life");
    expect_contents(&b, "second life", 11);
    buf_free(&b);
}

/* Runs buf_append(len bytes) in a child and returns how the child ended. */
static int append_in_child(size_t len)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, STDERR_FILENO);
        alarm(5); /* the old doubling spun forever: fail by SIGALRM, not a hung test */
        buf b = BUF_INIT;
        buf_append(&b, "x", 1);
        buf_append(&b, "", len);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

/* A length no buffer can reach is a bug upstream: abort, as the allocator does, never loop. */
static void test_impossible_size_aborts(void **state)
{
    const size_t sizes[] = {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX / 2 + 10, SIZE_MAX / 2};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        int status = append_in_child(sizes[i]);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGABRT);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_is_empty),
        cmocka_unit_test(test_empty_append_allocates_a_terminated_string),
        cmocka_unit_test(test_append_keeps_bytes_across_growth),
        cmocka_unit_test(test_append_exactly_filling_the_capacity),
        cmocka_unit_test(test_append_keeps_embedded_nul_bytes),
        cmocka_unit_test(test_append_respects_len),
        cmocka_unit_test(test_printf_short),
        cmocka_unit_test(test_printf_around_the_fast_path_limit),
        cmocka_unit_test(test_printf_long_string_argument),
        cmocka_unit_test(test_consume_partial),
        cmocka_unit_test(test_consume_all_and_more),
        cmocka_unit_test(test_consume_as_a_queue),
        cmocka_unit_test(test_reset_keeps_memory_for_reuse),
        cmocka_unit_test(test_free_then_reuse),
        cmocka_unit_test(test_impossible_size_aborts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
