/*
 * Tasks started on another loop (src/core/remote.c): corio_loop_ref_spawn,
 * corio_remote_join/_detach/_cancel and corio_loop_ref_call between two
 * loops on two threads and from plain threads.  Results and errors travel
 * back exactly, a cancelled or timed-out joiner cancels the remote task
 * and awaits it, a loop that ends before the task starts gives
 * -ESHUTDOWN, detached tasks and handles joined in every order against the
 * task's end and the loop's end free everything (ASan), a joiner's loop
 * with nothing else to do is not stalled, and a thousand remote tasks run
 * at once.
 */
#include "runner.h"

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>

/* ---- a loop on a thread of its own ------------------------------------ */

/* A loop that serves calls until told to stop: its main task waits on a
 * channel, so it neither ends nor stalls meanwhile. */
typedef struct server {
    pthread_t th;
    corio_channel *stop;
    corio_loop_ref *ref;
    sem_t ready;
} server;

static server S; /* the target loop of most tests */

static void *server_main(void *arg)
{
    server *s = arg;
    s->ref = corio_loop_ref_get();
    CHECK(s->ref != NULL);
    sem_post(&s->ready);
    void *item;
    CHECK_OK(corio_channel_recv(s->stop, &item));
    return NULL;
}

static void *server_thread(void *arg)
{
    int r = corio_run(NULL, server_main, arg, NULL);
    if (r != 0)
        test_fail(__FILE__, __LINE__, "server loop failed: %s", corio_strerror(r));
    return NULL;
}

static void server_start(server *s)
{
    s->stop = corio_channel_new(1, 0);
    CHECK(s->stop != NULL);
    sem_init(&s->ready, 0, 0);
    CHECK_EQ(pthread_create(&s->th, NULL, server_thread, s), 0);
    while (sem_wait(&s->ready) != 0)
        ;
}

/* Tell the loop to end and wait until it has (a plain thread). */
static void server_end(server *s)
{
    CHECK_OK(corio_channel_try_send(s->stop, NULL));
    CHECK_EQ(pthread_join(s->th, NULL), 0);
    corio_channel_free(s->stop);
    sem_destroy(&s->ready);
}

static void server_stop(server *s)
{
    server_end(s);
    corio_loop_ref_release(s->ref);
}

static bool on_server(void) { return pthread_equal(pthread_self(), S.th); }

/* ---- results, errors, ping-pong ----------------------------------------- */

static corio_loop_ref *client_ref; /* the calling loop, for calls back */
static pthread_t client_th;

static void *twice(void *arg)
{
    CHECK(pthread_equal(pthread_self(), client_th));
    return (void *)((uintptr_t)arg * 2);
}

/* On the server: call back into the client loop, then answer. */
static void *ping(void *arg)
{
    CHECK(on_server());
    void *back = NULL;
    CHECK_ERR(corio_loop_ref_call(client_ref, twice, arg, &back), 0);
    CHECK_EQ((uintptr_t)back, (uintptr_t)arg * 2);
    return (void *)((uintptr_t)back + 1);
}

#define PINGS 10000

static void *ping_pong_main(void *arg)
{
    (void)arg;
    client_th = pthread_self();
    client_ref = corio_loop_ref_get();
    CHECK(client_ref != NULL);
    unsigned n = TEST_SCALE(PINGS);
    for (uintptr_t i = 0; i < n; i++) {
        void *res = NULL;
        CHECK_ERR(corio_loop_ref_call(S.ref, ping, (void *)i, &res), 0);
        CHECK_EQ((uintptr_t)res, 2 * i + 1);
    }
    corio_loop_ref_release(client_ref);
    return NULL;
}

TEST(two_loops_ping_pong_ten_thousand_calls)
{
    server_start(&S);
    test_run(ping_pong_main, NULL);
    server_stop(&S);
}

static void *fails_with_value(void *arg)
{
    CHECK(on_server());
    corio_fail((int)(intptr_t)arg);
    return (void *)42;
}

