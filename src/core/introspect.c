/*
 * Introspection: the list of live tasks (corio_all_tasks) and the task
 * dump (corio_dump_tasks), on demand or when a signal comes
 * (corio_dump_tasks_on_signal): what Go prints on SIGQUIT.
 *
 * For each live task the dump gives its name, state, what it waits on,
 * where it was spawned and the backtrace of its stack.  A suspended task's
 * frames sit on its own stack behind a saved stack pointer, and at -O2
 * without frame pointers only the DWARF unwinder walks them reliably, and
 * only from inside.  So the dumper resumes each suspended task briefly in
 * "dump mode": the task's context returns from its switch in
 * switch_out (task.c), finds l->dump set, calls backtrace() on its
 * own stack, stores the frames in the dumper's request and switches
 * straight back.  Nothing the scheduler or the task can see changes (flags,
 * queues, timers, the wake result), so the dump is invisible to the task;
 * the switches follow arch.h's ASan and TSan fiber protocol like every
 * other switch.  A task that has not run yet has no frames: its entry
 * function is shown instead.
 *
 * The report is formatted line by line on the dumper's stack and written
 * with write(2): nothing is allocated, so nothing but the writes can fail
 * once it has started.
 *
 * On a signal, the handler only sets a flag and kicks the loop's notify
 * (both async-signal safe); the loop writes the dump to stderr at its next
 * turn, from its own context, where every task is suspended.
 */
#include "internal.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define DUMP_FRAMES 48
/* Stack a suspended task must have left for the unwinder to run on it in
 * dump mode (libgcc's unwinder takes a few KiB); with less the backtrace
 * is skipped rather than risk overflowing the task's stack. */
#define DUMP_STACK_NEEDED (8 * 1024)

/* One backtrace request: the dumper fills target and its own context's
 * whereabouts, the target fills frames. */
struct corio__dump_req {
    corio_task *target;
    corio__ctx back;     /* the dumper's context while the target records */
    const void *back_lo; /* the dumper's stack (ASan) */
    size_t back_size;
    void *back_fiber; /* the dumper's TSan fiber */
    int nframes;
    void *frames[DUMP_FRAMES];
};

/* ------------------------------------------------------------------ */
/* All tasks                                                           */
/* ------------------------------------------------------------------ */

size_t corio_all_tasks(corio_task **out, size_t cap)
{
    corio_loop *l = corio__loop();
    if (!l || (!out && cap))
        return 0;
    size_t n = 0;
    for (corio__list *p = l->live_tasks.next; p != &l->live_tasks; p = p->next, n++)
        if (n < cap)
            out[n] = CORIO__CONTAINER_OF(p, corio_task, live);
    return n;
}

/* ------------------------------------------------------------------ */
/* Output                                                              */
/* ------------------------------------------------------------------ */

typedef struct out {
    int fd;
    int err; /* first write error; nothing more is written after one */
} out;

static void out_write(out *o, const char *s, size_t n)
{
    while (n && !o->err) {
        ssize_t w = write(o->fd, s, n);
        if (w >= 0) {
            s += w;
            n -= (size_t)w;
            continue;
        }
        if (errno == EINTR)
            continue;
        /* A non-blocking fd (stderr shared with a non-blocking pipe): wait
         * a little for room, as a blocking fprintf would, but never hang
         * the loop on a reader that is gone for good. */
        if (errno == EAGAIN) {
            struct pollfd p = {.fd = o->fd, .events = POLLOUT};
            if (poll(&p, 1, 1000) > 0)
                continue;
            errno = EAGAIN;
        }
        o->err = -errno;
    }
}

__attribute__((format(printf, 2, 3))) static void out_printf(out *o, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line) { /* truncated: keep the line a line */
        n = sizeof line - 1;
        line[n - 1] = '\n';
    }
    out_write(o, line, (size_t)n);
}

size_t corio__format_site(char *buf, size_t n, const void *addr)
{
    Dl_info di;
    int r;
    if (!addr) {
        r = snprintf(buf, n, "(unknown)");
    } else if (dladdr(addr, &di) && di.dli_fname) {
        const char *mod = di.dli_fname[0] ? di.dli_fname : "?";
        if (di.dli_sname && di.dli_saddr)
            r = snprintf(buf, n, "%s(%s+0x%tx) [%p]", mod, di.dli_sname,
                         (const char *)addr - (const char *)di.dli_saddr, addr);
        else /* not in the dynamic symbol table: the offset in the module, for addr2line */
            r = snprintf(buf, n, "%s(+0x%tx) [%p]", mod, (const char *)addr - (const char *)di.dli_fbase,
                         addr);
    } else {
        r = snprintf(buf, n, "[%p]", addr);
    }
    if (r < 0) {
        buf[0] = 0;
        return 0;
    }
    return (size_t)r < n ? (size_t)r : n - 1;
}

/* ------------------------------------------------------------------ */
/* Backtraces of suspended tasks                                       */
/* ------------------------------------------------------------------ */

