/*
 * Shields (corio_shield_push/pop): cancellation held back inside, the
 * shield's own deadline in place of the enclosing ones, and both back in
 * force after the pop.
 */
#include "runner.h"

#include <stdint.h>

static void *self_cancel_main(void *arg)
{
    CHECK_OK(corio_task_cancel(corio_current()));
    CHECK_ERR(corio_yield(), -ECANCELED);
    corio_shield s = corio_shield_push(CORIO_NO_TIMEOUT);
    CHECK_OK(corio_yield()); /* held back */
    CHECK_OK(corio_sleep_ms(1));
    CHECK(corio_cancelled()); /* still cancelled, just not delivered */
    corio_shield_pop(s);
    CHECK_ERR(corio_yield(), -ECANCELED); /* delivered again */
    CHECK_ERR(corio_sleep_ms(1), -ECANCELED);
    return arg;
}

TEST(cancellation_from_before_the_shield_is_held_back_until_pop) { test_run(self_cancel_main, NULL); }

/* A cancel that arrives while the task is parked inside the shield does
 * not interrupt it; after the pop (the task is running then, nothing to
 * interrupt) it shows at the next suspension point. */
static int log_[3];
static void *shielded_sleeper(void *arg)
{
    corio_shield s = corio_shield_push(CORIO_NO_TIMEOUT);
    log_[0] = corio_sleep_ms(30);
    corio_shield_pop(s);
    log_[1] = corio_cancelled();
    log_[2] = corio_yield();
    return arg;
}

static void *cancel_while_parked_main(void *arg)
{
    corio_task *t = corio_spawn(shielded_sleeper, NULL);
    CHECK_OK(corio_yield()); /* t parks in its shielded sleep */
    CHECK_OK(corio_task_cancel(t));
    CHECK_OK(corio_task_join(t, NULL));
    CHECK_OK(log_[0]); /* the sleep ran its course, uninterrupted */
    CHECK_EQ(log_[1], 1);
    CHECK_ERR(log_[2], -ECANCELED);
    return arg;
}

TEST(cancel_arriving_while_parked_in_a_shield_waits_for_the_pop) { test_run(cancel_while_parked_main, NULL); }

static void *shield_deadline_main(void *arg)
{
    /* The shield's own deadline interrupts inside it. */
    uint64_t t0 = test_ms();
    corio_shield s = corio_shield_push(20);
    CHECK_ERR(corio_sleep_ms(60000), -CORIO_EDEADLINE);
    CHECK(corio_deadline_expired());
    corio_shield_pop(s);
    CHECK(test_ms() - t0 < 5000);
    CHECK(!corio_deadline_expired());
    CHECK_OK(corio_yield());

    /* A deadline that has passed does not apply inside a shield... */
    corio_deadline d = corio_deadline_push(0);
    CHECK_ERR(corio_yield(), -CORIO_EDEADLINE);
    s = corio_shield_push(CORIO_NO_TIMEOUT);
    CHECK(!corio_deadline_expired());
    CHECK_OK(corio_sleep_ms(2));
    corio_shield_pop(s);
    /* ...and does again after it. */
    CHECK_ERR(corio_yield(), -CORIO_EDEADLINE);
    corio_deadline_pop(d);

    /* A deadline pushed inside can only shorten the shield's. */
    t0 = test_ms();
    s = corio_shield_push(30);
    d = corio_deadline_push(60000);
    CHECK_ERR(corio_sleep_ms(60000), -CORIO_EDEADLINE);
    corio_deadline_pop(d);
    corio_shield_pop(s);
    CHECK(test_ms() - t0 < 5000);
    s = corio_shield_push(60000);
    d = corio_deadline_push(10);
    CHECK_ERR(corio_sleep_ms(60000), -CORIO_EDEADLINE);
    corio_deadline_pop(d);
    CHECK_OK(corio_sleep_ms(1)); /* the shield's long deadline is back */
    corio_shield_pop(s);
    return arg;
}

