/*
 * Queues (src/core/queue.c, queue_heap.c): exact item order for FIFO, LIFO
 * and PRIORITY (pointer and value items, stability of equal priorities),
 * bounded puts that wait and resume in order, getters served in order,
 * task_done/join, every shutdown case, cancellation and deadlines at each
 * suspension point with nothing lost or duplicated, 100,000 waiting
 * getters, growth to a million items, and allocation failures.
 *
 * Tasks are sequenced by looking at the queue's wait lists (the private
 * structure, src/core/queue.h): a test yields until the tasks it started
 * are parked where it expects them, never for a time.
 */
#include "runner.h"

#include "queue.h"

#include <stdint.h>

#define P(i) ((void *)(intptr_t)(i))
#define I(p) ((intptr_t)(p))

static corio_queue *new_queue(corio_queue_kind kind, size_t capacity, size_t item_size,
                              int (*compare)(const void *, const void *), void (*drop)(void *))
{
    corio_queue_config cfg = {
        .kind = kind, .capacity = capacity, .item_size = item_size, .compare = compare, .drop = drop};
    corio_queue *q = corio_queue_new(&cfg);
    CHECK(q);
    return q;
}

/* Yield until n tasks wait to get from (or put into, join) q. */
static void until_getters(corio_queue *q, size_t n)
{
    while (q->getters.len < n)
        CHECK_OK(corio_yield());
    CHECK_EQ(q->getters.len, n);
}
static void until_putters(corio_queue *q, size_t n)
{
    while (q->putters.len < n)
        CHECK_OK(corio_yield());
    CHECK_EQ(q->putters.len, n);
}
static void until_joiners(corio_queue *q, size_t n)
{
    while (q->joiners.len < n)
        CHECK_OK(corio_yield());
    CHECK_EQ(q->joiners.len, n);
}

/* Join t and return what it returned. */
static intptr_t join(corio_task *t)
{
    void *r = P(-12345);
    CHECK_OK(corio_task_join(t, &r));
    return I(r);
}

/* ---- order ---- */

typedef struct triple {
    int a, b, c;
} triple;

static void *fifo_order_main(void *arg)
{
    /* pointers, unbounded */
    corio_queue *q = new_queue(CORIO_QUEUE_FIFO, 0, 0, NULL, NULL);
    void *p = P(-1);
    CHECK_ERR(corio_queue_try_get(q, &p), -EAGAIN);
    CHECK(p == P(-1));
    for (int i = 0; i < 10; i++)
        CHECK_OK(corio_queue_put(q, P(i)));
    CHECK_OK(corio_queue_put(q, NULL)); /* NULL is an item like any other */
    CHECK_EQ(corio_queue_size(q), 11);
    for (int i = 0; i < 10; i++) {
        CHECK_OK(corio_queue_get(q, &p));
        CHECK_EQ(I(p), i);
    }
    CHECK_OK(corio_queue_try_get(q, &p));
    CHECK(p == NULL);
    CHECK_EQ(corio_queue_size(q), 0);
    corio_queue_free(q);

    /* values of an odd size, bounded: the ring wraps many times */
    q = new_queue(CORIO_QUEUE_FIFO, 5, sizeof(triple), NULL, NULL);
    int next_in = 0, next_out = 0;
    for (int round = 0; round < 100; round++) {
        while (corio_queue_size(q) < 5) {
            triple t = {next_in, -next_in, next_in * 3};
            CHECK_OK(corio_queue_try_put(q, &t));
            next_in++;
        }
        triple t = {0, 0, 0};
        CHECK_ERR(corio_queue_try_put(q, &t), -EAGAIN);
        for (int k = 0; k < 1 + round % 5; k++) {
            CHECK_OK(corio_queue_try_get(q, &t));
            CHECK_EQ(t.a, next_out);
            CHECK_EQ(t.b, -next_out);
            CHECK_EQ(t.c, next_out * 3);
            next_out++;
        }
    }
    corio_queue_free(q);

    /* 3-byte values */
    q = new_queue(CORIO_QUEUE_FIFO, 0, 3, NULL, NULL);
    for (int i = 0; i < 1000; i++) {
        unsigned char v[3] = {(unsigned char)i, (unsigned char)(i >> 8), 0x5a};
        CHECK_OK(corio_queue_put(q, v));
    }
    for (int i = 0; i < 1000; i++) {
        unsigned char v[4] = {0, 0, 0, 0x77};
        CHECK_OK(corio_queue_get(q, v));
        CHECK_EQ(v[0] | v[1] << 8, i);
        CHECK_EQ(v[2], 0x5a);
        CHECK_EQ(v[3], 0x77); /* exactly item_size bytes written */
    }
    corio_queue_free(q);
    return NULL;
}

TEST(fifo_keeps_exact_order) { test_run(fifo_order_main, NULL); }

