/*
 * Locks, conditions and semaphores (src/core/lock.c, src/core/sem.c):
 * FIFO hand-over (the exact order of service, nobody barging in before a
 * woken waiter runs), cancellation and deadlines at every suspension point
 * (waiting for the lock, a condition waiting for its notify and taking the
 * lock back, a semaphore), a cancel arriving at the moment of the
 * hand-over, 100,000 waiters on one lock and on one semaphore, and the
 * stall report for a wait nobody can end.
 *
 * Tasks are sequenced without clocks: a task counts itself in (`started`)
 * and calls the primitive in the same step, so once the count is reached
 * every one of them is parked, in the order they were spawned.
 */
#include "runner.h"

#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <unistd.h>

static int started;

/* Yield until n tasks have counted themselves in (and so are parked). */
static void wait_started(int n)
{
    while (started < n)
        corio_yield();
}

/* True if the calling task holds lk: only the holder may notify a
 * condition over it (one nobody waits on, so nothing else changes). */
static bool holds(corio_lock *lk)
{
    corio_cond probe;
    corio_cond_init(&probe, lk);
    return corio_cond_notify(&probe) == 0;
}

/* ------------------------------------------------------------------ */
/* Lock                                                                */
/* ------------------------------------------------------------------ */

static corio_lock *g_lock;

static void *try_from_other_task(void *arg)
{
    (void)arg;
    /* held by main: neither taking nor releasing it works from here */
    CHECK_ERR(corio_lock_try_acquire(g_lock), -EBUSY);
    CHECK_ERR(corio_lock_release(g_lock), -EPERM);
    return NULL;
}

static void *lock_basic_main(void *arg)
{
    corio_lock lk;
    corio_lock_init(&lk);
    g_lock = &lk;
    CHECK(!corio_lock_locked(&lk));
    CHECK_ERR(corio_lock_release(&lk), -EPERM); /* not held by anyone */
    CHECK_OK(corio_lock_acquire(&lk));
    CHECK(corio_lock_locked(&lk));
    CHECK_ERR(corio_lock_acquire(&lk), -EDEADLK); /* not recursive */
    CHECK_ERR(corio_lock_try_acquire(&lk), -EBUSY);
    CHECK(corio_lock_locked(&lk));
    corio_task *t = corio_spawn(try_from_other_task, NULL);
    CHECK_OK(corio_task_join(t, NULL));
    CHECK(corio_lock_locked(&lk));
    CHECK_OK(corio_lock_release(&lk));
    CHECK(!corio_lock_locked(&lk));
    CHECK_ERR(corio_lock_release(&lk), -EPERM);
    CHECK_OK(corio_lock_try_acquire(&lk));
    CHECK(corio_lock_locked(&lk));
    CHECK_OK(corio_lock_release(&lk));
    CHECK(!corio_lock_locked(&lk));
    return NULL;
}

TEST(lock_basic_ownership) { test_run(lock_basic_main, NULL); }

TEST(lock_outside_a_task)
{
    corio_lock lk;
    corio_lock_init(&lk);
    CHECK_ERR(corio_lock_acquire(&lk), -EPERM);
    CHECK_ERR(corio_lock_try_acquire(&lk), -EPERM);
    CHECK_ERR(corio_lock_release(&lk), -EPERM);
    CHECK(!corio_lock_locked(&lk));
}

/* Waiters record the order they got the lock in; each holds it across a
 * yield so that every other task has a chance to barge in. */
#define MAX_ORDER 64
static int order[MAX_ORDER];
static int order_len;

typedef struct lock_waiter_arg {
    corio_lock *lk;
    int id;
} lock_waiter_arg;

static void *lock_waiter(void *arg)
{
    lock_waiter_arg *a = arg;
    started++;
    int r = corio_lock_acquire(a->lk);
    if (r < 0)
        return (void *)(intptr_t)r;
    CHECK(holds(a->lk));
    order[order_len++] = a->id;
    corio_yield();
    CHECK_OK(corio_lock_release(a->lk));
    return (void *)(intptr_t)r;
}

static void *lock_fifo_main(void *arg)
{
    enum { N = 16 };
    corio_lock lk;
    corio_lock_init(&lk);
    started = order_len = 0;
    lock_waiter_arg a[N + 4];
    corio_task *t[N + 4];
    CHECK_OK(corio_lock_acquire(&lk));
    for (int i = 0; i < N; i++) {
        a[i] = (lock_waiter_arg){&lk, i};
        t[i] = corio_spawn(lock_waiter, &a[i]);
    }
    wait_started(N);
    CHECK_EQ(order_len, 0);
    CHECK_OK(corio_lock_release(&lk));
    /* Latecomers queue behind all sixteen, however soon they ask. */
    for (int i = N; i < N + 4; i++) {
        a[i] = (lock_waiter_arg){&lk, i};
        t[i] = corio_spawn(lock_waiter, &a[i]);
    }
    void *res[N + 4];
    CHECK_OK(corio_gather(t, N + 4, res));
    CHECK_EQ(order_len, N + 4);
    for (int i = 0; i < N + 4; i++) {
        CHECK_EQ(order[i], i);
        CHECK_EQ((intptr_t)res[i], 0);
    }
    CHECK(!corio_lock_locked(&lk));
    return NULL;
}

