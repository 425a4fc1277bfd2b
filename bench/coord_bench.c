/*
 * coord_bench — the cost of coordinating tasks: queues, locks, channels.
 *
 * The corio side of bench/coord_bench.sh, which runs it next to the same
 * programs written with Go channels / sync.Mutex (bench/peers/coord.go) and
 * asyncio / uvloop (bench/peers/coord_asyncio.py).  Metrics:
 *
 *   queue_handoff     two tasks ping-pong a pointer through two FIFO queues
 *                     of capacity 1, N round trips; the figure is per
 *                     handoff, one leg of a round trip (2 N in all)
 *   queue_item        one task puts N pointers into a FIFO queue of
 *                     capacity 1024, another gets them; per item
 *   lock_uncontended  N acquire/release pairs of a corio_lock nobody else
 *                     wants; per pair
 *   lock_handoff      two tasks, each N/2 times: acquire, corio_yield (the
 *                     other task runs and queues on the lock), release; per
 *                     acquisition, nearly every one a direct hand-over
 *   channel           a plain thread sends N pointers into a corio_channel
 *                     of capacity 1024, a task on the loop receives them;
 *                     per item (the script turns it into items/s)
 *   channel_rev       the reverse: the task sends, the plain thread receives
 *   remote_call       a task calls corio_loop_ref_call on a second loop
 *                     running on another thread, N times; per round trip
 *                     (spawn there, run, result back, joiner woken)
 *
 * Usage: coord_bench METRIC [N]   one timed pass after an untimed warm-up
 *                                 of N/10; prints "METRIC WALL_NS CPU_NS",
 *                                 wall-clock and process CPU time (every
 *                                 thread) per operation -- the format the
 *                                 peers print, for bench/coord_bench.sh
 *        coord_bench              every metric, 5 passes each, printing
 *                                 `METRIC_ns: MEDIAN ns` lines (a quick
 *                                 look without the peers)
 *
 * A failure exits 1 after saying what failed.  Pin it with taskset:
 * bench/coord_bench.sh uses CPU 0, and CPUs 0,1 for the channel metrics
 * and remote_call.
 * Under taskset the kernel still decides whether the channel's two threads
 * share one CPU or run on both (on a busy machine it often puts them
 * together); COORD_PIN_THREADS=A,B pins the loop's thread to CPU A and the
 * plain thread (remote_call: the other loop's) to CPU B, for the two-CPU
 * case on its own.
 */
#define _GNU_SOURCE 1
#include <corio.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RUNS 5
#define QUEUE_CAP 1024

