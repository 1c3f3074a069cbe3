/*
 * backoff — capped exponential retry delays with per-process jitter (see backoff.h).
 */
#include "backoff.h"

#include "event_loop.h"

#include <stdint.h>
#include <sys/random.h>
#include <unistd.h>

/*
 * A uniform draw from [0, n). getrandom needs no seed and is fork-safe; if it
 * ever fails (a kernel without it), a generator seeded from the clock and the
 * pid still differs between processes.
 */
static uint32_t random_below(uint32_t n)
{
    uint32_t r;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        static uint64_t state;
        if (!state)
            state = ((uint64_t)clock_now_ms() << 20) ^ (uint64_t)getpid() ^ 0x9e3779b97f4a7c15u;
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        r = (uint32_t)(state >> 32);
    }
    return (uint32_t)(((uint64_t)r * n) >> 32);
}

void backoff_init(backoff *b, int min_ms, int max_ms)
{
    b->min_ms = min_ms;
    b->max_ms = max_ms;
    b->step_ms = min_ms;
}

int backoff_next(backoff *b)
{
    int step = b->step_ms;
    int delay = step / 2 + (int)random_below((uint32_t)(step / 2 + 1));
    b->step_ms = step > b->max_ms / 2 ? b->max_ms : step * 2;
    return delay;
}

void backoff_reset(backoff *b)
{
    b->step_ms = b->min_ms;
}
