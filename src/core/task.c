/*
 * Tasks: creation, the one suspension primitive, waking, cancellation,
 * deadlines and shields, outcomes, join/gather/detach, sleep and yield.
 *
 * A task runs on its own stack.  When it parks or yields it switches
 * straight to the task the scheduler would run next (switch_out), taken
 * off the same queue with the same budget, and goes back to the loop's
 * context only where the loop has more to decide: at the end of a phase
 * of run_ready (loop.c), so polling happens as often as ever; when it has
 * finished, so its stack is released from a stack that is not its own; in
 * debug mode and during a task dump.  The order tasks run in is therefore
 * exactly the scheduler's.  A parked task waits for exactly one
 * corio__wake(); cancellation and deadlines reach it through its interrupt
 * hook, which for kernel operations cancels the operation and lets the
 * real completion do the waking, so a buffer is never released while the
 * kernel may still use it.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

CORIO__HOT_TLS corio_loop *corio__tls_loop;

corio_loop *corio__loop(void) { return corio__tls_loop; }
void corio__set_loop(corio_loop *l) { corio__tls_loop = l; }

corio_task *corio_current(void) { return corio__current_task(); }

uint64_t corio_now_ns(void) { return corio__tls_loop ? corio__tls_loop->now : corio__clock_ns(); }

uint64_t corio_clock_read_ns(void) { return corio__clock_ns(); }

const char *corio_task_name(const corio_task *t)
{
    if (!t) {
        errno = EINVAL;
        return NULL;
    }
    return t->name;
}

bool corio_task_done(const corio_task *t) { return t && (t->flags & CORIO__T_DONE) != 0; }

/* ------------------------------------------------------------------ */
/* Switching                                                           */
/* ------------------------------------------------------------------ */

static void overflow_abort(corio_task *t)
{
    fprintf(stderr, "corio: stack overflow in task '%s' (stack size %zu bytes): canary overwritten\n",
            t->name[0] ? t->name : "(unnamed)", t->stack->size);
    abort();
}

/* The task the scheduler would run after the current one, taken off its
 * run queue, or NULL when the scheduler must decide for itself: run_ready
 * (loop.c) runs woken_* while l->to_woken, then ready_*, each for at most
 * l->run_budget runs, so this takes the head of the same queue and spends
 * the same budget, and leaves the end of a phase (the woken queue empty,
 * the budget spent) to run_ready, which starts the next phase or polls.
 * Debug mode times every step from the loop, and a task dump resumes
 * tasks in a mode of its own (introspect.c), so neither sees a direct
 * switch. */
static inline corio_task *next_direct(corio_loop *l)
{
    if (CORIO__UNLIKELY(l->debug || l->dump) || l->run_budget == 0)
        return NULL;
    corio_task *n;
    if (l->to_woken) {
        if (!l->woken_head)
            return NULL;
        n = corio__runq_pop(&l->woken_head, &l->woken_tail);
        l->woken_len--;
    } else {
        if (!l->ready_head)
            return NULL;
        n = corio__runq_pop(&l->ready_head, &l->ready_tail);
    }
    l->run_budget--;
    n->flags &= ~CORIO__T_READY;
    if (CORIO__UNLIKELY(l->caps & CORIO__CAP_SIM))
        l->backend->on_run(l, n);
    return n;
}

/* Leave the running task t, which has parked, yielded or finished, for the
 * next task: straight to it when next_direct finds one (saving the round
 * trip through the loop's context, about 40 ns against 6 for one switch),
 * otherwise to the scheduler.  A finished task always goes to the
 * scheduler, which releases its stack from a stack that is not its own.
 * Returns when t is resumed, at once if t yielded and is itself next. */
