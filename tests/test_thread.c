/*
 * Threads and the loop (src/core/threadpool.c, src/core/loop_ref.c): corio_to_thread's result, many
 * concurrent calls, cancellation and deadlines while a call is queued and
 * while it runs (the task waits for a running function before it returns),
 * the pool size from corio_config and the environment, and
 * corio_loop_ref_call_soon: delivery exactly once and in per-thread order
 * from several threads, inside a task that may suspend, -ESHUTDOWN after the
 * loop ended, accepted calls never lost at the loop's end (queued unseen or
 * racing it), and no stall report while a to_thread call runs or another
 * thread holds a loop reference (but one once every reference is back).
 */
#include "runner.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

static void *run_with(const corio_config *cfg, corio_fn fn, void *arg)
{
    void *res = NULL;
    int r = corio_run(cfg, fn, arg, &res);
    if (r != 0)
        test_fail(__FILE__, __LINE__, "corio_run failed: %d (%s)", r, corio_strerror(r));
    return res;
}

/* ---- result ------------------------------------------------------------ */

static pthread_t loop_thread;

static void *double_it(void *arg)
{
    CHECK(!pthread_equal(pthread_self(), loop_thread));
    return (void *)((intptr_t)arg * 2);
}

static void *result_main(void *arg)
{
    void *res = NULL;
    CHECK_ERR(corio_to_thread(double_it, (void *)21, &res), 0);
    CHECK_EQ((intptr_t)res, 42);
    CHECK_ERR(corio_to_thread(double_it, (void *)1, NULL), 0);
    CHECK_ERR(corio_to_thread(NULL, NULL, &res), -EINVAL);
    return arg;
}

TEST(to_thread_returns_the_result)
{
    loop_thread = pthread_self();
    void *res = (void *)1;
    CHECK_ERR(corio_to_thread(double_it, NULL, &res), -EPERM);
    CHECK(res == NULL);
    test_run(result_main, NULL);
}

/* ---- 1,000 concurrent calls --------------------------------------------- */

static atomic_int running_now, running_max;

static void note_running(void)
{
    int n = atomic_fetch_add(&running_now, 1) + 1;
    int m = atomic_load(&running_max);
    while (n > m && !atomic_compare_exchange_weak(&running_max, &m, n)) {
    }
}

static void *busy_square(void *arg)
{
    note_running();
    usleep(200);
    atomic_fetch_sub(&running_now, 1);
    intptr_t v = (intptr_t)arg;
    return (void *)(v * v);
}

static void *square_task(void *arg)
{
    void *res = NULL;
    CHECK_ERR(corio_to_thread(busy_square, arg, &res), 0);
    CHECK_EQ((intptr_t)res, (intptr_t)arg * (intptr_t)arg);
    return res;
}

static void *thousand_main(void *arg)
{
    enum { N = 1000 };
    static corio_task *t[N];
    static void *res[N];
    for (intptr_t i = 0; i < N; i++)
        CHECK((t[i] = corio_spawn(square_task, (void *)i)) != NULL);
    CHECK_OK(corio_gather(t, N, res));
    for (intptr_t i = 0; i < N; i++)
        CHECK_EQ((intptr_t)res[i], i * i);
    return arg;
}

TEST(thousand_concurrent_to_thread_calls)
{
    unsetenv("CORIO_THREADPOOL_SIZE");
    atomic_store(&running_max, 0);
    test_run(thousand_main, NULL);
    /* The pool is bounded: the default size, and more than one worker did
     * run at once. */
    CHECK(atomic_load(&running_max) <= 4);
    CHECK(atomic_load(&running_max) >= 2);
}

/* ---- cancellation and deadlines ----------------------------------------- */

static atomic_bool release_blockers;
static atomic_int blockers_started;

/* Occupies a worker until the test lets it go. */
static void *blocker(void *arg)
{
    atomic_fetch_add(&blockers_started, 1);
    while (!atomic_load(&release_blockers))
        usleep(1000);
    return arg;
}

static void *blocker_task(void *arg)
{
    void *res = NULL;
    CHECK_ERR(corio_to_thread(blocker, arg, &res), 0);
    CHECK(res == arg);
    return NULL;
}