static void *errors_main(void *arg)
{
    (void)arg;
    void *res = NULL;
    CHECK_ERR(corio_loop_ref_call(S.ref, fails_with_value, (void *)(intptr_t)-EPROTO, &res), -EPROTO);
    CHECK_EQ((uintptr_t)res, 42); /* the result travels with the error */
    res = NULL;
    CHECK_ERR(corio_loop_ref_call(S.ref, fails_with_value, (void *)(intptr_t)-CORIO_EBROKEN, &res),
              -CORIO_EBROKEN);
    CHECK_EQ((uintptr_t)res, 42);
    /* corio_fail(0) is success. */
    CHECK_ERR(corio_loop_ref_call(S.ref, fails_with_value, (void *)0, &res), 0);
    /* Spawn and join apart, result not wanted. */
    corio_remote *r = NULL;
    CHECK_ERR(corio_loop_ref_spawn(S.ref, fails_with_value, (void *)(intptr_t)-EIO, &r), 0);
    CHECK(r != NULL);
    CHECK_ERR(corio_remote_join(r, NULL), -EIO);
    return NULL;
}

TEST(results_and_errors_travel_back)
{
    server_start(&S);
    test_run(errors_main, NULL);
    server_stop(&S);
}

/* ---- cancellation and deadlines ----------------------------------------- */

static corio_channel *started; /* the remote task says it is running */
static atomic_int remote_saw;  /* what its wait returned */

static void *waits_long(void *arg)
{
    CHECK(on_server());
    if (started)
        CHECK_OK(corio_channel_send(started, NULL));
    int r = corio_sleep_ms(3600 * 1000);
    atomic_store(&remote_saw, r);
    corio_fail(r);
    return arg;
}

static void *call_waits_long(void *arg)
{
    void *res = NULL;
    int r = corio_loop_ref_call(S.ref, waits_long, arg, &res);
    CHECK_EQ((uintptr_t)res, (uintptr_t)arg); /* fn ran to its end before the join returned */
    return (void *)(intptr_t)r;
}

static void *cancel_joiner_main(void *arg)
{
    (void)arg;
    started = corio_channel_new(1, 0);
    CHECK(started != NULL);
    atomic_store(&remote_saw, 1);
    corio_task *t = corio_spawn(call_waits_long, (void *)7);
    CHECK(t != NULL);
    void *item;
    CHECK_OK(corio_channel_recv(started, &item)); /* the remote task waits now */
    CHECK_OK(corio_task_cancel(t));
    void *r = NULL;
    CHECK_OK(corio_task_join(t, &r));
    CHECK_ERR((intptr_t)r, -ECANCELED);
    CHECK_ERR(atomic_load(&remote_saw), -ECANCELED);
    corio_channel_free(started);
    started = NULL;
    return NULL;
}

TEST(cancelling_the_joiner_cancels_the_remote_task)
{
    server_start(&S);
    test_run(cancel_joiner_main, NULL);
    server_stop(&S);
}

static void *deadline_main(void *arg)
{
    (void)arg;
    atomic_store(&remote_saw, 1);
    uint64_t t0 = test_ms();
    corio_deadline d = corio_deadline_push(20);
    void *res = NULL;
    CHECK_ERR(corio_loop_ref_call(S.ref, waits_long, (void *)9, &res), -CORIO_EDEADLINE);
    corio_deadline_pop(d);
    CHECK(test_ms() - t0 >= 20);
    CHECK_EQ((uintptr_t)res, 9);
    CHECK_ERR(atomic_load(&remote_saw), -ECANCELED);
    /* A joiner already past its deadline still cancels and awaits. */
    atomic_store(&remote_saw, 1);
    d = corio_deadline_push(0);
    corio_remote *r;
    CHECK_ERR(corio_loop_ref_spawn(S.ref, waits_long, (void *)10, &r), 0);
    CHECK_ERR(corio_remote_join(r, &res), -CORIO_EDEADLINE);
    corio_deadline_pop(d);
    CHECK_EQ((uintptr_t)res, 10);
    CHECK_ERR(atomic_load(&remote_saw), -ECANCELED);
    return NULL;
}

TEST(deadline_of_the_joiner_cancels_the_remote_task)
{
    server_start(&S);
    test_run(deadline_main, NULL);
    server_stop(&S);
}