static inline void switch_out(corio_loop *l, corio_task *t)
{
    if (CORIO__UNLIKELY(t->stack->kind == CORIO__STACK_CANARY) && !corio__stack_check(t->stack))
        overflow_abort(t);
    corio_task *n = (t->flags & CORIO__T_DONE) ? NULL : next_direct(l);
    if (n == t)
        return; /* a yield with nothing else to run this phase */
    corio__ctx *to = &l->sched_ctx;
    void **fake_save = (t->flags & CORIO__T_DONE) ? NULL : &t->asan_fake_stack;
    const void *to_lo = l->sched_stack_bottom;
    size_t to_size = l->sched_stack_size;
    void *to_fiber = l->sched_tsan_fiber;
    if (n) {
        l->current = n;
        to = &n->ctx;
        to_lo = n->stack->lo;
        to_size = n->stack->size;
        to_fiber = n->tsan_fiber;
    }
    corio__asan_start_switch(fake_save, to_lo, to_size);
    /* TSan holds a signal for the fiber it arrived on: one that came while
     * t ran would wait for t to run again, and t may be waiting for it. */
    corio__tsan_fiber_leave(to_fiber);
    /* A task that has run is suspended in this function, so the switch
     * that resumes with ret is predicted (arch.h), and the returns up its
     * call chain too.  The loop's context and a task not started yet
     * resume elsewhere (corio__task_resume, the trampoline): there the
     * indirect jump, predicted by target, does better. */
    if (n && (n->flags & CORIO__T_STARTED))
        corio__ctx_switch_ret(&t->ctx, to);
    else
        corio__ctx_switch(&t->ctx, to);
    /* Resumed, by the scheduler or by another task's switch_out, which
     * both set l->current to t. */
    corio__asan_finish_switch(t->asan_fake_stack, NULL, NULL);
    /* Resumed by a task dump (introspect.c), not to run. */
    if (CORIO__UNLIKELY(l->dump != NULL))
        corio__dump_serve(l, t);
}

/* Called by the scheduler: run t until control comes back to the loop's
 * context; returns the task that came back (see switch_out). */
corio_task *corio__task_resume(corio_loop *l, corio_task *t)
{
    CORIO__ASSERT(t->stack && !(t->flags & (CORIO__T_READY | CORIO__T_PARKED | CORIO__T_DONE)));
    l->current = t;
    corio__asan_start_switch(&l->sched_asan_fake_stack, t->stack->lo, t->stack->size);
    corio__tsan_fiber_switch(t->tsan_fiber);
    corio__ctx_switch(&l->sched_ctx, &t->ctx);
    corio__asan_finish_switch(l->sched_asan_fake_stack, NULL, NULL);
    corio_task *back = l->current;
    l->current = NULL;
    return back;
}

static void task_entry(void *arg)
{
    corio_task *t = arg;
    corio_loop *l = t->loop;
    /* ASan says which stack we came from.  The first task of a loop always
     * starts from the loop's context, whose bounds nothing else can tell;
     * later ones may start from another task's switch_out, so only the
     * first records them.  (No locals whose address is taken: this frame
     * is never left, so ASan would never clear their redzones, and the
     * next task given this stack would trip over them.) */
    if (l->sched_stack_bottom)
        corio__asan_finish_switch(NULL, NULL, NULL);
    else
        corio__asan_finish_switch(NULL, &l->sched_stack_bottom, &l->sched_stack_size);
    t->flags |= CORIO__T_STARTED;
    t->result = t->fn(t->arg);
    CORIO__ASSERT(!(t->flags & (CORIO__T_PARKED | CORIO__T_READY)));
    t->flags |= CORIO__T_DONE;
    switch_out(l, t);
    abort(); /* a finished task is never resumed */
}

/* ------------------------------------------------------------------ */
/* Run queue and waking                                                */
/* ------------------------------------------------------------------ */

/* Two FIFO queues (src/core/loop.c, run_ready): woken_*, which each round
 * runs first, and ready_* for the rest.  woken_* takes the tasks that
 * completions and timers wake, and what those tasks make ready while they
 * run (the connection task an accept spawns, the waiter their data wakes),
 * so the work an I/O event starts is not queued behind every task that was
 * ready before the event came in.  A task that yields goes to the back of
 * ready_*, whichever queue it ran from: a yield lets every other ready
 * task run first. */
/* The sim backend's order: t goes to a place the seed picks, so every seed
 * runs the ready tasks in another order (any order a real loop could show
 * as I/O completions come in another order). */
static __attribute__((noinline)) void sim_insert(corio_loop *l, corio_task **head, corio_task **tail,
                                                 corio_task *t)
{
    unsigned n = 0;
    for (corio_task *p = *head; p; p = p->next_ready)
        n++;
    corio_task **link = head;
    for (unsigned at = l->backend->pick(l, n + 1); at > 0; at--)
        link = &(*link)->next_ready;
    t->next_ready = *link;
    *link = t;
    if (!t->next_ready)
        *tail = t;
}