static atomic_bool never_ran_flag;
static void *must_not_run(void *arg)
{
    atomic_store(&never_ran_flag, true);
    return arg;
}

typedef struct queued_ctx {
    bool use_deadline;
    int rc;
    void *res;
    uint64_t took_ms;
} queued_ctx;

static void *queued_victim(void *arg)
{
    queued_ctx *c = arg;
    c->res = (void *)1;
    uint64_t t0 = test_ms();
    if (c->use_deadline) {
        corio_deadline d = corio_deadline_push(30);
        c->rc = corio_to_thread(must_not_run, (void *)7, &c->res);
        corio_deadline_pop(d);
    } else {
        c->rc = corio_to_thread(must_not_run, (void *)7, &c->res);
    }
    c->took_ms = test_ms() - t0;
    return NULL;
}

static void *queued_main(void *arg)
{
    queued_ctx *c = arg;
    atomic_store(&release_blockers, false);
    atomic_store(&blockers_started, 0);
    atomic_store(&never_ran_flag, false);
    corio_task *b[2];
    for (int i = 0; i < 2; i++)
        CHECK((b[i] = corio_spawn(blocker_task, (void *)(intptr_t)(i + 1))) != NULL);
    /* Both workers of the 2-thread pool are busy before the victim queues. */
    for (int i = 0; i < 2000 && atomic_load(&blockers_started) < 2; i++)
        CHECK_OK(corio_sleep_ms(1));
    CHECK_EQ(atomic_load(&blockers_started), 2);
    corio_task *v = corio_spawn(queued_victim, c);
    CHECK(v != NULL);
    if (!c->use_deadline) {
        CHECK_OK(corio_sleep_ms(20));
        CHECK_OK(corio_task_cancel(v));
    }
    CHECK_OK(corio_task_join(v, NULL));
    atomic_store(&release_blockers, true);
    CHECK_OK(corio_gather(b, 2, NULL));
    return NULL;
}

static void check_queued(bool use_deadline)
{
    queued_ctx c = {.use_deadline = use_deadline};
    corio_config cfg = {.threadpool_size = 2};
    run_with(&cfg, queued_main, &c);
    CHECK_ERR(c.rc, use_deadline ? -CORIO_EDEADLINE : -ECANCELED);
    CHECK(c.res == NULL);
    CHECK(!atomic_load(&never_ran_flag)); /* dropped from the queue */
    CHECK(c.took_ms < 1000);              /* and at once, not when a worker freed up */
}

TEST(cancel_while_queued_drops_the_call) { check_queued(false); }
TEST(deadline_while_queued_drops_the_call) { check_queued(true); }

typedef struct running_ctx {
    bool use_deadline;
    atomic_bool started;
    _Atomic uint64_t release_at_ms; /* when the function may finish */
    int rc;
    void *res;
    uint64_t written_at_ms;  /* when the function wrote into buf */
    uint64_t returned_at_ms; /* when corio_to_thread returned */
    char *buf;               /* the caller's stack memory the function writes into */
} running_ctx;

/* Writes into the caller's stack only once the cancel or deadline has had
 * time to land: returning before it is done would let it scribble over a
 * dead frame. */
static void *slow_writer(void *arg)
{
    running_ctx *c = arg;
    atomic_store(&c->started, true);
    while (test_ms() < atomic_load(&c->release_at_ms))
        usleep(5 * 1000);
    c->written_at_ms = test_ms();
    memcpy(c->buf, "written", 8);
    return (void *)0x5eed;
}

