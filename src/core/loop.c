/*
 * The event loop: one per thread, created by corio_run() and gone when it
 * returns.
 *
 * A turn runs the ready tasks, then asks the backend for completions
 * (blocking only when nothing is ready, and only until the next timer), then
 * fires due timers.  To keep task-to-task hand-offs (spawn, join, yield)
 * free of system calls, the ready queue is drained in rounds and the backend
 * is polled without blocking only every POLL_EVERY task runs; I/O therefore
 * cannot be starved by tasks that keep yielding, and a quiet loop costs one
 * system call per wake-up.  The tasks the completions and timers woke (and
 * what they start) run first in the next round, not behind every task
 * queued before them (run_ready).  Within a round most switches bypass
 * this file: a task that parks runs the next one itself (task.c,
 * switch_out), with the same queues and budget, and control comes back
 * here at the end of each phase, when a task finishes, and in debug mode.
 *
 * When the main task returns, the remaining tasks are cancelled and awaited
 * (asyncio.run's contract).  If at some point no task is ready, no timer is
 * armed and no operation is in flight while tasks are still alive, nothing
 * can ever wake them: the loop reports each of them and returns
 * -CORIO_EDEADLOCK instead of hanging.
 */
#include "internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLL_EVERY 128
#define DEFAULT_STACK_SIZE (256 * 1024)
#define DEFAULT_STACK_POOL 1024

static const corio__backend_ops *backend_by_name(const char *name)
{
    if (!strcmp(name, "epoll"))
        return &corio__backend_epoll;
    if (!strcmp(name, "sim"))
        return &corio__backend_sim;
#ifdef CORIO_HAVE_URING
    if (!strcmp(name, "io_uring") || !strcmp(name, "uring"))
        return &corio__backend_uring;
#endif
    return NULL;
}

#ifdef CORIO_HAVE_URING
/* Atomic: loops starting on several threads at once may all fall back; the
 * exchange keeps the message to one and the flag free of a data race. */
static atomic_bool fallback_logged;
#endif

/* Pick and initialise the backend: a forced one (config or CORIO_BACKEND)
 * must work; AUTO tries io_uring and falls back to epoll, saying so once. */
static int backend_setup(corio_loop *l, const corio_config *cfg)
{
    corio_backend_kind kind = cfg ? cfg->backend : CORIO_BACKEND_AUTO;
    const corio__backend_ops *forced = NULL;
    if (kind == CORIO_BACKEND_EPOLL) {
        forced = &corio__backend_epoll;
    } else if (kind == CORIO_BACKEND_SIM) {
        forced = &corio__backend_sim;
    } else if (kind == CORIO_BACKEND_IO_URING) {
#ifdef CORIO_HAVE_URING
        forced = &corio__backend_uring;
#else
        return -ENOSYS;
#endif
    } else {
        const char *env = getenv("CORIO_BACKEND");
        if (env && *env && strcmp(env, "auto") != 0) {
            forced = backend_by_name(env);
            if (!forced) {
                fprintf(stderr, "corio: CORIO_BACKEND=%s is not available in this build\n", env);
                return -ENOSYS;
            }
        }
    }
    l->caps = 0; /* the backend's init says what it can do */
    if (forced) {
        l->backend = forced;
        return forced->init(l, cfg);
    }
#ifdef CORIO_HAVE_URING
    l->backend = &corio__backend_uring;
    int r = l->backend->init(l, cfg);
    if (r == 0)
        return 0;
    if (!atomic_exchange_explicit(&fallback_logged, true, memory_order_relaxed))
        fprintf(stderr, "corio: io_uring unavailable (%s); using epoll\n", corio_strerror(r));
#endif
    l->caps = 0;
    l->backend = &corio__backend_epoll;
    return l->backend->init(l, cfg);
}

const char *corio_backend_name(void)
{
    corio_loop *l = corio__loop();
    return l ? l->backend->name : NULL;
}

void corio__loop_on_notify(corio_loop *l)
{
    if (l->pool)
        corio__pool_drain(l);
    if (l->ref)
        corio__loop_ref_drain(l);
    corio__rwake_drain(l);
}

static void report_stall(corio_loop *l)
{
    fprintf(stderr, "corio: loop stalled: %u task(s) alive, all waiting, nothing in flight to wake them:\n",
            l->live_count);
    for (corio__list *n = l->live_tasks.next; n != &l->live_tasks; n = n->next) {
        corio_task *t = CORIO__CONTAINER_OF(n, corio_task, live);
        fprintf(stderr, "  task '%s'%s waiting in %s\n", t->name[0] ? t->name : "(unnamed)",
                (t->flags & CORIO__T_MAIN) ? " (main)" : "", t->wait_what ? t->wait_what : "?");
    }
}

