/*
 * The loop's clock: the wait for the next timer counts from the moment the
 * loop goes to wait, not from the start of the turn.  A turn whose tasks
 * run long (a loaded machine, valgrind, a task computing) must not make the
 * timers they armed late by that long.
 */
#include "runner.h"

#define BUSY_MS 1000

static void *busy(void *arg)
{
    uint64_t t0 = test_ms();
    while (test_ms() - t0 < BUSY_MS) {
    }
    return NULL;
}

static void *sleeper(void *arg)
{
    uint64_t *elapsed = arg, t0 = test_ms();
    CHECK_OK(corio_sleep_ms(10));
    *elapsed = test_ms() - t0;
    return NULL;
}

static void *long_turn_main(void *arg)
{
    uint64_t elapsed = 0;
    /* both run in the same turn, the sleeper last: it arms its 10 ms
     * timer BUSY_MS after the turn began */
    corio_task *b = corio_spawn(busy, NULL), *s = corio_spawn(sleeper, &elapsed);
    CHECK(b && s);
    CHECK_OK(corio_task_join(b, NULL));
    CHECK_OK(corio_task_join(s, NULL));
    /* counted from the turn's start the wait would last BUSY_MS + 10 */
    CHECK(elapsed < BUSY_MS * 9 / 10);
    return NULL;
}

TEST(timer_armed_late_in_a_long_turn_is_not_late) { test_run(long_turn_main, NULL); }