static void *running_victim(void *arg)
{
    running_ctx *c = arg;
    char buf[16] = "";
    c->buf = buf;
    if (c->use_deadline) {
        /* The deadline must land while the function runs, not while it
         * waits for a worker. On a slow machine (valgrind, one busy CPU)
         * a worker may take longer than the deadline to pick the call up;
         * then the call is dropped unrun, and we try again with a longer
         * deadline. The function always outlives its deadline. */
        for (uint64_t ms = 50;; ms *= 2) {
            CHECK(ms <= 60 * 1000);
            atomic_store(&c->release_at_ms, test_ms() + ms + 150);
            corio_deadline d = corio_deadline_push(ms);
            c->rc = corio_to_thread(slow_writer, c, &c->res);
            corio_deadline_pop(d);
            if (atomic_load(&c->started))
                break;
            CHECK_ERR(c->rc, -CORIO_EDEADLINE); /* dropped from the queue, unrun */
            CHECK(c->res == NULL);
            CHECK_STR(buf, "");
        }
    } else {
        atomic_store(&c->release_at_ms, UINT64_MAX); /* until cancelled */
        c->rc = corio_to_thread(slow_writer, c, &c->res);
    }
    c->returned_at_ms = test_ms();
    CHECK_STR(buf, "written");
    /* The cancel stays in force; a deadline scope that was popped does not. */
    if (!c->use_deadline)
        CHECK_ERR(corio_yield(), -ECANCELED);
    return NULL;
}

static void *running_main(void *arg)
{
    running_ctx *c = arg;
    corio_task *v = corio_spawn(running_victim, c);
    CHECK(v != NULL);
    if (!c->use_deadline) {
        while (!atomic_load(&c->started))
            CHECK_OK(corio_sleep_ms(1));
        CHECK_OK(corio_task_cancel(v));
        /* Let the function finish only after the cancel was delivered. */
        atomic_store(&c->release_at_ms, test_ms() + 150);
    }
    CHECK_OK(corio_task_join(v, NULL));
    return NULL;
}

static void check_running(bool use_deadline)
{
    running_ctx c = {.use_deadline = use_deadline};
    test_run(running_main, &c);
    CHECK_ERR(c.rc, use_deadline ? -CORIO_EDEADLINE : -ECANCELED);
    CHECK(c.res == (void *)0x5eed);             /* the result is handed back all the same */
    CHECK(c.returned_at_ms >= c.written_at_ms); /* waited for the function */
}

TEST(cancel_while_running_waits_for_the_function) { check_running(false); }
TEST(deadline_while_running_waits_for_the_function) { check_running(true); }

/* A call that finished before the cancel is looked at keeps its result. */
static void *finished_main(void *arg)
{
    (void)arg;
    void *res = NULL;
    CHECK_OK(corio_task_cancel(corio_current()));
    CHECK_ERR(corio_to_thread(double_it, (void *)2, &res), -ECANCELED); /* checked before queueing */
    CHECK(res == NULL);
    return NULL;
}

TEST(already_cancelled_task_does_not_queue)
{
    loop_thread = pthread_self();
    test_run(finished_main, NULL);
}

/* ---- pool size --------------------------------------------------------- */

static void *pause_50ms(void *arg)
{
    note_running();
    usleep(50 * 1000);
    atomic_fetch_sub(&running_now, 1);
    return arg;
}

static void *pause_task(void *arg)
{
    CHECK_OK(corio_to_thread(pause_50ms, arg, NULL));
    return NULL;
}

static void *size_main(void *arg)
{
    corio_task *t[12];
    for (int i = 0; i < 12; i++)
        CHECK((t[i] = corio_spawn(pause_task, NULL)) != NULL);
    CHECK_OK(corio_gather(t, 12, NULL));
    return arg;
}

static int max_parallel(unsigned cfg_size, const char *env)
{
    if (env)
        setenv("CORIO_THREADPOOL_SIZE", env, 1);
    else
        unsetenv("CORIO_THREADPOOL_SIZE");
    atomic_store(&running_max, 0);
    corio_config cfg = {.threadpool_size = cfg_size};
    run_with(&cfg, size_main, NULL);
    return atomic_load(&running_max);
}

TEST(pool_size_from_config)
{
    CHECK_EQ(max_parallel(3, NULL), 3);
    CHECK_EQ(max_parallel(6, NULL), 6);
    CHECK_EQ(max_parallel(1, NULL), 2); /* at least one worker per class */
    CHECK_EQ(max_parallel(0, "5"), 5);  /* 0: the environment */
    CHECK_EQ(max_parallel(3, "5"), 3);  /* the config wins */
    CHECK_EQ(max_parallel(0, NULL), 4); /* the default */
}

/* ---- call_soon_threadsafe ---------------------------------------------- */

enum { POSTERS = 4, PER_POSTER = 1000 };

