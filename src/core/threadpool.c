/*
 * The thread pool behind corio__pool_run(): a bounded set of worker threads
 * that run blocking work for tasks.
 *
 * Workers are started lazily, one whenever an item is queued and no idle
 * worker is left, up to the pool size, and sleep on one condition variable.
 * Two FIFO queues keep the classes apart: workers prefer FAST items, and at
 * most half of them may run SLOW items at any time, so a burst of slow DNS
 * lookups leaves the other half free for file work.  A finished item goes
 * on a done list and the loop is woken through the backend's notify() (only
 * when the list was empty: one wake-up per batch); the loop drains the list
 * in corio__pool_drain() and wakes the waiting tasks.
 *
 * Items are allocated and freed on the loop thread only (a small free list
 * avoids an allocation per call); workers touch only the fields guarded by
 * the mutex plus the work function and its argument.  Interrupting a waiting
 * task removes a still-queued item outright and otherwise abandons it: the
 * worker finishes, and the loop calls the item's abandon hook.
 *
 * The pool is part of core because the loop drives it (corio__pool_drain on
 * every notify, corio__pool_shutdown at its end); src/io (files, DNS) and
 * corio_to_thread below are its users.
 */
#define _GNU_SOURCE 1
#include "threadpool.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#define DEFAULT_WORKERS 4
#define MAX_WORKERS 64
#define FREE_ITEMS_MAX 64

enum { ITEM_QUEUED, ITEM_RUNNING, ITEM_FINISHED };

typedef struct pool_item {
    corio__list link; /* queue, then done list (under the mutex) */
    int cls;
    int state; /* ITEM_* (under the mutex) */
    void (*work)(void *);
    void *arg;
    void (*abandon)(void *);
    corio_task *task; /* loop thread only; NULL once nobody waits */
    bool abandoned;   /* loop thread only */
    bool sync;        /* corio__pool_run_sync: the task waits for a running item */
    struct pool_item *next_free;
} pool_item;

struct corio__threadpool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    corio__list queue[2]; /* indexed by class */
    corio__list done;
    unsigned queued; /* items in both queues */
    unsigned nthreads, max_threads;
    unsigned idle;
    unsigned slow_running, slow_limit;
    bool stopping;
    pthread_t *threads;
    corio_loop *loop;
    pool_item *free_items; /* loop thread only */
    unsigned free_n;
};

typedef struct corio__threadpool pool;

/* Under the mutex: next item this worker may run, or NULL. */
static pool_item *take(pool *p)
{
    corio__list *q = NULL;
    if (!corio__list_empty(&p->queue[CORIO__POOL_FAST]))
        q = &p->queue[CORIO__POOL_FAST];
    else if (!corio__list_empty(&p->queue[CORIO__POOL_SLOW]) && p->slow_running < p->slow_limit)
        q = &p->queue[CORIO__POOL_SLOW];
    if (!q)
        return NULL;
    pool_item *it = CORIO__CONTAINER_OF(q->next, pool_item, link);
    corio__list_remove(&it->link);
    p->queued--;
    return it;
}

