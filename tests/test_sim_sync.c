/*
 * The coordination primitives under the sim backend, many seeds each with
 * swarm faults on (the seed picks the order of ready tasks, which faults
 * are on, and the tasks' own random sleeps and yields through
 * corio_sim_rand): queues, locks, semaphores, events, barriers, channels
 * used on one thread, task groups, shields, corio_wait / as_completed and
 * time-outs.  Each run checks its invariants with exact counts; a broken
 * one reports through corio_sim_fail (the seed and the last events) and
 * fails the test naming the seed, which replays it:
 * CORIO_SIM_SEED is not needed, the seed is in the message.
 */
#include "runner.h"

#include <corio/sim.h>

#define SEEDS TEST_SCALE(200)
#define MS 1000000ull

/* A broken invariant: tell the sim (seed and last events), then fail. */
#define SIM_CHECK(cond)                                                                                      \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            corio_sim_fail("%s:%d: %s", __FILE__, __LINE__, #cond);                                          \
            test_fail(__FILE__, __LINE__, "seed %llu: CHECK(%s) failed",                                     \
                      (unsigned long long)corio_sim_seed(), #cond);                                          \
        }                                                                                                    \
    } while (0)

/* Run fn under seeds 1..SEEDS with swarm faults; each run must end
 * cleanly and unfailed. */
static void for_seeds(corio_fn fn)
{
    for (uint64_t seed = 1; seed <= (uint64_t)SEEDS; seed++) {
        corio_sim_report rep;
        corio_sim_config sc = {.seed = seed, .report = &rep, .quiet = 1};
        corio_config cfg = {.backend = CORIO_BACKEND_SIM, .sim = &sc};
        int r = corio_run(&cfg, fn, NULL, NULL);
        if (r != 0 || rep.failed)
            test_fail(__FILE__, __LINE__, "seed %llu: run ended with %d (%s), failed %d",
                      (unsigned long long)seed, r, corio_strerror(r), rep.failed);
    }
}

/* Let the seed reorder things: a yield, a short sleep, or nothing. */
static void jiggle(void)
{
    switch (corio_sim_rand() % 4) {
    case 0:
        corio_yield();
        break;
    case 1:
        corio_sleep_ns(corio_sim_rand() % (2 * MS));
        break;
    default:
        break;
    }
}

