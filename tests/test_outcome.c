/*
 * Task outcomes (corio_fail, corio_task_error/result), and how join,
 * wait_for, gather and gather_outcomes report them: exact errors, the order
 * failures happened, cancellation of the waiting task.
 */
#include "runner.h"

#include <stdint.h>

static void *return_arg(void *arg) { return arg; }

static void *fail_with(void *arg)
{
    corio_fail((int)(intptr_t)arg);
    return (void *)(intptr_t)42;
}

static void *fail_after_yields(void *arg)
{
    intptr_t v = (intptr_t)arg; /* low byte: yields; rest: error */
    for (int i = 0; i < (v & 0xff); i++)
        corio_yield();
    return corio_fail((int)-(v >> 8));
}
#define FAY(yields, err) ((void *)(intptr_t)(((intptr_t)(err) << 8) | (yields)))

/* Events the tests use to release tasks in a chosen order. */
static corio_event ev[4];
static int cleanups;

static void *long_sleeper(void *arg)
{
    int r = corio_sleep_ms(60000);
    if (r == -ECANCELED)
        cleanups++;
    return arg;
}

static void *wait_ev_then_fail(void *arg)
{
    intptr_t v = (intptr_t)arg; /* event index | error << 8 */
    int r = corio_event_wait(&ev[v & 0xff]);
    if (r < 0) {
        cleanups++;
        return NULL; /* cancelled: returns normally, no failure */
    }
    return corio_fail((int)-(v >> 8));
}

/* ---- corio_fail and the accessors ------------------------------------- */

static void *accessor_child(void *arg)
{
    corio_fail(-EIO);
    corio_fail(-EPIPE); /* the last call wins */
    CHECK_OK(corio_yield());
    if (arg)
        corio_fail(0); /* clears it */
    return (void *)(intptr_t)9;
}

static void *accessors_main(void *arg)
{
    corio_task *t = corio_spawn(accessor_child, NULL);
    CHECK_OK(corio_yield()); /* t has run to its yield: failed, not ended */
    CHECK(!corio_task_done(t));
    CHECK_EQ(corio_task_error(t), 0); /* 0 while it runs */
    CHECK(corio_task_result(t) == NULL);
    CHECK_OK(corio_yield());
    CHECK(corio_task_done(t));
    CHECK_ERR(corio_task_error(t), -EPIPE);
    CHECK(corio_task_result(t) == (void *)9);
    void *res = NULL;
    CHECK_ERR(corio_task_join(t, &res), -EPIPE); /* a finished task: no suspension */
    CHECK(res == (void *)9);

    t = corio_spawn(accessor_child, (void *)1);
    res = NULL;
    CHECK_OK(corio_task_join(t, &res));
    CHECK(res == (void *)9);
    CHECK(corio_fail(-EIO) == NULL); /* main fails... */
    corio_fail(0);                   /* ...and takes it back */
    return arg;
}

TEST(fail_sets_the_error_join_returns_it_last_call_wins) { test_run(accessors_main, NULL); }

/* ---- corio_gather: the first failure in time ------------------------- */

static void *gather_first_error_main(void *arg)
{
    for (int i = 0; i < 4; i++)
        corio_event_init(&ev[i]);
    cleanups = 0;
    /* t0 sleeps; t1 fails with -EPIPE when ev[1] is set; t2 fails with
     * -EIO when ev[2] is set; the releaser sets ev[2] first.  The gather
     * waits on t0 first, but t2's failure came first in time. */
    corio_task *t[4] = {
        corio_spawn(long_sleeper, (void *)10), corio_spawn(wait_ev_then_fail, (void *)(1 | (EPIPE << 8))),
        corio_spawn(wait_ev_then_fail, (void *)(2 | (EIO << 8))), corio_spawn(return_arg, (void *)13)};
    CHECK_OK(corio_yield()); /* all parked (t3 ended) */
    corio_event_set(&ev[2]);
    void *res[4] = {0};
    CHECK_ERR(corio_gather(t, 4, res), -EIO);
    CHECK_EQ(cleanups, 2); /* t0 and t1 were cancelled and ran their cleanup before the gather returned */
    CHECK(res[0] == (void *)10 && res[1] == NULL && res[2] == NULL && res[3] == (void *)13);
    CHECK(!corio_cancelled());
    CHECK_OK(corio_sleep_ms(1));
    return arg;
}

TEST(gather_stops_at_the_first_failure_in_time_and_awaits_the_rest)
{
    test_run(gather_first_error_main, NULL);
}