static void *lifo_order_main(void *arg)
{
    corio_queue *q = new_queue(CORIO_QUEUE_LIFO, 0, 0, NULL, NULL);
    void *p;
    for (int i = 0; i < 300; i++) /* past the first block: grows */
        CHECK_OK(corio_queue_put(q, P(i)));
    for (int i = 299; i >= 100; i--) {
        CHECK_OK(corio_queue_get(q, &p));
        CHECK_EQ(I(p), i);
    }
    CHECK_OK(corio_queue_put(q, P(1000)));
    CHECK_OK(corio_queue_get(q, &p));
    CHECK_EQ(I(p), 1000);
    for (int i = 99; i >= 0; i--) {
        CHECK_OK(corio_queue_try_get(q, &p));
        CHECK_EQ(I(p), i);
    }
    CHECK_ERR(corio_queue_try_get(q, &p), -EAGAIN);
    corio_queue_free(q);

    /* bounded values */
    q = new_queue(CORIO_QUEUE_LIFO, 4, sizeof(triple), NULL, NULL);
    for (int i = 0; i < 4; i++) {
        triple t = {i, i + 1, i + 2};
        CHECK_OK(corio_queue_put(q, &t));
    }
    triple t = {9, 9, 9};
    CHECK_ERR(corio_queue_try_put(q, &t), -EAGAIN);
    for (int i = 3; i >= 0; i--) {
        CHECK_OK(corio_queue_get(q, &t));
        CHECK(t.a == i && t.b == i + 1 && t.c == i + 2);
    }
    corio_queue_free(q);
    return NULL;
}

TEST(lifo_keeps_exact_order) { test_run(lifo_order_main, NULL); }

/* A priority item: ordered by prio only; id tells equal ones apart. */
typedef struct prio_item {
    int prio;
    int id;
} prio_item;

static int cmp_prio_ptr(const void *a, const void *b)
{
    const prio_item *x = a, *y = b;
    return (x->prio > y->prio) - (x->prio < y->prio);
}

typedef struct big_item {
    long long prio;
    int id;
    char pad[44];
} big_item;

static int cmp_big(const void *a, const void *b)
{
    const big_item *x = a, *y = b;
    return (x->prio > y->prio) - (x->prio < y->prio);
}

/* The order a stable priority queue must produce: by prio, then by id
 * (ids are given in put order). */
static int cmp_model(const void *a, const void *b)
{
    const prio_item *x = a, *y = b;
    if (x->prio != y->prio)
        return (x->prio > y->prio) - (x->prio < y->prio);
    return (x->id > y->id) - (x->id < y->id);
}

static void *priority_order_main(void *arg)
{
    enum { N = 2000 };
    static prio_item items[N], model[N];
    uint32_t seed = 12345;
    for (int i = 0; i < N; i++) {
        seed = seed * 1103515245u + 12345u;
        items[i].prio = (int)((seed >> 16) % 7); /* many equal priorities */
        items[i].id = i;
    }
    /* pointer items, unbounded: the queue compares the pointed-to items */
    corio_queue *q = new_queue(CORIO_QUEUE_PRIORITY, 0, 0, cmp_prio_ptr, NULL);
    for (int i = 0; i < N; i++)
        CHECK_OK(corio_queue_put(q, &items[i]));
    memcpy(model, items, sizeof items);
    qsort(model, N, sizeof model[0], cmp_model);
    for (int i = 0; i < N; i++) {
        void *p;
        CHECK_OK(corio_queue_get(q, &p));
        const prio_item *it = p;
        CHECK_EQ(it->prio, model[i].prio);
        CHECK_EQ(it->id, model[i].id);
    }
    corio_queue_free(q);

    /* 8-byte values, bounded, gets interleaved with puts: each get takes the
     * smallest of what is in, the oldest of equals */
    q = new_queue(CORIO_QUEUE_PRIORITY, 64, sizeof(prio_item), cmp_prio_ptr, NULL);
    prio_item in[64];
    size_t n_in = 0;
    int put = 0;
    while (put < N || n_in) {
        while (put < N && n_in < 64 && (n_in < 10 || put % 3)) {
            CHECK_OK(corio_queue_try_put(q, &items[put]));
            in[n_in++] = items[put++];
        }
        size_t best = 0;
        for (size_t k = 1; k < n_in; k++)
            if (cmp_model(&in[k], &in[best]) < 0)
                best = k;
        prio_item got = {-1, -1};
        CHECK_OK(corio_queue_get(q, &got));
        CHECK_EQ(got.prio, in[best].prio);
        CHECK_EQ(got.id, in[best].id);
        in[best] = in[--n_in];
        CHECK_EQ(corio_queue_size(q), n_in);
    }
    corio_queue_free(q);

    /* larger values, growing through several blocks */
    q = new_queue(CORIO_QUEUE_PRIORITY, 0, sizeof(big_item), cmp_big, NULL);
    for (int i = 0; i < N; i++) {
        big_item b = {.prio = items[i].prio, .id = i};
        memset(b.pad, i & 0x7f, sizeof b.pad);
        CHECK_OK(corio_queue_put(q, &b));
    }
    for (int i = 0; i < N; i++) {
        big_item b;
        CHECK_OK(corio_queue_get(q, &b));
        CHECK_EQ(b.prio, model[i].prio);
        CHECK_EQ(b.id, model[i].id);
        CHECK_EQ(b.pad[0], b.id & 0x7f);
        CHECK_EQ(b.pad[43], b.id & 0x7f);
    }
    corio_queue_free(q);
    return NULL;
}

TEST(priority_is_ordered_and_stable) { test_run(priority_order_main, NULL); }

/* ---- waiting putters and getters ---- */

typedef struct actor {
    corio_queue *q;
    intptr_t item;   /* what a putter puts */
    intptr_t got;    /* what a getter got */
    int *log, *nlog; /* order in which actors returned */
    int id;
    int deadline_ms;  /* > 0: wait under a deadline */
    bool spin_before; /* getter: the test makes the deadline pass before it runs */
} actor;

static void log_return(actor *a)
{
    if (a->log)
        a->log[(*a->nlog)++] = a->id;
}