static inline void ready_push(corio_loop *l, corio_task *t)
{
    CORIO__ASSERT(!(t->flags & (CORIO__T_READY | CORIO__T_PARKED | CORIO__T_DONE)));
    t->flags |= CORIO__T_READY;
    t->next_ready = NULL;
    bool woken = l->to_woken && t != l->current;
    corio_task **head = woken ? &l->woken_head : &l->ready_head;
    corio_task **tail = woken ? &l->woken_tail : &l->ready_tail;
    l->woken_len += woken;
    if (CORIO__UNLIKELY(l->caps & CORIO__CAP_SIM)) {
        sim_insert(l, head, tail, t);
        return;
    }
    if (*tail)
        (*tail)->next_ready = t;
    else
        *head = t;
    *tail = t;
}

void corio__wake(corio_task *t, int r)
{
    if (!(t->flags & CORIO__T_PARKED))
        return;
    t->flags &= ~(CORIO__T_PARKED | CORIO__T_INTERRUPTED);
    t->wake_result = r;
    t->on_interrupt = NULL;
    if (corio__timer_armed(&t->timer))
        corio__timer_disarm(t->loop, &t->timer);
    ready_push(t->loop, t);
}

/* Deliver a cancel or deadline to a parked task, once per park. */
static void interrupt(corio_task *t, int reason)
{
    if ((t->flags & (CORIO__T_PARKED | CORIO__T_INTERRUPTED)) != CORIO__T_PARKED)
        return;
    if (t->flags & CORIO__T_UNINTERRUPTIBLE)
        return;
    /* A shield holds a cancel back until it ends (corio__check delivers
     * it then); its own deadline still interrupts, and so does a kill. */
    if (reason == -ECANCELED && (t->flags & (CORIO__T_SHIELDED | CORIO__T_KILLED)) == CORIO__T_SHIELDED)
        return;
    t->flags |= CORIO__T_INTERRUPTED;
    if (t->on_interrupt)
        t->on_interrupt(t, reason);
    else
        corio__wake(t, reason);
}

/* The task timer: the end of a sleep or the task's deadline, whichever is
 * first. */
static void task_timer_fired(corio__timer *tm)
{
    corio_task *t = CORIO__CONTAINER_OF(tm, corio_task, timer);
    if (t->sleep_until != CORIO__NO_DEADLINE && t->sleep_until <= t->deadline)
        corio__wake(t, 0);
    else
        interrupt(t, -CORIO_EDEADLINE);
}

int corio__check(void)
{
    corio_task *t = corio__current_task();
    if (CORIO__UNLIKELY(!t))
        return -EPERM;
    if (CORIO__UNLIKELY(t->flags & CORIO__T_CANCELLED) &&
        (t->flags & (CORIO__T_SHIELDED | CORIO__T_KILLED)) != CORIO__T_SHIELDED)
        return -ECANCELED;
    /* The turn's cached clock first; a task with a deadline pays one fresh
     * reading so a deadline that passed during this turn counts now. */
    if (CORIO__UNLIKELY(t->deadline != CORIO__NO_DEADLINE) &&
        (t->deadline <= t->loop->now || t->deadline <= corio__clock_ns()))
        return -CORIO_EDEADLINE;
    return 0;
}