static void *run_all(corio_fn fn, void **args, size_t n)
{
    corio_task *ts[32];
    SIM_CHECK(n <= 32);
    for (size_t i = 0; i < n; i++)
        SIM_CHECK((ts[i] = corio_spawn(fn, args[i])) != NULL);
    SIM_CHECK(corio_gather(ts, n, NULL) == 0);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Queues                                                              */
/* ------------------------------------------------------------------ */

#define QP 4
#define QC 3
#define QN 40

static struct {
    corio_queue *q;
    unsigned got[QC], last[QC][QP], total;
    uint64_t sum;
} qs;

static void *q_producer(void *arg)
{
    unsigned p = (unsigned)(uintptr_t)arg;
    for (unsigned i = 1; i <= QN; i++) {
        jiggle();
        uint32_t item = p << 16 | i;
        SIM_CHECK(corio_queue_put(qs.q, &item) == 0);
    }
    return NULL;
}

static void *q_consumer(void *arg)
{
    unsigned c = (unsigned)(uintptr_t)arg;
    for (;;) {
        uint32_t item;
        int r = corio_queue_get(qs.q, &item);
        if (r == -ESHUTDOWN)
            return NULL;
        SIM_CHECK(r == 0);
        unsigned p = item >> 16, i = item & 0xffff;
        SIM_CHECK(p < QP && i >= 1 && i <= QN);
        SIM_CHECK(i > qs.last[c][p]); /* each producer's items in its order */
        qs.last[c][p] = i;
        qs.got[c]++;
        qs.total++;
        qs.sum += item;
        SIM_CHECK(corio_queue_task_done(qs.q) == 0);
        jiggle();
    }
}

static void *queue_main(void *arg)
{
    (void)arg;
    memset(&qs, 0, sizeof qs);
    corio_queue_config cfg = {.capacity = 1 + corio_sim_rand() % 4, .item_size = sizeof(uint32_t)};
    SIM_CHECK((qs.q = corio_queue_new(&cfg)) != NULL);
    corio_task *cons[QC], *prod[QP];
    for (uintptr_t c = 0; c < QC; c++)
        SIM_CHECK((cons[c] = corio_spawn(q_consumer, (void *)c)) != NULL);
    for (uintptr_t p = 0; p < QP; p++)
        SIM_CHECK((prod[p] = corio_spawn(q_producer, (void *)p)) != NULL);
    SIM_CHECK(corio_gather(prod, QP, NULL) == 0);
    SIM_CHECK(corio_queue_join(qs.q) == 0); /* every item taken and done */
    SIM_CHECK(qs.total == QP * QN);
    corio_queue_shutdown(qs.q, false);
    SIM_CHECK(corio_gather(cons, QC, NULL) == 0);
    uint64_t want = 0;
    for (unsigned p = 0; p < QP; p++)
        for (unsigned i = 1; i <= QN; i++)
            want += p << 16 | i;
    SIM_CHECK(qs.sum == want);
    SIM_CHECK(qs.got[0] + qs.got[1] + qs.got[2] == QP * QN);
    corio_queue_free(qs.q);
    return NULL;
}

TEST(queue_counts_and_order) { for_seeds(queue_main); }

/* ------------------------------------------------------------------ */
/* Locks and semaphores                                                */
/* ------------------------------------------------------------------ */

static struct {
    corio_lock lk;
    corio_sem sem;
    unsigned inside, max_inside, counter, acquired, timed_out;
} ls;

static void *lock_worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 15; i++) {
        int r;
        if (corio_sim_chance(0.3)) {
            /* A bounded wait: it gets the lock or times out, nothing else. */
            corio_deadline d = corio_deadline_push(corio_sim_rand() % 3);
            r = corio_lock_acquire(&ls.lk);
            corio_deadline_pop(d);
            SIM_CHECK(r == 0 || r == -CORIO_EDEADLINE);
        } else {
            r = corio_lock_acquire(&ls.lk);
            SIM_CHECK(r == 0);
        }
        if (r != 0) {
            ls.timed_out++;
            continue;
        }
        SIM_CHECK(corio_lock_locked(&ls.lk));
        SIM_CHECK(ls.inside == 0);
        ls.inside = 1;
        unsigned before = ls.counter;
        jiggle(); /* hold it across waits: nobody else may get in */
        SIM_CHECK(ls.counter == before);
        ls.counter = before + 1;
        ls.inside = 0;
        ls.acquired++;
        SIM_CHECK(corio_lock_release(&ls.lk) == 0);
    }
    return NULL;
}

static void *lock_main(void *arg)
{
    (void)arg;
    memset(&ls, 0, sizeof ls);
    corio_lock_init(&ls.lk);
    void *args[8] = {0};
    run_all(lock_worker, args, 8);
    SIM_CHECK(ls.counter == ls.acquired);
    SIM_CHECK(ls.acquired + ls.timed_out == 8 * 15);
    SIM_CHECK(!corio_lock_locked(&ls.lk));
    return NULL;
}

TEST(lock_mutual_exclusion) { for_seeds(lock_main); }

static void *sem_worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10; i++) {
        SIM_CHECK(corio_sem_acquire(&ls.sem) == 0);
        ls.inside++;
        SIM_CHECK(ls.inside <= 3);
        if (ls.inside > ls.max_inside)
            ls.max_inside = ls.inside;
        jiggle();
        ls.inside--;
        ls.acquired++;
        SIM_CHECK(corio_sem_release(&ls.sem) == 0);
    }
    return NULL;
}