static uint64_t clock_of(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Report a failed call and make the pass fail. */
static int fail(const char *what, int err)
{
    fprintf(stderr, "coord_bench: %s: %s\n", what, corio_strerror(err));
    return -1;
}

/* ---- queues ---- */

struct pair {
    corio_queue *a, *b;
    long n;
};

/* The far end of the ping-pong: take from a, give back through b. */
static void *echo_task(void *arg)
{
    struct pair *p = arg;
    for (long i = 0; i < p->n; i++) {
        void *v;
        int r = corio_queue_get(p->a, &v);
        if (r == 0)
            r = corio_queue_put(p->b, v);
        if (r < 0)
            return (void *)(intptr_t)fail("echo: corio_queue_get/put", r);
    }
    return NULL;
}

static corio_queue *fifo(size_t capacity)
{
    corio_queue_config cfg = {.kind = CORIO_QUEUE_FIFO, .capacity = capacity};
    corio_queue *q = corio_queue_new(&cfg);
    if (!q)
        fail("corio_queue_new", -errno);
    return q;
}

/* Wait for t, cancelling it first if r says this side failed (it could
 * wait for this side forever); fold t's failure (a non-NULL result) into
 * r. */
static int join(corio_task *t, int r)
{
    void *res = NULL;
    if (r < 0)
        corio_task_cancel(t);
    int j = corio_task_join(t, &res);
    if (j < 0)
        return fail("corio_task_join", j);
    return res ? -1 : r;
}

static long queue_handoff(long n)
{
    struct pair p = {fifo(1), fifo(1), n};
    long ops = -1;
    if (!p.a || !p.b)
        goto out;
    corio_task *t = corio_spawn(echo_task, &p);
    if (!t) {
        fail("corio_spawn", -errno);
        goto out;
    }
    int r = 0;
    for (long i = 0; i < n && r == 0; i++) {
        void *v;
        r = corio_queue_put(p.a, (void *)(intptr_t)(i + 1));
        if (r == 0)
            r = corio_queue_get(p.b, &v);
        if (r == 0 && v != (void *)(intptr_t)(i + 1))
            r = -EPROTO; /* a wrong item came back */
    }
    if (r < 0)
        fail("main: corio_queue_put/get", r);
    if (join(t, r) == 0)
        ops = 2 * n;
out:
    if (p.a)
        corio_queue_free(p.a);
    if (p.b)
        corio_queue_free(p.b);
    return ops;
}

static void *producer_task(void *arg)
{
    struct pair *p = arg;
    for (long i = 0; i < p->n; i++) {
        int r = corio_queue_put(p->a, (void *)(intptr_t)(i + 1));
        if (r < 0)
            return (void *)(intptr_t)fail("producer: corio_queue_put", r);
    }
    return NULL;
}

static long queue_item(long n)
{
    struct pair p = {fifo(QUEUE_CAP), NULL, n};
    if (!p.a)
        return -1;
    long ops = -1;
    corio_task *t = corio_spawn(producer_task, &p);
    if (!t) {
        fail("corio_spawn", -errno);
        goto out;
    }
    int r = 0;
    uintptr_t sum = 0;
    for (long i = 0; i < n && r == 0; i++) {
        void *v;
        r = corio_queue_get(p.a, &v);
        sum += (uintptr_t)v;
    }
    if (r < 0)
        fail("consumer: corio_queue_get", r);
    else if (sum != (uintptr_t)n * (uintptr_t)(n + 1) / 2)
        r = fail("consumer: checksum", -EPROTO);
    if (join(t, r) == 0)
        ops = n;
out:
    corio_queue_free(p.a);
    return ops;
}

/* ---- locks ---- */

static long lock_uncontended(long n)
{
    corio_lock lk;
    corio_lock_init(&lk);
    for (long i = 0; i < n; i++) {
        int r = corio_lock_acquire(&lk);
        if (r == 0)
            r = corio_lock_release(&lk);
        if (r < 0)
            return fail("corio_lock_acquire/release", r);
    }
    return n;
}

struct contend {
    corio_lock lk;
    long n;
};

static void *contend_task(void *arg)
{
    struct contend *c = arg;
    for (long i = 0; i < c->n; i++) {
        int r = corio_lock_acquire(&c->lk);
        if (r == 0)
            r = corio_yield();
        if (r == 0)
            r = corio_lock_release(&c->lk);
        if (r < 0)
            return (void *)(intptr_t)fail("contender: corio_lock_acquire/yield/release", r);
    }
    return NULL;
}

static long lock_handoff(long n)
{
    struct contend c = {.n = n / 2};
    corio_lock_init(&c.lk);
    corio_task *t[2];
    for (int k = 0; k < 2; k++) {
        t[k] = corio_spawn(contend_task, &c);
        if (!t[k]) {
            fail("corio_spawn", -errno);
            if (k)
                join(t[0], -1);
            return -1;
        }
    }
    int r = join(t[0], 0);
    r = join(t[1], r);
    return r < 0 ? -1 : n / 2 * 2;
}

/* ---- channels ---- */

struct xfer {
    corio_channel *ch;
    long n;
    int err;
    uintptr_t sum;
};

/* COORD_PIN_THREADS=A,B: the calling thread to CPU A (which 0) or B (1). */
static void pin_thread(int which)
{
    const char *e = getenv("COORD_PIN_THREADS");
    int cpu[2];
    if (!e || sscanf(e, "%d,%d", &cpu[0], &cpu[1]) != 2)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu[which], &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0)
        perror("coord_bench: sched_setaffinity");
}