static void *putter(void *arg)
{
    actor *a = arg;
    corio_deadline d = {0};
    if (a->deadline_ms)
        d = corio_deadline_push((uint64_t)a->deadline_ms);
    int r = corio_queue_put(a->q, P(a->item));
    if (a->deadline_ms)
        corio_deadline_pop(d);
    log_return(a);
    return P(r);
}

static void *getter(void *arg)
{
    actor *a = arg;
    corio_deadline d = {0};
    if (a->deadline_ms)
        d = corio_deadline_push((uint64_t)a->deadline_ms);
    void *p = P(-1);
    int r = corio_queue_get(a->q, &p);
    if (a->deadline_ms)
        corio_deadline_pop(d);
    a->got = I(p);
    log_return(a);
    return P(r);
}

static void *bounded_put_main(void *arg)
{
    corio_queue *q = new_queue(CORIO_QUEUE_FIFO, 2, 0, NULL, NULL);
    int log[8], nlog = 0;
    CHECK_OK(corio_queue_put(q, P(1)));
    CHECK_OK(corio_queue_put(q, P(2)));
    CHECK_ERR(corio_queue_try_put(q, P(99)), -EAGAIN);
    actor a[3];
    corio_task *t[3];
    for (int i = 0; i < 3; i++) {
        a[i] = (actor){.q = q, .item = 10 + i, .log = log, .nlog = &nlog, .id = i};
        t[i] = corio_spawn(putter, &a[i]);
    }
    until_putters(q, 3);
    CHECK_EQ(nlog, 0);
    /* each get moves the longest waiting putter's item in at once */
    intptr_t want[] = {1, 2, 10, 11, 12};
    void *p;
    for (int k = 0; k < 5; k++) {
        CHECK_OK(corio_queue_get(q, &p));
        CHECK_EQ(I(p), want[k]);
        CHECK_EQ(corio_queue_size(q), k < 3 ? 2 : 4 - k);
        CHECK_EQ(q->putters.len, k < 3 ? 2 - k : 0);
        /* a try_put cannot overtake the putters: the freed slot is taken */
        if (k < 3)
            CHECK_ERR(corio_queue_try_put(q, P(99)), -EAGAIN);
    }
    for (int i = 0; i < 3; i++)
        CHECK_EQ(join(t[i]), 0);
    CHECK_EQ(nlog, 3);
    CHECK(log[0] == 0 && log[1] == 1 && log[2] == 2);
    CHECK_ERR(corio_queue_try_get(q, &p), -EAGAIN);
    corio_queue_free(q);
    return NULL;
}

TEST(bounded_put_waits_and_putters_resume_in_order) { test_run(bounded_put_main, NULL); }

static void *getters_order_main(void *arg)
{
    corio_queue *q = new_queue(CORIO_QUEUE_FIFO, 0, 0, NULL, NULL);
    int log[8], nlog = 0;
    actor a[3];
    corio_task *t[3];
    for (int i = 0; i < 3; i++) {
        a[i] = (actor){.q = q, .log = log, .nlog = &nlog, .id = i};
        t[i] = corio_spawn(getter, &a[i]);
    }
    until_getters(q, 3);
    CHECK_OK(corio_queue_put(q, P(100)));
    /* handed over: nothing left to steal */
    void *p;
    CHECK_ERR(corio_queue_try_get(q, &p), -EAGAIN);
    CHECK_EQ(corio_queue_size(q), 0);
    CHECK_OK(corio_queue_try_put(q, P(101)));
    CHECK_OK(corio_queue_put(q, P(102)));
    CHECK_OK(corio_queue_put(q, P(103))); /* no getter left: stays in q */
    CHECK_EQ(corio_queue_size(q), 1);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(join(t[i]), 0);
        CHECK_EQ(a[i].got, 100 + i);
    }
    CHECK(log[0] == 0 && log[1] == 1 && log[2] == 2);
    CHECK_OK(corio_queue_get(q, &p));
    CHECK_EQ(I(p), 103);
    corio_queue_free(q);

    /* LIFO and PRIORITY hand over the first item to a getter too */
    corio_queue_kind kinds[] = {CORIO_QUEUE_LIFO, CORIO_QUEUE_PRIORITY};
    for (int k = 0; k < 2; k++) {
        q = new_queue(kinds[k], 1, sizeof(prio_item), cmp_prio_ptr, NULL);
        actor g = {.q = q};
        corio_task *gt = corio_spawn(getter, &g);
        until_getters(q, 1);
        prio_item it = {5, 77};
        CHECK_OK(corio_queue_put(q, &it));
        CHECK_EQ(corio_queue_size(q), 0);
        CHECK_EQ(join(gt), 0);
        prio_item back;
        memcpy(&back, &g.got, sizeof back);
        CHECK(back.prio == 5 && back.id == 77);
        corio_queue_free(q);
    }
    return NULL;
}

TEST(getters_are_served_in_order) { test_run(getters_order_main, NULL); }

/* The complaint of issue 9: two consumers, one queue; every item goes to
 * exactly one of them, in turn. */
typedef struct consumer_arg {
    corio_queue *q;
    long count, sum;
} consumer_arg;

static void *consumer(void *arg)
{
    consumer_arg *c = arg;
    void *p;
    int r;
    while ((r = corio_queue_get(c->q, &p)) == 0) {
        c->count++;
        c->sum += I(p);
    }
    return P(r);
}

