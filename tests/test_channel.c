/*
 * Channels across threads and loops (src/core/channel.c,
 * src/core/remote_wake.c): every pairing of plain threads and tasks on
 * one or two loops, many producers into one receiver with exact accounting
 * and per-producer order, backpressure (a full channel holds a thread or a
 * task back, and the task's loop keeps running others meanwhile), close
 * semantics for waiting and later senders and receivers, cancellation and
 * deadlines of waiting tasks racing a thread that hands them an item or
 * takes theirs (nothing lost, nothing duplicated), waits that are not
 * stalls, a loop that ends while a thread still holds the channel, and a
 * million items across threads in both directions.
 */
#include "runner.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

typedef struct big_item {
    uint64_t a, b, c; /* b = ~a, c = a * 3: a torn copy shows */
} big_item;

static big_item mk(uint64_t a) { return (big_item){a, ~a, a * 3}; }
static bool item_ok(const big_item *it) { return it->b == ~it->a && it->c == it->a * 3; }

static void *run_loop(corio_fn fn, void *arg)
{
    void *res = NULL;
    int r = corio_run(NULL, fn, arg, &res);
    if (r != 0)
        test_fail(__FILE__, __LINE__, "corio_run failed: %d (%s)", r, corio_strerror(r));
    return res;
}

static void start(pthread_t *th, void *(*fn)(void *), void *arg)
{
    CHECK_EQ(pthread_create(th, NULL, fn, arg), 0);
}

static void *join_fn(void *arg)
{
    void *res = NULL;
    CHECK_EQ(pthread_join(*(pthread_t *)arg, &res), 0);
    return res;
}

/* Join a thread from a task without blocking the loop. */
static void *join_in_task(pthread_t th)
{
    void *res = NULL;
    CHECK_OK(corio_to_thread(join_fn, &th, &res));
    return res;
}

/* ---- values, pointers, capacity ------------------------------------ */

static void check_values_and_pointers(void)
{
    corio_channel *ch = corio_channel_new(3, sizeof(big_item));
    CHECK(ch);
    big_item it;
    CHECK_ERR(corio_channel_try_recv(ch, &it), -EAGAIN);
    for (uint64_t i = 0; i < 3; i++) {
        it = mk(i);
        CHECK_ERR(corio_channel_try_send(ch, &it), 0);
    }
    it = mk(99);
    CHECK_ERR(corio_channel_try_send(ch, &it), -EAGAIN); /* exactly capacity items */
    for (uint64_t i = 0; i < 3; i++) {
        memset(&it, 0, sizeof it);
        CHECK_ERR(corio_channel_recv(ch, &it), 0);
        CHECK_EQ(it.a, i);
        CHECK(item_ok(&it));
        it = mk(10 + i); /* wraps around the ring */
        CHECK_ERR(corio_channel_send(ch, &it), 0);
    }
    for (uint64_t i = 0; i < 3; i++) {
        CHECK_ERR(corio_channel_try_recv(ch, &it), 0);
        CHECK_EQ(it.a, 10 + i);
    }
    CHECK_ERR(corio_channel_try_recv(ch, &it), -EAGAIN);
    corio_channel_free(ch);

    /* Pointers travel as themselves, NULL included. */
    static int x, y;
    ch = corio_channel_new(2, 0);
    CHECK(ch);
    CHECK_ERR(corio_channel_send(ch, &x), 0);
    CHECK_ERR(corio_channel_try_send(ch, NULL), 0);
    CHECK_ERR(corio_channel_try_send(ch, &y), -EAGAIN);
    void *p = (void *)1;
    CHECK_ERR(corio_channel_recv(ch, &p), 0);
    CHECK(p == &x);
    CHECK_ERR(corio_channel_try_recv(ch, &p), 0);
    CHECK(p == NULL);
    CHECK_ERR(corio_channel_try_recv(ch, &p), -EAGAIN);
    corio_channel_free(ch);

    /* Capacity 1, odd item sizes. */
    ch = corio_channel_new(1, 3);
    CHECK(ch);
    for (int i = 0; i < 10; i++) {
        unsigned char in[3] = {(unsigned char)i, 7, (unsigned char)(255 - i)}, out[3] = {0};
        CHECK_ERR(corio_channel_try_send(ch, in), 0);
        CHECK_ERR(corio_channel_try_send(ch, in), -EAGAIN);
        CHECK_ERR(corio_channel_try_recv(ch, out), 0);
        CHECK_MEM(in, out, 3);
    }
    corio_channel_free(ch);
}