static void *sem_main(void *arg)
{
    (void)arg;
    memset(&ls, 0, sizeof ls);
    corio_sem_init(&ls.sem, 3);
    void *args[10] = {0};
    run_all(sem_worker, args, 10);
    SIM_CHECK(ls.acquired == 100);
    SIM_CHECK(ls.max_inside >= 1 && ls.max_inside <= 3);
    SIM_CHECK(corio_sem_value(&ls.sem) == 3);
    return NULL;
}

TEST(semaphore_bounds_holders) { for_seeds(sem_main); }

/* ------------------------------------------------------------------ */
/* Events and barriers                                                 */
/* ------------------------------------------------------------------ */

static struct {
    corio_event ev;
    bool set;
    uint64_t set_at;
    unsigned woke, timed_out;
} es;

static void *event_waiter(void *arg)
{
    uint64_t timeout_ms = (uint64_t)(uintptr_t)arg, t0 = corio_now_ns();
    corio_deadline d = corio_deadline_push(timeout_ms);
    int r = corio_event_wait(&es.ev);
    corio_deadline_pop(d);
    if (r == 0) {
        SIM_CHECK(es.set && corio_now_ns() >= es.set_at);
        es.woke++;
    } else {
        SIM_CHECK(r == -CORIO_EDEADLINE);
        SIM_CHECK(corio_now_ns() - t0 >= timeout_ms * MS); /* never early */
        es.timed_out++;
    }
    return NULL;
}

static void *event_main(void *arg)
{
    (void)arg;
    memset(&es, 0, sizeof es);
    corio_event_init(&es.ev);
    corio_task *ts[10];
    for (uintptr_t i = 0; i < 10; i++)
        SIM_CHECK((ts[i] = corio_spawn(event_waiter, (void *)(i < 5 ? CORIO_NO_TIMEOUT : 1 + i * 3))) !=
                  NULL);
    corio_sleep_ms(corio_sim_rand() % 30);
    es.set = true;
    es.set_at = corio_now_ns();
    corio_event_set(&es.ev);
    SIM_CHECK(corio_gather(ts, 10, NULL) == 0);
    SIM_CHECK(es.woke + es.timed_out == 10);
    SIM_CHECK(es.woke >= 5); /* those without a deadline */
    SIM_CHECK(corio_event_is_set(&es.ev));
    return NULL;
}

TEST(event_wakes_every_waiter_once) { for_seeds(event_main); }

#define BP 5
#define ROUNDS 8

static struct {
    corio_barrier b;
    unsigned arrived[ROUNDS], seen_index[ROUNDS];
} bs;

static void *barrier_worker(void *arg)
{
    (void)arg;
    for (unsigned k = 0; k < ROUNDS; k++) {
        jiggle();
        bs.arrived[k]++;
        int r = corio_barrier_wait(&bs.b);
        SIM_CHECK(r >= 0 && r < BP);
        SIM_CHECK(!(bs.seen_index[k] & 1u << r)); /* each index once a round */
        bs.seen_index[k] |= 1u << r;
        SIM_CHECK(bs.arrived[k] == BP); /* nobody leaves before all came */
    }
    return NULL;
}

static void *barrier_main(void *arg)
{
    (void)arg;
    memset(&bs, 0, sizeof bs);
    SIM_CHECK(corio_barrier_init(&bs.b, BP) == 0);
    void *args[BP] = {0};
    run_all(barrier_worker, args, BP);
    for (unsigned k = 0; k < ROUNDS; k++)
        SIM_CHECK(bs.seen_index[k] == (1u << BP) - 1);
    SIM_CHECK(corio_barrier_waiting(&bs.b) == 0);
    return NULL;
}

TEST(barrier_rounds) { for_seeds(barrier_main); }

/* ------------------------------------------------------------------ */
/* Channels (on the loop's own thread)                                 */
/* ------------------------------------------------------------------ */

#define CS 3
#define CN 30

static struct {
    corio_channel *ch;
    unsigned last[2][CS], total;
} cs;