static void *fair_consumers_main(void *arg)
{
    corio_queue *q = new_queue(CORIO_QUEUE_FIFO, 16, 0, NULL, NULL);
    consumer_arg c[2] = {{q, 0, 0}, {q, 0, 0}};
    corio_task *t[2] = {corio_spawn(consumer, &c[0]), corio_spawn(consumer, &c[1])};
    until_getters(q, 2);
    for (int i = 1; i <= 10000; i++) {
        CHECK_OK(corio_queue_put(q, P(i)));
        CHECK_OK(corio_yield());
    }
    CHECK_OK(corio_queue_shutdown(q, false));
    CHECK_EQ(join(t[0]), -ESHUTDOWN);
    CHECK_EQ(join(t[1]), -ESHUTDOWN);
    CHECK_EQ(c[0].count, 5000);
    CHECK_EQ(c[1].count, 5000);
    CHECK_EQ(c[0].sum + c[1].sum, 10000L * 10001 / 2);
    corio_queue_free(q);
    return NULL;
}

TEST(two_consumers_share_items_in_turn) { test_run(fair_consumers_main, NULL); }

/* ---- task_done / join ---- */

static void *joiner(void *arg)
{
    actor *a = arg;
    corio_deadline d = {0};
    if (a->deadline_ms)
        d = corio_deadline_push((uint64_t)a->deadline_ms);
    int r = corio_queue_join(a->q);
    if (a->deadline_ms)
        corio_deadline_pop(d);
    log_return(a);
    return P(r);
}

static void *join_main(void *arg)
{
    corio_queue *q = new_queue(CORIO_QUEUE_FIFO, 0, 0, NULL, NULL);
    CHECK_OK(corio_queue_join(q)); /* nothing put: at once */
    CHECK_ERR(corio_queue_task_done(q), -EOVERFLOW);
    for (int i = 0; i < 3; i++)
        CHECK_OK(corio_queue_put(q, P(i)));
    int log[4], nlog = 0;
    actor a[2] = {{.q = q, .log = log, .nlog = &nlog, .id = 0}, {.q = q, .log = log, .nlog = &nlog, .id = 1}};
    corio_task *t[2] = {corio_spawn(joiner, &a[0]), corio_spawn(joiner, &a[1])};
    until_joiners(q, 2);
    void *p;
    for (int i = 0; i < 3; i++) {
        CHECK_OK(corio_queue_get(q, &p));
        CHECK_OK(corio_yield());
        CHECK_EQ(nlog, 0); /* taken is not done */
    }
    CHECK_OK(corio_queue_task_done(q));
    CHECK_OK(corio_queue_task_done(q));
    CHECK_OK(corio_yield());
    CHECK_EQ(nlog, 0);
    CHECK_OK(corio_queue_task_done(q));
    CHECK_EQ(q->joiners.len, 0); /* both woken by the last task_done */
    CHECK_EQ(join(t[0]), 0);
    CHECK_EQ(join(t[1]), 0);
    CHECK(log[0] == 0 && log[1] == 1);
    CHECK_ERR(corio_queue_task_done(q), -EOVERFLOW);
    CHECK_OK(corio_queue_join(q));

    /* items handed straight to a getter and items moved in from a waiting
     * putter count as put too */
    actor g = {.q = q};
    corio_task *gt = corio_spawn(getter, &g);
    until_getters(q, 1);
    CHECK_OK(corio_queue_put(q, P(5)));
    CHECK_EQ(join(gt), 0);
    CHECK_EQ(q->unfinished, 1);
    CHECK_OK(corio_queue_task_done(q));
    CHECK_ERR(corio_queue_task_done(q), -EOVERFLOW);
    corio_queue_free(q);

    q = new_queue(CORIO_QUEUE_FIFO, 1, 0, NULL, NULL);
    CHECK_OK(corio_queue_put(q, P(1)));
    actor pa = {.q = q, .item = 2};
    corio_task *pt = corio_spawn(putter, &pa);
    until_putters(q, 1);
    CHECK_OK(corio_queue_get(q, &p));
    CHECK_EQ(join(pt), 0);
    CHECK_EQ(q->unfinished, 2);
    CHECK_OK(corio_queue_task_done(q));
    CHECK_OK(corio_queue_task_done(q));
    CHECK_ERR(corio_queue_task_done(q), -EOVERFLOW);
    corio_queue_free(q);
    return NULL;
}

TEST(task_done_and_join) { test_run(join_main, NULL); }

static void *join_interrupt_main(void *arg)
{
    corio_queue *q = new_queue(CORIO_QUEUE_FIFO, 0, 0, NULL, NULL);
    CHECK_OK(corio_queue_put(q, P(1)));
    /* the deadline is long enough for all three to be waiting first */
    actor a[3] = {{.q = q, .id = 0}, {.q = q, .id = 1, .deadline_ms = 200}, {.q = q, .id = 2}};
    corio_task *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = corio_spawn(joiner, &a[i]);
    until_joiners(q, 3);
    CHECK_OK(corio_task_cancel(t[0]));
    CHECK_EQ(join(t[0]), -ECANCELED);
    CHECK_EQ(join(t[1]), -CORIO_EDEADLINE); /* the deadline, while the others wait */
    CHECK_EQ(q->joiners.len, 1);
    void *p;
    CHECK_OK(corio_queue_get(q, &p));
    CHECK_OK(corio_queue_task_done(q));
    CHECK_EQ(join(t[2]), 0);
    /* a cancelled task cannot wait in join */
    CHECK_OK(corio_queue_put(q, P(1)));
    corio_task_cancel(corio_current());
    CHECK_ERR(corio_queue_join(q), -ECANCELED);
    CHECK_OK(corio_queue_try_get(q, &p));
    CHECK_OK(corio_queue_task_done(q));
    /* nothing unfinished: still -ECANCELED, as from every suspending call */
    CHECK_ERR(corio_queue_join(q), -ECANCELED);
    corio_queue_free(q);
    return NULL;
}