TEST(lock_serves_waiters_in_fifo_order) { test_run(lock_fifo_main, NULL); }

static void *barger(void *arg)
{
    lock_waiter_arg *a = arg;
    /* runs after the release, before the woken waiter: the lock is not free */
    CHECK(corio_lock_locked(a->lk));
    CHECK_ERR(corio_lock_try_acquire(a->lk), -EBUSY);
    CHECK_OK(corio_lock_acquire(a->lk)); /* queues behind the woken waiter and main */
    order[order_len++] = a->id;
    CHECK_OK(corio_lock_release(a->lk));
    return NULL;
}

static void *lock_no_barging_main(void *arg)
{
    corio_lock lk;
    corio_lock_init(&lk);
    started = order_len = 0;
    CHECK_OK(corio_lock_acquire(&lk));
    lock_waiter_arg w = {&lk, 1}, b = {&lk, 3};
    corio_task *tw = corio_spawn(lock_waiter, &w);
    wait_started(1);
    corio_task *tb = corio_spawn(barger, &b); /* ready: it will run before the woken waiter */
    CHECK_OK(corio_lock_release(&lk));
    /* The lock belongs to the woken waiter already, though it has not run. */
    CHECK_EQ(order_len, 0);
    CHECK(corio_lock_locked(&lk));
    CHECK(!holds(&lk));
    CHECK_ERR(corio_lock_try_acquire(&lk), -EBUSY);
    CHECK_ERR(corio_lock_release(&lk), -EPERM);
    /* main asks too, right away: it comes second, the barger third */
    CHECK_OK(corio_lock_acquire(&lk));
    order[order_len++] = 2;
    CHECK_OK(corio_lock_release(&lk));
    CHECK_OK(corio_task_join(tw, NULL));
    CHECK_OK(corio_task_join(tb, NULL));
    CHECK_EQ(order_len, 3);
    CHECK_EQ(order[0], 1);
    CHECK_EQ(order[1], 2);
    CHECK_EQ(order[2], 3);
    CHECK(!corio_lock_locked(&lk));
    return NULL;
}

TEST(lock_no_barging_after_release) { test_run(lock_no_barging_main, NULL); }

/* Cancel before the hand-over: the waiter leaves holding nothing and the
 * lock goes to the next one. */
static void *lock_cancel_waiting_main(void *arg)
{
    corio_lock lk;
    corio_lock_init(&lk);
    started = order_len = 0;
    CHECK_OK(corio_lock_acquire(&lk));
    lock_waiter_arg a[3] = {{&lk, 0}, {&lk, 1}, {&lk, 2}};
    corio_task *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = corio_spawn(lock_waiter, &a[i]);
    wait_started(3);
    CHECK_OK(corio_task_cancel(t[0])); /* the first in line */
    CHECK_OK(corio_task_cancel(t[1]));
    CHECK_OK(corio_lock_release(&lk)); /* same step: goes to t[2] */
    CHECK(corio_lock_locked(&lk));
    void *r;
    CHECK_OK(corio_task_join(t[0], &r));
    CHECK_ERR((intptr_t)r, -ECANCELED);
    CHECK_OK(corio_task_join(t[1], &r));
    CHECK_ERR((intptr_t)r, -ECANCELED);
    CHECK_OK(corio_task_join(t[2], &r));
    CHECK_EQ((intptr_t)r, 0);
    CHECK_EQ(order_len, 1);
    CHECK_EQ(order[0], 2);
    CHECK(!corio_lock_locked(&lk));
    /* all gone from the queue: the lock is simply free */
    CHECK_OK(corio_lock_try_acquire(&lk));
    CHECK_OK(corio_lock_release(&lk));
    return NULL;
}

TEST(lock_cancel_while_waiting_passes_it_on) { test_run(lock_cancel_waiting_main, NULL); }

static int handover_result, handover_after;

static void *handover_waiter(void *arg)
{
    corio_lock *lk = arg;
    started++;
    handover_result = corio_lock_acquire(lk);
    CHECK(holds(lk));
    CHECK(corio_cancelled());
    /* the cancel is still pending: the next wait ends with it */
    handover_after = corio_sleep_ms(1000 * 1000);
    CHECK_OK(corio_lock_release(lk));
    return NULL;
}

/* Cancel right after the release woke the waiter: it holds the lock and
 * returns 0; its release then passes the lock on. */
static void *lock_cancel_handover_main(void *arg)
{
    corio_lock lk;
    corio_lock_init(&lk);
    started = order_len = 0;
    handover_result = handover_after = 1;
    CHECK_OK(corio_lock_acquire(&lk));
    corio_task *t = corio_spawn(handover_waiter, &lk);
    lock_waiter_arg next = {&lk, 7};
    corio_task *tn = corio_spawn(lock_waiter, &next);
    wait_started(2);
    CHECK_OK(corio_lock_release(&lk));
    CHECK_OK(corio_task_cancel(t));
    CHECK_OK(corio_task_join(t, NULL));
    CHECK_EQ(handover_result, 0);
    CHECK_ERR(handover_after, -ECANCELED);
    void *r;
    CHECK_OK(corio_task_join(tn, &r));
    CHECK_EQ((intptr_t)r, 0);
    CHECK_EQ(order_len, 1);
    CHECK_EQ(order[0], 7);
    CHECK(!corio_lock_locked(&lk));
    return NULL;
}