/* Failures from before the call count in the order they ended. */
static void *gather_ended_before_main(void *arg)
{
    corio_task *a = corio_spawn(fail_after_yields, FAY(3, EIO));
    corio_task *b = corio_spawn(fail_after_yields, FAY(1, EPIPE));
    corio_task *c = corio_spawn(return_arg, (void *)3);
    for (int i = 0; i < 5; i++)
        CHECK_OK(corio_yield());
    CHECK(corio_task_done(a) && corio_task_done(b) && corio_task_done(c));
    corio_task *t[3] = {a, b, c};
    void *res[3];
    CHECK_ERR(corio_gather(t, 3, res), -EPIPE); /* b ended first */
    CHECK(res[2] == (void *)3);
    return arg;
}

TEST(gather_counts_failures_before_the_call_in_the_order_they_ended)
{
    test_run(gather_ended_before_main, NULL);
}

/* A child cancelled by someone else that reports -ECANCELED fails the
 * gather (as asyncio's gather raises CancelledError); children the gather
 * cancels itself change nothing. */
static void *cancelled_reporter(void *arg)
{
    int r = corio_sleep_ms(60000);
    return corio_fail(r);
}

static void *gather_cancelled_child_main(void *arg)
{
    corio_task *a = corio_spawn(cancelled_reporter, NULL);
    corio_task *b = corio_spawn(cancelled_reporter, NULL);
    CHECK_OK(corio_yield());
    CHECK_OK(corio_task_cancel(a));
    corio_task *t[2] = {a, b};
    CHECK_ERR(corio_gather(t, 2, NULL), -ECANCELED);
    CHECK(!corio_cancelled());
    return arg;
}

TEST(gather_reports_a_child_cancelled_elsewhere) { test_run(gather_cancelled_child_main, NULL); }

/* The gatherer's own cancellation comes first: it wins over a failure
 * that follows while the children are being stopped. */
static corio_task *gatherer;
static void *cancel_gatherer_then_fail(void *arg)
{
    corio_task_cancel(gatherer);
    corio_yield(); /* the gatherer's cancellation reaches it first... */
    return corio_fail(-EIO);
}

static void *gathering(void *arg)
{
    corio_task *t[2] = {corio_spawn(long_sleeper, NULL), corio_spawn(cancel_gatherer_then_fail, NULL)};
    void *res[2];
    return (void *)(intptr_t)corio_gather(t, 2, res);
}

static void *gather_interrupt_first_main(void *arg)
{
    cleanups = 0;
    gatherer = corio_spawn(gathering, NULL);
    void *r;
    CHECK_OK(corio_task_join(gatherer, &r));
    CHECK_ERR((intptr_t)r, -ECANCELED);
    CHECK_EQ(cleanups, 1);
    return arg;
}

TEST(gather_interrupted_before_a_failure_returns_the_interruption)
{
    test_run(gather_interrupt_first_main, NULL);
}

/* ---- corio_gather_outcomes ------------------------------------------- */

static void *outcomes_main(void *arg)
{
    corio_task *t[4] = {corio_spawn(fail_after_yields, FAY(2, EIO)), corio_spawn(return_arg, (void *)7),
                        corio_spawn(fail_with, (void *)(intptr_t)-CORIO_EDEADLINE),
                        corio_spawn(fail_after_yields, FAY(0, EPIPE))};
    corio_outcome out[4];
    CHECK_OK(corio_gather_outcomes(t, 4, out)); /* a failure stops nothing */
    CHECK_ERR(out[0].error, -EIO);
    CHECK(out[0].result == NULL);
    CHECK_EQ(out[1].error, 0);
    CHECK(out[1].result == (void *)7);
    CHECK_ERR(out[2].error, -CORIO_EDEADLINE);
    CHECK(out[2].result == (void *)42);
    CHECK_ERR(out[3].error, -EPIPE);
    /* out may be NULL */
    corio_task *u[2] = {corio_spawn(fail_with, (void *)(intptr_t)-EIO), corio_spawn(return_arg, NULL)};
    CHECK_OK(corio_gather_outcomes(u, 2, NULL));
    return arg;
}

TEST(gather_outcomes_collects_every_result_and_error) { test_run(outcomes_main, NULL); }

static void *outcomes_gatherer(void *arg)
{
    corio_task *t[3] = {corio_spawn(long_sleeper, (void *)1), corio_spawn(fail_with, (void *)(intptr_t)-EIO),
                        corio_spawn(cancelled_reporter, NULL)};
    corio_outcome *out = arg;
    return (void *)(intptr_t)corio_gather_outcomes(t, 3, out);
}

