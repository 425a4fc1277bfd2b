/*
 * Barriers (src/core/barrier.c): arrival indices, rounds one after the
 * other, reset and abort (-CORIO_EBROKEN), and a waiter that is cancelled
 * or hits its deadline leaving the round, which then waits for one more.
 */
#include "runner.h"

#include <limits.h>
#include <stdint.h>

static corio_barrier *g_bar;
static int started, finished;

static void wait_started(int n)
{
    while (started < n)
        corio_yield();
}

static void *arriver(void *arg)
{
    (void)arg;
    started++;
    int r = corio_barrier_wait(g_bar);
    finished++;
    return (void *)(intptr_t)r;
}

static void *barrier_basic_main(void *arg)
{
    corio_barrier b;
    CHECK_OK(corio_barrier_init(&b, 4));
    g_bar = &b;
    started = finished = 0;
    CHECK_EQ(corio_barrier_waiting(&b), 0);
    corio_task *t[3];
    for (int i = 0; i < 3; i++) {
        t[i] = corio_spawn(arriver, NULL);
        wait_started(i + 1);
        CHECK_EQ(corio_barrier_waiting(&b), i + 1);
    }
    CHECK_EQ(finished, 0);
    /* main arrives last: it does not wait, and gets the last index */
    CHECK_EQ(corio_barrier_wait(&b), 3);
    CHECK_EQ(finished, 0);
    CHECK_EQ(corio_barrier_waiting(&b), 0); /* the next round starts empty */
    void *res[3];
    CHECK_OK(corio_gather(t, 3, res));
    for (int i = 0; i < 3; i++)
        CHECK_EQ((intptr_t)res[i], i); /* arrival order */

    /* one party: never waits */
    corio_barrier one;
    CHECK_OK(corio_barrier_init(&one, 1));
    for (int i = 0; i < 3; i++)
        CHECK_EQ(corio_barrier_wait(&one), 0);
    CHECK_EQ(corio_barrier_waiting(&one), 0);
    return NULL;
}

TEST(barrier_arrival_indices) { test_run(barrier_basic_main, NULL); }

/* Three tasks through five rounds: every round releases the three
 * together with indices 0, 1, 2, and nobody gets ahead by a round. */
enum { PARTIES = 3, ROUNDS = 5 };
static int round_of[PARTIES];
static int seen[ROUNDS][PARTIES];
static int round_bad;

static void *rounds_task(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int r = 0; r < ROUNDS; r++) {
        round_of[id] = r;
        /* a different arrival order each round */
        for (int k = 0; k < (id + r) % PARTIES; k++)
            corio_yield();
        int idx = corio_barrier_wait(g_bar);
        if (idx < 0 || idx >= PARTIES) {
            round_bad++;
            return NULL;
        }
        seen[r][idx]++;
        for (int j = 0; j < PARTIES; j++)
            if (round_of[j] < r)
                round_bad++; /* somebody was released before arriving */
    }
    return NULL;
}

static void *barrier_rounds_main(void *arg)
{
    corio_barrier b;
    CHECK_OK(corio_barrier_init(&b, PARTIES));
    g_bar = &b;
    memset(seen, 0, sizeof seen);
    memset(round_of, 0, sizeof round_of);
    round_bad = 0;
    corio_task *t[PARTIES];
    for (int i = 0; i < PARTIES; i++)
        t[i] = corio_spawn(rounds_task, (void *)(intptr_t)i);
    CHECK_OK(corio_gather(t, PARTIES, NULL));
    CHECK_EQ(round_bad, 0);
    for (int r = 0; r < ROUNDS; r++)
        for (int i = 0; i < PARTIES; i++)
            CHECK_EQ(seen[r][i], 1);
    CHECK_EQ(corio_barrier_waiting(&b), 0);
    return NULL;
}

TEST(barrier_rounds_start_over) { test_run(barrier_rounds_main, NULL); }

static void *barrier_reset_abort_main(void *arg)
{
    corio_barrier b;
    CHECK_OK(corio_barrier_init(&b, 3));
    g_bar = &b;
    started = finished = 0;
    corio_task *t[3];
    t[0] = corio_spawn(arriver, NULL);
    t[1] = corio_spawn(arriver, NULL);
    wait_started(2);
    CHECK_OK(corio_barrier_reset(&b));
    CHECK_EQ(corio_barrier_waiting(&b), 0);
    void *r;
    for (int i = 0; i < 2; i++) {
        CHECK_OK(corio_task_join(t[i], &r));
        CHECK_ERR((intptr_t)r, -CORIO_EBROKEN);
    }
    /* usable again at once */
    for (int i = 0; i < 2; i++)
        t[i] = corio_spawn(arriver, NULL);
    wait_started(4);
    CHECK_EQ(corio_barrier_wait(&b), 2);
    for (int i = 0; i < 2; i++) {
        CHECK_OK(corio_task_join(t[i], &r));
        CHECK_EQ((intptr_t)r, i);
    }

    /* abort: the waiters and every later wait fail, until reset */
    t[0] = corio_spawn(arriver, NULL);
    wait_started(5);
    CHECK_OK(corio_barrier_abort(&b));
    CHECK_OK(corio_task_join(t[0], &r));
    CHECK_ERR((intptr_t)r, -CORIO_EBROKEN);
    CHECK_ERR(corio_barrier_wait(&b), -CORIO_EBROKEN);
    CHECK_EQ(corio_barrier_waiting(&b), 0);
    CHECK_OK(corio_barrier_abort(&b)); /* twice is fine */
    CHECK_ERR(corio_barrier_wait(&b), -CORIO_EBROKEN);
    CHECK_OK(corio_barrier_reset(&b));
    for (int i = 0; i < 2; i++)
        t[i] = corio_spawn(arriver, NULL);
    wait_started(7);
    CHECK_EQ(corio_barrier_wait(&b), 2);
    CHECK_OK(corio_gather(t, 2, NULL));
    CHECK_STR(corio_strerror(-CORIO_EBROKEN), "the barrier was aborted or reset");
    return NULL;
}