static void *values_main(void *arg)
{
    check_values_and_pointers();
    return arg;
}

TEST(values_pointers_and_exact_capacity_in_a_task) { test_run(values_main, NULL); }

TEST(values_pointers_and_exact_capacity_on_a_plain_thread) { check_values_and_pointers(); }

TEST(new_rejects_bad_sizes)
{
    errno = 0;
    CHECK(corio_channel_new(0, 8) == NULL);
    CHECK_EQ(errno, EINVAL);
    errno = 0;
    CHECK(corio_channel_new(SIZE_MAX, 8) == NULL);
    CHECK_EQ(errno, EINVAL);
    errno = 0;
    CHECK(corio_channel_new(1u << 20, SIZE_MAX / 2) == NULL);
    CHECK(errno == EINVAL || errno == ENOMEM);
    corio_fi_fail_next("malloc", 1);
    errno = 0;
    CHECK(corio_channel_new(4, 8) == NULL);
    CHECK_EQ(errno, ENOMEM);
    corio_channel *ch = corio_channel_new(1, 1);
    CHECK(ch);
    corio_channel_free(ch);
}

/* ---- one sender, one receiver: threads and tasks ------------------- */

#define PAIR_N 20000

typedef struct pair_ctx {
    corio_channel *ch;
    uint64_t n;
} pair_ctx;

static void *send_range(void *arg)
{
    pair_ctx *p = arg;
    for (uint64_t i = 0; i < p->n; i++) {
        big_item it = mk(i);
        CHECK_ERR(corio_channel_send(p->ch, &it), 0);
    }
    CHECK_ERR(corio_channel_close(p->ch), 0);
    return NULL;
}

static void *recv_range(void *arg)
{
    pair_ctx *p = arg;
    big_item it;
    for (uint64_t i = 0; i < p->n; i++) {
        CHECK_ERR(corio_channel_recv(p->ch, &it), 0);
        CHECK_EQ(it.a, i);
        CHECK(item_ok(&it));
    }
    CHECK_ERR(corio_channel_recv(p->ch, &it), -ESHUTDOWN);
    CHECK_ERR(corio_channel_try_recv(p->ch, &it), -ESHUTDOWN);
    return (void *)(uintptr_t)1;
}

/* The loop's side runs in a task; a ticker task shows the loop keeps
 * running others while that one waits. */
typedef struct side_ctx {
    pair_ctx *p;
    void *(*fn)(void *);
    void *(*thread_fn)(void *);
    void *thread_result; /* what thread_fn must return */
} side_ctx;

static atomic_bool ticker_stop;
static unsigned ticks;

static void *ticker(void *arg)
{
    (void)arg;
    while (!atomic_load(&ticker_stop) && corio_sleep_ms(1) == 0)
        ticks++;
    return NULL;
}

static void *side_main(void *arg)
{
    side_ctx *s = arg;
    atomic_store(&ticker_stop, false);
    ticks = 0;
    corio_task *tk = corio_spawn(ticker, NULL);
    pthread_t th;
    start(&th, s->thread_fn, s->p);
    void *r = s->fn(s->p);
    CHECK(join_in_task(th) == s->thread_result);
    atomic_store(&ticker_stop, true);
    CHECK_OK(corio_task_join(tk, NULL));
    return r;
}

TEST(thread_to_task)
{
    corio_channel *ch = corio_channel_new(4, sizeof(big_item));
    pair_ctx p = {ch, PAIR_N};
    side_ctx s = {&p, recv_range, send_range, NULL};
    CHECK(test_run(side_main, &s) == (void *)1);
    corio_channel_free(ch);
}

static void *send_range_then_close_in_task(void *arg) { return send_range(arg), (void *)(uintptr_t)2; }

TEST(task_to_thread)
{
    corio_channel *ch = corio_channel_new(4, sizeof(big_item));
    pair_ctx p = {ch, PAIR_N};
    side_ctx s = {&p, send_range_then_close_in_task, recv_range, (void *)1};
    CHECK(test_run(side_main, &s) == (void *)2);
    corio_channel_free(ch);
}