static void *outcomes_cancel_main(void *arg)
{
    cleanups = 0;
    corio_outcome out[3];
    memset(out, 0xff, sizeof out);
    corio_task *g = corio_spawn(outcomes_gatherer, out);
    CHECK_OK(corio_yield());
    CHECK_OK(corio_yield()); /* the children have started */
    CHECK_OK(corio_task_cancel(g));
    void *r;
    CHECK_OK(corio_task_join(g, &r));
    CHECK_ERR((intptr_t)r, -ECANCELED);
    CHECK_EQ(cleanups, 1);
    CHECK(out[0].result == (void *)1 && out[0].error == 0);
    CHECK(out[1].result == (void *)42 && out[1].error == -EIO);
    CHECK(out[2].result == NULL && out[2].error == -ECANCELED);
    return arg;
}

TEST(gather_outcomes_interrupted_cancels_awaits_and_still_fills_every_outcome)
{
    test_run(outcomes_cancel_main, NULL);
}

/* ---- join -------------------------------------------------------------- */

/* A join of a child that is shielded: the cancel waits for the shield. */
static void *shielded_child(void *arg)
{
    corio_shield s = corio_shield_push(CORIO_NO_TIMEOUT);
    int r = corio_sleep_ms(20);
    corio_shield_pop(s);
    CHECK_OK(r);
    return corio_fail(corio_yield()); /* the cancel shows after the shield */
}

static void *joining(void *arg)
{
    void *res = (void *)1;
    int r = corio_task_join(arg, &res);
    CHECK(res == NULL);
    return (void *)(intptr_t)r;
}

static void *join_cancel_shielded_main(void *arg)
{
    corio_task *c = corio_spawn(shielded_child, NULL);
    corio_task *j = corio_spawn(joining, c);
    CHECK_OK(corio_yield());
    CHECK_OK(corio_task_cancel(j)); /* j cancels c, which finishes its shielded sleep first */
    void *r;
    uint64_t t0 = test_ms();
    CHECK_OK(corio_task_join(j, &r));
    CHECK(test_ms() - t0 >= 15);
    CHECK_ERR((intptr_t)r, -ECANCELED);
    return arg;
}

TEST(join_cancelled_waits_for_a_shielded_child_to_finish) { test_run(join_cancel_shielded_main, NULL); }

/* The child's own failure, joined while the joiner is not interrupted. */
static void *join_error_main(void *arg)
{
    corio_task *t = corio_spawn(fail_after_yields, FAY(2, ECONNRESET));
    CHECK_ERR(corio_task_join(t, NULL), -ECONNRESET);
    /* An interrupted join returns the interruption, not the child's error. */
    t = corio_spawn(cancelled_reporter, NULL);
    CHECK_OK(corio_task_cancel(corio_current()));
    void *res = (void *)1;
    CHECK_ERR(corio_task_join(t, &res), -ECANCELED);
    CHECK(res == NULL);
    return arg;
}

TEST(join_returns_the_childs_error_or_the_interruption) { test_run(join_error_main, NULL); }

/* The gatherer's deadline: the children are cancelled and awaited, the
 * deadline is returned. */
static void *gather_deadline_main(void *arg)
{
    cleanups = 0;
    corio_task *t[3] = {corio_spawn(long_sleeper, (void *)1), corio_spawn(return_arg, (void *)2),
                        corio_spawn(long_sleeper, (void *)3)};
    void *res[3] = {0};
    uint64_t t0 = test_ms();
    corio_deadline d = corio_deadline_push(20);
    CHECK_ERR(corio_gather(t, 3, res), -CORIO_EDEADLINE);
    corio_deadline_pop(d);
    CHECK(test_ms() - t0 < 5000);
    CHECK_EQ(cleanups, 2);
    CHECK(res[0] == (void *)1 && res[1] == (void *)2 && res[2] == (void *)3);
    corio_task *u[2] = {corio_spawn(long_sleeper, NULL), corio_spawn(fail_with, (void *)(intptr_t)-EIO)};
    corio_outcome out[2];
    d = corio_deadline_push(20);
    CHECK_ERR(corio_gather_outcomes(u, 2, out), -CORIO_EDEADLINE);
    corio_deadline_pop(d);
    CHECK_EQ(cleanups, 3);
    CHECK_ERR(out[1].error, -EIO);
    return arg;
}

TEST(gather_deadline_cancels_and_awaits_the_children) { test_run(gather_deadline_main, NULL); }