static void *worker_main(void *arg)
{
    pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        pool_item *it = take(p);
        if (!it) {
            if (p->stopping)
                break;
            p->idle++;
            pthread_cond_wait(&p->cv, &p->mu);
            p->idle--;
            continue;
        }
        it->state = ITEM_RUNNING;
        if (it->cls == CORIO__POOL_SLOW)
            p->slow_running++;
        pthread_mutex_unlock(&p->mu);

        it->work(it->arg);

        pthread_mutex_lock(&p->mu);
        it->state = ITEM_FINISHED;
        if (it->cls == CORIO__POOL_SLOW) {
            p->slow_running--;
            /* A slow item may have waited for this slot while the others
             * slept; this worker might pick fast work next. */
            if (!corio__list_empty(&p->queue[CORIO__POOL_SLOW]) && p->idle)
                pthread_cond_signal(&p->cv);
        }
        bool first = corio__list_empty(&p->done);
        corio__list_push_back(&p->done, &it->link);
        if (first) {
            /* The loop is still alive: shutdown joins us before it destroys
             * the backend.  A non-empty list means a notify is on its way
             * and the drain will take this item too. */
            pthread_mutex_unlock(&p->mu);
            p->loop->backend->notify(p->loop);
            pthread_mutex_lock(&p->mu);
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* corio_config.threadpool_size first, then CORIO_THREADPOOL_SIZE, then the
 * default; clamped to 2..MAX_WORKERS. */
static unsigned pool_size(const corio_loop *l)
{
    const char *s = getenv("CORIO_THREADPOOL_SIZE");
    long n = s ? atol(s) : DEFAULT_WORKERS;
    if (l->cfg && l->cfg->threadpool_size)
        n = l->cfg->threadpool_size > MAX_WORKERS ? MAX_WORKERS : (long)l->cfg->threadpool_size;
    if (n < 2)
        n = 2; /* one for each class at least */
    if (n > MAX_WORKERS)
        n = MAX_WORKERS;
    return (unsigned)n;
}

static pool *pool_get(corio_loop *l)
{
    if (CORIO__LIKELY(l->pool != NULL))
        return l->pool;
    pool *p = corio__calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->max_threads = pool_size(l);
    p->slow_limit = p->max_threads / 2;
    p->threads = corio__calloc(p->max_threads, sizeof *p->threads);
    if (!p->threads) {
        corio__free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    corio__list_init(&p->queue[0]);
    corio__list_init(&p->queue[1]);
    corio__list_init(&p->done);
    p->loop = l;
    l->pool = p;
    return p;
}

/* Under the mutex.  Signals stay with the loop thread: workers block them
 * all, so a handler never runs on a worker behind the program's back, and
 * a SIGPIPE raised by a worker's write stays pending there, harmless
 * (src/core/sigpipe.c). */
static int spawn_worker(pool *p)
{
    sigset_t all, old;
    sigfillset(&all);
    /* Without the mask there is no `old` to restore, and a worker started
     * anyway would take the program's signals. */
    int r = pthread_sigmask(SIG_SETMASK, &all, &old);
    if (r)
        return -EAGAIN;
    r = pthread_create(&p->threads[p->nthreads], NULL, worker_main, p);
    /* Cannot fail with a valid `how`, but a failure (fail injection) would
     * leave the loop thread blocking every signal, so signal watches
     * (src/io/signal.c) would never hear of one: try again. */
    for (int i = 0; i < 3 && pthread_sigmask(SIG_SETMASK, &old, NULL) != 0; i++)
        ;
    if (r)
        return -r;
    p->nthreads++;
    return 0;
}

static pool_item *item_new(pool *p)
{
    pool_item *it = p->free_items;
    if (it) {
        p->free_items = it->next_free;
        p->free_n--;
        return it;
    }
    return corio__malloc(sizeof *it);
}

static void item_free(pool *p, pool_item *it)
{
    if (p->free_n < FREE_ITEMS_MAX) {
        it->next_free = p->free_items;
        p->free_items = it;
        p->free_n++;
    } else {
        corio__free(it);
    }
}

static void pool_interrupted(corio_task *t, int reason)
{
    pool_item *it = t->wait_obj;
    corio_loop *l = t->loop;
    pool *p = l->pool;
    pthread_mutex_lock(&p->mu);
    int state = it->state;
    if (state == ITEM_QUEUED) {
        corio__list_remove(&it->link);
        p->queued--;
    }
    pthread_mutex_unlock(&p->mu);
    it->task = NULL;
    switch (state) {
    case ITEM_QUEUED: /* never started: drop it now */
        if (it->abandon)
            it->abandon(it->arg);
        item_free(p, it);
        l->external_pending--;
        break;
    case ITEM_RUNNING: /* the worker owns arg until it finishes */
        if (it->sync) {
            /* The caller's memory is in use: stay parked (no further
             * interrupt can arrive for this park) until the drain wakes us
             * with 0 once the work has run. */
            it->task = t;
            return;
        }
        it->abandoned = true;
        break;
    default: /* finished, waiting in the done list: keep the result */
        reason = 0;
        break;
    }
    corio__wake(t, reason);
}

static int pool_submit(int cls, void (*work)(void *arg), void *arg, void (*abandon)(void *arg), bool sync)
{
    corio_loop *l = corio__loop();
    corio_task *t = corio__current_task();
    int r;
    pool *p;
    pool_item *it;
    if (!t) {
        r = -EPERM;
        goto fail;
    }
    if ((r = corio__check()) != 0)
        goto fail;
    if (CORIO__UNLIKELY(l->caps & CORIO__CAP_SIM)) {
        /* A sim run: a worker's timing is not the seed's to decide, so the
         * work runs here, at once (it cannot block on simulated I/O). */
        work(arg);
        return 0;
    }
    if (!(p = pool_get(l)) || !(it = item_new(p))) {
        r = -ENOMEM;
        goto fail;
    }
    it->cls = cls == CORIO__POOL_SLOW ? CORIO__POOL_SLOW : CORIO__POOL_FAST;
    it->state = ITEM_QUEUED;
    it->work = work;
    it->arg = arg;
    it->abandon = abandon;
    it->task = t;
    it->abandoned = false;
    it->sync = sync;
    corio__list_init(&it->link);

    pthread_mutex_lock(&p->mu);
    corio__list_push_back(&p->queue[it->cls], &it->link);
    p->queued++;
    if (p->queued > p->idle && p->nthreads < p->max_threads) {
        r = spawn_worker(p);
        if (r < 0 && p->nthreads == 0) {
            /* Nobody will ever run it. */
            corio__list_remove(&it->link);
            p->queued--;
            pthread_mutex_unlock(&p->mu);
            item_free(p, it);
            goto fail;
        }
    }
    if (p->idle)
        pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);

    l->external_pending++;
    return corio__suspend(pool_interrupted, it,
                          cls == CORIO__POOL_SLOW ? "thread pool (slow)" : "thread pool", CORIO__NO_DEADLINE);

fail:
    if (abandon)
        abandon(arg);
    return r;
}

int corio__pool_run(int cls, void (*work)(void *arg), void *arg, void (*abandon)(void *arg))
{
    return pool_submit(cls, work, arg, abandon, false);
}

int corio__pool_run_sync(int cls, void (*work)(void *arg), void *arg)
{
    return pool_submit(cls, work, arg, NULL, true);
}

void corio__pool_drain(corio_loop *l)
{
    pool *p = l->pool;
    if (!p)
        return;
    corio__list done;
    corio__list_init(&done);
    pthread_mutex_lock(&p->mu);
    if (!corio__list_empty(&p->done)) {
        /* Splice the whole list out so the lock is held for O(1). */
        done.next = p->done.next;
        done.prev = p->done.prev;
        done.next->prev = &done;
        done.prev->next = &done;
        corio__list_init(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    while (!corio__list_empty(&done)) {
        pool_item *it = CORIO__CONTAINER_OF(done.next, pool_item, link);
        corio__list_remove(&it->link);
        l->external_pending--;
        if (it->abandoned) {
            if (it->abandon)
                it->abandon(it->arg);
        } else if (it->task) {
            corio__wake(it->task, 0);
        }
        item_free(p, it);
    }
}

void corio__pool_shutdown(corio_loop *l)
{
    pool *p = l->pool;
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    corio__pool_drain(l);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    while (p->free_items) {
        pool_item *it = p->free_items;
        p->free_items = it->next_free;
        corio__free(it);
    }
    corio__free(p->threads);
    corio__free(p);
    l->pool = NULL;
}

/* ------------------------------------------------------------------ */
/* corio_to_thread: the pool's public face                            */
/* ------------------------------------------------------------------ */

/* asyncio.to_thread, with one deliberate difference: a task interrupted
 * while its function is already running waits for the function to finish
 * before it returns the interrupt error.  Python can walk away because the
 * thread only holds references to garbage-collected objects; a C function
 * usually works on memory the caller owns (its stack, a buffer it frees on
 * the error path), so returning early would leave a thread writing into
 * freed memory.  The sync mode (corio__pool_run_sync) does the waiting, so
 * the call record lives on the caller's stack. */

typedef struct to_thread_call {
    void *(*fn)(void *);
    void *arg;
    void *result; /* written by the worker */
} to_thread_call;

static void to_thread_work(void *p)
{
    to_thread_call *c = p;
    c->result = c->fn(c->arg);
}

int corio_to_thread(void *(*fn)(void *), void *arg, void **result)
{
    if (!fn)
        return -EINVAL;
    to_thread_call c = {.fn = fn, .arg = arg};
    /* The sync mode drops a queued call on an interrupt but waits for a
     * running one and then reports success; the item counts in
     * external_pending all along, so the wait is never taken for a stall. */
    int r = corio__pool_run_sync(CORIO__POOL_FAST, to_thread_work, &c);
    if (result)
        *result = r == 0 ? c.result : NULL;
    if (r != 0)
        return r;
    /* fn ran.  Cancellation and deadlines are checked before the call is
     * queued, so one in force now arrived while it was queued or running:
     * report it, as asyncio would, with the result still handed over. */
    return corio__check();
}