static void *explicit_cancel_main(void *arg)
{
    (void)arg;
    /* Cancelled at once (most likely before it starts) or later: either
     * way its wait fails and the join waits for its end. */
    for (uintptr_t i = 0; i < 50; i++) {
        atomic_store(&remote_saw, 1);
        corio_remote *r;
        CHECK_ERR(corio_loop_ref_spawn(S.ref, waits_long, (void *)i, &r), 0);
        if (i % 2)
            CHECK_OK(corio_yield());
        CHECK_ERR(corio_remote_cancel(r), 0);
        CHECK_ERR(corio_remote_cancel(r), 0); /* twice is harmless */
        void *res = NULL;
        CHECK_ERR(corio_remote_join(r, &res), -ECANCELED); /* fn's own corio_fail */
        CHECK_EQ((uintptr_t)res, i);
        CHECK_ERR(atomic_load(&remote_saw), -ECANCELED);
    }
    return NULL;
}

TEST(cancel_through_the_handle)
{
    server_start(&S);
    test_run(explicit_cancel_main, NULL);
    server_stop(&S);
}

/* The joiner is cancelled at every point of the remote task's life: the
 * join returns 0 or -ECANCELED, and the task has always run to its end. */
static void *yields_then_answers(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    for (uintptr_t k = 0; k < i % 5; k++)
        (void)corio_yield();
    return (void *)(i + 1000);
}

static void *call_yielder(void *arg)
{
    void *res = NULL;
    int r = corio_loop_ref_call(S.ref, yields_then_answers, arg, &res);
    CHECK(r == 0 || r == -ECANCELED);
    CHECK_EQ((uintptr_t)res, (uintptr_t)arg + 1000);
    return (void *)(intptr_t)r;
}

static void *cancel_race_main(void *arg)
{
    (void)arg;
    unsigned n = TEST_SCALE(2000), cancelled = 0;
    for (uintptr_t i = 0; i < n; i++) {
        corio_task *t = corio_spawn(call_yielder, (void *)i);
        CHECK(t != NULL);
        for (uintptr_t k = 0; k < i % 7; k++)
            CHECK_OK(corio_yield());
        corio_task_cancel(t);
        void *r;
        CHECK_OK(corio_task_join(t, &r));
        cancelled += (intptr_t)r == -ECANCELED;
    }
    CHECK(cancelled > 0);
    return NULL;
}

TEST(joiner_cancelled_at_every_point_of_the_remote_task)
{
    server_start(&S);
    test_run(cancel_race_main, NULL);
    server_stop(&S);
}

/* ---- the target loop ends ------------------------------------------------ */

static atomic_int ran;

static void *mark_ran(void *arg)
{
    atomic_fetch_add(&ran, 1);
    return arg;
}

/* Spawned on the loop's own reference just as its main task returns: the
 * start call runs after that, when the loop is ending. */
static void *spawn_and_return(void *arg)
{
    (void)arg;
    corio_loop_ref *ref = corio_loop_ref_get();
    CHECK(ref != NULL);
    corio_remote *r = NULL;
    CHECK_ERR(corio_loop_ref_spawn(ref, mark_ran, (void *)5, &r), 0);
    corio_loop_ref_release(ref);
    return r;
}

static void *join_on_thread(void *arg)
{
    void *res = (void *)1;
    int e = corio_remote_join(arg, &res);
    CHECK(res == NULL);
    return (void *)(intptr_t)e;
}

TEST(loop_ending_before_the_task_starts_gives_eshutdown)
{
    atomic_store(&ran, 0);
    corio_remote *r = test_run(spawn_and_return, NULL);
    CHECK(r != NULL);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, join_on_thread, r), 0);
    void *e;
    CHECK_EQ(pthread_join(th, &e), 0);
    CHECK_ERR((intptr_t)e, -ESHUTDOWN);
    CHECK_EQ(atomic_load(&ran), 0);
}

TEST(spawn_on_an_ended_loop_gives_eshutdown)
{
    server_start(&S);
    server_end(&S); /* the reference is still held */
    corio_remote *r = (corio_remote *)1;
    CHECK_ERR(corio_loop_ref_spawn(S.ref, mark_ran, NULL, &r), -ESHUTDOWN);
    CHECK(r == (corio_remote *)1);
    void *res = (void *)1;
    CHECK_ERR(corio_loop_ref_call(S.ref, mark_ran, NULL, &res), -ESHUTDOWN);
    CHECK(res == NULL);
    corio_loop_ref_release(S.ref);
}

/* The target loop ends while a joiner waits: its task is cancelled like
 * every task left there, and the joiner gets its outcome. */