/* On t's context, resumed by take_backtrace with l->dump set. */
void corio__dump_serve(corio_loop *l, corio_task *t)
{
    struct corio__dump_req *rq;
    while ((rq = l->dump) != NULL) {
        CORIO__ASSERT(rq->target == t);
        rq->nframes = backtrace(rq->frames, DUMP_FRAMES);
        corio__asan_start_switch(&t->asan_fake_stack, rq->back_lo, rq->back_size);
        corio__tsan_fiber_switch(rq->back_fiber);
        corio__ctx_switch(&t->ctx, &rq->back);
        corio__asan_finish_switch(t->asan_fake_stack, NULL, NULL);
    }
}

/* Stack left below t's saved stack pointer, or SIZE_MAX when the context
 * does not say (a ucontext on a CPU not named here). */
static size_t stack_left(const corio_task *t)
{
#if CORIO_ARCH_ASM
    const char *sp = t->ctx.sp;
#elif defined(__x86_64__)
    const char *sp = (const char *)(uintptr_t)t->ctx.uc.uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
    const char *sp = (const char *)(uintptr_t)t->ctx.uc.uc_mcontext.sp;
#else
    (void)t;
    return SIZE_MAX;
#endif
#if CORIO_ARCH_ASM || defined(__x86_64__) || defined(__aarch64__)
    const char *lo = t->stack->lo;
    return sp > lo ? (size_t)(sp - lo) : 0;
#endif
}

/* Resume suspended task t in dump mode to fill rq->frames.  On the
 * dumper's context: the running task, or the loop's own. */
static void take_backtrace(corio_loop *l, corio_task *t, struct corio__dump_req *rq)
{
    corio_task *self = l->current;
    rq->target = t;
    rq->nframes = 0;
    if (self) {
        rq->back_lo = self->stack->lo;
        rq->back_size = self->stack->size;
        rq->back_fiber = self->tsan_fiber;
    } else {
        rq->back_lo = l->sched_stack_bottom;
        rq->back_size = l->sched_stack_size;
        rq->back_fiber = l->sched_tsan_fiber;
    }
    void *fake = NULL;
    l->dump = rq;
    corio__asan_start_switch(&fake, t->stack->lo, t->stack->size);
    corio__tsan_fiber_switch(t->tsan_fiber);
    corio__ctx_switch(&rq->back, &t->ctx);
    corio__asan_finish_switch(fake, NULL, NULL);
    l->dump = NULL;
}

/* ------------------------------------------------------------------ */
/* The dump                                                            */
/* ------------------------------------------------------------------ */

static void print_frames(out *o, void *const *frames, int n, int first)
{
    char site[512];
    for (int i = first; i < n && !o->err; i++) {
        corio__format_site(site, sizeof site, frames[i]);
        out_printf(o, "    #%d %s\n", i - first, site);
    }
}

static long long ms_until(uint64_t when, uint64_t now)
{
    return when >= now ? (long long)((when - now) / 1000000u) : -(long long)((now - when) / 1000000u);
}

static void dump_task(out *o, corio_loop *l, corio_task *t, struct corio__dump_req *rq,
                      void *const *self_frames, int self_n)
{
    char site[512], what[160];
    uint64_t now = corio__clock_ns();
    const char *state;
    what[0] = 0;
    if (t == l->current) {
        state = "running";
    } else if (t->flags & CORIO__T_READY) {
        state = (t->flags & CORIO__T_STARTED) ? "ready" : "ready, not started yet";
    } else if (t->flags & CORIO__T_PARKED) {
        state = "waiting";
        size_t w = (size_t)snprintf(what, sizeof what, " on %s", t->wait_what ? t->wait_what : "?");
        int fd = corio__op_wait_fd(t);
        if (fd >= 0 && w < sizeof what)
            w += (size_t)snprintf(what + w, sizeof what - w, " (fd %d)", fd);
        if (t->sleep_until != CORIO__NO_DEADLINE && w < sizeof what)
            w +=
                (size_t)snprintf(what + w, sizeof what - w, " (%lld ms left)", ms_until(t->sleep_until, now));
        if ((t->flags & CORIO__T_UNINTERRUPTIBLE) && w < sizeof what)
            snprintf(what + w, sizeof what - w, " (uninterruptible)");
    } else {
        state = "?";
    }
    char extra[96];
    size_t e = 0;
    extra[0] = 0;
    if (t->flags & CORIO__T_CANCELLED)
        e += (size_t)snprintf(extra + e, sizeof extra - e, ", cancelled");
    if (t->deadline != CORIO__NO_DEADLINE && e < sizeof extra)
        snprintf(extra + e, sizeof extra - e, ", deadline in %lld ms", ms_until(t->deadline, now));
    if (t->name[0])
        out_printf(o, "task '%s'%s %p: %s%s%s\n", t->name, (t->flags & CORIO__T_MAIN) ? " (main)" : "",
                   (void *)t, state, what, extra);
    else
        out_printf(o, "task (unnamed) %p: %s%s%s\n", (void *)t, state, what, extra);
    corio__format_site(site, sizeof site, t->spawn_site);
    out_printf(o, "  spawned at %s\n", site);

    if (t == l->current) {
        print_frames(o, self_frames, self_n, 0);
    } else if (!(t->flags & CORIO__T_STARTED) || !t->stack) {
        corio__format_site(site, sizeof site, (const void *)(uintptr_t)t->fn);
        out_printf(o, "  will run %s\n", site);
    } else if (stack_left(t) < DUMP_STACK_NEEDED) {
        out_printf(o, "  (no backtrace: only %zu bytes of stack left)\n", stack_left(t));
    } else {
        take_backtrace(l, t, rq);
        /* Frame 0 is corio__dump_serve itself. */
        print_frames(o, rq->frames, rq->nframes, 1);
    }
}