static int park(corio_task *t, corio__interrupt_fn on_interrupt, void *wait_obj, const char *what,
                uint64_t wake_at)
{
    corio_loop *l = t->loop;
    CORIO__ASSERT(t == l->current && !(t->flags & (CORIO__T_READY | CORIO__T_PARKED | CORIO__T_DONE)));
    t->on_interrupt = on_interrupt;
    t->wait_obj = wait_obj;
    t->wait_what = what;
    t->sleep_until = wake_at;
    t->flags |= CORIO__T_PARKED;
    uint64_t when =
        (t->flags & CORIO__T_UNINTERRUPTIBLE) ? wake_at : (wake_at < t->deadline ? wake_at : t->deadline);
    if (when != CORIO__NO_DEADLINE && CORIO__UNLIKELY(corio__timer_arm(l, &t->timer, when) < 0)) {
        if (t->flags & CORIO__T_UNINTERRUPTIBLE) {
            t->flags &= ~CORIO__T_PARKED;
            return -ENOMEM;
        }
        /* No timer, so neither the sleep's end nor the deadline could ever
         * wake us.  Failing the call here is not an option: the caller has
         * usually started something already (an op in the kernel, a pool
         * item) and would release its buffer while that still runs.  So
         * deliver -ENOMEM as an interrupt: the hook winds the wait down
         * the same safe way a cancel does, and the task parks until it has. */
        interrupt(t, -ENOMEM);
    }
    switch_out(l, t);
    t->wait_obj = NULL;
    t->wait_what = NULL;
    return t->wake_result;
}

int corio__suspend(corio__interrupt_fn on_interrupt, void *wait_obj, const char *what, uint64_t wake_at)
{
    corio_task *t = corio__current_task();
    if (CORIO__UNLIKELY(!t))
        return -EPERM;
    return park(t, on_interrupt, wait_obj, what, wake_at);
}

int corio__suspend_uninterruptible(void *wait_obj, const char *what)
{
    corio_task *t = corio__current_task();
    if (CORIO__UNLIKELY(!t))
        return -EPERM;
    t->flags |= CORIO__T_UNINTERRUPTIBLE;
    int r = park(t, NULL, wait_obj, what, CORIO__NO_DEADLINE);
    t->flags &= ~CORIO__T_UNINTERRUPTIBLE;
    return r;
}

/* ------------------------------------------------------------------ */
/* Spawn, finish, free                                                 */
/* ------------------------------------------------------------------ */

corio_task *corio__spawn(corio_loop *l, const char *name, size_t stack_size, corio_fn fn, void *arg)
{
    corio_task *t;
    if (l->task_cache) {
        t = l->task_cache;
        l->task_cache = t->next_ready;
        l->task_cache_len--;
    } else {
        t = corio__malloc(sizeof *t);
        if (!t)
            return NULL;
    }
    t->stack = corio__stack_get(l->stacks, stack_size);
    if (!t->stack) {
        int e = errno;
        corio__free(t);
        errno = e;
        return NULL;
    }
    t->next_ready = NULL;
    t->loop = l;
    t->flags = 0;
    t->wake_result = 0;
    t->fn = fn;
    t->arg = arg;
    t->result = NULL;
    t->error = 0;
    t->open_groups = 0;
    t->group_cancels = 0;
    t->deadline = CORIO__NO_DEADLINE;
    t->sleep_until = CORIO__NO_DEADLINE;
    corio__timer_init(&t->timer, task_timer_fired);
    t->on_interrupt = NULL;
    t->wait_obj = NULL;
    t->wait_what = NULL;
    t->joiner = NULL;
    t->watchers = NULL;
    t->asan_fake_stack = NULL;
    t->spawn_site = __builtin_return_address(0); /* the public spawns name their caller instead */
    if (name) {
        size_t n = strlen(name);
        if (n >= sizeof t->name)
            n = sizeof t->name - 1;
        memcpy(t->name, name, n);
        t->name[n] = 0;
    } else {
        t->name[0] = 0;
    }
    corio__ctx_make(&t->ctx, t->stack->lo, t->stack->size, task_entry, t);
    /* A fresh fiber per spawn (destroyed with the stack in
     * corio__task_release_stack), even for a recycled task struct: TSan
     * then names each report after the task that made the access. */
    t->tsan_fiber = corio__tsan_fiber_create(t->name[0] ? t->name : "task");
    corio__list_init(&t->live); /* unlinked, also for a fresh malloc */
    corio__list_push_back(&l->live_tasks, &t->live);
    l->live_count++;
    l->spawn_seq++;
    t->sim_id = (uint32_t)l->spawn_seq;
    t->sim_host = l->current ? l->current->sim_host : 0;
    ready_push(l, t);
    return t;
}

/* site: the user's call site (reported by task dumps and debug mode). */
static inline corio_task *spawn_public(const char *name, size_t stack_size, corio_fn fn, void *arg,
                                       const void *site)
{
    corio_loop *l = corio__tls_loop;
    if (!fn) {
        errno = EINVAL;
        return NULL;
    }
    if (!l) {
        errno = EPERM;
        return NULL;
    }
    corio_task *t = corio__spawn(l, name, stack_size, fn, arg);
    if (t)
        t->spawn_site = site;
    return t;
}