TEST(thread_to_thread)
{
    corio_channel *ch = corio_channel_new(4, sizeof(big_item));
    pair_ctx p = {ch, PAIR_N};
    pthread_t a, b;
    start(&b, recv_range, &p);
    start(&a, send_range, &p);
    void *r = NULL;
    CHECK_EQ(pthread_join(a, NULL), 0);
    CHECK_EQ(pthread_join(b, &r), 0);
    CHECK(r == (void *)1);
    corio_channel_free(ch);
}

/* Two loops on two threads, ping-pong through two capacity-1 channels:
 * every item is a remote wake-up of a task on the other loop. */
typedef struct pingpong {
    corio_channel *to_b, *to_a;
    uint64_t n;
} pingpong;

static void *ping_main(void *arg)
{
    pingpong *pp = arg;
    for (uint64_t i = 0; i < pp->n; i++) {
        CHECK_ERR(corio_channel_send(pp->to_b, (void *)(uintptr_t)i), 0);
        void *v = NULL;
        CHECK_ERR(corio_channel_recv(pp->to_a, &v), 0);
        CHECK_EQ((uintptr_t)v, i + 1);
    }
    CHECK_OK(corio_channel_close(pp->to_b));
    return NULL;
}

static void *pong_main(void *arg)
{
    pingpong *pp = arg;
    void *v;
    uint64_t n = 0;
    int r;
    while ((r = corio_channel_recv(pp->to_b, &v)) == 0) {
        CHECK_EQ((uintptr_t)v, n);
        n++;
        CHECK_ERR(corio_channel_send(pp->to_a, (void *)((uintptr_t)v + 1)), 0);
    }
    CHECK_ERR(r, -ESHUTDOWN);
    CHECK_EQ(n, pp->n);
    return NULL;
}

static void *loop_thread(void *arg)
{
    void **fa = arg;
    return run_loop((corio_fn)(uintptr_t)fa[0], fa[1]);
}

TEST(task_to_task_across_two_loops)
{
    pingpong pp = {corio_channel_new(1, 0), corio_channel_new(1, 0), 5000};
    void *fa[2] = {(void *)(uintptr_t)pong_main, &pp};
    pthread_t b;
    start(&b, loop_thread, fa);
    run_loop(ping_main, &pp);
    CHECK_EQ(pthread_join(b, NULL), 0);
    corio_channel_free(pp.to_b);
    corio_channel_free(pp.to_a);

    /* And a stream of items, sender and receiver both tasks, two loops. */
    corio_channel *ch = corio_channel_new(8, sizeof(big_item));
    pair_ctx p = {ch, PAIR_N};
    void *fb[2] = {(void *)(uintptr_t)recv_range, &p};
    start(&b, loop_thread, fb);
    run_loop(send_range_then_close_in_task, &p);
    void *r = NULL;
    CHECK_EQ(pthread_join(b, &r), 0);
    CHECK(r == (void *)1);
    corio_channel_free(ch);
}

/* ---- many producers, one receiver ---------------------------------- */

#define MP_THREADS 4
#define MP_TASKS 2
#define MP_PRODUCERS (MP_THREADS + MP_TASKS)
#define MP_PER 20000

typedef struct mp_ctx {
    corio_channel *ch;
    atomic_int producers_left;
} mp_ctx;

static mp_ctx MP;

static void *mp_produce(void *arg)
{
    uint64_t id = (uintptr_t)arg;
    for (uint64_t i = 0; i < MP_PER; i++) {
        uint64_t v = id << 32 | i;
        CHECK_ERR(corio_channel_send(MP.ch, &v), 0);
    }
    if (atomic_fetch_sub(&MP.producers_left, 1) == 1)
        CHECK_OK(corio_channel_close(MP.ch));
    return NULL;
}

