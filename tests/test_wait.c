/*
 * Waiting on many tasks without owning them (corio_wait, corio_as_completed)
 * and joining with a time-out (corio_task_wait_for).
 */
#include "runner.h"

#include <stdint.h>

static void *return_arg(void *arg) { return arg; }

static int cleanups;

static void *yields_then_returns(void *arg)
{
    intptr_t n = (intptr_t)arg;
    for (intptr_t i = 0; i < n; i++)
        if (corio_yield() < 0)
            return NULL;
    return arg;
}

static void *long_sleeper(void *arg)
{
    int r = corio_sleep_ms(60000);
    if (r == -ECANCELED)
        cleanups++;
    return arg;
}

static void *fail_after(void *arg)
{
    intptr_t v = (intptr_t)arg; /* err | yields << 16 */
    for (int i = 0; i < (v >> 16); i++)
        if (corio_yield() < 0)
            return NULL;
    return corio_fail((int)-(v & 0xffff));
}
#define FA(err, yields) ((void *)(intptr_t)((err) | ((yields) << 16)))

static void *cancel_reporter(void *arg) { return corio_fail(corio_sleep_ms(60000)); }

static void join_all(corio_task **t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        corio_task_join(t[i], NULL);
}

/* ---- corio_wait ----------------------------------------------------- */

static void *wait_modes_main(void *arg)
{
    /* ALL_COMPLETED */
    corio_task *t[3] = {corio_spawn(yields_then_returns, (void *)3),
                        corio_spawn(yields_then_returns, (void *)1), corio_spawn(return_arg, NULL)};
    CHECK_EQ(corio_wait(t, 3, CORIO_WAIT_ALL_COMPLETED, CORIO_NO_TIMEOUT), 3);
    for (int i = 0; i < 3; i++)
        CHECK(corio_task_done(t[i]));
    void *res;
    CHECK_OK(corio_task_join(t[0], &res)); /* nothing was joined: the handles are still ours */
    CHECK(res == (void *)3);
    join_all(t + 1, 2);

    /* FIRST_COMPLETED: returns as soon as one ends. */
    t[0] = corio_spawn(long_sleeper, NULL);
    t[1] = corio_spawn(yields_then_returns, (void *)2);
    t[2] = corio_spawn(long_sleeper, NULL);
    CHECK_EQ(corio_wait(t, 3, CORIO_WAIT_FIRST_COMPLETED, CORIO_NO_TIMEOUT), 1);
    CHECK(!corio_task_done(t[0]) && corio_task_done(t[1]) && !corio_task_done(t[2]));
    /* Already satisfied: returns at once. */
    CHECK_EQ(corio_wait(t, 3, CORIO_WAIT_FIRST_COMPLETED, CORIO_NO_TIMEOUT), 1);
    CHECK_OK(corio_task_cancel(t[0]));
    CHECK_OK(corio_task_cancel(t[2]));
    join_all(t, 3);

    /* FIRST_ERROR: a failure ends the wait... */
    t[0] = corio_spawn(long_sleeper, NULL);
    t[1] = corio_spawn(fail_after, FA(EIO, 2));
    t[2] = corio_spawn(yields_then_returns, (void *)1);
    CHECK_EQ(corio_wait(t, 3, CORIO_WAIT_FIRST_ERROR, CORIO_NO_TIMEOUT), 2);
    CHECK(corio_task_done(t[1]) && corio_task_done(t[2]));
    CHECK_ERR(corio_task_error(t[1]), -EIO);
    CHECK_OK(corio_task_cancel(t[0]));
    join_all(t, 3);
    /* ...a cancelled task's -ECANCELED does not, nor does success: then all. */
    t[0] = corio_spawn(cancel_reporter, NULL);
    t[1] = corio_spawn(yields_then_returns, (void *)4);
    t[2] = corio_spawn(return_arg, NULL);
    CHECK_OK(corio_yield());
    CHECK_OK(corio_task_cancel(t[0]));
    CHECK_EQ(corio_wait(t, 3, CORIO_WAIT_FIRST_ERROR, CORIO_NO_TIMEOUT), 3);
    CHECK_ERR(corio_task_join(t[0], NULL), -ECANCELED);
    join_all(t + 1, 2);

    /* Nothing to wait for. */
    CHECK_EQ(corio_wait(NULL, 0, CORIO_WAIT_ALL_COMPLETED, CORIO_NO_TIMEOUT), 0);
    CHECK_EQ(corio_wait(NULL, 0, CORIO_WAIT_FIRST_COMPLETED, 0), 0);
    return arg;
}