static void *joiner_while_target_ends_main(void *arg)
{
    (void)arg;
    started = corio_channel_new(1, 0);
    atomic_store(&remote_saw, 1);
    corio_remote *r;
    CHECK_ERR(corio_loop_ref_spawn(S.ref, waits_long, (void *)3, &r), 0);
    void *item;
    CHECK_OK(corio_channel_recv(started, &item));
    CHECK_OK(corio_channel_try_send(S.stop, NULL)); /* the server's main task returns */
    void *res = NULL;
    CHECK_ERR(corio_remote_join(r, &res), -ECANCELED);
    CHECK_EQ((uintptr_t)res, 3);
    CHECK_ERR(atomic_load(&remote_saw), -ECANCELED);
    corio_channel_free(started);
    started = NULL;
    return NULL;
}

TEST(target_loop_ending_cancels_the_task_its_joiner_hears)
{
    server_start(&S);
    test_run(joiner_while_target_ends_main, NULL);
    CHECK_EQ(pthread_join(S.th, NULL), 0);
    corio_channel_free(S.stop);
    sem_destroy(&S.ready);
    corio_loop_ref_release(S.ref);
}

/* ---- detach ---------------------------------------------------------------- */

static corio_channel *done_ch;

static void *report_done(void *arg)
{
    CHECK(on_server());
    CHECK_OK(corio_channel_send(done_ch, arg));
    return (void *)99;
}

static void *detach_main(void *arg)
{
    (void)arg;
    done_ch = corio_channel_new(4, 0);
    CHECK(done_ch != NULL);
    /* Detached while queued or running: it runs on and frees itself. */
    for (uintptr_t i = 1; i <= 100; i++) {
        corio_remote *r;
        CHECK_ERR(corio_loop_ref_spawn(S.ref, report_done, (void *)i, &r), 0);
        if (i % 3 == 0)
            CHECK_OK(corio_yield());
        CHECK_ERR(corio_remote_detach(r), 0);
        void *got;
        CHECK_OK(corio_channel_recv(done_ch, &got));
        CHECK_EQ((uintptr_t)got, i);
    }
    /* Detached while waiting; the target loop's end cancels it. */
    started = corio_channel_new(1, 0);
    corio_remote *r;
    CHECK_ERR(corio_loop_ref_spawn(S.ref, waits_long, NULL, &r), 0);
    void *item;
    CHECK_OK(corio_channel_recv(started, &item));
    CHECK_ERR(corio_remote_detach(r), 0);
    return NULL;
}

TEST(detached_tasks_free_everything)
{
    server_start(&S);
    test_run(detach_main, NULL);
    server_stop(&S);
    /* Only now: the senders may still be inside their sends until their
     * tasks have ended. */
    corio_channel_free(started);
    started = NULL;
    corio_channel_free(done_ch);
}

/* Handles let go of after the task and its loop ended. */
TEST(handles_outliving_the_target_loop)
{
    server_start(&S);
    corio_remote *a, *b, *c;
    CHECK_ERR(corio_loop_ref_spawn(S.ref, mark_ran, (void *)1, &a), 0);
    CHECK_ERR(corio_loop_ref_spawn(S.ref, mark_ran, (void *)2, &b), 0);
    CHECK_ERR(corio_loop_ref_spawn(S.ref, mark_ran, (void *)3, &c), 0);
    /* Calls start in the order they were posted and these tasks never
     * wait: once a later call has answered, all three have ended. */
    void *res = NULL;
    CHECK_ERR(corio_loop_ref_call(S.ref, mark_ran, (void *)4, &res), 0);
    server_stop(&S);
    CHECK_ERR(corio_remote_join(a, &res), 0);
    CHECK_EQ((uintptr_t)res, 1);
    CHECK_ERR(corio_remote_detach(b), 0);
    CHECK_ERR(corio_remote_cancel(c), 0); /* over already: nothing to do */
    CHECK_ERR(corio_remote_join(c, &res), 0);
    CHECK_EQ((uintptr_t)res, 3);
}

/* ---- plain threads ---------------------------------------------------------- */

static void *add_one(void *arg)
{
    CHECK(on_server());
    return (void *)((uintptr_t)arg + 1);
}

static void *plain_caller(void *arg)
{
    uintptr_t base = (uintptr_t)arg;
    for (uintptr_t i = 0; i < 1000; i++) {
        void *res = NULL;
        CHECK_ERR(corio_loop_ref_call(S.ref, add_one, (void *)(base + i), &res), 0);
        CHECK_EQ((uintptr_t)res, base + i + 1);
    }
    void *res = NULL;
    CHECK_ERR(corio_loop_ref_call(S.ref, fails_with_value, (void *)(intptr_t)-ENOENT, &res), -ENOENT);
    CHECK_EQ((uintptr_t)res, 42);
    return NULL;
}