TEST(join_honours_cancel_and_deadline) { test_run(join_interrupt_main, NULL); }

/* ---- shutdown ---- */

static int drops;
static intptr_t dropped_sum;

static void count_drop(void *item)
{
    drops++;
    dropped_sum += I(item);
}

static void *shutdown_normal_main(void *arg)
{
    drops = 0;
    corio_queue *q = new_queue(CORIO_QUEUE_FIFO, 0, 0, NULL, count_drop);
    for (int i = 1; i <= 3; i++)
        CHECK_OK(corio_queue_put(q, P(i)));
    CHECK_OK(corio_queue_shutdown(q, false));
    CHECK_ERR(corio_queue_put(q, P(9)), -ESHUTDOWN);
    CHECK_ERR(corio_queue_try_put(q, P(9)), -ESHUTDOWN);
    CHECK_EQ(corio_queue_size(q), 3);
    void *p;
    /* getters drain what is left, then fail */
    CHECK_OK(corio_queue_get(q, &p));
    CHECK_EQ(I(p), 1);
    CHECK_OK(corio_queue_try_get(q, &p));
    CHECK_EQ(I(p), 2);
    CHECK_OK(corio_queue_get(q, &p));
    CHECK_EQ(I(p), 3);
    CHECK_ERR(corio_queue_get(q, &p), -ESHUTDOWN);
    CHECK_ERR(corio_queue_try_get(q, &p), -ESHUTDOWN);
    CHECK_OK(corio_queue_shutdown(q, false)); /* again: harmless */
    CHECK_OK(corio_queue_shutdown(q, true));
    CHECK_EQ(drops, 0);
    /* join still counts: three taken, none done */
    CHECK_EQ(q->unfinished, 3);
    for (int i = 0; i < 3; i++)
        CHECK_OK(corio_queue_task_done(q));
    CHECK_OK(corio_queue_join(q));
    corio_queue_free(q);
    CHECK_EQ(drops, 0);
    return NULL;
}

TEST(shutdown_lets_getters_drain_then_fails_them) { test_run(shutdown_normal_main, NULL); }

static void *shutdown_waiters_main(void *arg)
{
    drops = 0;
    /* waiting putters on a full queue fail; the items in stay for getters */
    corio_queue *q = new_queue(CORIO_QUEUE_FIFO, 1, 0, NULL, count_drop);
    CHECK_OK(corio_queue_put(q, P(1)));
    actor pa[2] = {{.q = q, .item = 2}, {.q = q, .item = 3}};
    corio_task *pt[2] = {corio_spawn(putter, &pa[0]), corio_spawn(putter, &pa[1])};
    until_putters(q, 2);
    CHECK_OK(corio_queue_shutdown(q, false));
    CHECK_EQ(q->putters.len, 0);
    CHECK_EQ(join(pt[0]), -ESHUTDOWN);
    CHECK_EQ(join(pt[1]), -ESHUTDOWN);
    void *p;
    CHECK_OK(corio_queue_get(q, &p));
    CHECK_EQ(I(p), 1);
    CHECK_ERR(corio_queue_get(q, &p), -ESHUTDOWN);
    corio_queue_free(q);

    /* waiting getters on an empty queue fail */
    q = new_queue(CORIO_QUEUE_FIFO, 0, 0, NULL, count_drop);
    actor ga[3] = {{.q = q}, {.q = q}, {.q = q}};
    corio_task *gt[3];
    for (int i = 0; i < 3; i++)
        gt[i] = corio_spawn(getter, &ga[i]);
    until_getters(q, 3);
    CHECK_OK(corio_queue_shutdown(q, false));
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(join(gt[i]), -ESHUTDOWN);
        CHECK_EQ(ga[i].got, -1); /* nothing written */
    }
    corio_queue_free(q);
    CHECK_EQ(drops, 0);
    return NULL;
}

TEST(shutdown_fails_waiting_putters_and_getters) { test_run(shutdown_waiters_main, NULL); }

