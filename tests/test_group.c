/*
 * Task groups (corio_group_*): waiting for every member, the first failure
 * cancelling the others and the owner (and that being withdrawn), errors
 * during cleanup, group cancel, spawning into a stopped or closed group,
 * nested groups, the owner cancelled from outside, 100,000 members, and an
 * owner that never joins.
 */
#include "runner.h"

#include <stdint.h>

static int cleanups, finished;
static char order[64];
static int order_len;
static void mark(char c)
{
    order[order_len++] = c;
    order[order_len] = 0;
}

static void reset(void)
{
    cleanups = finished = 0;
    order_len = 0;
    order[0] = 0;
}

static void *yield_then_mark(void *arg)
{
    intptr_t v = (intptr_t)arg; /* char | yields << 8 */
    for (int i = 0; i < (v >> 8); i++)
        CHECK_OK(corio_yield());
    mark((char)(v & 0xff));
    finished++;
    return NULL;
}
#define YM(c, yields) ((void *)(intptr_t)((c) | ((yields) << 8)))

static void *long_sleeper(void *arg)
{
    int r = corio_sleep_ms(60000);
    if (r == -ECANCELED)
        cleanups++;
    return arg;
}

/* Fails with -(arg & 0xffff) after (arg >> 16) yields. */
static void *fail_after(void *arg)
{
    intptr_t v = (intptr_t)arg;
    for (int i = 0; i < (v >> 16); i++)
        if (corio_yield() < 0)
            return NULL;
    return corio_fail((int)-(v & 0xffff));
}
#define FA(err, yields) ((void *)(intptr_t)((err) | ((yields) << 16)))

/* Reports the cancellation as its failure (-ECANCELED): not a failure for the group. */
static void *cancel_reporter(void *arg)
{
    int r = corio_sleep_ms(60000);
    if (r == -ECANCELED)
        cleanups++;
    return corio_fail(r);
}

/* Fails with -EPIPE in its cleanup after being cancelled: a failure. */
static void *fails_in_cleanup(void *arg)
{
    int r = corio_sleep_ms(60000);
    CHECK_ERR(r, -ECANCELED);
    cleanups++;
    return corio_fail(-EPIPE);
}

/* ---- the plain case --------------------------------------------------- */

static void *basic_main(void *arg)
{
    reset();
    corio_group g;
    CHECK_OK(corio_group_init(&g));
    CHECK(corio_group_spawn(&g, yield_then_mark, YM('c', 3)));
    CHECK(corio_group_spawn(&g, yield_then_mark, YM('a', 1)));
    corio_task *b = corio_group_spawn_named(&g, "b", 0, yield_then_mark, YM('b', 2));
    CHECK(b);
    CHECK_STR(corio_task_name(b), "b");
    CHECK_EQ(corio_group_size(&g), 3);
    /* The handle is the group's. */
    CHECK_ERR(corio_task_join(b, NULL), -EINVAL);
    CHECK_ERR(corio_task_detach(b), -EINVAL);
    CHECK_ERR(corio_gather(&b, 1, NULL), -EINVAL);
    CHECK_ERR(corio_gather_outcomes(&b, 1, NULL), -EINVAL);
    CHECK_ERR(corio_task_wait_for(b, 10, NULL), -EINVAL);
    CHECK_ERR(corio_wait(&b, 1, CORIO_WAIT_ALL_COMPLETED, 10), -EINVAL);
    corio_as_completed it;
    CHECK_ERR(corio_as_completed_init(&it, &b, 1, 10), -EINVAL);
    CHECK_OK(corio_group_join(&g));
    CHECK_STR(order, "abc");
    CHECK_EQ(finished, 3);
    CHECK_EQ(corio_group_size(&g), 0);
    CHECK_EQ(corio_group_failed(&g), 0);
    /* Closed: no more members, no second join. */
    errno = 0;
    CHECK(corio_group_spawn(&g, yield_then_mark, YM('x', 0)) == NULL);
    CHECK_EQ(errno, ESHUTDOWN);
    CHECK_ERR(corio_group_join(&g), -EINVAL);
    CHECK_OK(corio_group_cancel(&g));
    /* An empty group joins at once. */
    CHECK_OK(corio_group_init(&g));
    CHECK_OK(corio_group_join(&g));
    return arg;
}