TEST(join_from_plain_threads)
{
    server_start(&S);
    pthread_t th[3];
    for (uintptr_t i = 0; i < 3; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, plain_caller, (void *)(i << 20)), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    server_stop(&S);
}

/* ---- a thousand at once ------------------------------------------------------ */

#define MANY 1000
static corio_event all_here;
static unsigned here; /* server thread only */

/* Every one waits until all of them are running on the server together. */
static void *gather_point(void *arg)
{
    CHECK(on_server());
    if (++here == TEST_SCALE(MANY))
        corio_event_set(&all_here);
    CHECK_OK(corio_event_wait(&all_here));
    return (void *)((uintptr_t)arg * 3);
}

static void *many_caller(void *arg)
{
    void *res = NULL;
    CHECK_ERR(corio_loop_ref_call(S.ref, gather_point, arg, &res), 0);
    CHECK_EQ((uintptr_t)res, (uintptr_t)arg * 3);
    return arg;
}

static void *many_main(void *arg)
{
    (void)arg;
    unsigned n = TEST_SCALE(MANY);
    /* A thousand joining tasks here, a thousand tasks there. */
    corio_task **t = malloc(n * sizeof *t);
    CHECK(t != NULL);
    for (uintptr_t i = 0; i < n; i++)
        CHECK((t[i] = corio_spawn(many_caller, (void *)i)) != NULL);
    for (uintptr_t i = 0; i < n; i++) {
        void *r;
        CHECK_OK(corio_task_join(t[i], &r));
        CHECK_EQ((uintptr_t)r, i);
    }
    /* The same from handles joined in reverse order. */
    corio_event_clear(&all_here); /* no server task waits on it now */
    here = 0;
    corio_remote **h = malloc(n * sizeof *h);
    CHECK(h != NULL);
    for (uintptr_t i = 0; i < n; i++)
        CHECK_ERR(corio_loop_ref_spawn(S.ref, gather_point, (void *)i, &h[i]), 0);
    for (uintptr_t i = n; i-- > 0;) {
        void *res;
        CHECK_ERR(corio_remote_join(h[i], &res), 0);
        CHECK_EQ((uintptr_t)res, i * 3);
    }
    free(h);
    free(t);
    return NULL;
}

TEST(a_thousand_remote_tasks_at_once)
{
    corio_event_init(&all_here);
    here = 0;
    server_start(&S);
    test_run(many_main, NULL);
    server_stop(&S);
}

/* ---- stalls ------------------------------------------------------------------- */

static void *slow_answer(void *arg)
{
    CHECK_OK(corio_sleep_ms(50));
    return arg;
}

/* The calling loop has nothing to do but wait for the other loop: that is
 * not a stall (test_run requires the run to end with 0, and a stall would
 * also cancel the join). */
static void *idle_joiner_main(void *arg)
{
    (void)arg;
    void *res = NULL;
    CHECK_ERR(corio_loop_ref_call(S.ref, slow_answer, (void *)77, &res), 0);
    CHECK_EQ((uintptr_t)res, 77);
    return NULL;
}

TEST(an_idle_joiner_loop_is_not_stalled)
{
    server_start(&S);
    test_run(idle_joiner_main, NULL);
    server_stop(&S);
}

/* ---- the caller's own loop ----------------------------------------------------- */

static void *own_loop_main(void *arg)
{
    (void)arg;
    corio_loop_ref *ref = corio_loop_ref_get();
    CHECK(ref != NULL);
    client_th = pthread_self();
    void *res = NULL;
    CHECK_ERR(corio_loop_ref_call(ref, twice, (void *)21, &res), 0);
    CHECK_EQ((uintptr_t)res, 42);
    corio_remote *r;
    CHECK_ERR(corio_loop_ref_spawn(ref, twice, (void *)5, &r), 0);
    CHECK_ERR(corio_remote_join(r, &res), 0);
    CHECK_EQ((uintptr_t)res, 10);
    corio_loop_ref_release(ref);
    return NULL;
}

TEST(calling_the_callers_own_loop_from_a_task) { test_run(own_loop_main, NULL); }