static void *thread_sender(void *arg)
{
    struct xfer *x = arg;
    pin_thread(1);
    for (long i = 0; i < x->n && !x->err; i++)
        x->err = corio_channel_send(x->ch, (void *)(intptr_t)(i + 1));
    return NULL;
}

static void *thread_receiver(void *arg)
{
    struct xfer *x = arg;
    pin_thread(1);
    for (long i = 0; i < x->n && !x->err; i++) {
        void *v;
        x->err = corio_channel_recv(x->ch, &v);
        x->sum += (uintptr_t)v;
    }
    return NULL;
}

/* The task's end of the channel runs on the loop; the other is a plain
 * pthread.  The thread is started inside the timed pass: its creation is a
 * few microseconds against a pass of tens of milliseconds. */
static long channel(long n, bool to_loop)
{
    struct xfer x = {.ch = corio_channel_new(QUEUE_CAP, 0), .n = n};
    if (!x.ch)
        return fail("corio_channel_new", -errno);
    pin_thread(0);
    pthread_t th;
    int e = pthread_create(&th, NULL, to_loop ? thread_sender : thread_receiver, &x);
    if (e) {
        corio_channel_free(x.ch);
        return fail("pthread_create", -e);
    }
    int r = 0;
    uintptr_t sum = 0;
    for (long i = 0; i < n && r == 0; i++) {
        if (to_loop) {
            void *v;
            r = corio_channel_recv(x.ch, &v);
            sum += (uintptr_t)v;
        } else {
            r = corio_channel_send(x.ch, (void *)(intptr_t)(i + 1));
        }
    }
    /* A failed end must not leave the other blocked forever. */
    if (r < 0)
        corio_channel_close(x.ch);
    pthread_join(th, NULL);
    corio_channel_free(x.ch);
    if (r < 0)
        return fail(to_loop ? "corio_channel_recv" : "corio_channel_send", r);
    if (x.err)
        return fail(to_loop ? "thread: corio_channel_send" : "thread: corio_channel_recv", x.err);
    if ((to_loop ? sum : x.sum) != (uintptr_t)n * (uintptr_t)(n + 1) / 2)
        return fail("channel checksum", -EPROTO);
    return n;
}

static long channel_to_loop(long n) { return channel(n, true); }
static long channel_to_thread(long n) { return channel(n, false); }

/* ---- loops calling each other ---- */

struct other_loop {
    corio_channel *hello; /* its reference, once it runs */
    corio_channel *stop;  /* anything: its main task returns */
};

static void *other_main(void *arg)
{
    struct other_loop *o = arg;
    corio_loop_ref *ref = corio_loop_ref_get();
    if (!ref || corio_channel_send(o->hello, ref) != 0)
        return (void *)1;
    void *item;
    return corio_channel_recv(o->stop, &item) == 0 ? NULL : (void *)1;
}

static void *other_thread(void *arg)
{
    pin_thread(1);
    void *res = NULL;
    int r = corio_run(NULL, other_main, arg, &res);
    return (void *)(intptr_t)(r < 0 ? r : res ? -EIO : 0);
}

static void *add_one(void *arg) { return (void *)((uintptr_t)arg + 1); }

/* The other loop is started inside the timed pass, like the channel's
 * thread: microseconds against a pass of tens of milliseconds. */
static long remote_call(long n)
{
    struct other_loop o = {corio_channel_new(1, 0), corio_channel_new(1, 0)};
    if (!o.hello || !o.stop) {
        corio_channel_free(o.hello);
        corio_channel_free(o.stop);
        return fail("corio_channel_new", -ENOMEM);
    }
    pin_thread(0);
    pthread_t th;
    int e = pthread_create(&th, NULL, other_thread, &o);
    if (e) {
        corio_channel_free(o.hello);
        corio_channel_free(o.stop);
        return fail("pthread_create", -e);
    }
    void *ref = NULL;
    int r = corio_channel_recv(o.hello, &ref);
    for (long i = 0; i < n && r == 0; i++) {
        void *res = NULL;
        r = corio_loop_ref_call(ref, add_one, (void *)(uintptr_t)i, &res);
        if (r == 0 && (uintptr_t)res != (uintptr_t)i + 1)
            r = -EPROTO;
    }
    (void)corio_channel_try_send(o.stop, NULL);
    void *tr = NULL;
    pthread_join(th, &tr);
    corio_loop_ref_release(ref);
    corio_channel_free(o.hello);
    corio_channel_free(o.stop);
    if (r < 0)
        return fail("corio_loop_ref_call", r);
    if (tr)
        return fail("the other loop", (int)(intptr_t)tr);
    return n;
}