static void *mp_main(void *arg)
{
    (void)arg;
    pthread_t th[MP_THREADS];
    corio_task *tasks[MP_TASKS];
    for (uintptr_t i = 0; i < MP_THREADS; i++)
        start(&th[i], mp_produce, (void *)i);
    for (uintptr_t i = 0; i < MP_TASKS; i++)
        CHECK((tasks[i] = corio_spawn(mp_produce, (void *)(MP_THREADS + i))) != NULL);
    uint64_t next[MP_PRODUCERS] = {0}, total = 0, v;
    int r;
    while ((r = corio_channel_recv(MP.ch, &v)) == 0) {
        uint64_t id = v >> 32, seq = v & 0xffffffffu;
        CHECK(id < MP_PRODUCERS);
        CHECK_EQ(seq, next[id]); /* each producer's items in order, none twice, none skipped */
        next[id]++;
        total++;
    }
    CHECK_ERR(r, -ESHUTDOWN);
    for (int i = 0; i < MP_PRODUCERS; i++)
        CHECK_EQ(next[i], MP_PER);
    CHECK_EQ(total, MP_PRODUCERS * MP_PER);
    for (int i = 0; i < MP_THREADS; i++)
        join_in_task(th[i]);
    CHECK_OK(corio_gather(tasks, MP_TASKS, NULL));
    return NULL;
}

TEST(four_threads_and_two_tasks_into_one_receiver)
{
    MP.ch = corio_channel_new(8, sizeof(uint64_t));
    atomic_init(&MP.producers_left, MP_PRODUCERS);
    test_run(mp_main, NULL);
    corio_channel_free(MP.ch);
}

/* ---- backpressure -------------------------------------------------- */

typedef struct bp_ctx {
    corio_channel *ch;
    atomic_int done;
} bp_ctx;

static void *bp_sender(void *arg)
{
    bp_ctx *b = arg;
    uint64_t v = 3;
    CHECK_ERR(corio_channel_send(b->ch, &v), 0); /* blocks: the channel is full */
    atomic_store(&b->done, 1);
    return NULL;
}

static void *bp_thread_main(void *arg)
{
    bp_ctx *b = arg;
    uint64_t v;
    for (v = 1; v <= 2; v++)
        CHECK_ERR(corio_channel_send(b->ch, &v), 0);
    CHECK_ERR(corio_channel_try_send(b->ch, &v), -EAGAIN);
    pthread_t th;
    start(&th, bp_sender, b);
    /* However long this waits, the sender stays blocked. */
    CHECK_OK(corio_sleep_ms(20));
    CHECK_EQ(atomic_load(&b->done), 0);
    CHECK_ERR(corio_channel_recv(b->ch, &v), 0); /* room for it now */
    CHECK_EQ(v, 1);
    join_in_task(th);
    CHECK_EQ(atomic_load(&b->done), 1);
    CHECK_ERR(corio_channel_recv(b->ch, &v), 0);
    CHECK_EQ(v, 2);
    CHECK_ERR(corio_channel_recv(b->ch, &v), 0);
    CHECK_EQ(v, 3);
    CHECK_ERR(corio_channel_try_recv(b->ch, &v), -EAGAIN);
    return NULL;
}

TEST(full_channel_blocks_a_thread_until_a_task_takes)
{
    bp_ctx b = {corio_channel_new(2, sizeof(uint64_t)), 0};
    test_run(bp_thread_main, &b);
    corio_channel_free(b.ch);
}

static void *bp_task_sender(void *arg)
{
    bp_ctx *b = arg;
    uint64_t v = 3;
    CHECK_ERR(corio_channel_send(b->ch, &v), 0); /* suspends: full */
    atomic_store(&b->done, 1);
    return NULL;
}

static void *bp_receiver_thread(void *arg)
{
    bp_ctx *b = arg;
    uint64_t v = 0;
    CHECK_ERR(corio_channel_recv(b->ch, &v), 0);
    return (void *)(uintptr_t)v;
}

static void *bp_task_main(void *arg)
{
    bp_ctx *b = arg;
    uint64_t v;
    for (v = 1; v <= 2; v++)
        CHECK_ERR(corio_channel_send(b->ch, &v), 0);
    corio_task *t = corio_spawn(bp_task_sender, b);
    /* The sender task waits, and this one runs meanwhile. */
    for (int i = 0; i < 100; i++)
        CHECK_OK(corio_yield());
    CHECK_EQ(atomic_load(&b->done), 0);
    CHECK(!corio_task_done(t));
    pthread_t th;
    start(&th, bp_receiver_thread, b);
    CHECK(join_in_task(th) == (void *)1);
    CHECK_OK(corio_task_join(t, NULL));
    CHECK_EQ(atomic_load(&b->done), 1);
    for (uint64_t want = 2; want <= 3; want++) {
        CHECK_ERR(corio_channel_try_recv(b->ch, &v), 0);
        CHECK_EQ(v, want);
    }
    return NULL;
}