static int dump_all(corio_loop *l, int fd, void *const *self_frames, int self_n)
{
    out o = {fd, 0};
    struct corio__dump_req rq;
    /* The first backtrace() loads the unwinder (dlopen, malloc): let that
     * happen here, on the dumper's stack, rather than on a task's. */
    if (!l->current) {
        void *warm[1];
        backtrace(warm, 1);
    }
    out_printf(&o, "corio: task dump (backend %s): %u live task(s)\n", l->backend->name, l->live_count);
    for (corio__list *p = l->live_tasks.next; p != &l->live_tasks && !o.err; p = p->next)
        dump_task(&o, l, CORIO__CONTAINER_OF(p, corio_task, live), &rq, self_frames, self_n);
    out_printf(&o, "corio: end of task dump\n");
    return o.err;
}

int corio_dump_tasks(int fd)
{
    corio_loop *l = corio__loop();
    if (!l)
        return -EPERM;
    void *frames[DUMP_FRAMES];
    int n = l->current ? backtrace(frames, DUMP_FRAMES) : 0;
    return dump_all(l, fd, frames, n);
}

/* ------------------------------------------------------------------ */
/* Dump on a signal                                                    */
/* ------------------------------------------------------------------ */

/* One loop at a time owns the signal (sig_loop); its thread alone touches
 * sig_signo and sig_old.  The handler counts itself in sig_in_handler so
 * that turning the signal off can wait until no handler still holds the
 * loop it is about to let go. */
static _Atomic(corio_loop *) sig_loop;
static atomic_bool sig_pending;
static atomic_int sig_in_handler;
static int sig_signo;
static struct sigaction sig_old;

static void dump_signal_handler(int signo)
{
    (void)signo;
    int saved = errno;
    atomic_fetch_add(&sig_in_handler, 1);
    corio_loop *l = atomic_load(&sig_loop);
    if (l) {
        atomic_store(&sig_pending, true);
        l->backend->notify(l); /* async-signal safe (backend contract) */
    }
    atomic_fetch_sub(&sig_in_handler, 1);
    errno = saved;
}

void corio__dump_signal_off(corio_loop *l)
{
    if (!l->dump_on_signal)
        return;
    sigaction(sig_signo, &sig_old, NULL);
    corio__signal_unclaim(sig_signo);
    atomic_store(&sig_loop, NULL);
    /* A handler that already read the loop may be kicking its notify on
     * another thread: let it finish before the loop can go away. */
    while (atomic_load(&sig_in_handler) != 0)
        sched_yield();
    atomic_store(&sig_pending, false);
    l->dump_on_signal = false;
}

void corio__dump_signal_poll(corio_loop *l)
{
    if (atomic_load_explicit(&sig_pending, memory_order_relaxed) && atomic_exchange(&sig_pending, false))
        dump_all(l, STDERR_FILENO, NULL, 0);
}

/* Signals a dump handler cannot serve: those no handler can catch, and
 * the faults, whose handler must not simply return. */
static bool signal_ok(int signo)
{
    return signo > 0 && signo < NSIG && signo != SIGKILL && signo != SIGSTOP && signo != SIGSEGV &&
           signo != SIGBUS && signo != SIGILL && signo != SIGFPE;
}

int corio_dump_tasks_on_signal(int signo)
{
    if (signo != 0 && !signal_ok(signo))
        return -EINVAL;
    corio_loop *l = corio__loop();
    if (!l)
        return -EPERM;
    if (l->dump_on_signal) {
        if (signo == sig_signo)
            return 0;
        corio__dump_signal_off(l);
    }
    if (signo == 0)
        return 0;
    corio_loop *none = NULL;
    if (!atomic_compare_exchange_strong(&sig_loop, &none, l))
        return -EBUSY;
    if (!corio__signal_claim(signo, l)) { /* a signal watch's (src/io/signal.c) */
        atomic_store(&sig_loop, NULL);
        return -EBUSY;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = dump_signal_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    atomic_store(&sig_pending, false);
    if (sigaction(signo, &sa, &sig_old) < 0) {
        int e = errno; /* glibc's reserved real-time signals */
        corio__signal_unclaim(signo);
        atomic_store(&sig_loop, NULL);
        return -e;
    }
    sig_signo = signo;
    l->dump_on_signal = true;
    return 0;
}