static void *ch_sender(void *arg)
{
    unsigned s = (unsigned)(uintptr_t)arg;
    for (unsigned i = 1; i <= CN; i++) {
        jiggle();
        uint32_t item = s << 16 | i;
        SIM_CHECK(corio_channel_send(cs.ch, &item) == 0);
    }
    return NULL;
}

static void *ch_receiver(void *arg)
{
    unsigned c = (unsigned)(uintptr_t)arg;
    for (;;) {
        uint32_t item;
        int r = corio_channel_recv(cs.ch, &item);
        if (r == -ESHUTDOWN)
            return NULL;
        SIM_CHECK(r == 0);
        unsigned s = item >> 16, i = item & 0xffff;
        SIM_CHECK(s < CS && i > cs.last[c][s]);
        cs.last[c][s] = i;
        cs.total++;
        jiggle();
    }
}

static void *channel_main(void *arg)
{
    (void)arg;
    memset(&cs, 0, sizeof cs);
    SIM_CHECK((cs.ch = corio_channel_new(1 + corio_sim_rand() % 3, sizeof(uint32_t))) != NULL);
    corio_task *rx[2], *tx[CS];
    for (uintptr_t c = 0; c < 2; c++)
        SIM_CHECK((rx[c] = corio_spawn(ch_receiver, (void *)c)) != NULL);
    for (uintptr_t s = 0; s < CS; s++)
        SIM_CHECK((tx[s] = corio_spawn(ch_sender, (void *)s)) != NULL);
    SIM_CHECK(corio_gather(tx, CS, NULL) == 0);
    SIM_CHECK(corio_channel_close(cs.ch) == 0);
    SIM_CHECK(corio_gather(rx, 2, NULL) == 0);
    SIM_CHECK(cs.total == CS * CN);
    corio_channel_free(cs.ch);
    return NULL;
}

TEST(channel_on_one_thread) { for_seeds(channel_main); }

/* ------------------------------------------------------------------ */
/* Groups, shields, wait, as_completed, time-outs                      */
/* ------------------------------------------------------------------ */

static struct {
    unsigned finished, cancelled, failed_at;
    uint64_t fail_time;
} gs;

static void *gmember(void *arg)
{
    unsigned i = (unsigned)(uintptr_t)arg;
    int r = corio_sleep_ms(1 + corio_sim_rand() % 20);
    if (r == -ECANCELED) {
        gs.cancelled++;
        return corio_fail(-ECANCELED);
    }
    SIM_CHECK(r == 0);
    if (i == gs.failed_at) {
        gs.fail_time = corio_now_ns();
        return corio_fail(-EIO);
    }
    gs.finished++;
    return NULL;
}

static void *group_main(void *arg)
{
    (void)arg;
    memset(&gs, 0, sizeof gs);
    gs.failed_at = (unsigned)(corio_sim_rand() % 6);
    corio_group g;
    SIM_CHECK(corio_group_init(&g) == 0);
    for (uintptr_t i = 0; i < 6; i++)
        SIM_CHECK(corio_group_spawn(&g, gmember, (void *)i) != NULL);
    SIM_CHECK(corio_group_join(&g) == -EIO);
    SIM_CHECK(corio_group_failed(&g) == 1);
    SIM_CHECK(gs.finished + gs.cancelled == 5); /* every other member ended, one way or the other */
    SIM_CHECK(gs.fail_time != 0);
    return NULL;
}

TEST(group_cancels_on_first_failure) { for_seeds(group_main); }

static void *shielded(void *arg)
{
    int *state = arg;
    corio_shield s = corio_shield_push(CORIO_NO_TIMEOUT);
    int r = corio_sleep_ms(10); /* the cancel arrives meanwhile: held back */
    corio_shield_pop(s);
    SIM_CHECK(r == 0);
    *state = 1;
    r = corio_sleep_ms(10);
    SIM_CHECK(r == -ECANCELED); /* delivered at the next wait */
    *state = 2;
    return NULL;
}

