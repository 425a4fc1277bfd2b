/*
 * One loop per core: the group of worker loops and threads behind
 * corio_workers_run (src/io/workers_run.c) and the HTTP server's workers
 * (src/http/server.c), and the calls a worker makes about its group
 * (corio_worker_index, _count, _loop, corio_workers_wait_stop, _stop).
 * src/core/workers.h has the protocol.
 *
 * Nothing here is on a hot path: a group is made once, and a worker finds
 * its group through one thread-local pointer.  The stop is the one event
 * that crosses threads, and it goes through the remote wake-ups every
 * cross-thread wait uses (src/core/remote_wake.c): each task parked in
 * corio_workers_wait_stop has a node on its stack, linked in the group's
 * list under the group's mutex; the stopper unlinks every node and posts
 * it.  That needs no allocation, so a stop can not fail half-way, and a
 * waiting task counts as an external wait for its loop's stall detector
 * (another worker may end it).
 */
#include "workers.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static __thread corio__worker *self;

corio__worker *corio__worker_self(void) { return self; }

unsigned corio__cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) < 0)
        return 1;
    int n = CPU_COUNT(&set);
    return n > 0 ? (unsigned)n : 1;
}

/* The CPUs the calling thread may use, in ascending order. */
static unsigned cpu_list(int **out)
{
    cpu_set_t set;
    *out = NULL;
    if (sched_getaffinity(0, sizeof set, &set) < 0)
        return 0;
    int n = CPU_COUNT(&set);
    if (n <= 0)
        return 0;
    int *cpus = malloc((size_t)n * sizeof *cpus);
    if (!cpus)
        return 0;
    unsigned k = 0;
    for (int c = 0; c < CPU_SETSIZE && k < (unsigned)n; c++)
        if (CPU_ISSET(c, &set))
            cpus[k++] = c;
    *out = cpus;
    return k;
}

corio__workers *corio__workers_new(unsigned n, bool pin, const corio_config *cfg, corio__worker_fn body,
                                   void *arg, const char *label)
{
    corio__workers *g = calloc(1, sizeof *g + n * sizeof g->w[0]);
    if (!g) {
        errno = ENOMEM;
        return NULL;
    }
    g->n = n;
    g->pin = pin;
    g->label = label;
    if (cfg) {
        g->loop_cfg = *cfg;
        g->has_loop_cfg = true;
    }
    g->body = body;
    g->arg = arg;
    if (pin)
        g->ncpus = cpu_list(&g->cpus); /* none readable: no pinning */
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    corio__list_init(&g->stop_waiters);
    atomic_init(&g->stop_reason, -1);
    for (unsigned i = 0; i < n; i++) {
        g->w[i].g = g;
        g->w[i].index = i;
    }
    return g;
}

void corio__workers_free(corio__workers *g)
{
    if (!g)
        return;
    for (unsigned i = 0; i < g->n; i++)
        corio__loop_ref_release_weak(g->w[i].ref);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g->cpus);
    free(g);
}

/* Pin the calling thread to worker w's CPU.  A failure (a CPU taken away
 * meanwhile) leaves the thread unpinned: it still runs, only less well. */