TEST(shield_deadline_replaces_the_enclosing_ones_and_nested_ones_only_shorten_it)
{
    test_run(shield_deadline_main, NULL);
}

static void *nested_main(void *arg)
{
    CHECK_OK(corio_task_cancel(corio_current()));
    corio_shield outer = corio_shield_push(CORIO_NO_TIMEOUT);
    corio_shield inner = corio_shield_push(CORIO_NO_TIMEOUT);
    CHECK_OK(corio_yield());
    corio_shield_pop(inner);
    CHECK_OK(corio_yield()); /* still inside the outer one */
    corio_shield_pop(outer);
    CHECK_ERR(corio_yield(), -ECANCELED);
    return arg;
}

TEST(shields_nest) { test_run(nested_main, NULL); }

/* The cleanup pattern: a cancelled task waits for its child inside a
 * shield without cancelling it (corio_task_join outside a shield would
 * cancel it). */
static void *child_slow(void *arg)
{
    int r = corio_sleep_ms(20);
    return (void *)(intptr_t)(r == 0 ? 5 : -1);
}

static void *parent(void *arg)
{
    corio_task *c = corio_spawn(child_slow, NULL);
    int r = corio_sleep_ms(60000);
    CHECK_ERR(r, -ECANCELED);
    corio_shield s = corio_shield_push(5000);
    void *res = NULL;
    r = corio_task_join(c, &res);
    corio_shield_pop(s);
    CHECK_OK(r);
    CHECK(res == (void *)5); /* the child was not cancelled */
    return (void *)1;
}

static void *cleanup_main(void *arg)
{
    corio_task *p = corio_spawn(parent, NULL);
    CHECK_OK(corio_yield());
    CHECK_OK(corio_task_cancel(p));
    void *r;
    CHECK_OK(corio_task_join(p, &r));
    CHECK(r == (void *)1);
    return arg;
}

TEST(a_cancelled_task_joins_its_child_inside_a_shield) { test_run(cleanup_main, NULL); }

/* The shield's own deadline bounds that cleanup: the child is then
 * cancelled and awaited by the join. */
static void *stuck_child(void *arg)
{
    corio_shield s = corio_shield_push(CORIO_NO_TIMEOUT);
    corio_sleep_ms(10); /* its own cleanup takes a little */
    corio_shield_pop(s);
    return (void *)(intptr_t)corio_sleep_ms(60000);
}

static void *bounded_cleanup_main(void *arg)
{
    corio_task *c = corio_spawn(stuck_child, NULL);
    CHECK_OK(corio_task_cancel(corio_current()));
    uint64_t t0 = test_ms();
    corio_shield s = corio_shield_push(20);
    void *res = NULL;
    CHECK_ERR(corio_task_join(c, &res), -CORIO_EDEADLINE);
    corio_shield_pop(s);
    CHECK_ERR((intptr_t)res, -ECANCELED);
    CHECK(test_ms() - t0 < 5000);
    return arg;
}

TEST(shield_deadline_bounds_cleanup_and_the_join_then_cancels_the_child)
{
    test_run(bounded_cleanup_main, NULL);
}

/* A shielded task is not interrupted by the loop's end-of-run cancel
 * either: its shielded wait runs to completion, then the cancel shows. */
static int late;
static void *shielded_at_exit(void *arg)
{
    corio_shield s = corio_shield_push(CORIO_NO_TIMEOUT);
    int r = corio_sleep_ms(20);
    corio_shield_pop(s);
    late = (r == 0 && corio_yield() == -ECANCELED) ? 1 : 2;
    return arg;
}

static void *exit_main(void *arg)
{
    corio_task_detach(corio_spawn(shielded_at_exit, NULL));
    CHECK_OK(corio_yield());
    return arg;
}

TEST(shielded_wait_outlives_the_end_of_run_cancel)
{
    late = 0;
    test_run(exit_main, NULL);
    CHECK_EQ(late, 1);
}

TEST(shield_outside_a_task_does_nothing)
{
    corio_shield s = corio_shield_push(10);
    corio_shield_pop(s);
    CHECK(!corio_cancelled());
}