TEST(lock_cancel_at_handover_keeps_the_lock) { test_run(lock_cancel_handover_main, NULL); }

static void *deadline_acquirer(void *arg)
{
    corio_lock *lk = arg;
    corio_deadline d = corio_deadline_push(20);
    started++;
    int r = corio_lock_acquire(lk);
    corio_deadline_pop(d);
    return (void *)(intptr_t)r;
}

static void *cancelled_acquirer(void *arg)
{
    corio_lock *lk = arg;
    corio_task_cancel(corio_current());
    return (void *)(intptr_t)corio_lock_acquire(lk);
}

static void *lock_deadline_main(void *arg)
{
    corio_lock lk;
    corio_lock_init(&lk);
    started = 0;
    CHECK_OK(corio_lock_acquire(&lk));
    corio_task *t = corio_spawn(deadline_acquirer, &lk);
    void *r;
    CHECK_OK(corio_task_join(t, &r));
    CHECK_ERR((intptr_t)r, -CORIO_EDEADLINE);
    CHECK(corio_lock_locked(&lk));
    CHECK_OK(corio_lock_release(&lk));
    CHECK(!corio_lock_locked(&lk)); /* the expired waiter left the queue */

    /* A deadline already passed, or a pending cancel, fails even on a
     * free lock, which stays free. */
    corio_deadline d = corio_deadline_push(0);
    CHECK_ERR(corio_lock_acquire(&lk), -CORIO_EDEADLINE);
    corio_deadline_pop(d);
    CHECK(!corio_lock_locked(&lk));
    t = corio_spawn(cancelled_acquirer, &lk);
    CHECK_OK(corio_task_join(t, &r));
    CHECK_ERR((intptr_t)r, -ECANCELED);
    CHECK(!corio_lock_locked(&lk));
    /* a deadline that does not expire does not get in the way */
    d = corio_deadline_push(60 * 1000);
    CHECK_OK(corio_lock_acquire(&lk));
    CHECK_OK(corio_lock_release(&lk));
    corio_deadline_pop(d);
    return NULL;
}

TEST(lock_deadline_while_waiting) { test_run(lock_deadline_main, NULL); }

/* 100,000 waiters on one lock, each served in turn. */
#define MANY TEST_SCALE(100000)
static int many_next, many_bad;

static void *many_lock_waiter(void *arg)
{
    int id = (int)(intptr_t)arg;
    corio_lock *lk = g_lock;
    started++;
    int r = corio_lock_acquire(lk);
    if (r != 0 || many_next != id)
        many_bad++;
    many_next++;
    if (corio_lock_release(lk) != 0)
        many_bad++;
    return NULL;
}

static void *lock_many_main(void *arg)
{
    corio_lock lk;
    corio_lock_init(&lk);
    g_lock = &lk;
    started = many_next = many_bad = 0;
    corio_task **t = malloc(MANY * sizeof *t);
    CHECK(t);
    CHECK_OK(corio_lock_acquire(&lk));
    for (int i = 0; i < MANY; i++) {
        t[i] = corio_spawn_named("lock-waiter", 16384, many_lock_waiter, (void *)(intptr_t)i);
        CHECK(t[i]);
    }
    wait_started(MANY);
    CHECK_EQ(many_next, 0);
    CHECK_OK(corio_lock_release(&lk));
    CHECK_OK(corio_gather(t, MANY, NULL));
    free(t);
    CHECK_EQ(many_bad, 0);
    CHECK_EQ(many_next, MANY);
    CHECK(!corio_lock_locked(&lk));
    return NULL;
}

TEST(lock_100000_waiters_in_order) { test_run(lock_many_main, NULL); }

/* ------------------------------------------------------------------ */
/* Condition                                                           */
/* ------------------------------------------------------------------ */

static corio_cond *g_cond;

typedef struct cond_waiter_arg {
    int id;
    int result;
    bool held_after; /* the lock was held when the wait returned */
} cond_waiter_arg;

static void *cond_waiter(void *arg)
{
    cond_waiter_arg *a = arg;
    CHECK_OK(corio_lock_acquire(g_lock));
    started++;
    a->result = corio_cond_wait(g_cond);
    a->held_after = holds(g_lock);
    order[order_len++] = a->id;
    corio_yield(); /* holding the lock: nobody else may get it meanwhile */
    CHECK_OK(corio_lock_release(g_lock));
    return NULL;
}

static void *cond_eperm_task(void *arg)
{
    (void)arg;
    /* the lock is held, but by main */
    CHECK_ERR(corio_cond_wait(g_cond), -EPERM);
    CHECK_ERR(corio_cond_notify(g_cond), -EPERM);
    CHECK_ERR(corio_cond_notify_all(g_cond), -EPERM);
    return NULL;
}

static bool always_true(void *arg)
{
    (*(int *)arg)++;
    return true;
}