TEST(full_channel_suspends_a_task_until_a_thread_takes)
{
    bp_ctx b = {corio_channel_new(2, sizeof(uint64_t)), 0};
    test_run(bp_task_main, &b);
    corio_channel_free(b.ch);
}

/* ---- close --------------------------------------------------------- */

static void *blocked_send(void *arg)
{
    uint64_t v = 42;
    return (void *)(intptr_t)corio_channel_send(arg, &v);
}

static void *blocked_recv(void *arg)
{
    uint64_t v = 0;
    return (void *)(intptr_t)corio_channel_recv(arg, &v);
}

static void *close_main(void *arg)
{
    (void)arg;
    /* Senders waiting on a full channel, a thread and a task, fail. */
    corio_channel *ch = corio_channel_new(1, sizeof(uint64_t));
    uint64_t v = 1;
    CHECK_ERR(corio_channel_send(ch, &v), 0);
    pthread_t th;
    start(&th, blocked_send, ch);
    corio_task *t = corio_spawn(blocked_send, ch);
    CHECK_OK(corio_sleep_ms(10)); /* let them block (either order is fine) */
    CHECK_ERR(corio_channel_close(ch), 0);
    CHECK_ERR(corio_channel_close(ch), 0); /* idempotent */
    void *res;
    CHECK_OK(corio_task_join(t, &res));
    CHECK_ERR((intptr_t)res, -ESHUTDOWN);
    CHECK_ERR((intptr_t)join_in_task(th), -ESHUTDOWN);
    /* Later sends fail at once; receivers drain, then fail. */
    v = 2;
    CHECK_ERR(corio_channel_send(ch, &v), -ESHUTDOWN);
    CHECK_ERR(corio_channel_try_send(ch, &v), -ESHUTDOWN);
    CHECK_ERR(corio_channel_try_recv(ch, &v), 0);
    CHECK_EQ(v, 1);
    CHECK_ERR(corio_channel_recv(ch, &v), -ESHUTDOWN);
    CHECK_ERR(corio_channel_try_recv(ch, &v), -ESHUTDOWN);
    corio_channel_free(ch);

    /* Receivers waiting on an empty channel, a thread and a task, fail. */
    ch = corio_channel_new(4, sizeof(uint64_t));
    start(&th, blocked_recv, ch);
    t = corio_spawn(blocked_recv, ch);
    CHECK_OK(corio_sleep_ms(10));
    CHECK_ERR(corio_channel_close(ch), 0);
    CHECK_OK(corio_task_join(t, &res));
    CHECK_ERR((intptr_t)res, -ESHUTDOWN);
    CHECK_ERR((intptr_t)join_in_task(th), -ESHUTDOWN);
    corio_channel_free(ch);

    /* Items sent before the close reach receivers waiting after it. */
    ch = corio_channel_new(4, sizeof(uint64_t));
    for (v = 0; v < 3; v++)
        CHECK_ERR(corio_channel_try_send(ch, &v), 0);
    CHECK_ERR(corio_channel_close(ch), 0);
    for (uint64_t want = 0; want < 3; want++) {
        start(&th, bp_receiver_thread, &(bp_ctx){ch, 0});
        CHECK_EQ((uintptr_t)join_in_task(th), want);
    }
    CHECK_ERR(corio_channel_recv(ch, &v), -ESHUTDOWN);
    corio_channel_free(ch);
    return NULL;
}

TEST(close_fails_senders_and_lets_receivers_drain) { test_run(close_main, NULL); }

/* Senders racing a close: every send that returned 0 is received, and
 * only those. */
typedef struct race_close {
    corio_channel *ch;
    atomic_ulong sent;
} race_close;

static void *racing_sender(void *arg)
{
    race_close *rc = arg;
    for (uint64_t i = 0;; i++) {
        int r = corio_channel_send(rc->ch, &i);
        if (r == -ESHUTDOWN)
            return NULL;
        CHECK_ERR(r, 0);
        atomic_fetch_add(&rc->sent, 1);
    }
}