TEST(wait_all_first_completed_first_error) { test_run(wait_modes_main, NULL); }

static void *wait_timeout_main(void *arg)
{
    cleanups = 0;
    corio_task *t[2] = {corio_spawn(long_sleeper, NULL), corio_spawn(return_arg, NULL)};
    uint64_t t0 = test_ms();
    CHECK_EQ(corio_wait(t, 2, CORIO_WAIT_ALL_COMPLETED, 20), 1); /* a time-out is not an error */
    uint64_t el = test_ms() - t0;
    CHECK(el >= 15 && el < 5000);
    CHECK(!corio_task_done(t[0])); /* nothing was cancelled */
    CHECK_EQ(cleanups, 0);
    CHECK_EQ(corio_wait(t, 2, CORIO_WAIT_ALL_COMPLETED, 0), 1);
    /* The task's own deadline is an interruption. */
    corio_deadline d = corio_deadline_push(10);
    CHECK_ERR(corio_wait(t, 2, CORIO_WAIT_ALL_COMPLETED, 60000), -CORIO_EDEADLINE);
    corio_deadline_pop(d);
    CHECK_OK(corio_task_cancel(t[0]));
    join_all(t, 2);
    CHECK_EQ(cleanups, 1);
    return arg;
}

TEST(wait_time_out_returns_the_count_and_cancels_nothing) { test_run(wait_timeout_main, NULL); }

static corio_task *watched;
static char order[16];
static int order_len;

static void *watcher(void *arg)
{
    int r = corio_wait(&watched, 1, CORIO_WAIT_ALL_COMPLETED, CORIO_NO_TIMEOUT);
    order[order_len++] = (char)(intptr_t)arg;
    return (void *)(intptr_t)r;
}

static void *many_watchers_main(void *arg)
{
    order_len = 0;
    corio_event ev;
    corio_event_init(&ev);
    watched = corio_spawn(long_sleeper, NULL);
    corio_task *w[4] = {corio_spawn(watcher, (void *)'a'), corio_spawn(watcher, (void *)'b'),
                        corio_spawn(watcher, (void *)'c'), corio_spawn(watcher, (void *)'d')};
    CHECK_OK(corio_yield());
    /* One of them gives up; the others keep watching. */
    CHECK_OK(corio_task_cancel(w[1]));
    void *r;
    CHECK_OK(corio_task_join(w[1], &r));
    CHECK_ERR((intptr_t)r, -ECANCELED);
    CHECK_OK(corio_task_cancel(watched));
    corio_task *rest[3] = {w[0], w[2], w[3]};
    void *res[3];
    CHECK_OK(corio_gather(rest, 3, res));
    for (int i = 0; i < 3; i++)
        CHECK_EQ((intptr_t)res[i], 1);
    order[order_len] = 0;
    CHECK_STR(order, "bacd"); /* woken in the order they started waiting */
    CHECK_OK(corio_task_join(watched, NULL));
    return arg;
}

TEST(several_tasks_wait_on_the_same_task) { test_run(many_watchers_main, NULL); }

#define NWAIT 300
static void *wait_many_main(void *arg)
{
    static corio_task *t[NWAIT];
    for (intptr_t i = 0; i < NWAIT; i++)
        t[i] = corio_spawn(yields_then_returns, (void *)(i % 7));
    CHECK_EQ(corio_wait(t, NWAIT, CORIO_WAIT_ALL_COMPLETED, CORIO_NO_TIMEOUT), NWAIT);
    for (int i = 0; i < NWAIT; i++)
        t[i] = corio_spawn(long_sleeper, NULL);
    CHECK_OK(corio_task_cancel(corio_current()));
    CHECK_ERR(corio_wait(t, NWAIT, CORIO_WAIT_ALL_COMPLETED, CORIO_NO_TIMEOUT), -ECANCELED);
    corio_shield s = corio_shield_push(CORIO_NO_TIMEOUT);
    CHECK_EQ(corio_wait(t, NWAIT, CORIO_WAIT_FIRST_COMPLETED, 10), 0);
    corio_shield_pop(s);
    /* corio_gather cancels and awaits them (the caller is cancelled). */
    CHECK_ERR(corio_gather(t, NWAIT, NULL), -ECANCELED);
    return arg;
}