static void *cond_eperm_main(void *arg)
{
    corio_lock lk;
    corio_cond c;
    corio_lock_init(&lk);
    corio_cond_init(&c, &lk);
    g_lock = &lk;
    g_cond = &c;
    int calls = 0;
    CHECK_ERR(corio_cond_wait(&c), -EPERM);
    CHECK_ERR(corio_cond_wait_until(&c, always_true, &calls), -EPERM);
    CHECK_EQ(calls, 0);
    CHECK_ERR(corio_cond_notify(&c), -EPERM);
    CHECK_ERR(corio_cond_notify_all(&c), -EPERM);
    CHECK(!corio_lock_locked(&lk));
    CHECK_OK(corio_lock_acquire(&lk));
    corio_task *t = corio_spawn(cond_eperm_task, NULL);
    CHECK_OK(corio_task_join(t, NULL));
    /* a predicate already true: no wait at all */
    CHECK_OK(corio_cond_wait_until(&c, always_true, &calls));
    CHECK_EQ(calls, 1);
    CHECK_ERR(corio_cond_wait_until(&c, NULL, NULL), -EINVAL);
    /* notify with nobody waiting does nothing */
    CHECK_OK(corio_cond_notify(&c));
    CHECK_OK(corio_cond_notify_all(&c));
    CHECK(corio_lock_locked(&lk));
    CHECK_OK(corio_lock_release(&lk));
    return NULL;
}

TEST(cond_requires_the_lock) { test_run(cond_eperm_main, NULL); }

static void *cond_notify_main(void *arg)
{
    enum { N = 5 };
    corio_lock lk;
    corio_cond c;
    corio_lock_init(&lk);
    corio_cond_init(&c, &lk);
    g_lock = &lk;
    g_cond = &c;
    started = order_len = 0;
    /* A notify given before anyone waits is not remembered. */
    CHECK_OK(corio_lock_acquire(&lk));
    CHECK_OK(corio_cond_notify(&c));
    CHECK_OK(corio_lock_release(&lk));
    cond_waiter_arg a[N];
    corio_task *t[N];
    for (int i = 0; i < N; i++) {
        a[i] = (cond_waiter_arg){.id = i, .result = 1};
        t[i] = corio_spawn(cond_waiter, &a[i]);
    }
    wait_started(N);
    for (int i = 0; i < 3; i++)
        corio_yield();
    CHECK_EQ(order_len, 0);
    CHECK(!corio_lock_locked(&lk)); /* every waiter let it go */

    /* notify wakes exactly one, the longest waiting, once main lets go */
    CHECK_OK(corio_lock_acquire(&lk));
    CHECK_OK(corio_cond_notify(&c));
    for (int i = 0; i < 3; i++)
        corio_yield();
    CHECK_EQ(order_len, 0); /* main still holds the lock */
    CHECK_OK(corio_lock_release(&lk));
    CHECK_OK(corio_task_join(t[0], NULL));
    CHECK_EQ(order_len, 1);
    CHECK_EQ(order[0], 0);

    /* notify twice: the next two, in order */
    CHECK_OK(corio_lock_acquire(&lk));
    CHECK_OK(corio_cond_notify(&c));
    CHECK_OK(corio_cond_notify(&c));
    CHECK_OK(corio_lock_release(&lk));
    CHECK_OK(corio_task_join(t[1], NULL));
    CHECK_OK(corio_task_join(t[2], NULL));
    CHECK_EQ(order_len, 3);
    CHECK_EQ(order[1], 1);
    CHECK_EQ(order[2], 2);

    /* notify_all: the rest, in order, each holding the lock in turn */
    CHECK_OK(corio_lock_acquire(&lk));
    CHECK_OK(corio_cond_notify_all(&c));
    CHECK_OK(corio_lock_release(&lk));
    CHECK_OK(corio_task_join(t[3], NULL));
    CHECK_OK(corio_task_join(t[4], NULL));
    CHECK_EQ(order_len, 5);
    CHECK_EQ(order[3], 3);
    CHECK_EQ(order[4], 4);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(a[i].result, 0);
        CHECK(a[i].held_after);
    }
    CHECK(!corio_lock_locked(&lk));
    return NULL;
}

TEST(cond_notify_and_notify_all_in_fifo_order) { test_run(cond_notify_main, NULL); }

/* A notified task queues for the lock behind tasks already waiting for
 * it, and ahead of those that ask later. */
static void *cond_queue_order_main(void *arg)
{
    corio_lock lk;
    corio_cond c;
    corio_lock_init(&lk);
    corio_cond_init(&c, &lk);
    g_lock = &lk;
    g_cond = &c;
    started = order_len = 0;
    cond_waiter_arg cw = {.id = 1, .result = 1};
    corio_task *tc = corio_spawn(cond_waiter, &cw);
    wait_started(1);
    CHECK_OK(corio_lock_acquire(&lk));
    lock_waiter_arg before = {&lk, 0}, after = {&lk, 2};
    corio_task *tb = corio_spawn(lock_waiter, &before);
    wait_started(2);
    CHECK_OK(corio_cond_notify(&c));
    corio_task *ta = corio_spawn(lock_waiter, &after);
    wait_started(3);
    CHECK_OK(corio_lock_release(&lk));
    CHECK_OK(corio_task_join(tb, NULL));
    CHECK_OK(corio_task_join(tc, NULL));
    CHECK_OK(corio_task_join(ta, NULL));
    CHECK_EQ(order_len, 3);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(order[i], i);
    CHECK_EQ(cw.result, 0);
    CHECK(cw.held_after);
    return NULL;
}

TEST(cond_notified_task_queues_for_the_lock) { test_run(cond_queue_order_main, NULL); }