TEST(join_waits_for_every_member_and_closes_the_group) { test_run(basic_main, NULL); }

/* ---- the first failure ------------------------------------------------ */

static void *first_error_main(void *arg)
{
    reset();
    corio_group g;
    CHECK_OK(corio_group_init(&g));
    CHECK(corio_group_spawn(&g, long_sleeper, NULL));
    CHECK(corio_group_spawn(&g, cancel_reporter, NULL));
    CHECK(corio_group_spawn(&g, fail_after, FA(EIO, 2)));
    CHECK(corio_group_spawn(&g, fail_after, FA(ENOSPC, 5))); /* cancelled at its yield: returns quietly */
    /* The owner's own wait ends: the group cancelled it. */
    CHECK_ERR(corio_sleep_ms(60000), -ECANCELED);
    CHECK(corio_cancelled());
    errno = 0;
    CHECK(corio_group_spawn(&g, long_sleeper, NULL) == NULL);
    CHECK_EQ(errno, ECANCELED);
    CHECK_ERR(corio_group_join(&g), -EIO);
    CHECK_EQ(corio_group_failed(&g), 1); /* -ECANCELED from the cancelled member does not count */
    CHECK_EQ(cleanups, 2);
    /* The group's cancellation of its owner is withdrawn. */
    CHECK(!corio_cancelled());
    CHECK_OK(corio_sleep_ms(1));
    return arg;
}

TEST(first_failure_cancels_the_members_and_the_owner_then_withdraws_that)
{
    test_run(first_error_main, NULL);
}

static void *cleanup_error_main(void *arg)
{
    reset();
    corio_group g;
    CHECK_OK(corio_group_init(&g));
    CHECK(corio_group_spawn(&g, fails_in_cleanup, NULL));
    CHECK(corio_group_spawn(&g, fails_in_cleanup, NULL));
    CHECK(corio_group_spawn(&g, fail_after, FA(EIO, 1)));
    CHECK_ERR(corio_group_join(&g), -EIO); /* the owner was joining: not cancelled */
    CHECK_EQ(corio_group_failed(&g), 3);   /* both errors during cleanup count */
    CHECK_EQ(cleanups, 2);
    CHECK(!corio_cancelled());
    CHECK_OK(corio_yield());
    return arg;
}

TEST(errors_during_cleanup_count_as_failures_first_error_is_reported) { test_run(cleanup_error_main, NULL); }

/* A cancel the program asked for stays after the group withdraws its own. */
static void *user_and_group_cancel_main(void *arg)
{
    corio_group g;
    CHECK_OK(corio_group_init(&g));
    CHECK(corio_group_spawn(&g, fail_after, FA(EIO, 1)));
    CHECK_ERR(corio_sleep_ms(60000), -ECANCELED); /* the group's cancel */
    CHECK_OK(corio_task_cancel(corio_current())); /* and the program's */
    CHECK_ERR(corio_group_join(&g), -EIO);
    CHECK(corio_cancelled());
    CHECK_ERR(corio_yield(), -ECANCELED);
    return arg;
}

TEST(withdrawing_the_groups_cancel_keeps_a_program_cancel) { test_run(user_and_group_cancel_main, NULL); }

/* Two groups of one owner, both failing: the owner stays cancelled until
 * both have withdrawn. */
static void *two_groups_main(void *arg)
{
    corio_group g1, g2;
    CHECK_OK(corio_group_init(&g1));
    CHECK_OK(corio_group_init(&g2));
    CHECK(corio_group_spawn(&g1, fail_after, FA(EIO, 0)));
    CHECK(corio_group_spawn(&g2, fail_after, FA(EPIPE, 3)));
    CHECK_ERR(corio_sleep_ms(60000), -ECANCELED); /* g1's */
    corio_shield s = corio_shield_push(CORIO_NO_TIMEOUT);
    while (corio_group_size(&g2))
        CHECK_OK(corio_yield()); /* g2's member fails meanwhile: g2 cancels us too */
    corio_shield_pop(s);
    CHECK_ERR(corio_group_join(&g2), -EPIPE);
    CHECK(corio_cancelled()); /* g1's still stands */
    CHECK_ERR(corio_group_join(&g1), -EIO);
    CHECK(!corio_cancelled());
    CHECK_OK(corio_yield());
    return arg;
}

