/*
 * corio_workers_run: one loop per core for any program (include/corio.h,
 * "Workers").  The loops and threads are src/core/workers.c's; what this
 * file adds is the worker's body around main_fn and SIGINT/SIGTERM, which
 * is why it sits in io, next to the signal watches it uses
 * (src/io/signal.c): worker 0 opens a watch on the two before any worker
 * serves (so a signal taken by another loop fails the start instead of
 * being silently ignored), and a task of its loop turns the first arrival
 * into a stop of the whole group.  The watch is closed after that first
 * signal, as corio_http_server_serve_until_signal's is, so a second
 * Ctrl-C finds the program's own disposition again (by default: it ends
 * the process, for a drain that takes too long).
 */
#include "../core/workers.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct run_ctx {
    corio_fn main_fn;
    void *arg;
    bool signals;
    corio_signal_watch *watch; /* worker 0's, while open */
} run_ctx;

static void *watch_main(void *p)
{
    corio__worker *w = p;
    run_ctx *c = w->g->arg;
    int s = corio_signal_watch_wait(c->watch, CORIO_NO_TIMEOUT);
    if (s > 0) {
        corio_signal_watch_close(c->watch);
        c->watch = NULL;
        corio__workers_stop(w->g, s);
    }
    return NULL;
}

static void *worker_body(corio__worker *w)
{
    run_ctx *c = w->g->arg;
    int err = 0;
    if (w->index == 0 && c->signals) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        c->watch = corio_signal_watch_open(&set);
        if (!c->watch) {
            err = -errno;
            fprintf(stderr, "corio: workers: cannot watch SIGINT and SIGTERM: %s\n", corio_strerror(err));
        }
    }
    int r = corio__workers_ready(w, err, false);
    corio_task *watcher = NULL;
    bool mine = w->index == 0; /* only worker 0 touches the watch */
    if (r == 0 && mine && c->watch) {
        watcher = corio_spawn_named("workers-signals", 0, watch_main, w);
        if (!watcher)
            r = -errno;
    }
    if (r < 0) {
        /* The start failed (here or in another worker), or worker 0 can
         * not watch the signals it promised to: nobody serves. */
        if (mine) {
            corio_signal_watch_close(c->watch);
            c->watch = NULL;
        }
        if (mine && w->started)
            corio__workers_stop(w->g, 0);
        return corio_fail(r);
    }
    void *res = c->main_fn(c->arg);
    if (watcher) {
        corio_task_cancel(watcher);
        (void)corio_task_join(watcher, NULL);
        corio_signal_watch_close(c->watch);
        c->watch = NULL;
    }
    return res;
}

int corio_workers_run(const corio_workers_config *cfg, corio_fn main_fn, void *arg, corio_outcome *outcomes)
{
    corio_workers_config dflt = {0};
    if (!cfg)
        cfg = &dflt;
    if (!main_fn || cfg->count > CORIO__WORKERS_MAX)
        return -EINVAL;
    if (corio__loop())
        return -EBUSY;
    const char *env = getenv("CORIO_BACKEND");
    if (cfg->loop.backend == CORIO_BACKEND_SIM ||
        (cfg->loop.backend == CORIO_BACKEND_AUTO && env && !strcmp(env, "sim")))
        return -EOPNOTSUPP; /* a simulation is one thread, and its loops would share nothing */
    unsigned n = cfg->count ? cfg->count : corio__cpu_count();
    run_ctx ctx = {.main_fn = main_fn, .arg = arg, .signals = !cfg->keep_signals};
    corio__workers *g = corio__workers_new(n, cfg->pin_cpus, &cfg->loop, worker_body, &ctx, "worker");
    if (!g)
        return -ENOMEM;
    g->user_stop = true;
    corio__workers_enter0(g);
    int r = corio__workers_start_threads(g);
    if (r == 0)
        corio__workers_run0(g);
    corio__workers_join(g);
    corio__workers_leave0(g);
    if (outcomes)
        for (unsigned i = 0; i < n; i++)
            outcomes[i] = g->w[i].out;
    if (r == 0)
        r = g->start_err ? g->start_err : g->first_err;
    corio__workers_free(g);
    return r;
}