static void pin_self(corio__worker *w)
{
    corio__workers *g = w->g;
    if (!g->pin || !g->ncpus)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(g->cpus[w->index % g->ncpus], &set);
    (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

/* ------------------------------------------------------------------ */
/* Start                                                               */
/* ------------------------------------------------------------------ */

/* Record how w's start went; wake whoever waits for the last one.  Under
 * g->mu. */
static void settle_locked(corio__worker *w, int err)
{
    corio__workers *g = w->g;
    if (w->settled)
        return;
    w->settled = true;
    if (err < 0 && !g->start_err)
        g->start_err = err;
    if (++g->settled < g->n)
        return;
    pthread_cond_broadcast(&g->cv);
    if (g->ready0) {
        corio__rwake *rw = g->ready0;
        g->ready0 = NULL;
        corio__rwake_post(rw, 0);
    }
}

int corio__workers_ready(corio__worker *w, int err, bool suspend)
{
    corio__workers *g = w->g;
    corio__rwake rw;
    pthread_mutex_lock(&g->mu);
    settle_locked(w, err);
    if (suspend && g->settled < g->n) {
        corio__rwake_arm(&rw);
        g->ready0 = &rw;
        pthread_mutex_unlock(&g->mu);
        /* Uninterruptible: the start ends in a moment either way (every
         * worker binds and says so), and a worker left waiting for this
         * one would not know whether to serve. */
        (void)corio__suspend_uninterruptible(g, "workers start");
        pthread_mutex_lock(&g->mu);
    }
    while (g->settled < g->n)
        pthread_cond_wait(&g->cv, &g->mu);
    int r = g->start_err;
    w->started = r == 0;
    pthread_mutex_unlock(&g->mu);
    return r;
}

void corio__workers_report(corio__worker *w, int err)
{
    corio__workers *g = w->g;
    fprintf(stderr, "corio: %s %u of %u failed: %s\n", g->label, w->index, g->n, corio_strerror(err));
    pthread_mutex_lock(&g->mu);
    if (!g->first_err)
        g->first_err = err;
    pthread_mutex_unlock(&g->mu);
}

/* Every worker's main task: the group's body, then its outcome. */
static void *task_main(void *p)
{
    corio__worker *w = p;
    /* NULL when out of memory: corio_worker_loop then says NULL for this
     * one, and nothing else needs it. */
    w->ref = corio__loop_ref_get_weak();
    void *res = w->g->body(w);
    int err = corio__current_task()->error;
    w->out.result = res;
    w->out.error = err;
    if (err && w->started)
        corio__workers_report(w, err);
    return res;
}

/* Run worker w's loop on the calling thread, to its end. */
static void run_loop(corio__worker *w)
{
    corio__workers *g = w->g;
    int r = corio_run(g->has_loop_cfg ? &g->loop_cfg : NULL, task_main, w, NULL);
    if (r < 0) {
        w->loop_err = r;
        if (!w->out.error)
            w->out.error = r;
        pthread_mutex_lock(&g->mu);
        bool never = !w->settled;
        settle_locked(w, r); /* the loop never came up: the start fails */
        bool started = w->started;
        pthread_mutex_unlock(&g->mu);
        if (!never && started)
            corio__workers_report(w, r);
    }
}

static void *thread_main(void *p)
{
    corio__worker *w = p;
    corio__workers *g = w->g;
    pin_self(w);
    self = w;
    run_loop(w);
    self = NULL;
    pthread_mutex_lock(&g->mu);
    if (--g->running == 0 && g->done0) {
        corio__rwake *rw = g->done0;
        g->done0 = NULL;
        corio__rwake_post(rw, 0);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

int corio__workers_start_threads(corio__workers *g)
{
    int err = 0;
    unsigned i;
    for (i = 1; i < g->n; i++) {
        pthread_mutex_lock(&g->mu);
        g->running++;
        pthread_mutex_unlock(&g->mu);
        int r = pthread_create(&g->w[i].thread, NULL, thread_main, &g->w[i]);
        if (r != 0) {
            pthread_mutex_lock(&g->mu);
            g->running--;
            pthread_mutex_unlock(&g->mu);
            err = -r;
            break;
        }
        g->w[i].has_thread = true;
    }
    if (!err)
        return 0;
    fprintf(stderr, "corio: %s %u of %u could not start: %s\n", g->label, i, g->n, corio_strerror(err));
    /* Slot 0 and the threads never made settle here, with the error every
     * started worker's ready will now return. */
    pthread_mutex_lock(&g->mu);
    settle_locked(&g->w[0], err);
    for (unsigned j = i; j < g->n; j++)
        settle_locked(&g->w[j], err);
    pthread_mutex_unlock(&g->mu);
    return err;
}

void corio__workers_join(corio__workers *g)
{
    for (unsigned i = 1; i < g->n; i++)
        if (g->w[i].has_thread) {
            pthread_join(g->w[i].thread, NULL);
            g->w[i].has_thread = false;
        }
}

void corio__workers_wait_threads(corio__workers *g)
{
    corio__rwake rw;
    pthread_mutex_lock(&g->mu);
    if (g->running > 0) {
        corio__rwake_arm(&rw);
        g->done0 = &rw;
        pthread_mutex_unlock(&g->mu);
        (void)corio__suspend_uninterruptible(g, "workers end");
    } else {
        pthread_mutex_unlock(&g->mu);
    }
    /* Each thread posted as its very last step: these joins wait for no
     * more than its return. */
    corio__workers_join(g);
}

void corio__workers_enter0(corio__workers *g)
{
    corio__worker *w = &g->w[0];
    w->saved = self;
    if (!self)
        self = w;
    if (g->pin && g->ncpus) {
        cpu_set_t *old = malloc(sizeof *old);
        if (old && pthread_getaffinity_np(pthread_self(), sizeof *old, old) == 0) {
            w->old_cpus = old;
            w->pinned0 = true;
            pin_self(w);
        } else {
            free(old);
        }
    }
}

void corio__workers_leave0(corio__workers *g)
{
    corio__worker *w = &g->w[0];
    if (self == w)
        self = w->saved;
    if (w->pinned0) {
        (void)pthread_setaffinity_np(pthread_self(), sizeof(cpu_set_t), w->old_cpus);
        w->pinned0 = false;
    }
    free(w->old_cpus);
    w->old_cpus = NULL;
}

int corio__workers_attach0(corio__workers *g)
{
    g->w[0].ref = corio__loop_ref_get_weak();
    return g->w[0].ref ? 0 : -ENOMEM;
}

void corio__workers_run0(corio__workers *g) { run_loop(&g->w[0]); }

/* ------------------------------------------------------------------ */
/* Stop                                                                */
/* ------------------------------------------------------------------ */

typedef struct stop_waiter {
    corio__list link; /* g->stop_waiters while linked (under g->mu) */
    corio__rwake rw;
    corio__workers *g;
    bool linked;
} stop_waiter;

void corio__workers_stop(corio__workers *g, int reason)
{
    int none = -1;
    if (!atomic_compare_exchange_strong(&g->stop_reason, &none, reason))
        return;
    pthread_mutex_lock(&g->mu);
    while (!corio__list_empty(&g->stop_waiters)) {
        stop_waiter *sw = CORIO__CONTAINER_OF(g->stop_waiters.next, stop_waiter, link);
        corio__list_remove(&sw->link);
        sw->linked = false;
        corio__rwake_post(&sw->rw, reason);
    }
    pthread_mutex_unlock(&g->mu);
}

/* A waiter cancelled or past its deadline: unless the stop has already
 * claimed it (its post is on the way, and wakes it), it leaves the list. */
static void stop_interrupted(corio_task *t, int reason)
{
    stop_waiter *sw = (stop_waiter *)t->wait_obj;
    pthread_mutex_lock(&sw->g->mu);
    bool mine = sw->linked;
    if (mine) {
        corio__list_remove(&sw->link);
        sw->linked = false;
    }
    pthread_mutex_unlock(&sw->g->mu);
    if (mine)
        corio__rwake_end(&sw->rw, reason);
}

/* ------------------------------------------------------------------ */
/* Public: what a worker asks about its group                          */
/* ------------------------------------------------------------------ */

int corio_worker_index(void) { return self ? (int)self->index : -1; }

unsigned corio_worker_count(void) { return self ? self->g->n : 0; }

corio_loop_ref *corio_worker_loop(unsigned i)
{
    if (!self || i >= self->g->n)
        return NULL;
    return self->g->w[i].ref;
}

int corio_workers_wait_stop(void)
{
    corio__worker *w = self;
    if (!w || !corio__current_task() || !corio__loop())
        return -EPERM;
    int r = corio__check();
    if (r < 0)
        return r;
    corio__workers *g = w->g;
    stop_waiter sw = {.g = g};
    pthread_mutex_lock(&g->mu);
    int reason = atomic_load(&g->stop_reason);
    if (reason >= 0) {
        pthread_mutex_unlock(&g->mu);
        return reason;
    }
    corio__rwake_arm(&sw.rw);
    sw.linked = true;
    corio__list_push_back(&g->stop_waiters, &sw.link);
    pthread_mutex_unlock(&g->mu);
    return corio__suspend(stop_interrupted, &sw, "corio_workers_wait_stop", CORIO__NO_DEADLINE);
}

int corio_workers_stop(void)
{
    corio__worker *w = self;
    if (!w || !w->g->user_stop)
        return -EPERM;
    corio__workers_stop(w->g, 0);
    return 0;
}