corio_task *corio_spawn_named(const char *name, size_t stack_size, corio_fn fn, void *arg)
{
    return spawn_public(name, stack_size, fn, arg, __builtin_return_address(0));
}

corio_task *corio_spawn(corio_fn fn, void *arg)
{
    return spawn_public(NULL, 0, fn, arg, __builtin_return_address(0));
}

void corio__task_free(corio_task *t)
{
    corio_loop *l = t->loop;
    if (l->task_cache_len < 1024) {
        t->next_ready = l->task_cache;
        l->task_cache = t;
        l->task_cache_len++;
    } else {
        corio__free(t);
    }
}

/* t's context will never run again (finished, or discarded after a stall):
 * recycle its stack.  On the loop's context. */
void corio__task_release_stack(corio_loop *l, corio_task *t)
{
    corio__stack_put(l->stacks, t->stack);
    t->stack = NULL;
    /* The context is gone with its stack, so its TSan fiber is too; we run
     * on the loop's fiber here, never on t's. */
    corio__tsan_fiber_destroy(t->tsan_fiber);
    t->tsan_fiber = NULL;
}

/* The scheduler calls this after t's function returned (we are back on the
 * loop's stack, so t's stack can be recycled). */
void corio__task_finished(corio_loop *l, corio_task *t)
{
    CORIO__ASSERT((t->flags & CORIO__T_DONE) && !(t->flags & (CORIO__T_READY | CORIO__T_PARKED)));
    if (CORIO__UNLIKELY(t->open_groups))
        corio__group_orphan(t); /* its members must not reach the groups again */
    corio__task_release_stack(l, t);
    if (corio__timer_armed(&t->timer))
        corio__timer_disarm(l, &t->timer);
    corio__list_remove(&t->live);
    l->live_count--;
    t->end_seq = ++l->end_seq;
    if (CORIO__UNLIKELY(t->flags & CORIO__T_GROUPED)) {
        corio__group_member_ended(t); /* records the outcome and frees t */
        return;
    }
    if (CORIO__UNLIKELY(t->watchers != NULL))
        corio__watchers_fire(t);
    corio_task *j = t->joiner;
    if (j) {
        if (CORIO__UNLIKELY(j->flags & CORIO__T_GATHERING))
            corio__gather_child_ended(j, t);
        corio__wake(j, 0);
    }
    if (t->flags & CORIO__T_DETACHED)
        corio__task_free(t);
    else if (!(t->flags & CORIO__T_MAIN))
        corio__list_push_back(&l->unjoined, &t->live); /* freed by join/detach, or at loop end */
}

/* ------------------------------------------------------------------ */
/* Public task API                                                     */
/* ------------------------------------------------------------------ */

int corio_task_cancel(corio_task *t)
{
    if (!t)
        return -EINVAL;
    if (t->flags & CORIO__T_DONE)
        return -EALREADY;
    t->flags |= CORIO__T_CANCELLED | CORIO__T_CANCEL_USER;
    if (t->flags & CORIO__T_PARKED)
        interrupt(t, -ECANCELED); /* not while shielded: see interrupt() */
    return 0;
}

void corio__task_kill(corio_task *t)
{
    if (t->flags & CORIO__T_DONE)
        return;
    t->flags |= CORIO__T_KILLED;
    corio_task_cancel(t);
}

void corio__task_group_cancel(corio_task *t)
{
    if (t->flags & CORIO__T_DONE)
        return;
    t->group_cancels++;
    t->flags |= CORIO__T_CANCELLED;
    if (t->flags & CORIO__T_PARKED)
        interrupt(t, -ECANCELED);
}

/* asyncio's Task.uncancel: only the group's own request goes; a cancel
 * the program asked for, or another group's, stays in force. */
void corio__task_uncancel(corio_task *t)
{
    CORIO__ASSERT(t->group_cancels > 0);
    if (--t->group_cancels == 0 && !(t->flags & CORIO__T_CANCEL_USER))
        t->flags &= ~CORIO__T_CANCELLED;
}