static void *shutdown_immediate_main(void *arg)
{
    drops = 0;
    dropped_sum = 0;
    corio_queue *q = new_queue(CORIO_QUEUE_FIFO, 4, 0, NULL, count_drop);
    for (int i = 1; i <= 4; i++)
        CHECK_OK(corio_queue_put(q, P(i)));
    void *p;
    CHECK_OK(corio_queue_get(q, &p)); /* 1 taken, not done yet */
    CHECK_OK(corio_queue_put(q, P(5)));
    actor pa = {.q = q, .item = 6};
    corio_task *pt = corio_spawn(putter, &pa);
    until_putters(q, 1);
    actor ja = {.q = q};
    corio_task *jt = corio_spawn(joiner, &ja);
    until_joiners(q, 1);
    CHECK_OK(corio_queue_shutdown(q, true));
    /* the four left were dropped once each and count as done; the waiting
     * putter's item was never the queue's */
    CHECK_EQ(drops, 4);
    CHECK_EQ(dropped_sum, 2 + 3 + 4 + 5);
    CHECK_EQ(corio_queue_size(q), 0);
    CHECK_EQ(join(pt), -ESHUTDOWN);
    CHECK_ERR(corio_queue_get(q, &p), -ESHUTDOWN);
    CHECK_ERR(corio_queue_try_get(q, &p), -ESHUTDOWN);
    CHECK_ERR(corio_queue_put(q, P(7)), -ESHUTDOWN);
    /* the joiner waits for the one taken */
    CHECK_OK(corio_yield());
    CHECK_EQ(q->joiners.len, 1);
    CHECK_OK(corio_queue_task_done(q));
    CHECK_EQ(join(jt), 0);
    CHECK_ERR(corio_queue_task_done(q), -EOVERFLOW);
    CHECK_OK(corio_queue_shutdown(q, true)); /* again: nothing more to drop */
    corio_queue_free(q);
    CHECK_EQ(drops, 4);

    /* every item dropped at once: the joiner wakes from shutdown itself;
     * waiting getters of an empty queue fail */
    drops = 0;
    q = new_queue(CORIO_QUEUE_PRIORITY, 0, sizeof(prio_item), cmp_prio_ptr, NULL);
    for (int i = 0; i < 300; i++) {
        prio_item it = {i % 5, i};
        CHECK_OK(corio_queue_put(q, &it));
    }
    ja.q = q;
    jt = corio_spawn(joiner, &ja);
    until_joiners(q, 1);
    CHECK_OK(corio_queue_shutdown(q, true)); /* no drop given: fine */
    CHECK_EQ(q->joiners.len, 0);
    CHECK_EQ(join(jt), 0);
    corio_queue_free(q);

    q = new_queue(CORIO_QUEUE_LIFO, 0, 0, NULL, count_drop);
    actor ga = {.q = q};
    corio_task *gt = corio_spawn(getter, &ga);
    until_getters(q, 1);
    CHECK_OK(corio_queue_shutdown(q, true));
    CHECK_EQ(join(gt), -ESHUTDOWN);
    corio_queue_free(q);
    CHECK_EQ(drops, 0);
    return NULL;
}

TEST(shutdown_immediate_drops_items_and_wakes_join) { test_run(shutdown_immediate_main, NULL); }

/* Each item a malloc'd block; drop frees it (ASan sees a leak or a double
 * free otherwise). */
static void free_drop(void *item)
{
    drops++;
    free(item);
}

static int value_drops;
static long value_drop_sum;

static void triple_drop(void *item)
{
    triple *t = item;
    value_drops++;
    value_drop_sum += t->a + t->b + t->c;
}

static void *drop_once_main(void *arg)
{
    corio_queue_kind kinds[] = {CORIO_QUEUE_FIFO, CORIO_QUEUE_LIFO, CORIO_QUEUE_PRIORITY};
    for (int k = 0; k < 3; k++) {
        for (int immediate = 0; immediate < 2; immediate++) {
            drops = 0;
            corio_queue *q = new_queue(kinds[k], 0, 0, cmp_prio_ptr, free_drop);
            for (int i = 0; i < 500; i++) {
                prio_item *it = malloc(sizeof *it);
                *it = (prio_item){i % 9, i};
                CHECK_OK(corio_queue_put(q, it));
            }
            void *p;
            CHECK_OK(corio_queue_get(q, &p));
            free(p);
            if (immediate) {
                CHECK_OK(corio_queue_shutdown(q, true));
                CHECK_EQ(drops, 499);
                CHECK_EQ(corio_queue_size(q), 0);
            }
            corio_queue_free(q); /* drops what is left */
            CHECK_EQ(drops, 499);
        }
    }
    /* value items: drop sees each copy */
    value_drops = 0;
    value_drop_sum = 0;
    corio_queue *q = new_queue(CORIO_QUEUE_FIFO, 8, sizeof(triple), NULL, triple_drop);
    for (int i = 0; i < 8; i++) {
        triple t = {i, 10 * i, 100 * i};
        CHECK_OK(corio_queue_put(q, &t));
    }
    triple t;
    CHECK_OK(corio_queue_get(q, &t));
    CHECK_OK(corio_queue_get(q, &t));
    corio_queue_free(q);
    CHECK_EQ(value_drops, 6);
    CHECK_EQ(value_drop_sum, 111L * (2 + 3 + 4 + 5 + 6 + 7));
    return NULL;
}

TEST(drop_called_once_per_discarded_item) { test_run(drop_once_main, NULL); }

/* ---- cancellation and deadlines ---- */

static void spin_ms(uint64_t ms)
{
    uint64_t end = test_ms() + ms;
    while (test_ms() < end)
        ;
}

static void *after_get(void *arg)
{
    /* get, then report whether the cancel is still pending */
    actor *a = arg;
    void *p = P(-1);
    int r = corio_queue_get(a->q, &p);
    a->got = I(p);
    a->id = corio_cancelled();
    return P(r);
}