static void run_one(corio_loop *l, corio_task *t)
{
    t->flags &= ~CORIO__T_READY;
    if (CORIO__UNLIKELY(l->caps & CORIO__CAP_SIM))
        l->backend->on_run(l, t);
    /* Debug mode times each step (debug.c); off, no clock is read.  The
     * task that comes back is not always t: tasks that park hand the CPU
     * straight to the next one (task.c, switch_out), and only the last of
     * such a chain returns here, perhaps finished. */
    corio_task *back = t;
    if (CORIO__UNLIKELY(l->debug))
        corio__debug_step(l, t);
    else
        back = corio__task_resume(l, t);
    if (back->flags & CORIO__T_DONE)
        corio__task_finished(l, back);
}

/* One round: first the tasks in woken_* (those the last harvest woke), and
 * what they make ready in turn (see ready_push in task.c), at most
 * POLL_EVERY more than were there at the start; then up to POLL_EVERY of
 * the others.  Without the first step a task whose I/O completed waited
 * behind every task queued before it, e.g. behind hundreds of freshly
 * spawned clients that each start a connect before any answer is read
 * (docs/benchmarks.md, "Wake-up order").  Both steps are bounded, so
 * neither queue starves the other or the next poll.  The budgets live in
 * l->run_budget because a task that parks runs the next task of the same
 * phase itself, without coming back here (task.c, switch_out), and spends
 * the budget just as this loop does; whatever ends a chain of such
 * switches (the phase's queue empty, the budget spent, a task finished)
 * brings control back here, so the order and the polling are the same as
 * if every run started from this function. */
static void run_ready(corio_loop *l)
{
    l->run_budget = l->woken_len + POLL_EVERY;
    l->to_woken = true;
    while (l->woken_head && l->run_budget > 0) {
        l->run_budget--;
        corio_task *t = corio__runq_pop(&l->woken_head, &l->woken_tail);
        l->woken_len--;
        run_one(l, t);
    }
    l->to_woken = false;
    l->run_budget = POLL_EVERY;
    while (l->ready_head && l->run_budget > 0) {
        l->run_budget--;
        run_one(l, corio__runq_pop(&l->ready_head, &l->ready_tail));
    }
    l->run_budget = 0;
}

static void cancel_all(corio_loop *l)
{
    for (corio__list *n = l->live_tasks.next; n != &l->live_tasks;) {
        corio_task *t = CORIO__CONTAINER_OF(n, corio_task, live);
        n = n->next;
        corio_task_cancel(t);
    }
}

/* Free tasks that can never run again (after a stall). */
static void discard_live(corio_loop *l)
{
    while (!corio__list_empty(&l->live_tasks)) {
        corio_task *t = CORIO__CONTAINER_OF(l->live_tasks.next, corio_task, live);
        corio__list_remove(&t->live);
        l->live_count--;
        if (corio__timer_armed(&t->timer))
            corio__timer_disarm(l, &t->timer);
        corio__task_release_stack(l, t);
        if (!(t->flags & CORIO__T_MAIN))
            corio__task_free(t);
    }
}

static int loop_run(corio_loop *l)
{
    uint64_t cancelled_upto = 0; /* spawn_seq when the leftovers were last cancelled */
    bool stalled = false;
    for (;;) {
        run_ready(l);
        if (l->main_task->flags & CORIO__T_DONE) {
            /* Calls handed over by other threads and not yet started keep
             * the loop going: an accepted call always runs. */
            if (l->live_count == 0) {
                if (corio__loop_ref_close(l))
                    return stalled ? -CORIO_EDEADLOCK : 0;
                continue;
            }
            /* Cancel the leftovers, and again whenever their cleanup code
             * has spawned new tasks, so nothing can keep the loop alive. */
            if (cancelled_upto != l->spawn_seq) {
                cancelled_upto = l->spawn_seq;
                cancel_all(l);
                continue;
            }
        }
        uint64_t timeout = 0;
        if (!l->ready_head && !l->woken_head) {
            /* The tasks just run may have taken long (a loaded machine,
             * valgrind): the wait for the next timer must count from now,
             * not from the start of the turn, or every timer they armed
             * would be late by that much.  Only a turn that may block needs
             * the fresh reading; a busy one polls with 0 and refreshes
             * after. */
            l->now = corio__clock_ns();
            timeout = corio__timers_next(l, l->now);
        }
        /* Under the sim no other thread takes part in a run (corio/sim.h),
         * so a wait only another thread could end (a channel) never ends. */
        if (timeout == UINT64_MAX && l->backend->pending(l) == 0 &&
            ((l->external_pending == 0 && !corio__loop_ref_busy(l)) || (l->caps & CORIO__CAP_SIM))) {
            /* Nothing can wake anyone.  Say who is stuck where, then cancel
             * everyone so each task's wait ends with -ECANCELED and its
             * cleanup runs (waiters unlink, handles close) before the run
             * ends.  Stalling again after that (uninterruptible waits)
             * ends it outright. */
            if (stalled)
                return -CORIO_EDEADLOCK;
            report_stall(l);
            stalled = true;
            cancel_all(l);
            continue;
        }
        l->to_woken = true;
        int r = l->backend->poll(l, timeout);
        if (r < 0 && r != -EINTR) {
            l->to_woken = false;
            fprintf(stderr, "corio: backend %s poll failed: %s\n", l->backend->name, corio_strerror(r));
            return r;
        }
        l->now = corio__clock_ns();
        corio__timers_run(l, l->now);
        l->to_woken = false;
        /* A dump signal came (introspect.c): the tasks are all suspended. */
        if (CORIO__UNLIKELY(l->dump_on_signal))
            corio__dump_signal_poll(l);
    }
}