bool corio_cancelled(void)
{
    corio_task *t = corio__current_task();
    return t && (t->flags & CORIO__T_CANCELLED);
}

void corio__task_interrupt(corio_task *t, int reason) { interrupt(t, reason); }

/* ------------------------------------------------------------------ */
/* Outcomes                                                            */
/* ------------------------------------------------------------------ */

void *corio_fail(int err)
{
    corio_task *t = corio__current_task();
    if (t)
        t->error = err;
    return NULL;
}

int corio_task_error(const corio_task *t) { return t && (t->flags & CORIO__T_DONE) ? t->error : 0; }

void *corio_task_result(const corio_task *t) { return t && (t->flags & CORIO__T_DONE) ? t->result : NULL; }

/* ------------------------------------------------------------------ */
/* Join, wait_for, gather, detach                                      */
/* ------------------------------------------------------------------ */

/* t ended and the scheduler has recycled its stack: its result is final. */
static inline bool task_over(const corio_task *t) { return (t->flags & CORIO__T_DONE) && !t->stack; }

/* Whether t's handle may be claimed by a join or gather of self's. */
static inline bool claimable(const corio_task *self, const corio_task *t)
{
    return t != self && !(t->flags & (CORIO__T_DETACHED | CORIO__T_GROUPED)) && !t->joiner;
}

static void join_interrupted(corio_task *self, int reason)
{
    corio_task *target = self->wait_obj;
    target->joiner = NULL;
    corio__wake(self, reason);
}

static void take_result(corio_task *t, void **result)
{
    CORIO__ASSERT(task_over(t) && !(t->flags & CORIO__T_DETACHED));
    if (result)
        *result = t->result;
    corio__list_remove(&t->live);
    corio__task_free(t);
}

/* Wait until t (claimable, not over) is over: asyncio's `await task`.
 * Returns 0, or the interruption of the wait (-ECANCELED,
 * -CORIO_EDEADLINE, -ENOMEM when no timer could be armed), after which t
 * was cancelled and awaited regardless (*had_to_cancel) unless it had
 * ended meanwhile. */
static int join_wait(corio_task *self, corio_task *t, bool *had_to_cancel)
{
    int r = corio__check();
    if (!r) {
        t->joiner = self;
        r = corio__suspend(join_interrupted, t, "join", CORIO__NO_DEADLINE);
    }
    if (r < 0 && !task_over(t)) {
        *had_to_cancel = true;
        corio_task_cancel(t);
        t->joiner = self;
        while (!task_over(t))
            corio__suspend_uninterruptible(t, "join (cancelled)");
    }
    return r;
}

int corio_task_wait_for(corio_task *t, uint64_t timeout_ms, void **result)
{
    corio_task *self = corio__current_task();
    if (!t)
        return -EINVAL;
    if (!self)
        return -EPERM;
    if (!claimable(self, t))
        return -EINVAL;
    int r = 0;
    if (!task_over(t)) {
        uint64_t enclosing = self->deadline;
        bool limited = timeout_ms != CORIO_NO_TIMEOUT;
        corio_deadline d = {enclosing};
        if (limited)
            d = corio_deadline_push(timeout_ms);
        /* Only a deadline of our own is a time-out; an enclosing one that
         * comes first is the caller's interruption, as for a join. */
        bool ours = self->deadline != enclosing;
        bool cancelled = false;
        r = join_wait(self, t, &cancelled);
        if (limited)
            corio_deadline_pop(d);
        if (r == -CORIO_EDEADLINE && ours && !cancelled)
            r = 0; /* t ended after all, before it could be cancelled */
    }
    int err = t->error;
    take_result(t, result);
    return r ? r : err;
}

/* A join is a wait_for without a time limit: no deadline of its own is
 * pushed, so only the caller's interruptions end it early. */
int corio_task_join(corio_task *t, void **result) { return corio_task_wait_for(t, CORIO_NO_TIMEOUT, result); }

/* A gather's state, reached from its children through the gatherer's
 * wait_obj (CORIO__T_GATHERING): every park inside a gather passes it,
 * and children only end while the gatherer is parked or woken but not yet
 * run, so wait_obj still points here.  err is the first failure, in the
 * order the children ended. */