typedef struct fanin {
    corio_event all_in;
    unsigned next_seq[POSTERS];
    unsigned delivered;
    bool order_broken, off_loop;
    corio_loop_ref *refs[POSTERS];
} fanin;

static fanin F;

static void on_call(void *arg)
{
    uintptr_t v = (uintptr_t)arg;
    unsigned tid = (unsigned)(v >> 16), seq = (unsigned)(v & 0xffff);
    if (!pthread_equal(pthread_self(), loop_thread) || !corio_current())
        F.off_loop = true;
    if (tid >= POSTERS || seq != F.next_seq[tid])
        F.order_broken = true;
    else
        F.next_seq[tid]++;
    if (++F.delivered == POSTERS * PER_POSTER)
        corio_event_set(&F.all_in);
}

static void *poster(void *arg)
{
    uintptr_t tid = (uintptr_t)arg;
    corio_loop_ref *ref = F.refs[tid];
    for (uintptr_t i = 0; i < PER_POSTER; i++) {
        int r = corio_loop_ref_call_soon(ref, on_call, (void *)(tid << 16 | i));
        if (r != 0)
            return (void *)(intptr_t)r;
        if (i % 128 == 0)
            sched_yield(); /* let the loop drain in several batches */
    }
    corio_loop_ref_release(ref);
    return NULL;
}

static void *join_thread(void *arg)
{
    void *res = NULL;
    pthread_join(*(pthread_t *)arg, &res);
    return res;
}

static void *fanin_main(void *arg)
{
    (void)arg;
    corio_event_init(&F.all_in);
    pthread_t th[POSTERS];
    for (uintptr_t i = 0; i < POSTERS; i++) {
        CHECK((F.refs[i] = corio_loop_ref_get()) != NULL);
        CHECK_EQ(pthread_create(&th[i], NULL, poster, (void *)i), 0);
    }
    corio_deadline d = corio_deadline_push(30000);
    CHECK_OK(corio_event_wait(&F.all_in));
    corio_deadline_pop(d);
    for (int i = 0; i < POSTERS; i++) {
        void *res = (void *)1;
        CHECK_OK(corio_to_thread(join_thread, &th[i], &res)); /* joined off the loop thread */
        CHECK(res == NULL);
    }
    return NULL;
}

TEST(call_soon_threadsafe_from_four_threads)
{
    loop_thread = pthread_self();
    memset(&F, 0, sizeof F);
    test_run(fanin_main, NULL);
    CHECK_EQ(F.delivered, POSTERS * PER_POSTER); /* nothing extra after the event either */
    CHECK(!F.order_broken);
    CHECK(!F.off_loop);
    for (int i = 0; i < POSTERS; i++)
        CHECK_EQ(F.next_seq[i], PER_POSTER);
}

/* The callback runs as a task: it may suspend. */
static int slept_in_callback;
static void sleepy_call(void *arg)
{
    corio_event *e = arg;
    slept_in_callback = corio_sleep_ms(5);
    corio_event_set(e);
}

static void *from_loop_thread_main(void *arg)
{
    (void)arg;
    corio_event e;
    corio_event_init(&e);
    corio_loop_ref *ref = corio_loop_ref_get();
    CHECK(ref != NULL);
    slept_in_callback = 1;
    CHECK_ERR(corio_loop_ref_call_soon(ref, sleepy_call, &e), 0);
    CHECK_ERR(corio_loop_ref_call_soon(NULL, sleepy_call, &e), -EINVAL);
    CHECK_ERR(corio_loop_ref_call_soon(ref, NULL, &e), -EINVAL);
    corio_loop_ref_release(ref);
    CHECK_OK(corio_event_wait(&e));
    CHECK_EQ(slept_in_callback, 0);
    return NULL;
}

TEST(callback_runs_as_a_task_and_may_suspend) { test_run(from_loop_thread_main, NULL); }

/* ---- after the loop ended ------------------------------------------------ */

static void count_call(void *arg) { (*(unsigned *)arg)++; }

static void *keep_ref_main(void *arg)
{
    (void)arg;
    return corio_loop_ref_get();
}

static void *post_from_thread(void *arg)
{
    static unsigned dummy;
    return (void *)(intptr_t)corio_loop_ref_call_soon(arg, count_call, &dummy);
}