TEST(each_group_withdraws_only_its_own_cancel) { test_run(two_groups_main, NULL); }

/* ---- group cancel, spawning into a stopped group ---------------------- */

static void *group_cancel_main(void *arg)
{
    reset();
    corio_group g;
    CHECK_OK(corio_group_init(&g));
    for (int i = 0; i < 3; i++)
        CHECK(corio_group_spawn(&g, cancel_reporter, NULL));
    CHECK(corio_group_spawn(&g, long_sleeper, NULL));
    CHECK_OK(corio_yield());
    CHECK_OK(corio_group_cancel(&g));
    CHECK(!corio_cancelled()); /* the owner is not cancelled */
    errno = 0;
    CHECK(corio_group_spawn(&g, long_sleeper, NULL) == NULL);
    CHECK_EQ(errno, ECANCELED);
    CHECK_OK(corio_group_join(&g)); /* the members' -ECANCELED are not failures */
    CHECK_EQ(corio_group_failed(&g), 0);
    CHECK_EQ(cleanups, 4);
    CHECK_OK(corio_yield());
    return arg;
}

TEST(group_cancel_stops_every_member_but_not_the_owner) { test_run(group_cancel_main, NULL); }

/* ---- the owner cancelled or timed out --------------------------------- */

static void *owner_task(void *arg)
{
    corio_group g;
    CHECK_OK(corio_group_init(&g));
    for (int i = 0; i < 3; i++)
        CHECK(corio_group_spawn(&g, long_sleeper, NULL));
    if (arg)
        CHECK_ERR(corio_sleep_ms(60000), -ECANCELED); /* cancelled before the join */
    int r = corio_group_join(&g);
    CHECK_EQ(cleanups, 3); /* every member's cleanup ran first */
    CHECK_EQ(corio_group_failed(&g), 0);
    return (void *)(intptr_t)r;
}

static void *owner_cancelled_main(void *arg)
{
    for (intptr_t before = 0; before < 2; before++) {
        reset();
        corio_task *o = corio_spawn(owner_task, (void *)before);
        CHECK_OK(corio_yield());
        CHECK_OK(corio_yield());
        CHECK_OK(corio_task_cancel(o));
        void *r;
        CHECK_OK(corio_task_join(o, &r));
        CHECK_ERR((intptr_t)r, -ECANCELED);
    }
    return arg;
}

TEST(owner_cancelled_from_outside_cancels_and_awaits_every_member) { test_run(owner_cancelled_main, NULL); }

static void *owner_deadline_main(void *arg)
{
    reset();
    corio_group g;
    CHECK_OK(corio_group_init(&g));
    CHECK(corio_group_spawn(&g, long_sleeper, NULL));
    CHECK(corio_group_spawn(&g, fails_in_cleanup, NULL));
    uint64_t t0 = test_ms();
    corio_deadline d = corio_deadline_push(20);
    /* The member's error during cleanup wins over the owner's deadline. */
    CHECK_ERR(corio_group_join(&g), -EPIPE);
    corio_deadline_pop(d);
    CHECK(test_ms() - t0 < 5000);
    CHECK_EQ(cleanups, 2);
    CHECK_EQ(corio_group_failed(&g), 1);

    reset();
    CHECK_OK(corio_group_init(&g));
    CHECK(corio_group_spawn(&g, long_sleeper, NULL));
    d = corio_deadline_push(20);
    CHECK_ERR(corio_group_join(&g), -CORIO_EDEADLINE);
    corio_deadline_pop(d);
    CHECK_EQ(cleanups, 1);
    return arg;
}

TEST(owner_deadline_in_join_cancels_the_members) { test_run(owner_deadline_main, NULL); }

/* ---- nesting ---------------------------------------------------------- */

static void *inner_owner(void *arg)
{
    corio_group inner;
    CHECK_OK(corio_group_init(&inner));
    CHECK(corio_group_spawn(&inner, long_sleeper, NULL));
    CHECK(corio_group_spawn(&inner, fail_after, FA(EBADMSG, 1)));
    int r = corio_group_join(&inner);
    CHECK_ERR(r, -EBADMSG);
    CHECK_EQ(corio_group_failed(&inner), 1);
    return corio_fail(r); /* the member fails with it in the outer group */
}