TEST(sends_racing_a_close_are_received_exactly_when_accepted)
{
    for (int round = 0; round < 200; round++) {
        race_close rc = {corio_channel_new(4, sizeof(uint64_t)), 0};
        pthread_t s[3];
        for (int i = 0; i < 3; i++)
            start(&s[i], racing_sender, &rc);
        uint64_t got = 0, v;
        for (int i = 0; i < 50 + round; i++) {
            CHECK_ERR(corio_channel_recv(rc.ch, &v), 0);
            got++;
        }
        CHECK_OK(corio_channel_close(rc.ch));
        int r;
        while ((r = corio_channel_recv(rc.ch, &v)) == 0)
            got++;
        CHECK_ERR(r, -ESHUTDOWN);
        for (int i = 0; i < 3; i++)
            CHECK_EQ(pthread_join(s[i], NULL), 0);
        CHECK_EQ(got, atomic_load(&rc.sent));
        corio_channel_free(rc.ch);
    }
}

/* ---- cancellation and deadlines of waiting tasks -------------------- */

static void *wait_forever_recv(void *arg)
{
    uint64_t v;
    return (void *)(intptr_t)corio_channel_recv(arg, &v);
}

static void *cancel_main(void *arg)
{
    (void)arg;
    corio_channel *ch = corio_channel_new(1, sizeof(uint64_t));
    corio_task *t = corio_spawn(wait_forever_recv, ch);
    CHECK_OK(corio_yield());
    CHECK_OK(corio_task_cancel(t));
    void *res;
    CHECK_OK(corio_task_join(t, &res));
    CHECK_ERR((intptr_t)res, -ECANCELED);
    /* A deadline ends the wait too, and a cancelled task does not wait. */
    corio_deadline d = corio_deadline_push(20);
    uint64_t v = 5;
    CHECK_ERR(corio_channel_recv(ch, &v), -CORIO_EDEADLINE);
    corio_deadline_pop(d);
    CHECK_ERR(corio_channel_send(ch, &v), 0);
    d = corio_deadline_push(20);
    CHECK_ERR(corio_channel_send(ch, &v), -CORIO_EDEADLINE); /* full */
    corio_deadline_pop(d);
    /* The channel is intact: one item, the first. */
    uint64_t w = 0;
    CHECK_ERR(corio_channel_try_recv(ch, &w), 0);
    CHECK_EQ(w, 5);
    CHECK_ERR(corio_channel_try_recv(ch, &w), -EAGAIN);
    corio_channel_free(ch);
    return NULL;
}

TEST(cancel_and_deadline_end_a_wait_with_nothing_taken) { test_run(cancel_main, NULL); }

static void *cancelled_caller_main(void *arg)
{
    (void)arg;
    corio_channel *ch = corio_channel_new(2, sizeof(uint64_t));
    uint64_t v = 1;
    CHECK_OK(corio_channel_try_send(ch, &v));
    corio_task_cancel(corio_current());
    /* Waiting calls check first, even when they need not wait. */
    CHECK_ERR(corio_channel_send(ch, &v), -ECANCELED);
    CHECK_ERR(corio_channel_recv(ch, &v), -ECANCELED);
    /* The non-waiting ones work. */
    CHECK_ERR(corio_channel_try_recv(ch, &v), 0);
    CHECK_ERR(corio_channel_try_send(ch, &v), 0);
    corio_channel_free(ch);
    return NULL;
}

TEST(a_cancelled_task_neither_sends_nor_receives) { test_run(cancelled_caller_main, NULL); }

/* The stress: a thread streams items 0..N-1 through a capacity-1 channel
 * to a receiver task that the main task cancels over and over, at varying
 * points; or a sender task, cancelled likewise, streams them to a
 * receiving thread.  Whether a cancel or the hand-over wins each race,
 * every item arrives exactly once and in order. */
#define STRESS_N 20000

typedef struct stress {
    corio_channel *ch;
    uint64_t next;          /* receiver: next item expected; sender: next to send */
    atomic_ulong cancelled; /* waits ended by the cancel */
    bool task_receives;
    bool use_deadline;
} stress;

/* The thread paces itself, so that the task waits for most items instead
 * of finding each one already there: a microsecond or so per item for
 * cancels; with deadlines, now and then a pause longer than one. */
