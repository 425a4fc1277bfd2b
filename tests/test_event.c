/*
 * Events (src/core/event.c): set/clear/wait, wake order, cancellation and
 * deadlines while waiting.
 */
#include "runner.h"

static char order[16];
static int order_len;

typedef struct waiter_arg {
    corio_event *ev;
    char name;
} waiter_arg;

static void *waiter(void *arg)
{
    waiter_arg *w = arg;
    int r = corio_event_wait(w->ev);
    order[order_len++] = w->name;
    return (void *)(intptr_t)r;
}

static void *event_main(void *arg)
{
    corio_event ev;
    corio_event_init(&ev);
    CHECK(!corio_event_is_set(&ev));
    order_len = 0;
    waiter_arg a = {&ev, 'a'}, b = {&ev, 'b'}, c = {&ev, 'c'};
    corio_task *t[3] = {corio_spawn(waiter, &a), corio_spawn(waiter, &b), corio_spawn(waiter, &c)};
    CHECK_OK(corio_sleep_ms(5));
    CHECK_EQ(order_len, 0); /* all waiting */
    corio_event_set(&ev);
    CHECK(corio_event_is_set(&ev));
    CHECK_EQ(order_len, 0); /* set does not suspend the setter */
    void *res[3];
    CHECK_OK(corio_gather(t, 3, res));
    CHECK_MEM(order, "abc", 3);
    for (int i = 0; i < 3; i++)
        CHECK_EQ((intptr_t)res[i], 0);
    CHECK_OK(corio_event_wait(&ev)); /* already set: returns at once */
    corio_event_clear(&ev);
    CHECK(!corio_event_is_set(&ev));
    return NULL;
}

TEST(event_wakes_all_waiters_in_order) { test_run(event_main, NULL); }

static void *event_cancel_main(void *arg)
{
    corio_event ev;
    corio_event_init(&ev);
    order_len = 0;
    waiter_arg a = {&ev, 'a'}, b = {&ev, 'b'};
    corio_task *ta = corio_spawn(waiter, &a);
    corio_task *tb = corio_spawn(waiter, &b);
    CHECK_OK(corio_sleep_ms(2));
    CHECK_OK(corio_task_cancel(ta));
    void *r;
    CHECK_OK(corio_task_join(ta, &r));
    CHECK_ERR((intptr_t)r, -ECANCELED);
    /* the cancelled waiter left the list: setting wakes only b */
    corio_event_set(&ev);
    CHECK_OK(corio_task_join(tb, &r));
    CHECK_EQ((intptr_t)r, 0);
    CHECK_MEM(order, "ab", 2);

    corio_event_clear(&ev);
    corio_deadline d = corio_deadline_push(20);
    CHECK_ERR(corio_event_wait(&ev), -CORIO_EDEADLINE);
    corio_deadline_pop(d);
    return NULL;
}

TEST(event_wait_honours_cancel_and_deadline) { test_run(event_cancel_main, NULL); }

static void *never_set_main(void *arg)
{
    corio_event ev;
    corio_event_init(&ev);
    return (void *)(intptr_t)corio_event_wait(&ev);
}

TEST(waiting_for_an_event_nobody_sets_is_reported_as_a_stall)
{
    fflush(stderr);
    int r = corio_run(NULL, never_set_main, NULL, NULL);
    CHECK_ERR(r, -CORIO_EDEADLOCK);
}