static void *cancel_getter_main(void *arg)
{
    corio_queue *q = new_queue(CORIO_QUEUE_FIFO, 0, 0, NULL, NULL);
    /* cancelled right after the hand-over: the item is its */
    actor a = {.q = q};
    corio_task *t = corio_spawn(after_get, &a);
    until_getters(q, 1);
    CHECK_OK(corio_queue_put(q, P(42)));
    CHECK_OK(corio_task_cancel(t));
    CHECK_EQ(join(t), 0);
    CHECK_EQ(a.got, 42);
    CHECK_EQ(a.id, 1); /* the cancel stays pending for its next wait */
    CHECK_EQ(corio_queue_size(q), 0);

    /* cancelled before: it takes nothing and the item goes to the next */
    actor g[2] = {{.q = q}, {.q = q}};
    corio_task *gt[2] = {corio_spawn(getter, &g[0]), corio_spawn(getter, &g[1])};
    until_getters(q, 2);
    CHECK_OK(corio_task_cancel(gt[0]));
    CHECK_EQ(q->getters.len, 1);
    CHECK_OK(corio_queue_put(q, P(43)));
    CHECK_EQ(join(gt[0]), -ECANCELED);
    CHECK_EQ(g[0].got, -1);
    CHECK_EQ(join(gt[1]), 0);
    CHECK_EQ(g[1].got, 43);

    /* deadline before the hand-over: nothing taken, the next put stays */
    actor d = {.q = q, .deadline_ms = 20};
    t = corio_spawn(getter, &d);
    CHECK_EQ(join(t), -CORIO_EDEADLINE);
    CHECK_EQ(d.got, -1);
    CHECK_EQ(q->getters.len, 0);
    CHECK_OK(corio_queue_put(q, P(44)));
    CHECK_EQ(corio_queue_size(q), 1);
    void *p;
    CHECK_OK(corio_queue_get(q, &p));
    CHECK_EQ(I(p), 44);

    /* deadline passing after the hand-over, before the getter runs: it
     * returns the item */
    actor late = {.q = q, .deadline_ms = 100};
    t = corio_spawn(getter, &late);
    while (q->getters.len == 0) {
        CHECK(!corio_task_done(t)); /* a machine too slow for the 100 ms */
        CHECK_OK(corio_yield());
    }
    CHECK_OK(corio_queue_put(q, P(45)));
    spin_ms(150); /* the loop is held: the deadline passes first */
    CHECK_EQ(join(t), 0);
    CHECK_EQ(late.got, 45);

    /* a cancelled task: get fails at once, even with an item there, and
     * takes nothing; try_get, which never waits, still takes */
    CHECK_OK(corio_queue_put(q, P(46)));
    corio_task_cancel(corio_current());
    CHECK_ERR(corio_queue_get(q, &p), -ECANCELED);
    CHECK_EQ(corio_queue_size(q), 1);
    CHECK_OK(corio_queue_try_get(q, &p));
    CHECK_EQ(I(p), 46);
    CHECK_ERR(corio_queue_get(q, &p), -ECANCELED);
    CHECK_EQ(q->getters.len, 0);
    corio_queue_free(q);
    return NULL;
}

TEST(getter_cancel_and_deadline_lose_nothing) { test_run(cancel_getter_main, NULL); }

static void *cancel_putter_main(void *arg)
{
    corio_queue *q = new_queue(CORIO_QUEUE_FIFO, 1, 0, NULL, NULL);
    CHECK_OK(corio_queue_put(q, P(1)));
    void *p;

    /* cancelled before its item went in: nothing put; the next putter's
     * item takes the slot */
    actor a[2] = {{.q = q, .item = 2}, {.q = q, .item = 3}};
    corio_task *t[2] = {corio_spawn(putter, &a[0]), corio_spawn(putter, &a[1])};
    until_putters(q, 2);
    CHECK_OK(corio_task_cancel(t[0]));
    CHECK_EQ(join(t[0]), -ECANCELED);
    CHECK_EQ(q->putters.len, 1);
    CHECK_OK(corio_queue_get(q, &p));
    CHECK_EQ(I(p), 1);
    CHECK_EQ(join(t[1]), 0);

    /* cancelled right after its item went in: put succeeded, item in once */
    actor b = {.q = q, .item = 4};
    corio_task *bt = corio_spawn(putter, &b);
    until_putters(q, 1);
    CHECK_OK(corio_queue_get(q, &p));
    CHECK_EQ(I(p), 3);
    CHECK_OK(corio_task_cancel(bt));
    CHECK_EQ(join(bt), 0);
    CHECK_EQ(corio_queue_size(q), 1);

    /* deadline: nothing put */
    actor d = {.q = q, .item = 5, .deadline_ms = 20};
    corio_task *dt = corio_spawn(putter, &d);
    CHECK_EQ(join(dt), -CORIO_EDEADLINE);
    CHECK_EQ(q->putters.len, 0);
    CHECK_OK(corio_queue_get(q, &p));
    CHECK_EQ(I(p), 4);
    CHECK_ERR(corio_queue_try_get(q, &p), -EAGAIN);

    /* a cancelled task: put fails at once, even with room, and puts
     * nothing; try_put, which never waits, still puts */
    corio_task_cancel(corio_current());
    CHECK_ERR(corio_queue_put(q, P(6)), -ECANCELED);
    CHECK_EQ(corio_queue_size(q), 0);
    CHECK_OK(corio_queue_try_put(q, P(6)));
    CHECK_ERR(corio_queue_put(q, P(7)), -ECANCELED);
    CHECK_EQ(corio_queue_size(q), 1);
    CHECK_OK(corio_queue_try_get(q, &p));
    CHECK_EQ(I(p), 6);
    CHECK_EQ(q->unfinished, 4); /* 1, 3, 4 and 6: the failed puts count not */
    corio_queue_free(q);
    return NULL;
}

TEST(putter_cancel_and_deadline_lose_nothing) { test_run(cancel_putter_main, NULL); }

/* ---- scale ---- */

#define MANY TEST_SCALE(100000)

static void *many_getter(void *arg)
{
    corio_queue *q = arg;
    void *p = P(-1);
    int r = corio_queue_get(q, &p);
    CHECK_OK(r);
    return p;
}