/* A config no loop can honour (the counts are clamped instead, since any of
 * them can be served somehow). */
static bool config_ok(const corio_config *cfg)
{
    return !cfg || (cfg->stack_size <= CORIO__STACK_SIZE_MAX && (unsigned)cfg->backend <= CORIO_BACKEND_SIM);
}

int corio_run(const corio_config *cfg, corio_fn main_fn, void *arg, void **result)
{
    if (!main_fn || !config_ok(cfg))
        return -EINVAL;
    if (corio__loop())
        return -EBUSY;
    corio_loop *l = corio__calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    l->cfg = cfg;
    corio__debug_init(l, cfg);
    l->stack_size = (cfg && cfg->stack_size) ? cfg->stack_size : DEFAULT_STACK_SIZE;
    l->now = corio__clock_ns();
    corio__list_init(&l->live_tasks);
    corio__list_init(&l->unjoined);
    corio__list_init(&l->remotes);
    l->stacks = corio__stack_pool_new(l->stack_size, (cfg && cfg->stack_pool_max) ? cfg->stack_pool_max
                                                                                  : DEFAULT_STACK_POOL);
    if (!l->stacks) {
        corio__free(l);
        return -ENOMEM;
    }
    int r = backend_setup(l, cfg);
    if (r < 0) {
        corio__stack_pool_free(l->stacks);
        corio__free(l);
        return r;
    }
    corio__stack_overflow_handler_install();
    /* From here to the end of the run a write's SIGPIPE is only marked
     * pending, never delivered (sigpipe.c). */
    corio__sigpipe_block(&l->sigpipe);
    corio__set_loop(l);
    /* The loop's context is whatever this thread runs on now: tasks switch
     * back to this fiber. */
    l->sched_tsan_fiber = corio__tsan_fiber_current();

    l->main_task = corio__spawn(l, "main", 0, main_fn, arg);
    if (!l->main_task) {
        r = -errno;
    } else {
        l->main_task->flags |= CORIO__T_MAIN;
        l->main_task->spawn_site = __builtin_return_address(0);
        r = loop_run(l);
        corio__dump_signal_off(l);
        if (r == 0 && result)
            *result = l->main_task->result;
        if (r < 0) {
            corio__remote_loop_end(l, r); /* their joiners on other threads must hear of it */
            discard_live(l);
        }
        /* No task is left: the signals the program used go back to the
         * dispositions they had (src/io/signal.c). */
        if (l->signals_end)
            l->signals_end(l);
        corio__task_free(l->main_task);
    }

    /* Handles the program never joined or detached: the tasks are over and
     * nobody can ask for their results any more. */
    while (!corio__list_empty(&l->unjoined)) {
        corio_task *t = CORIO__CONTAINER_OF(l->unjoined.next, corio_task, live);
        if (CORIO__UNLIKELY(l->debug))
            corio__debug_unjoined(l, t);
        corio__list_remove(&t->live);
        corio__task_free(t);
    }
    corio__loop_ref_shutdown(l);
    corio__rwake_shutdown(l);
    if (l->pool)
        corio__pool_shutdown(l);
    l->backend->destroy(l);
    while (l->task_cache) {
        corio_task *t = l->task_cache;
        l->task_cache = t->next_ready;
        corio__free(t);
    }
    corio__free(l->timers.items);
    corio__stack_pool_free(l->stacks);
    corio__set_loop(NULL);
    corio__sigpipe_restore(&l->sigpipe);
    corio__free(l);
    return r;
}