/* ---- driver ---- */

static const struct metric {
    const char *name;
    long (*fn)(long n);
    long n; /* default N: a pass of about 0.05-0.2 s */
} metrics[] = {
    {"queue_handoff", queue_handoff, 1000000},
    {"queue_item", queue_item, 2000000},
    {"lock_uncontended", lock_uncontended, 10000000},
    {"lock_handoff", lock_handoff, 1000000},
    {"channel", channel_to_loop, 2000000},
    {"channel_rev", channel_to_thread, 2000000},
    {"remote_call", remote_call, 200000},
};
#define NMETRICS (sizeof metrics / sizeof metrics[0])

struct request {
    const struct metric *m; /* NULL: every metric */
    long n;                 /* 0: the metric's default */
};

/* One warm-up pass of n/10, then a timed one; 0 and the figures per
 * operation, or -1. */
static int measure(const struct metric *m, long n, double *wall, double *cpu)
{
    if (m->fn(n / 10 > 0 ? n / 10 : 1) < 0)
        return -1;
    uint64_t c0 = clock_of(CLOCK_PROCESS_CPUTIME_ID), t0 = clock_of(CLOCK_MONOTONIC);
    long ops = m->fn(n);
    uint64_t t1 = clock_of(CLOCK_MONOTONIC), c1 = clock_of(CLOCK_PROCESS_CPUTIME_ID);
    if (ops <= 0)
        return -1;
    *wall = (double)(t1 - t0) / (double)ops;
    *cpu = (double)(c1 - c0) / (double)ops;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void *bench_main(void *arg)
{
    const struct request *req = arg;
    double wall, cpu;
    if (req->m) {
        if (measure(req->m, req->n ? req->n : req->m->n, &wall, &cpu) < 0)
            return (void *)1;
        printf("%s %.2f %.2f\n", req->m->name, wall, cpu);
        return NULL;
    }
    for (size_t i = 0; i < NMETRICS; i++) {
        const struct metric *m = &metrics[i];
        double w[RUNS], c[RUNS];
        for (int run = 0; run < RUNS; run++)
            if (measure(m, m->n, &w[run], &c[run]) < 0)
                return (void *)1;
        qsort(w, RUNS, sizeof w[0], cmp_double);
        qsort(c, RUNS, sizeof c[0], cmp_double);
        printf("%s_ns: %.2f ns\n%s_cpu_ns: %.2f ns\n", m->name, w[RUNS / 2], m->name, c[RUNS / 2]);
        fflush(stdout);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct request req = {0};
    if (argc > 1) {
        for (size_t i = 0; i < NMETRICS; i++)
            if (strcmp(argv[1], metrics[i].name) == 0)
                req.m = &metrics[i];
        if (argc > 2)
            req.n = strtol(argv[2], NULL, 10);
        if (!req.m || argc > 3 || (argc > 2 && req.n < 10)) {
            fprintf(stderr, "usage: coord_bench [METRIC [N]]  (N >= 10; METRIC:");
            for (size_t i = 0; i < NMETRICS; i++)
                fprintf(stderr, " %s", metrics[i].name);
            fprintf(stderr, ")\n");
            return 2;
        }
    }
    void *res = NULL;
    int r = corio_run(NULL, bench_main, &req, &res);
    if (r < 0) {
        fprintf(stderr, "coord_bench: corio_run: %s\n", corio_strerror(r));
        return 1;
    }
    return res ? 1 : 0;
}