TEST(call_after_loop_ended_is_rejected)
{
    errno = 0;
    CHECK(corio_loop_ref_get() == NULL);
    CHECK_EQ(errno, EPERM);
    corio_loop_ref *ref = run_with(NULL, keep_ref_main, NULL);
    CHECK(ref != NULL);
    unsigned n = 0;
    CHECK_ERR(corio_loop_ref_call_soon(ref, count_call, &n), -ESHUTDOWN);
    pthread_t th;
    void *res = NULL;
    CHECK_EQ(pthread_create(&th, NULL, post_from_thread, ref), 0);
    pthread_join(th, &res);
    CHECK_ERR((intptr_t)res, -ESHUTDOWN);
    CHECK_EQ(n, 0);
    corio_loop_ref_release(ref); /* the last reference: frees it */
}

/* A thread keeps posting while the loop ends: every accepted call ran,
 * exactly once, none after -ESHUTDOWN. */
typedef struct race {
    corio_loop_ref *ref;
    unsigned accepted; /* poster thread only */
    unsigned ran;      /* loop thread only */
    int last_err;
    atomic_bool go;
    corio_event first_ran; /* set by the first call: the race is on */
} race;

static void race_call(void *arg)
{
    race *r = arg;
    r->ran++;
    corio_event_set(&r->first_ran);
    /* Started after the main task returned: the task is cancelled. */
    (void)corio_yield();
}

static void *race_poster(void *arg)
{
    race *r = arg;
    while (!atomic_load(&r->go))
        usleep(100);
    for (;;) {
        int e = corio_loop_ref_call_soon(r->ref, race_call, r);
        if (e != 0) {
            r->last_err = e;
            break;
        }
        /* Calls keep arriving while the loop ends.  Paced: a thread that
         * queues faster than the loop runs calls grows the queue without
         * bound (there is no back-pressure, as in asyncio). */
        r->accepted++;
        usleep(5);
    }
    corio_loop_ref_release(r->ref);
    return NULL;
}

static void *race_main(void *arg)
{
    race *r = arg;
    CHECK((r->ref = corio_loop_ref_get()) != NULL);
    pthread_t *th = malloc(sizeof *th);
    CHECK(th != NULL);
    corio_event_init(&r->first_ran);
    CHECK_EQ(pthread_create(th, NULL, race_poster, r), 0);
    atomic_store(&r->go, true);
    /* Return once calls are flowing (not after a fixed time, which a
     * loaded machine can spend before the poster thread runs at all), so
     * the loop ends with the poster still posting. */
    CHECK_OK(corio_event_wait(&r->first_ran));
    return th; /* joined after the loop */
}

TEST(calls_racing_the_loop_end_are_never_lost)
{
    for (int round = 0; round < 5; round++) {
        race r = {0};
        pthread_t *th = run_with(NULL, race_main, &r);
        pthread_join(*th, NULL);
        free(th);
        CHECK_ERR(r.last_err, -ESHUTDOWN);
        CHECK(r.accepted > 0);
        CHECK_EQ(r.ran, r.accepted);
    }
}

/* Calls accepted while the loop thread was busy, right before the main
 * task returns, are still in the queue when the loop reaches its end: they
 * must run (in a cancelled task), not be dropped. */
typedef struct tail_calls {
    corio_loop_ref *ref;
    atomic_int accepted;
    int ran, ran_cancelled;
} tail_calls;

static void tail_call(void *arg)
{
    tail_calls *tc = arg;
    tc->ran++;
    if (corio_cancelled())
        tc->ran_cancelled++;
}

static void *tail_poster(void *arg)
{
    tail_calls *tc = arg;
    for (int i = 0; i < 100; i++)
        if (corio_loop_ref_call_soon(tc->ref, tail_call, tc) == 0)
            atomic_fetch_add(&tc->accepted, 1);
    corio_loop_ref_release(tc->ref);
    return NULL;
}

static void *tail_main(void *arg)
{
    tail_calls *tc = arg;
    CHECK((tc->ref = corio_loop_ref_get()) != NULL);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, tail_poster, tc), 0);
    /* Block the loop thread on purpose: the calls pile up unseen. */
    pthread_join(th, NULL);
    CHECK_EQ(atomic_load(&tc->accepted), 100);
    return NULL;
}