TEST(barrier_reset_and_abort_break_waiters) { test_run(barrier_reset_abort_main, NULL); }

static void *deadline_arriver(void *arg)
{
    corio_deadline d = corio_deadline_push(20);
    started++;
    int r = corio_barrier_wait(g_bar);
    corio_deadline_pop(d);
    return (void *)(intptr_t)r;
}

static void *cancelled_arriver(void *arg)
{
    corio_task_cancel(corio_current());
    return (void *)(intptr_t)corio_barrier_wait(g_bar);
}

static int handover_index, handover_after;

static void *handover_arriver(void *arg)
{
    started++;
    handover_index = corio_barrier_wait(g_bar);
    handover_after = corio_sleep_ms(1000 * 1000);
    return NULL;
}

static void *barrier_cancel_main(void *arg)
{
    corio_barrier b;
    CHECK_OK(corio_barrier_init(&b, 3));
    g_bar = &b;
    started = finished = 0;
    corio_task *a = corio_spawn(arriver, NULL);
    corio_task *c = corio_spawn(arriver, NULL);
    wait_started(2);
    CHECK_EQ(corio_barrier_waiting(&b), 2);
    CHECK_OK(corio_task_cancel(a));
    void *r;
    CHECK_OK(corio_task_join(a, &r));
    CHECK_ERR((intptr_t)r, -ECANCELED);
    CHECK_EQ(corio_barrier_waiting(&b), 1); /* it left */
    /* a cancelled task does not arrive at all */
    corio_task *x = corio_spawn(cancelled_arriver, NULL);
    CHECK_OK(corio_task_join(x, &r));
    CHECK_ERR((intptr_t)r, -ECANCELED);
    CHECK_EQ(corio_barrier_waiting(&b), 1);
    /* now two more make the round: no gap where the leaver was */
    corio_task *d = corio_spawn(arriver, NULL);
    wait_started(3);
    CHECK_EQ(corio_barrier_wait(&b), 2);
    CHECK_OK(corio_task_join(c, &r));
    CHECK_EQ((intptr_t)r, 0);
    CHECK_OK(corio_task_join(d, &r));
    CHECK_EQ((intptr_t)r, 1);

    /* a deadline while waiting: it leaves the round too */
    corio_task *e = corio_spawn(deadline_arriver, NULL);
    CHECK_OK(corio_task_join(e, &r));
    CHECK_ERR((intptr_t)r, -CORIO_EDEADLINE);
    CHECK_EQ(corio_barrier_waiting(&b), 0);

    /* cancelled at the moment of release: it keeps its index */
    started = 0;
    handover_index = handover_after = -1;
    corio_task *h = corio_spawn(handover_arriver, NULL);
    corio_task *f = corio_spawn(arriver, NULL);
    wait_started(2);
    CHECK_EQ(corio_barrier_wait(&b), 2);
    CHECK_OK(corio_task_cancel(h));
    CHECK_OK(corio_task_join(h, NULL));
    CHECK_EQ(handover_index, 0);
    CHECK_ERR(handover_after, -ECANCELED);
    CHECK_OK(corio_task_join(f, &r));
    CHECK_EQ((intptr_t)r, 1);

    /* the caller's own passed deadline: no arrival either */
    corio_deadline dl = corio_deadline_push(0);
    CHECK_ERR(corio_barrier_wait(&b), -CORIO_EDEADLINE);
    corio_deadline_pop(dl);
    CHECK_EQ(corio_barrier_waiting(&b), 0);
    return NULL;
}

TEST(barrier_cancel_and_deadline_leave_the_round) { test_run(barrier_cancel_main, NULL); }

static void *barrier_init_main(void *arg)
{
    corio_barrier b;
    CHECK_ERR(corio_barrier_init(&b, 0), -EINVAL);
    CHECK_ERR(corio_barrier_wait(&b), -EINVAL);
    CHECK_EQ(corio_barrier_waiting(&b), 0);
    CHECK_ERR(corio_barrier_init(&b, (unsigned)INT_MAX + 1), -EINVAL);
    CHECK_ERR(corio_barrier_wait(&b), -EINVAL);
    CHECK_OK(corio_barrier_init(&b, INT_MAX));
    CHECK_OK(corio_barrier_reset(&b));
    return NULL;
}

TEST(barrier_init_rejects_bad_party_counts) { test_run(barrier_init_main, NULL); }

/* 10,000 parties in one round. */
static void *barrier_many_main(void *arg)
{
    enum { N = 10000 };
    corio_barrier b;
    CHECK_OK(corio_barrier_init(&b, N + 1));
    g_bar = &b;
    started = finished = 0;
    corio_task **t = malloc(N * sizeof *t);
    CHECK(t);
    for (int i = 0; i < N; i++)
        t[i] = corio_spawn_named("party", 16384, arriver, NULL);
    wait_started(N);
    CHECK_EQ(corio_barrier_waiting(&b), N);
    CHECK_EQ(corio_barrier_wait(&b), N);
    void **res = malloc(N * sizeof *res);
    CHECK(res);
    CHECK_OK(corio_gather(t, N, res));
    for (int i = 0; i < N; i++)
        CHECK_EQ((intptr_t)res[i], i);
    free(res);
    free(t);
    return NULL;
}

TEST(barrier_10000_parties) { test_run(barrier_many_main, NULL); }