static void *many_getters_main(void *arg)
{
    corio_queue *q = new_queue(CORIO_QUEUE_FIFO, 0, 0, NULL, NULL);
    corio_task **t = malloc(MANY * sizeof *t);
    void **res = malloc(MANY * sizeof *res);
    CHECK(t && res);
    for (int i = 0; i < MANY; i++) {
        t[i] = corio_spawn_named("getter", 16384, many_getter, q);
        CHECK(t[i]);
    }
    until_getters(q, MANY);
    for (int i = 0; i < MANY; i++)
        CHECK_OK(corio_queue_put(q, P(i)));
    CHECK_EQ(corio_queue_size(q), 0);
    CHECK_OK(corio_gather(t, MANY, res));
    for (int i = 0; i < MANY; i++)
        if (I(res[i]) != i)
            CHECK_EQ(I(res[i]), i);
    free(t);
    free(res);
    corio_queue_free(q);
    return NULL;
}

TEST(hundred_thousand_getters_served_in_order) { test_run(many_getters_main, NULL); }

static void *million_main(void *arg)
{
    enum { M = 1000000 };
    corio_queue *q = new_queue(CORIO_QUEUE_FIFO, 0, 0, NULL, NULL);
    void *p;
    /* start off-centre so the growing ring is wrapped when it grows */
    for (int i = 0; i < 100; i++)
        CHECK_OK(corio_queue_put(q, P(-1)));
    for (int i = 0; i < 100; i++)
        CHECK_OK(corio_queue_get(q, &p));
    for (int i = 0; i < M; i++)
        CHECK_OK(corio_queue_put(q, P(i)));
    CHECK_EQ(corio_queue_size(q), M);
    for (int i = 0; i < M; i++) {
        CHECK_OK(corio_queue_get(q, &p));
        if (I(p) != i)
            CHECK_EQ(I(p), i);
    }
    CHECK_EQ(corio_queue_size(q), 0);
    corio_queue_free(q);

    q = new_queue(CORIO_QUEUE_LIFO, 0, sizeof(int), NULL, NULL);
    for (int i = 0; i < M; i++)
        CHECK_OK(corio_queue_put(q, &i));
    for (int i = M - 1; i >= 0; i--) {
        int v;
        CHECK_OK(corio_queue_get(q, &v));
        if (v != i)
            CHECK_EQ(v, i);
    }
    corio_queue_free(q);
    return NULL;
}

TEST(unbounded_queue_grows_to_a_million) { test_run(million_main, NULL); }

/* ---- allocation failures ---- */

static void *nomem_main(void *arg)
{
    corio_queue_kind kinds[] = {CORIO_QUEUE_FIFO, CORIO_QUEUE_LIFO, CORIO_QUEUE_PRIORITY};
    for (int k = 0; k < 3; k++) {
        corio_queue_config cfg = {.kind = kinds[k], .compare = cmp_prio_ptr, .item_size = sizeof(prio_item)};
        corio_fi_fail_next("calloc", 1);
        errno = 0;
        CHECK(corio_queue_new(&cfg) == NULL);
        CHECK_EQ(errno, ENOMEM);
        corio_fi_fail_next("malloc", 1);
        errno = 0;
        CHECK(corio_queue_new(&cfg) == NULL);
        CHECK_EQ(errno, ENOMEM);

        /* growth fails: the put reports it and nothing is lost.  model
         * holds the ids in q in put order (all of priority 0, so PRIORITY
         * gives them in put order too). */
        corio_queue *q = corio_queue_new(&cfg);
        CHECK(q);
        bool lifo = kinds[k] == CORIO_QUEUE_LIFO;
        static int model[4096];
        int lo = 0, hi = 0, id = 0;
        prio_item it;
        /* move the FIFO ring's start first, so the full ring is wrapped */
        for (int i = 0; i < 50; i++) {
            it = (prio_item){0, id};
            CHECK_OK(corio_queue_put(q, &it));
            model[hi++] = id++;
        }
        for (int i = 0; i < 30; i++) {
            CHECK_OK(corio_queue_get(q, &it));
            CHECK_EQ(it.id, lifo ? model[--hi] : model[lo++]);
        }
        while (corio_queue_size(q) < q->slots) {
            it = (prio_item){0, id};
            CHECK_OK(corio_queue_put(q, &it));
            model[hi++] = id++;
        }
        size_t n = corio_queue_size(q);
        size_t unfinished = q->unfinished;
        it = (prio_item){0, id};
        corio_fi_fail_next("malloc", 1);
        CHECK_ERR(corio_queue_put(q, &it), -ENOMEM);
        corio_fi_fail_next("malloc", 1);
        CHECK_ERR(corio_queue_try_put(q, &it), -ENOMEM);
        CHECK_EQ(corio_queue_size(q), n);
        CHECK_EQ(q->unfinished, unfinished);
        CHECK_OK(corio_queue_put(q, &it)); /* grows now */
        model[hi++] = id++;
        CHECK_EQ(corio_queue_size(q), n + 1);
        CHECK(q->slots > n);
        /* every item exactly once, in order */
        while (lo < hi) {
            CHECK_OK(corio_queue_get(q, &it));
            CHECK_EQ(it.id, lifo ? model[--hi] : model[lo++]);
        }
        CHECK_EQ(corio_queue_size(q), 0);
        corio_queue_free(q);
    }
    return NULL;
}

TEST(allocation_failure_loses_nothing) { test_run(nomem_main, NULL); }