typedef struct gather_state {
    int err;
    bool stop_on_error; /* corio_gather, until it has stopped for another reason */
} gather_state;

void corio__gather_child_ended(corio_task *gatherer, corio_task *t)
{
    gather_state *gs = gatherer->wait_obj;
    if (t->error && gs->stop_on_error && !gs->err)
        gs->err = t->error;
}

/* Validate gather's list: no duplicates, not the caller, no task that is
 * detached, grouped or already has a joiner.  The scratch mark finds
 * duplicates in O(n) and is cleared again before returning. */
static bool gather_list_ok(corio_task *self, corio_task **tasks, size_t n)
{
    size_t i;
    bool ok = true;
    for (i = 0; i < n; i++) {
        corio_task *t = tasks[i];
        if (!t || !claimable(self, t) || (t->flags & CORIO__T_MARK)) {
            ok = false;
            break;
        }
        t->flags |= CORIO__T_MARK;
    }
    while (i--)
        tasks[i]->flags &= ~CORIO__T_MARK;
    return ok;
}

static void cancel_unfinished(corio_task **tasks, size_t n)
{
    for (size_t j = 0; j < n; j++)
        if (!task_over(tasks[j]))
            corio_task_cancel(tasks[j]);
}

/* The gather claims every task up front (as their joiner), so no other
 * task can join one of them meanwhile and each is freed exactly once; a
 * child that ends wakes the gatherer, which re-checks the task it is
 * waiting for and whether a child failed.  Once it stops (a failure with
 * stop_on_error, or its own interruption) it cancels the children not yet
 * over and waits for them regardless of its own cancellation. */
static int gather_run(corio_task **tasks, size_t n, void **results, corio_outcome *out, bool stop_on_error)
{
    corio_task *self = corio__current_task();
    if (!tasks && n)
        return -EINVAL;
    if (!self)
        return -EPERM;
    if (!gather_list_ok(self, tasks, n))
        return -EINVAL;
    gather_state gs = {0, stop_on_error};
    uint64_t first_end = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        corio_task *t = tasks[i];
        t->joiner = self;
        /* Failures from before the call count in the order they ended. */
        if (stop_on_error && t->error && task_over(t) && t->end_seq < first_end) {
            first_end = t->end_seq;
            gs.err = t->error;
        }
    }
    int intr = 0;
    bool stopping = gs.err != 0;
    if (stopping)
        cancel_unfinished(tasks, n);
    self->flags |= CORIO__T_GATHERING;
    for (size_t i = 0; i < n; i++) {
        while (!task_over(tasks[i])) {
            if (stopping) {
                corio__suspend_uninterruptible(&gs, "gather (stopping)");
                continue;
            }
            int r = corio__check();
            if (!r)
                r = corio__suspend(NULL, &gs, "gather", CORIO__NO_DEADLINE);
            if (r < 0) {
                /* The interruption woke us, so it came before any
                 * failure recorded since. */
                intr = r;
                gs.err = 0;
                gs.stop_on_error = false;
            }
            if (r < 0 || gs.err) {
                stopping = true;
                cancel_unfinished(tasks, n);
            }
        }
    }
    self->flags &= ~CORIO__T_GATHERING;
    for (size_t i = 0; i < n; i++) {
        if (out) {
            out[i].result = tasks[i]->result;
            out[i].error = tasks[i]->error;
        }
        take_result(tasks[i], results ? &results[i] : NULL);
    }
    return gs.err ? gs.err : intr;
}

int corio_gather(corio_task **tasks, size_t n, void **results)
{
    return gather_run(tasks, n, results, NULL, true);
}

int corio_gather_outcomes(corio_task **tasks, size_t n, corio_outcome *out)
{
    return gather_run(tasks, n, NULL, out, false);
}

int corio_task_detach(corio_task *t)
{
    /* A joiner (corio_task_join or corio_gather) frees t itself once it ends,
     * and so does a group: detaching too would free it twice. */
    if (!t || (t->flags & (CORIO__T_DETACHED | CORIO__T_GROUPED)) || t->joiner)
        return -EINVAL;
    if (task_over(t)) {
        corio__list_remove(&t->live);
        corio__task_free(t);
    } else
        t->flags |= CORIO__T_DETACHED;
    return 0;
}