static void *nested_main(void *arg)
{
    reset();
    corio_group g;
    CHECK_OK(corio_group_init(&g));
    CHECK(corio_group_spawn(&g, long_sleeper, NULL));
    CHECK(corio_group_spawn(&g, inner_owner, NULL));
    CHECK_ERR(corio_group_join(&g), -EBADMSG);
    CHECK_EQ(corio_group_failed(&g), 1);
    CHECK_EQ(cleanups, 2); /* one in each group */
    CHECK(!corio_cancelled());
    return arg;
}

TEST(nested_groups_propagate_the_inner_failure) { test_run(nested_main, NULL); }

static corio_group *parent_group;
static void *spawner(void *arg)
{
    intptr_t depth = (intptr_t)arg;
    finished++;
    if (depth > 0) {
        CHECK(corio_group_spawn(parent_group, spawner, (void *)(depth - 1)));
        CHECK(corio_group_spawn(parent_group, spawner, (void *)(depth - 1)));
    }
    return NULL;
}

static void *spawn_into_parent_main(void *arg)
{
    reset();
    corio_group g;
    parent_group = &g;
    CHECK_OK(corio_group_init(&g));
    CHECK(corio_group_spawn(&g, spawner, (void *)(intptr_t)6));
    CHECK_OK(corio_group_join(&g)); /* waits for the members spawned while it waits */
    CHECK_EQ(finished, 127);
    return arg;
}

TEST(members_spawn_into_their_own_group) { test_run(spawn_into_parent_main, NULL); }

/* ---- scale ------------------------------------------------------------ */

#define MANY 100000
static size_t max_size;

static void *tiny(void *arg)
{
    finished++;
    return arg;
}

static void *many_main(void *arg)
{
    reset();
    max_size = 0;
    corio_group g;
    CHECK_OK(corio_group_init(&g));
    for (int i = 0; i < MANY; i++) {
        CHECK(corio_group_spawn_named(&g, "m", 16 * 1024, tiny, NULL));
        if (i % 1000 == 999) {
            if (corio_group_size(&g) > max_size)
                max_size = corio_group_size(&g);
            CHECK_OK(corio_yield()); /* the members run and are freed as they end */
        }
    }
    CHECK_OK(corio_group_join(&g));
    CHECK_EQ(finished, MANY);
    CHECK(max_size <= 2000);
    return arg;
}

TEST(hundred_thousand_members_in_one_group) { test_run(many_main, NULL); }

static void *many_fail_main(void *arg)
{
    reset();
    corio_group g;
    CHECK_OK(corio_group_init(&g));
    for (int i = 0; i < 10000; i++)
        CHECK(corio_group_spawn_named(&g, NULL, 16 * 1024, cancel_reporter, NULL));
    CHECK(corio_group_spawn(&g, fail_after, FA(EIO, 1)));
    CHECK_ERR(corio_group_join(&g), -EIO);
    CHECK_EQ(corio_group_failed(&g), 1);
    CHECK_EQ(cleanups, 10000);
    return arg;
}

TEST(one_failure_stops_ten_thousand_members) { test_run(many_fail_main, NULL); }

/* ---- owners that never join ------------------------------------------- */

static void *forgetful_owner(void *arg)
{
    corio_group g;
    CHECK_OK(corio_group_init(&g));
    CHECK(corio_group_spawn(&g, long_sleeper, NULL));
    CHECK(corio_group_spawn(&g, yield_then_mark, YM('z', 3)));
    CHECK(corio_group_spawn(&g, fail_after, FA(EIO, 5)));
    return arg; /* no join: the members become detached tasks */
}

static void *never_joined_main(void *arg)
{
    corio_task *o = corio_spawn(forgetful_owner, NULL);
    CHECK_OK(corio_task_join(o, NULL));
    for (int i = 0; i < 8; i++)
        CHECK_OK(corio_yield()); /* the members run on without touching the dead group */
    CHECK_STR(order, "z");
    /* Main's own group is left open too: the loop's end cancels its members. */
    static corio_group mg;
    CHECK_OK(corio_group_init(&mg));
    CHECK(corio_group_spawn(&mg, long_sleeper, NULL));
    return arg;
}

TEST(members_of_a_group_never_joined_are_cancelled_at_loop_end)
{
    reset();
    test_run(never_joined_main, NULL);
    CHECK_EQ(cleanups, 2);
}