TEST(calls_queued_at_the_loop_end_still_run)
{
    tail_calls tc = {0};
    run_with(NULL, tail_main, &tc);
    CHECK_EQ(tc.ran, 100);
    CHECK_EQ(tc.ran_cancelled, 100); /* the main task had returned */
}

/* ---- stall detection ----------------------------------------------------- */

static atomic_bool sleeper_started;

static void *sleep_300ms(void *arg)
{
    atomic_store(&sleeper_started, true);
    usleep(300 * 1000);
    return arg;
}

static void *cancel_once_running(void *arg)
{
    while (!atomic_load(&sleeper_started))
        CHECK_OK(corio_sleep_ms(1));
    CHECK_OK(corio_task_cancel(arg));
    return NULL;
}

static void *stall_main(void *arg)
{
    void *res = NULL;
    /* Nothing else is alive, no timer is armed, no I/O is in flight. */
    CHECK_ERR(corio_to_thread(sleep_300ms, (void *)3, &res), 0);
    CHECK(res == (void *)3);
    /* Interrupted while running (once the worker has started fn, however
     * long that takes on a slow machine): the task waits for the worker,
     * alone, still not a stall. */
    atomic_store(&sleeper_started, false);
    CHECK_OK(corio_task_detach(corio_spawn(cancel_once_running, corio_current())));
    CHECK_ERR(corio_to_thread(sleep_300ms, (void *)4, &res), -ECANCELED);
    CHECK(res == (void *)4);
    return arg;
}

TEST(no_stall_report_while_to_thread_runs) { test_run(stall_main, NULL); }

static void set_event(void *arg) { corio_event_set(arg); }

static void *late_poster(void *arg)
{
    void **a = arg;
    usleep(100 * 1000);
    int r = corio_loop_ref_call_soon(a[0], set_event, a[1]);
    corio_loop_ref_release(a[0]);
    return (void *)(intptr_t)r;
}

static void *held_ref_main(void *arg)
{
    (void)arg;
    corio_event e;
    corio_event_init(&e);
    void *a[2] = {corio_loop_ref_get(), &e};
    CHECK(a[0] != NULL);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, late_poster, a), 0);
    /* Only the other thread can end this wait: while it holds a reference
     * the loop must block, not report a stall. */
    CHECK_OK(corio_event_wait(&e));
    void *res = (void *)1;
    CHECK_OK(corio_to_thread(join_thread, &th, &res));
    CHECK(res == NULL);
    return NULL;
}

TEST(no_stall_report_while_another_thread_holds_a_ref) { test_run(held_ref_main, NULL); }

/* Without a reference held elsewhere, the same wait is a real stall. */
static void *true_stall_main(void *arg)
{
    (void)arg;
    corio_event e;
    corio_event_init(&e);
    corio_loop_ref *ref = corio_loop_ref_get();
    corio_loop_ref_release(ref);
    (void)corio_event_wait(&e);
    return NULL;
}

TEST(stall_still_reported_once_refs_are_released)
{
    CHECK_ERR(corio_run(NULL, true_stall_main, NULL, NULL), -CORIO_EDEADLOCK);
}

/* The reference is given back while the loop already sleeps in the
 * backend (it saw the reference held and so did not report a stall then):
 * the release must wake it so the stall is still reported, not hang. */
static void *late_releaser(void *ref)
{
    usleep(100 * 1000);
    corio_loop_ref_release(ref);
    return NULL;
}

static void *late_release_main(void *arg)
{
    (void)arg;
    corio_event e;
    corio_event_init(&e);
    corio_loop_ref *ref = corio_loop_ref_get();
    CHECK(ref != NULL);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, late_releaser, ref), 0);
    CHECK_EQ(pthread_detach(th), 0);
    (void)corio_event_wait(&e);
    return NULL;
}

TEST(stall_reported_when_the_last_ref_is_released_while_the_loop_sleeps)
{
    alarm(10); /* the bug is a hang */
    CHECK_ERR(corio_run(NULL, late_release_main, NULL, NULL), -CORIO_EDEADLOCK);
}