static void stress_pause(const stress *s, uint64_t i)
{
    if (!s->use_deadline) {
        for (volatile int spin = 0; spin < 300; spin++)
            ;
    } else if (i % 97 == 50) {
        usleep(1500);
    }
}

static void *stress_recv_task(void *arg)
{
    stress *s = arg;
    uint64_t v;
    int r;
    for (;;) {
        corio_deadline d = corio_deadline_push(s->use_deadline ? 1 : UINT64_MAX);
        r = corio_channel_recv(s->ch, &v);
        corio_deadline_pop(d);
        if (r != 0)
            break;
        CHECK_EQ(v, s->next);
        s->next++;
    }
    if (r == -ESHUTDOWN)
        return (void *)1;
    CHECK(r == -ECANCELED || r == -CORIO_EDEADLINE);
    atomic_fetch_add(&s->cancelled, 1);
    return NULL;
}

static void *stress_send_task(void *arg)
{
    stress *s = arg;
    while (s->next < STRESS_N) {
        corio_deadline d = corio_deadline_push(s->use_deadline ? 1 : UINT64_MAX);
        int r = corio_channel_send(s->ch, &s->next);
        corio_deadline_pop(d);
        if (r != 0) {
            CHECK(r == -ECANCELED || r == -CORIO_EDEADLINE);
            atomic_fetch_add(&s->cancelled, 1);
            return NULL; /* s->next was not sent: the next incarnation sends it */
        }
        s->next++;
    }
    CHECK_OK(corio_channel_close(s->ch));
    return (void *)1;
}

static void *stress_thread_send(void *arg)
{
    stress *s = arg;
    for (uint64_t i = 0; i < STRESS_N; i++) {
        stress_pause(s, i);
        CHECK_ERR(corio_channel_send(s->ch, &i), 0);
    }
    CHECK_OK(corio_channel_close(s->ch));
    return NULL;
}

static void *stress_thread_recv(void *arg)
{
    stress *s = arg;
    uint64_t v, want = 0;
    int r;
    while ((r = corio_channel_recv(s->ch, &v)) == 0) {
        CHECK_EQ(v, want);
        want++;
        stress_pause(s, want);
    }
    CHECK_ERR(r, -ESHUTDOWN);
    CHECK_EQ(want, STRESS_N);
    return NULL;
}

static void *stress_main(void *arg)
{
    stress *s = arg;
    bool task_receives = s->task_receives;
    pthread_t th;
    start(&th, task_receives ? stress_thread_send : stress_thread_recv, s);
    unsigned k = 0;
    for (;;) {
        corio_task *t = corio_spawn(task_receives ? stress_recv_task : stress_send_task, s);
        if (!s->use_deadline) {
            /* A varying number of turns before the cancel: sometimes
             * before the task runs, often while it waits, sometimes just
             * as the thread hands it the next item or takes its item. */
            for (unsigned i = (k++ * 7) % 5; i > 0; i--)
                CHECK_OK(corio_yield());
            corio_task_cancel(t);
        }
        void *res;
        CHECK_OK(corio_task_join(t, &res));
        if (res == (void *)1)
            break;
    }
    join_in_task(th);
    return NULL;
}

static void run_stress(bool task_receives, bool use_deadline)
{
    stress s = {corio_channel_new(1, sizeof(uint64_t)), 0, 0, task_receives, use_deadline};
    test_run(stress_main, &s);
    CHECK_EQ(s.next, STRESS_N);
    if (!use_deadline) /* most incarnations move an item or two */
        CHECK(atomic_load(&s.cancelled) > STRESS_N / 20);
    corio_channel_free(s.ch);
}

TEST(cancelled_receiver_racing_a_sending_thread_loses_nothing) { run_stress(true, false); }
TEST(cancelled_sender_racing_a_receiving_thread_loses_nothing) { run_stress(false, false); }
TEST(deadline_of_a_receiver_racing_a_sending_thread_loses_nothing) { run_stress(true, true); }
TEST(deadline_of_a_sender_racing_a_receiving_thread_loses_nothing) { run_stress(false, true); }

/* ---- the loop around waits ------------------------------------------ */