/* Cancelled while waiting for the notify: with the lock free it returns
 * at once holding it; with the lock held it takes it back first, however
 * long that takes. */
static void *cond_cancel_waiting_main(void *arg)
{
    corio_lock lk;
    corio_cond c;
    corio_lock_init(&lk);
    corio_cond_init(&c, &lk);
    g_lock = &lk;
    g_cond = &c;
    started = order_len = 0;
    cond_waiter_arg a = {.id = 1, .result = 1}, b = {.id = 2, .result = 1};
    corio_task *ta = corio_spawn(cond_waiter, &a);
    wait_started(1);
    CHECK_OK(corio_task_cancel(ta));
    CHECK_OK(corio_task_join(ta, NULL));
    CHECK_ERR(a.result, -ECANCELED);
    CHECK(a.held_after);
    CHECK(!corio_lock_locked(&lk));

    /* now with main holding the lock when the cancel comes */
    corio_task *tb = corio_spawn(cond_waiter, &b);
    wait_started(2);
    CHECK_OK(corio_lock_acquire(&lk));
    CHECK_OK(corio_task_cancel(tb));
    for (int i = 0; i < 3; i++)
        corio_yield();
    CHECK_EQ(order_len, 1); /* b is still waiting: for the lock now */
    CHECK_ERR(corio_lock_try_acquire(&lk), -EBUSY);
    CHECK_OK(corio_cond_notify(&c)); /* nobody on the condition any more */
    CHECK_OK(corio_lock_release(&lk));
    CHECK_OK(corio_task_join(tb, NULL));
    CHECK_ERR(b.result, -ECANCELED);
    CHECK(b.held_after);
    CHECK_EQ(order_len, 2);
    CHECK(!corio_lock_locked(&lk));
    return NULL;
}

TEST(cond_cancel_while_waiting_for_notify) { test_run(cond_cancel_waiting_main, NULL); }

/* A cancel that reaches a waiter already notified (queued for the lock)
 * does not undo the notify: it returns 0 holding the lock, and the cancel
 * ends its next wait.  A cancel before the notify leaves the notify for
 * the next waiter, so no wake-up is lost. */
static int reacquire_after;

static void *cond_reacquire_waiter(void *arg)
{
    cond_waiter_arg *a = arg;
    CHECK_OK(corio_lock_acquire(g_lock));
    started++;
    a->result = corio_cond_wait(g_cond);
    a->held_after = holds(g_lock);
    order[order_len++] = a->id;
    reacquire_after = corio_sleep_ms(1000 * 1000);
    CHECK_OK(corio_lock_release(g_lock));
    return NULL;
}

static void *cond_cancel_reacquire_main(void *arg)
{
    corio_lock lk;
    corio_cond c;
    corio_lock_init(&lk);
    corio_cond_init(&c, &lk);
    g_lock = &lk;
    g_cond = &c;
    started = order_len = 0;
    reacquire_after = 1;
    cond_waiter_arg a = {.id = 1, .result = 1};
    corio_task *ta = corio_spawn(cond_reacquire_waiter, &a);
    wait_started(1);
    CHECK_OK(corio_lock_acquire(&lk));
    CHECK_OK(corio_cond_notify(&c));
    CHECK_OK(corio_task_cancel(ta)); /* queued for the lock, main holds it */
    for (int i = 0; i < 3; i++)
        corio_yield();
    CHECK_EQ(order_len, 0);
    CHECK_OK(corio_lock_release(&lk));
    CHECK_OK(corio_task_join(ta, NULL));
    CHECK_EQ(a.result, 0);
    CHECK(a.held_after);
    CHECK_ERR(reacquire_after, -ECANCELED);
    CHECK(!corio_lock_locked(&lk));

    /* cancel the first waiter, then notify: the second gets it */
    cond_waiter_arg x = {.id = 2, .result = 1}, y = {.id = 3, .result = 1};
    corio_task *tx = corio_spawn(cond_waiter, &x);
    corio_task *ty = corio_spawn(cond_waiter, &y);
    wait_started(3);
    CHECK_OK(corio_lock_acquire(&lk));
    CHECK_OK(corio_task_cancel(tx));
    CHECK_OK(corio_cond_notify(&c));
    CHECK_OK(corio_lock_release(&lk));
    CHECK_OK(corio_task_join(tx, NULL));
    CHECK_OK(corio_task_join(ty, NULL));
    CHECK_ERR(x.result, -ECANCELED);
    CHECK_EQ(y.result, 0);
    CHECK(x.held_after && y.held_after);
    CHECK_EQ(order_len, 3);
    CHECK_EQ(order[1], 2); /* x queued for the lock first, at its cancel */
    CHECK_EQ(order[2], 3);
    CHECK(!corio_lock_locked(&lk));
    return NULL;
}

TEST(cond_cancel_while_reacquiring_honours_the_notify) { test_run(cond_cancel_reacquire_main, NULL); }

static void *cond_deadline_waiter(void *arg)
{
    cond_waiter_arg *a = arg;
    CHECK_OK(corio_lock_acquire(g_lock));
    corio_deadline d = corio_deadline_push(20);
    started++;
    a->result = corio_cond_wait(g_cond);
    corio_deadline_pop(d);
    a->held_after = holds(g_lock);
    CHECK_OK(corio_lock_release(g_lock));
    return NULL;
}