static void *shield_main(void *arg)
{
    (void)arg;
    int state = 0;
    corio_task *t = corio_spawn(shielded, &state);
    corio_sleep_ms(corio_sim_rand() % 9);
    SIM_CHECK(corio_task_cancel(t) == 0);
    SIM_CHECK(state == 0);
    SIM_CHECK(corio_task_join(t, NULL) == 0);
    SIM_CHECK(state == 2);
    return NULL;
}

TEST(shield_holds_a_cancel_back) { for_seeds(shield_main); }

static uint64_t ended_at[8];

static void *timed(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    SIM_CHECK(corio_sleep_ms(5 + (corio_sim_rand() % 40)) == 0);
    ended_at[i] = corio_now_ns();
    return (void *)i;
}

static void *wait_main(void *arg)
{
    (void)arg;
    memset(ended_at, 0, sizeof ended_at);
    corio_task *ts[8];
    for (uintptr_t i = 0; i < 8; i++)
        SIM_CHECK((ts[i] = corio_spawn(timed, (void *)i)) != NULL);
    /* 2 ms: nothing can have ended (the shortest sleeps 5). */
    uint64_t t0 = corio_now_ns();
    SIM_CHECK(corio_wait(ts, 8, CORIO_WAIT_FIRST_COMPLETED, 2) == 0);
    SIM_CHECK(corio_now_ns() - t0 >= 2 * MS);
    int n = corio_wait(ts, 8, CORIO_WAIT_FIRST_COMPLETED, CORIO_NO_TIMEOUT);
    SIM_CHECK(n >= 1);
    unsigned done = 0;
    for (int i = 0; i < 8; i++)
        done += corio_task_done(ts[i]);
    SIM_CHECK(done == (unsigned)n);
    /* as_completed: each task once, in the order they ended. */
    corio_as_completed it;
    SIM_CHECK(corio_as_completed_init(&it, ts, 8, CORIO_NO_TIMEOUT) == 0);
    uint64_t prev = 0;
    unsigned seen = 0;
    corio_task *t;
    int r;
    while ((r = corio_as_completed_next(&it, &t)) == 1) {
        void *res;
        SIM_CHECK(corio_task_join(t, &res) == 0);
        uintptr_t i = (uintptr_t)res;
        SIM_CHECK(i < 8 && !(seen & 1u << i));
        seen |= 1u << i;
        SIM_CHECK(ended_at[i] >= prev);
        prev = ended_at[i];
    }
    SIM_CHECK(r == 0 && seen == 0xff);
    corio_as_completed_end(&it);
    return NULL;
}

TEST(wait_and_as_completed_in_end_order) { for_seeds(wait_main); }

static struct {
    unsigned finished;
} ts_state;

static void *sleeper_for(void *arg)
{
    int r = corio_sleep_ms((uint64_t)(uintptr_t)arg);
    if (r == 0)
        ts_state.finished++;
    return r == 0 ? NULL : corio_fail(r);
}

static void *timeout_main(void *arg)
{
    (void)arg;
    ts_state.finished = 0;
    unsigned ok = 0, timed_out = 0;
    for (int i = 0; i < 10; i++) {
        uint64_t dur = 1 + corio_sim_rand() % 20, limit = 1 + corio_sim_rand() % 20;
        uint64_t t0 = corio_now_ns();
        corio_task *t = corio_spawn(sleeper_for, (void *)(uintptr_t)dur);
        int r = corio_task_wait_for(t, limit, NULL);
        uint64_t took = corio_now_ns() - t0;
        if (r == 0) {
            ok++;
            SIM_CHECK(took >= dur * MS);
        } else {
            SIM_CHECK(r == -CORIO_EDEADLINE);
            timed_out++;
            SIM_CHECK(took >= limit * MS);
        }
    }
    SIM_CHECK(ok + timed_out == 10);
    SIM_CHECK(ts_state.finished >=
              ok); /* a task can finish its sleep and still be cancelled before it returns */
    return NULL;
}

TEST(wait_for_time_outs) { for_seeds(timeout_main); }