TEST(wait_on_hundreds_of_tasks) { test_run(wait_many_main, NULL); }

static void *wait_interrupted_main(void *arg)
{
    corio_task *t = corio_spawn(long_sleeper, NULL);
    corio_task *w = corio_spawn(watcher, NULL);
    watched = t;
    order_len = 0;
    CHECK_OK(corio_yield());
    CHECK_OK(corio_task_cancel(w));
    void *r;
    CHECK_OK(corio_task_join(w, &r));
    CHECK_ERR((intptr_t)r, -ECANCELED);
    CHECK(!corio_task_done(t)); /* the watched task is left alone */
    CHECK_OK(corio_task_cancel(t));
    CHECK_OK(corio_task_join(t, NULL)); /* and its end wakes no stale watcher */
    return arg;
}

TEST(cancelled_wait_leaves_the_tasks_alone) { test_run(wait_interrupted_main, NULL); }

/* ---- corio_as_completed ---------------------------------------------- */

static void *as_completed_main(void *arg)
{
    /* d and e end before the iterator starts (e first); then b, c, a. */
    corio_task *d = corio_spawn(yields_then_returns, (void *)2);
    corio_task *e = corio_spawn(yields_then_returns, (void *)1);
    for (int i = 0; i < 3; i++)
        CHECK_OK(corio_yield());
    CHECK(corio_task_done(d) && corio_task_done(e));
    corio_task *a = corio_spawn(yields_then_returns, (void *)6);
    corio_task *b = corio_spawn(yields_then_returns, (void *)2);
    corio_task *c = corio_spawn(yields_then_returns, (void *)4);
    corio_task *t[5] = {a, b, c, d, e};
    corio_task *want[5] = {e, d, b, c, a};
    corio_as_completed it;
    CHECK_OK(corio_as_completed_init(&it, t, 5, CORIO_NO_TIMEOUT));
    for (int i = 0; i < 5; i++) {
        corio_task *got = NULL;
        CHECK_EQ(corio_as_completed_next(&it, &got), 1);
        CHECK(got == want[i]);
        CHECK(corio_task_done(got));
        CHECK_OK(corio_task_join(got, NULL)); /* ours to join */
    }
    corio_task *none = NULL;
    CHECK_EQ(corio_as_completed_next(&it, &none), 0);
    CHECK_EQ(corio_as_completed_next(&it, &none), 0);
    CHECK(none == NULL);
    corio_as_completed_end(&it);

    /* Empty. */
    CHECK_OK(corio_as_completed_init(&it, NULL, 0, 0));
    CHECK_EQ(corio_as_completed_next(&it, &none), 0);
    corio_as_completed_end(&it);
    return arg;
}

TEST(as_completed_yields_tasks_in_the_order_they_ended) { test_run(as_completed_main, NULL); }