static void *cond_deadline_main(void *arg)
{
    corio_lock lk;
    corio_cond c;
    corio_lock_init(&lk);
    corio_cond_init(&c, &lk);
    g_lock = &lk;
    g_cond = &c;
    started = 0;
    cond_waiter_arg a = {.result = 1};
    corio_task *t = corio_spawn(cond_deadline_waiter, &a);
    CHECK_OK(corio_task_join(t, NULL));
    CHECK_ERR(a.result, -CORIO_EDEADLINE);
    CHECK(a.held_after);
    CHECK(!corio_lock_locked(&lk));

    /* The deadline passes while the waiter queues for a lock main holds. */
    a.result = 1;
    started = 0;
    t = corio_spawn(cond_deadline_waiter, &a);
    wait_started(1);
    CHECK_OK(corio_lock_acquire(&lk));
    CHECK_OK(corio_sleep_ms(40)); /* a lower bound: the 20 ms have passed */
    CHECK(!corio_task_done(t));
    CHECK_OK(corio_lock_release(&lk));
    CHECK_OK(corio_task_join(t, NULL));
    CHECK_ERR(a.result, -CORIO_EDEADLINE);
    CHECK(a.held_after);

    /* Already past: nothing waits, the lock is never let go. */
    CHECK_OK(corio_lock_acquire(&lk));
    corio_deadline d = corio_deadline_push(0);
    CHECK_ERR(corio_cond_wait(&c), -CORIO_EDEADLINE);
    corio_deadline_pop(d);
    CHECK_ERR(corio_lock_try_acquire(&lk), -EBUSY);
    CHECK_OK(corio_lock_release(&lk));
    CHECK(!corio_lock_locked(&lk));
    return NULL;
}

TEST(cond_deadline_reacquires_the_lock) { test_run(cond_deadline_main, NULL); }

/* wait_until: asyncio's Condition.wait_for. */
static int items;
static int pred_calls;

static bool enough_items(void *arg)
{
    pred_calls++;
    CHECK(corio_lock_locked(g_lock)); /* called with the lock held */
    return items >= *(int *)arg;
}

static void *consumer(void *arg)
{
    CHECK_OK(corio_lock_acquire(g_lock));
    started++;
    int r = corio_cond_wait_until(g_cond, enough_items, arg);
    if (r == 0)
        items -= *(int *)arg;
    CHECK_OK(corio_lock_release(g_lock));
    return (void *)(intptr_t)r;
}

static void *cond_wait_until_main(void *arg)
{
    corio_lock lk;
    corio_cond c;
    corio_lock_init(&lk);
    corio_cond_init(&c, &lk);
    g_lock = &lk;
    g_cond = &c;
    started = items = pred_calls = 0;
    int want = 3;
    corio_task *t = corio_spawn(consumer, &want);
    wait_started(1);
    CHECK_EQ(pred_calls, 1); /* once before waiting */
    for (int i = 1; i <= 3; i++) {
        CHECK_OK(corio_lock_acquire(&lk));
        items++;
        CHECK_OK(corio_cond_notify_all(&c));
        CHECK_OK(corio_lock_release(&lk));
        for (int k = 0; k < 3; k++)
            corio_yield();
        CHECK_EQ(pred_calls, 1 + i); /* once after every wake-up */
    }
    void *r;
    CHECK_OK(corio_task_join(t, &r));
    CHECK_EQ((intptr_t)r, 0);
    CHECK_EQ(items, 0);

    /* a cancel ends the wait; the predicate is not asked again */
    started = pred_calls = 0;
    t = corio_spawn(consumer, &want);
    wait_started(1);
    CHECK_OK(corio_task_cancel(t));
    CHECK_OK(corio_task_join(t, &r));
    CHECK_ERR((intptr_t)r, -ECANCELED);
    CHECK_EQ(pred_calls, 1);
    CHECK(!corio_lock_locked(&lk));
    return NULL;
}

TEST(cond_wait_until_predicate) { test_run(cond_wait_until_main, NULL); }

/* ------------------------------------------------------------------ */
/* Semaphore                                                           */
/* ------------------------------------------------------------------ */

static corio_sem *g_sem;

static void *sem_waiter(void *arg)
{
    int id = (int)(intptr_t)arg;
    started++;
    int r = corio_sem_acquire(g_sem);
    if (r == 0) {
        order[order_len++] = id;
        corio_yield(); /* holding the unit */
        CHECK_OK(corio_sem_release(g_sem));
    }
    return (void *)(intptr_t)r;
}