static void *late_sender(void *arg)
{
    usleep(50000); /* the loop has long gone to sleep waiting */
    uint64_t v = 7;
    CHECK_ERR(corio_channel_send(arg, &v), 0);
    return NULL;
}

static void *no_stall_main(void *arg)
{
    corio_channel *ch = arg;
    pthread_t th;
    start(&th, late_sender, ch);
    uint64_t v = 0;
    CHECK_ERR(corio_channel_recv(ch, &v), 0); /* the only task, waiting: not a stall */
    CHECK_EQ(v, 7);
    join_in_task(th);
    return NULL;
}

TEST(a_wait_for_another_thread_is_not_a_stall)
{
    corio_channel *ch = corio_channel_new(1, sizeof(uint64_t));
    test_run(no_stall_main, ch);
    corio_channel_free(ch);
}

static unsigned got_before_the_end;

static void *left_waiting(void *arg)
{
    uint64_t v = 0;
    int r = corio_channel_recv(arg, &v);
    if (r == 0) { /* the racing thread's item came first */
        CHECK_EQ(v, 42);
        got_before_the_end++;
        r = corio_channel_recv(arg, &v);
    }
    CHECK_ERR(r, -ECANCELED);
    return NULL;
}

static void *ends_while_waiting_main(void *arg)
{
    corio_task *t = corio_spawn(left_waiting, arg);
    CHECK_OK(corio_yield()); /* it waits now */
    CHECK_OK(corio_task_detach(t));
    return NULL; /* the loop cancels it on the way out */
}

TEST(loop_ends_while_a_task_waits_and_a_thread_holds_the_channel)
{
    corio_channel *ch = corio_channel_new(2, sizeof(uint64_t));
    test_run(ends_while_waiting_main, ch);
    /* The channel outlived the loop and still works, here and in a
     * thread. */
    pthread_t th;
    uint64_t v = 9;
    start(&th, blocked_send, ch);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_ERR(corio_channel_recv(ch, &v), 0);
    CHECK_EQ(v, 42);
    /* Again, with a thread racing the end with sends. */
    for (int i = 0; i < 200; i++) {
        got_before_the_end = 0;
        start(&th, blocked_send, ch);
        test_run(ends_while_waiting_main, ch);
        CHECK_EQ(pthread_join(th, NULL), 0);
        /* The waiting task got the item or the cancel; either way the
         * item is received exactly once. */
        int r = corio_channel_try_recv(ch, &v);
        CHECK_EQ(got_before_the_end + (r == 0), 1);
        CHECK_ERR(corio_channel_try_recv(ch, &v), -EAGAIN);
    }
    corio_channel_free(ch);
}

/* ---- a million items ------------------------------------------------ */

#define MILLION 1000000u

static void *million_send(void *arg)
{
    for (uint64_t i = 0; i < MILLION; i++)
        CHECK_ERR(corio_channel_send(arg, (void *)(uintptr_t)(i + 1)), 0);
    CHECK_OK(corio_channel_close(arg));
    return NULL;
}

static void *million_recv(void *arg)
{
    void *p;
    uint64_t want = 1;
    int r;
    while ((r = corio_channel_recv(arg, &p)) == 0) {
        if ((uintptr_t)p != want)
            CHECK_EQ((uintptr_t)p, want);
        want++;
    }
    CHECK_ERR(r, -ESHUTDOWN);
    CHECK_EQ(want, MILLION + 1);
    return (void *)1;
}

static void *million_main(void *arg)
{
    corio_channel **chs = arg;
    /* Thread -> task on chs[0], task -> thread on chs[1], at once. */
    pthread_t a, b;
    start(&a, million_send, chs[0]);
    start(&b, million_recv, chs[1]);
    corio_task *t = corio_spawn(million_send, chs[1]);
    CHECK(million_recv(chs[0]) == (void *)1);
    CHECK_OK(corio_task_join(t, NULL));
    join_in_task(a);
    CHECK(join_in_task(b) == (void *)1);
    return NULL;
}

TEST(a_million_items_each_way_between_a_task_and_threads)
{
    corio_channel *chs[2] = {corio_channel_new(1024, 0), corio_channel_new(1024, 0)};
    test_run(million_main, chs);
    corio_channel_free(chs[0]);
    corio_channel_free(chs[1]);
}