int corio_yield(void)
{
    int r = corio__check();
    if (r)
        return r;
    corio_task *t = corio__current_task();
    t->flags |= CORIO__T_PARKED;
    corio__wake(t, 0); /* to the back of the run queue */
    switch_out(t->loop, t);
    return t->wake_result;
}

int corio_sleep_ns(uint64_t ns)
{
    if (ns == 0)
        return corio_yield();
    int r = corio__check();
    if (r)
        return r;
    /* A fresh clock reading, not the turn's cached one: a sleep must never
     * end before the requested time has passed since the call. */
    uint64_t now = corio__clock_ns();
    uint64_t when = ns > UINT64_MAX - 1 - now ? UINT64_MAX - 1 : now + ns;
    return corio__suspend(NULL, NULL, "sleep", when);
}

int corio_sleep_ms(uint64_t ms)
{
    return corio_sleep_ns(ms > UINT64_MAX / 1000000u ? UINT64_MAX : ms * 1000000u);
}

/* ------------------------------------------------------------------ */
/* Deadlines                                                           */
/* ------------------------------------------------------------------ */

corio_deadline corio_deadline_push(uint64_t timeout_ms)
{
    corio_task *t = corio__current_task();
    corio_deadline tok = {CORIO__NO_DEADLINE};
    if (!t)
        return tok;
    tok.prev_ns = t->deadline;
    uint64_t when = corio__ns_after_ms(corio__clock_ns(), timeout_ms);
    if (when < t->deadline)
        t->deadline = when;
    return tok;
}

void corio_deadline_pop(corio_deadline tok)
{
    corio_task *t = corio__current_task();
    if (t)
        t->deadline = tok.prev_ns;
}

bool corio_deadline_expired(void)
{
    corio_task *t = corio__current_task();
    return t && t->deadline != CORIO__NO_DEADLINE && t->deadline <= corio__clock_ns();
}

/* ------------------------------------------------------------------ */
/* Shields                                                             */
/* ------------------------------------------------------------------ */

/* A token from a push outside a task (nothing to restore) lacks this. */
#define SHIELD_TOKEN_VALID (1u << 31)

/* The shield is a flag (corio__check and interrupt() look at it) and a
 * deadline swapped in for the enclosing ones; the token keeps what to put
 * back, so nesting needs no depth counter.  Neither changes while the task
 * is parked (only the running task pushes and pops), so an armed deadline
 * timer never goes stale: the next park arms it from t->deadline. */
corio_shield corio_shield_push(uint64_t timeout_ms)
{
    corio_task *t = corio__current_task();
    corio_shield tok = {CORIO__NO_DEADLINE, 0};
    if (!t)
        return tok;
    tok.prev_deadline_ns = t->deadline;
    tok.prev_flags = SHIELD_TOKEN_VALID | (t->flags & CORIO__T_SHIELDED);
    t->flags |= CORIO__T_SHIELDED;
    t->deadline = timeout_ms == CORIO_NO_TIMEOUT ? CORIO__NO_DEADLINE
                                                 : corio__ns_after_ms(corio__clock_ns(), timeout_ms);
    return tok;
}

void corio_shield_pop(corio_shield tok)
{
    corio_task *t = corio__current_task();
    if (!t || !(tok.prev_flags & SHIELD_TOKEN_VALID))
        return;
    t->deadline = tok.prev_deadline_ns;
    t->flags = (t->flags & ~CORIO__T_SHIELDED) | (tok.prev_flags & CORIO__T_SHIELDED);
    /* A cancel held back, or an enclosing deadline that passed meanwhile,
     * now shows at the next corio__check. */
}

/* Stack-overflow handler support: name the running task if addr lies in or
 * just below its stack. */
const char *corio__stack_owner_name(void *addr, size_t *stack_size)
{
    corio_loop *l = corio__tls_loop;
    if (!l || !l->current || !l->current->stack)
        return NULL;
    corio__stack *s = l->current->stack;
    char *lo = s->lo;
    if ((char *)addr < lo - 65536 || (char *)addr >= lo + s->size)
        return NULL;
    if (stack_size)
        *stack_size = s->size;
    return l->current->name[0] ? l->current->name : "(unnamed)";
}