static void *sem_basic_main(void *arg)
{
    corio_sem s;
    corio_sem_init(&s, 2);
    CHECK_EQ(corio_sem_value(&s), 2);
    CHECK_OK(corio_sem_acquire(&s));
    CHECK_OK(corio_sem_try_acquire(&s));
    CHECK_EQ(corio_sem_value(&s), 0);
    CHECK_ERR(corio_sem_try_acquire(&s), -EAGAIN);
    CHECK_OK(corio_sem_release(&s));
    CHECK_OK(corio_sem_release(&s));
    CHECK_OK(corio_sem_release(&s)); /* a plain semaphore may go above its start */
    CHECK_EQ(corio_sem_value(&s), 3);

    /* bounded: never above the initial value */
    corio_sem b;
    corio_sem_init_bounded(&b, 1);
    CHECK_ERR(corio_sem_release(&b), -EOVERFLOW);
    CHECK_EQ(corio_sem_value(&b), 1);
    CHECK_OK(corio_sem_acquire(&b));
    CHECK_EQ(corio_sem_value(&b), 0);
    CHECK_OK(corio_sem_release(&b));
    CHECK_ERR(corio_sem_release(&b), -EOVERFLOW);
    CHECK_EQ(corio_sem_value(&b), 1);
    corio_sem_init_bounded(&b, 0);
    CHECK_ERR(corio_sem_release(&b), -EOVERFLOW);
    CHECK_EQ(corio_sem_value(&b), 0);

    /* a plain one stops at UINT_MAX */
    corio_sem_init(&s, UINT_MAX - 1);
    CHECK_OK(corio_sem_release(&s));
    CHECK_ERR(corio_sem_release(&s), -EOVERFLOW);
    CHECK_EQ(corio_sem_value(&s), UINT_MAX);

    /* semaphores need a task to wait in, but try_acquire does not wait */
    corio_sem_init(&s, 0);
    corio_deadline d = corio_deadline_push(0);
    CHECK_ERR(corio_sem_acquire(&s), -CORIO_EDEADLINE);
    corio_sem_init(&s, 1);
    CHECK_ERR(corio_sem_acquire(&s), -CORIO_EDEADLINE); /* even with a unit free */
    CHECK_EQ(corio_sem_value(&s), 1);
    CHECK_OK(corio_sem_try_acquire(&s));
    corio_deadline_pop(d);
    return NULL;
}

TEST(sem_counts_and_bounded_overflow) { test_run(sem_basic_main, NULL); }

static void *sem_fifo_main(void *arg)
{
    enum { N = 12 };
    corio_sem s;
    corio_sem_init(&s, 0);
    g_sem = &s;
    started = order_len = 0;
    corio_task *t[N];
    for (int i = 0; i < N; i++)
        t[i] = corio_spawn(sem_waiter, (void *)(intptr_t)i);
    wait_started(N);
    CHECK_EQ(order_len, 0);
    CHECK_OK(corio_sem_release(&s));
    /* handed to the first waiter: not counted, not up for grabs */
    CHECK_EQ(corio_sem_value(&s), 0);
    CHECK_ERR(corio_sem_try_acquire(&s), -EAGAIN);
    CHECK_OK(corio_sem_release(&s)); /* two units circulate from now on */
    void *res[N];
    CHECK_OK(corio_gather(t, N, res));
    CHECK_EQ(order_len, N);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(order[i], i);
        CHECK_EQ((intptr_t)res[i], 0);
    }
    CHECK_EQ(corio_sem_value(&s), 2);

    /* bounded: a release handed to a waiter does not count against the bound */
    corio_sem b;
    corio_sem_init_bounded(&b, 1);
    g_sem = &b;
    started = order_len = 0;
    CHECK_OK(corio_sem_acquire(&b));
    corio_task *w = corio_spawn(sem_waiter, (void *)(intptr_t)5);
    wait_started(1);
    CHECK_OK(corio_sem_release(&b));
    CHECK_OK(corio_task_join(w, NULL));
    CHECK_EQ(order_len, 1);
    CHECK_EQ(corio_sem_value(&b), 1);
    CHECK_ERR(corio_sem_release(&b), -EOVERFLOW);
    return NULL;
}

TEST(sem_serves_waiters_in_fifo_order) { test_run(sem_fifo_main, NULL); }

static int sem_handover_result, sem_handover_after;

static void *sem_handover_waiter(void *arg)
{
    started++;
    sem_handover_result = corio_sem_acquire(g_sem);
    sem_handover_after = corio_sleep_ms(1000 * 1000);
    CHECK_OK(corio_sem_release(g_sem));
    return NULL;
}

static void *sem_deadline_waiter(void *arg)
{
    corio_deadline d = corio_deadline_push(20);
    started++;
    int r = corio_sem_acquire(g_sem);
    corio_deadline_pop(d);
    return (void *)(intptr_t)r;
}

static void *sem_cancel_main(void *arg)
{
    corio_sem s;
    corio_sem_init(&s, 0);
    g_sem = &s;
    started = order_len = 0;
    /* cancel before the hand-over: the unit goes to the next waiter */
    corio_task *t0 = corio_spawn(sem_waiter, (void *)(intptr_t)0);
    corio_task *t1 = corio_spawn(sem_waiter, (void *)(intptr_t)1);
    wait_started(2);
    CHECK_OK(corio_task_cancel(t0));
    CHECK_OK(corio_sem_release(&s));
    void *r;
    CHECK_OK(corio_task_join(t0, &r));
    CHECK_ERR((intptr_t)r, -ECANCELED);
    CHECK_OK(corio_task_join(t1, &r));
    CHECK_EQ((intptr_t)r, 0);
    CHECK_EQ(order_len, 1);
    CHECK_EQ(order[0], 1);
    CHECK_EQ(corio_sem_value(&s), 1);
    CHECK_OK(corio_sem_acquire(&s));

    /* cancel after it: the waiter keeps the unit and gives it back */
    started = 0;
    sem_handover_result = sem_handover_after = 1;
    corio_task *th = corio_spawn(sem_handover_waiter, NULL);
    corio_task *tn = corio_spawn(sem_waiter, (void *)(intptr_t)2);
    wait_started(2);
    CHECK_OK(corio_sem_release(&s));
    CHECK_OK(corio_task_cancel(th));
    CHECK_OK(corio_task_join(th, NULL));
    CHECK_EQ(sem_handover_result, 0);
    CHECK_ERR(sem_handover_after, -ECANCELED);
    CHECK_OK(corio_task_join(tn, &r));
    CHECK_EQ((intptr_t)r, 0);
    CHECK_EQ(order[1], 2);
    CHECK_EQ(corio_sem_value(&s), 1);
    CHECK_OK(corio_sem_acquire(&s));

    /* a deadline while waiting */
    started = 0;
    corio_task *td = corio_spawn(sem_deadline_waiter, NULL);
    CHECK_OK(corio_task_join(td, &r));
    CHECK_ERR((intptr_t)r, -CORIO_EDEADLINE);
    CHECK_OK(corio_sem_release(&s));
    CHECK_EQ(corio_sem_value(&s), 1); /* nobody left waiting */
    return NULL;
}