static void *as_completed_timeout_main(void *arg)
{
    cleanups = 0;
    corio_task *t[3] = {corio_spawn(long_sleeper, NULL), corio_spawn(return_arg, NULL),
                        corio_spawn(long_sleeper, NULL)};
    corio_as_completed it;
    uint64_t t0 = test_ms();
    CHECK_OK(corio_as_completed_init(&it, t, 3, 20));
    corio_task *got;
    CHECK_EQ(corio_as_completed_next(&it, &got), 1);
    CHECK(got == t[1]);
    CHECK_ERR(corio_as_completed_next(&it, &got), -CORIO_EDEADLINE);
    CHECK(test_ms() - t0 < 5000);
    CHECK_ERR(corio_as_completed_next(&it, &got), -CORIO_EDEADLINE);
    /* The rest are left alone, and ending them touches no iterator. */
    corio_as_completed_end(&it);
    CHECK_EQ(cleanups, 0);
    CHECK_OK(corio_task_cancel(t[0]));
    CHECK_OK(corio_task_cancel(t[2]));
    join_all(t, 3);
    CHECK_EQ(cleanups, 2);

    /* The task's own deadline ends a wait in next too. */
    t[0] = corio_spawn(long_sleeper, NULL);
    CHECK_OK(corio_as_completed_init(&it, t, 1, CORIO_NO_TIMEOUT));
    corio_deadline d = corio_deadline_push(10);
    CHECK_ERR(corio_as_completed_next(&it, &got), -CORIO_EDEADLINE);
    corio_deadline_pop(d);
    corio_as_completed_end(&it);
    CHECK_OK(corio_task_cancel(t[0]));
    CHECK_OK(corio_task_join(t[0], NULL));
    CHECK_EQ(cleanups, 3);

    /* Cancellation of the iterating task. */
    t[0] = corio_spawn(long_sleeper, NULL);
    CHECK_OK(corio_as_completed_init(&it, t, 1, CORIO_NO_TIMEOUT));
    CHECK_OK(corio_task_cancel(corio_current()));
    CHECK_ERR(corio_as_completed_next(&it, &got), -ECANCELED);
    corio_as_completed_end(&it);
    CHECK_ERR(corio_task_join(t[0], NULL), -ECANCELED); /* cancels and awaits it */
    CHECK_EQ(cleanups, 4);
    return arg;
}

TEST(as_completed_time_out_and_cancellation) { test_run(as_completed_timeout_main, NULL); }

/* ---- corio_task_wait_for ---------------------------------------------- */

static void *wait_for_main(void *arg)
{
    cleanups = 0;
    /* In time: the task's own outcome. */
    void *res = NULL;
    CHECK_OK(corio_task_wait_for(corio_spawn(yields_then_returns, (void *)3), 60000, &res));
    CHECK(res == (void *)3);
    CHECK_ERR(corio_task_wait_for(corio_spawn(fail_after, FA(EIO, 2)), 60000, NULL), -EIO);
    CHECK_OK(corio_task_wait_for(corio_spawn(return_arg, NULL), CORIO_NO_TIMEOUT, NULL));
    /* Ended already: no time needed, even with 0. */
    corio_task *t = corio_spawn(return_arg, (void *)5);
    CHECK_OK(corio_yield());
    CHECK_OK(corio_task_wait_for(t, 0, &res));
    CHECK(res == (void *)5);

    /* Too late: cancelled, awaited, freed. */
    uint64_t t0 = test_ms();
    res = NULL;
    CHECK_ERR(corio_task_wait_for(corio_spawn(long_sleeper, (void *)7), 20, &res), -CORIO_EDEADLINE);
    CHECK(test_ms() - t0 < 5000);
    CHECK_EQ(cleanups, 1);
    CHECK(res == (void *)7); /* its return value all the same */
    CHECK(!corio_deadline_expired());
    CHECK_OK(corio_yield()); /* the time-out was the call's own */
    CHECK_ERR(corio_task_wait_for(corio_spawn(long_sleeper, NULL), 0, NULL), -CORIO_EDEADLINE);
    CHECK_EQ(cleanups, 2);

    /* An enclosing deadline that comes first is the caller's own. */
    corio_deadline d = corio_deadline_push(10);
    CHECK_ERR(corio_task_wait_for(corio_spawn(long_sleeper, NULL), 60000, NULL), -CORIO_EDEADLINE);
    CHECK(corio_deadline_expired());
    corio_deadline_pop(d);
    CHECK_EQ(cleanups, 3);

    /* A cancelled caller: -ECANCELED, the task cancelled and awaited. */
    CHECK_OK(corio_task_cancel(corio_current()));
    CHECK_ERR(corio_task_wait_for(corio_spawn(long_sleeper, NULL), 60000, NULL), -ECANCELED);
    CHECK_EQ(cleanups, 4);
    return arg;
}

TEST(wait_for_joins_in_time_or_cancels_and_awaits) { test_run(wait_for_main, NULL); }