TEST(sem_cancel_and_deadline) { test_run(sem_cancel_main, NULL); }

static void *many_sem_waiter(void *arg)
{
    int id = (int)(intptr_t)arg;
    started++;
    int r = corio_sem_acquire(g_sem);
    if (r != 0 || many_next != id)
        many_bad++;
    many_next++;
    if (corio_sem_release(g_sem) != 0)
        many_bad++;
    return NULL;
}

static void *sem_many_main(void *arg)
{
    corio_sem s;
    corio_sem_init(&s, 0);
    g_sem = &s;
    started = many_next = many_bad = 0;
    corio_task **t = malloc(MANY * sizeof *t);
    CHECK(t);
    for (int i = 0; i < MANY; i++) {
        t[i] = corio_spawn_named("sem-waiter", 16384, many_sem_waiter, (void *)(intptr_t)i);
        CHECK(t[i]);
    }
    wait_started(MANY);
    CHECK_OK(corio_sem_release(&s));
    CHECK_OK(corio_gather(t, MANY, NULL));
    free(t);
    CHECK_EQ(many_bad, 0);
    CHECK_EQ(many_next, MANY);
    CHECK_EQ(corio_sem_value(&s), 1);
    return NULL;
}

TEST(sem_100000_waiters_in_order) { test_run(sem_many_main, NULL); }

/* ------------------------------------------------------------------ */
/* Stalls                                                              */
/* ------------------------------------------------------------------ */

static int stall_results[3];

static void *stuck_on_lock(void *arg)
{
    stall_results[0] = corio_lock_acquire(g_lock);
    return NULL;
}

static void *stuck_on_sem(void *arg)
{
    stall_results[1] = corio_sem_acquire(g_sem);
    return NULL;
}

static void *stuck_on_cond(void *arg)
{
    CHECK_OK(corio_lock_acquire(g_lock));
    stall_results[2] = corio_cond_wait(g_cond);
    CHECK_OK(corio_lock_release(g_lock));
    return NULL;
}

static void *stall_main(void *arg)
{
    static corio_lock lk, other;
    static corio_sem s;
    static corio_cond c;
    corio_lock_init(&lk);
    corio_lock_init(&other);
    corio_sem_init(&s, 0);
    corio_cond_init(&c, &other);
    g_sem = &s;
    g_cond = &c;
    g_lock = &lk;
    CHECK_OK(corio_lock_acquire(&lk)); /* and never released */
    CHECK_OK(corio_task_detach(corio_spawn_named("stuck-lock", 0, stuck_on_lock, NULL)));
    CHECK_OK(corio_task_detach(corio_spawn_named("stuck-sem", 0, stuck_on_sem, NULL)));
    corio_yield();
    g_lock = &other;
    CHECK_OK(corio_task_detach(corio_spawn_named("stuck-cond", 0, stuck_on_cond, NULL)));
    corio_event never;
    corio_event_init(&never);
    CHECK_ERR(corio_event_wait(&never), -ECANCELED); /* ended by the stall's cancel */
    return NULL;
}

TEST(stall_on_lock_semaphore_condition_is_reported)
{
    char path[] = "/tmp/corio_sync_stall_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    int saved = dup(2);
    dup2(fd, 2);
    stall_results[0] = stall_results[1] = stall_results[2] = 1;
    int r = corio_run(NULL, stall_main, NULL, NULL);
    dup2(saved, 2);
    close(saved);
    CHECK_ERR(r, -CORIO_EDEADLOCK);
    char buf[4096] = {0};
    CHECK(pread(fd, buf, sizeof buf - 1, 0) > 0);
    close(fd);
    CHECK(strstr(buf, "loop stalled"));
    CHECK(strstr(buf, "task 'stuck-lock' waiting in lock"));
    CHECK(strstr(buf, "task 'stuck-sem' waiting in semaphore"));
    CHECK(strstr(buf, "task 'stuck-cond' waiting in condition"));
    /* the stall cancelled every wait; the condition's waiter got its lock back */
    CHECK_ERR(stall_results[0], -ECANCELED);
    CHECK_ERR(stall_results[1], -ECANCELED);
    CHECK_ERR(stall_results[2], -ECANCELED);
}
