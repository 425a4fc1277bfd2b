/*
 * Signals as something a task waits for: watches (corio_signal_watch_*),
 * the one-shot corio_signal_wait and asyncio-style handlers
 * (corio_signal_handler_*), of include/corio.h's "Signals" section.
 *
 * Why a handler and not signalfd: signalfd only sees a signal that is
 * blocked in every thread of the process, otherwise the kernel delivers it
 * to some thread that does not block it, by its disposition, and the fd
 * never hears of it.  A library cannot block a signal in threads it did
 * not create (the program's, a library's), and blocking it in the loop
 * thread alone would just send it elsewhere.  So a loop that uses a signal
 * installs a sigaction handler for it, whichever thread runs it: the
 * handler is async-signal safe (atomics and write(2) only): it adds one to
 * the signal's arrival counter and kicks the owning loop's eventfd
 * (EFD_CLOEXEC | EFD_NONBLOCK).  The loop reads that fd through the op
 * primitive (CORIO__OP_POLL), so both backends, cancellation and the stall
 * detector work as for any other wait: while a task waits for a signal
 * there is an operation in flight, and the loop is not reported stalled.
 * The signal is also unblocked in the loop thread's mask while the loop
 * uses it (so a signal the program blocked everywhere still reaches it),
 * and both the disposition and that bit of the mask are given back when
 * the last watch or handler of the loop using it goes.
 *
 * Ownership: a signal number belongs to one loop process-wide, claimed in
 * core's table (corio__signal_claim, shared with the task dump's signal);
 * another loop, or the dump, gets -EBUSY.  Within the
 * owning loop, any number of watches and handlers share it (users[]).
 * Releasing a signal restores its disposition first, then unhooks the
 * loop's eventfd from it and waits until no handler still running on
 * another thread may write to that fd (in_handler), so the fd can be
 * closed and its number reused safely.
 *
 * Delivery inside the loop: one dispatcher task per loop (spawned when a
 * first task starts waiting, cancelled when the last stops) polls the
 * eventfd; when it fires it resets the fd, then takes each owned signal's
 * counter (in that order: an arrival counted after the take kicks the fd
 * again) and adds the arrivals to every watch whose set holds the signal,
 * waking the watch's waiting task.  A single poller matters: io_uring
 * re-checks readiness before completing a poll, so a second poller whose
 * check came after the first poller's read would never complete.  Counters
 * are also taken without the fd whenever a watch is opened or waited on,
 * so a watch sees exactly the arrivals after its open, and a waiter
 * returns at once what already came.
 */
#include "../core/internal.h"
#include "sys.h"

#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define NSIGS 65 /* signal numbers 1..64 (Linux's _NSIG); one bit each in a uint64_t */
_Static_assert(NSIG <= NSIGS, "signal numbers must fit a 64-bit mask");
#define SIGBIT(s) (UINT64_C(1) << ((s)-1))
#define DISPATCH_STACK 0 /* the pool's default size: pooled stacks are the cheap ones */

typedef struct corio__signals sig_loop;
typedef struct sig_handler sig_handler;

/* One loop's signal state: l->signals. */
struct corio__signals {
    corio_loop *loop;
    int efd;                 /* kicked by the handler for the signals this loop owns */
    uint64_t owned;          /* bits of the signals claimed (users[s] > 0) */
    unsigned users[NSIGS];   /* watches (open, not closed) using each signal */
    bool was_blocked[NSIGS]; /* the loop thread blocked it before we took it */
    struct sigaction old[NSIGS];
    corio__list watches;
    unsigned waiting;       /* tasks parked in a watch wait */
    corio_task *dispatcher; /* polls efd while waiting > 0 */
    sig_handler *handlers[NSIGS];
};

struct corio_signal_watch {
    sig_loop *st; /* NULL once the loop has ended (orphaned) */
    corio__list link;
    uint64_t set;
    corio_task *waiter; /* the task in corio_signal_watch_wait, until it resumes */
    bool closed;        /* closed while waiter was set: the waiter frees it */
    uint8_t head, len;  /* order: a ring of the signals with count > 0, first arrival first */
    uint64_t total;     /* the sum of count[] */
    uint8_t order[64];
    uint32_t count[NSIGS];
};

struct sig_handler {
    int signo;
    corio_signal_fn fn;
    void *arg;
    corio_signal_watch *w; /* NULL once removed */
    bool removed;
};

/* Process-wide, read by the async-signal handler.  Who owns each signal
 * is in core's table (corio__signal_claim), shared with the dump signal. */
static atomic_int owner_fd[NSIGS];  /* the owning loop's eventfd + 1 (0: none) */
static atomic_uint arrivals[NSIGS]; /* counted by the handler, taken by the owner */
static atomic_int in_handler;       /* handlers running right now, on any thread */

static void on_signal(int signo)
{
    int saved = errno;
    atomic_fetch_add(&in_handler, 1);
    if (signo > 0 && signo < NSIGS) {
        int fd = atomic_load(&owner_fd[signo]) - 1;
        if (fd >= 0) {
            atomic_fetch_add(&arrivals[signo], 1);
            corio__eventfd_kick(fd);
        }
    }
    atomic_fetch_sub(&in_handler, 1);
    errno = saved;
}

/* Signals a handler may take: not SIGKILL/SIGSTOP (no handler can), not the
 * faults (a handler that returns would run the faulting instruction
 * again). */
static bool signal_ok(int s)
{
    return s > 0 && s < NSIG && s != SIGKILL && s != SIGSTOP && s != SIGSEGV && s != SIGBUS && s != SIGILL &&
           s != SIGFPE;
}

/* ------------------------------------------------------------------ */
/* Claiming and releasing signals                                       */
/* ------------------------------------------------------------------ */

static int set_mask(int how, int s, sigset_t *old)
{
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, s);
    return -pthread_sigmask(how, &one, old);
}

/* Give s its previous disposition and let it go. */
static void unhook(sig_loop *st, int s)
{
    sigaction(s, &st->old[s], NULL);
    atomic_store(&owner_fd[s], 0);
    /* A handler that read the fd before the store may still be about to
     * write to it: the fd must stay ours until it is done. */
    while (atomic_load(&in_handler) != 0)
        sched_yield();
    atomic_store(&arrivals[s], 0);
    corio__signal_unclaim(s);
}

static int claim(sig_loop *st, int s)
{
    if (!corio__signal_claim(s, st))
        return -EBUSY;
    atomic_store(&arrivals[s], 0);
    atomic_store(&owner_fd[s], st->efd + 1);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART; /* the program's other threads see no EINTR from us */
    sigemptyset(&sa.sa_mask);
    if (sigaction(s, &sa, &st->old[s]) < 0) {
        int e = -errno;
        atomic_store(&owner_fd[s], 0);
        corio__signal_unclaim(s);
        return e;
    }
    sigset_t old;
    int r = set_mask(SIG_UNBLOCK, s, &old);
    if (r < 0) { /* it may still be blocked here: give it back */
        unhook(st, s);
        return r;
    }
    st->was_blocked[s] = sigismember(&old, s) == 1;
    st->owned |= SIGBIT(s);
    return 0;
}

static void release(sig_loop *st, int s)
{
    if (st->was_blocked[s])
        set_mask(SIG_BLOCK, s, NULL);
    unhook(st, s);
    st->owned &= ~SIGBIT(s);
}

/* Count one more user of every signal in set, claiming those new to the
 * loop; all or nothing. */
static int use_set(sig_loop *st, uint64_t set)
{
    uint64_t fresh = set & ~st->owned;
    for (int s = 1; s < NSIGS; s++) {
        if (!(fresh & SIGBIT(s)))
            continue;
        int r = claim(st, s);
        if (r < 0) {
            for (int u = 1; u < s; u++)
                if (fresh & SIGBIT(u))
                    release(st, u);
            return r;
        }
    }
    for (int s = 1; s < NSIGS; s++)
        if (set & SIGBIT(s))
            st->users[s]++;
    return 0;
}

static void unuse_set(sig_loop *st, uint64_t set)
{
    for (int s = 1; s < NSIGS; s++)
        if ((set & SIGBIT(s)) && --st->users[s] == 0)
            release(st, s);
}

/* ------------------------------------------------------------------ */
/* Per-loop state                                                       */
/* ------------------------------------------------------------------ */

static void loop_end(corio_loop *l);

static sig_loop *loop_state(corio_loop *l)
{
    if (l->signals)
        return l->signals;
    sig_loop *st = corio__calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (st->efd < 0) {
        int e = errno;
        corio__free(st);
        errno = e;
        return NULL;
    }
    st->loop = l;
    corio__list_init(&st->watches);
    l->signals = st;
    l->signals_end = loop_end;
    return st;
}

/* Every task has ended: give the signals back, orphan the watches left
 * open (corio_signal_watch_close frees them later, outside the loop if
 * need be) and free the handlers nobody removed. */
static void loop_end(corio_loop *l)
{
    sig_loop *st = l->signals;
    /* Handlers whose task never ran its cleanup (discarded after a stall). */
    for (int s = 1; s < NSIGS; s++) {
        sig_handler *h = st->handlers[s];
        if (!h)
            continue;
        corio__list_remove(&h->w->link);
        unuse_set(st, h->w->set);
        corio__free(h->w);
        corio__free(h);
        st->handlers[s] = NULL;
    }
    while (!corio__list_empty(&st->watches)) {
        corio_signal_watch *w = CORIO__CONTAINER_OF(st->watches.next, corio_signal_watch, link);
        corio__list_remove(&w->link);
        unuse_set(st, w->set);
        w->st = NULL;
        w->waiter = NULL; /* after a stall its task was discarded */
    }
    corio__close_fd(l, st->efd);
    corio__free(st);
    l->signals = NULL;
    l->signals_end = NULL;
}

/* ------------------------------------------------------------------ */
/* Delivery                                                             */
/* ------------------------------------------------------------------ */

static void watch_add(corio_signal_watch *w, int s, unsigned n)
{
    if (w->count[s] == 0)
        w->order[(w->head + w->len++) % 64] = (uint8_t)s;
    uint32_t room = UINT32_MAX - w->count[s];
    if (n > room)
        n = room;
    w->count[s] += n;
    w->total += n;
    if (w->waiter)
        corio__wake(w->waiter, 1);
}

static int watch_pop(corio_signal_watch *w)
{
    int s = w->order[w->head];
    w->head = (uint8_t)((w->head + 1) % 64);
    w->len--;
    w->total--;
    if (--w->count[s] > 0) /* more of the same: behind the others */
        w->order[(w->head + w->len++) % 64] = (uint8_t)s;
    return s;
}

/* Hand the arrivals counted so far to the watches that want them. */
static void collect(sig_loop *st)
{
    uint64_t owned = st->owned;
    while (owned) {
        int s = __builtin_ctzll(owned) + 1;
        owned &= owned - 1;
        if (atomic_load_explicit(&arrivals[s], memory_order_relaxed) == 0)
            continue;
        unsigned n = atomic_exchange(&arrivals[s], 0);
        if (n == 0)
            continue;
        for (corio__list *p = st->watches.next; p != &st->watches; p = p->next) {
            corio_signal_watch *w = CORIO__CONTAINER_OF(p, corio_signal_watch, link);
            if (w->set & SIGBIT(s))
                watch_add(w, s, n);
        }
    }
}

static void *dispatch_main(void *arg)
{
    sig_loop *st = arg;
    corio_task *me = corio_current();
    while (st->dispatcher == me && st->waiting > 0) {
        corio__op op;
        memset(&op, 0, sizeof op);
        op.kind = CORIO__OP_POLL;
        op.fd = st->efd;
        op.flags = POLLIN;
        op.off = -1;
        int r = corio__op_run(&op);
        if (r == -ECANCELED || r == -CORIO_EDEADLINE)
            break; /* nobody waits any more, or the loop is ending */
        if (r < 0 && r != -EINTR && r != -EAGAIN) {
            /* Cannot happen with a valid eventfd; waiters would hang, so
             * make them look again (and spawn a fresh dispatcher). */
            for (corio__list *p = st->watches.next; p != &st->watches; p = p->next) {
                corio_signal_watch *w = CORIO__CONTAINER_OF(p, corio_signal_watch, link);
                if (w->waiter)
                    corio__wake(w->waiter, 2);
            }
            break;
        }
        /* Reset first, then take the counters: an arrival counted after
         * the take kicks the fd again. */
        uint64_t v;
        ssize_t n = read(st->efd, &v, sizeof v);
        (void)n;
        collect(st);
    }
    if (st->dispatcher == me)
        st->dispatcher = NULL;
    return NULL;
}

static void wait_interrupted(corio_task *t, int reason) { corio__wake(t, reason); }

/* Wait for w (open, not orphaned, in its loop, not already waited on). */
static int watch_wait(corio_signal_watch *w, uint64_t timeout_ms)
{
    sig_loop *st = w->st;
    int r = corio__check();
    if (r < 0)
        return r;
    collect(st);
    if (w->total)
        return watch_pop(w);
    if (timeout_ms == 0)
        return 0;
    corio_loop *l = st->loop;
    uint64_t wake_at = timeout_ms == CORIO_NO_TIMEOUT ? CORIO__NO_DEADLINE
                                                      : corio__ns_after_ms(corio__clock_ns(), timeout_ms);
    for (;;) {
        if (!st->dispatcher) {
            corio_task *d = corio__spawn(l, "signal dispatch", DISPATCH_STACK, dispatch_main, st);
            if (!d)
                return -errno;
            corio_task_detach(d);
            st->dispatcher = d;
        }
        st->waiting++;
        w->waiter = corio_current();
        r = corio__suspend(wait_interrupted, w, "signal wait", wake_at);
        w->waiter = NULL;
        if (--st->waiting == 0 && st->dispatcher) {
            /* It ends on its own; a waiter that comes meanwhile starts a
             * fresh one rather than rely on one being cancelled. */
            corio_task_cancel(st->dispatcher);
            st->dispatcher = NULL;
        }
        if (w->closed) {
            corio__free(w);
            return -EBADF;
        }
        collect(st);
        if (w->total) /* an arrival wins over an interrupt: nothing is lost */
            return watch_pop(w);
        if (r < 0)
            return r;
        if (r == 0)
            return 0; /* timed out */
        /* r == 2: the dispatcher gave up; go round with a new one */
    }
}

/* ------------------------------------------------------------------ */
/* Watches                                                              */
/* ------------------------------------------------------------------ */

/* The bits of set, or 0 with *err set if it holds a refused signal or
 * nothing at all. */
static uint64_t set_bits(const sigset_t *set, int *err)
{
    uint64_t bits = 0;
    for (int s = 1; s < NSIGS; s++) {
        if (sigismember(set, s) != 1)
            continue;
        if (!signal_ok(s)) {
            *err = EINVAL;
            return 0;
        }
        bits |= SIGBIT(s);
    }
    if (!bits)
        *err = EINVAL;
    return bits;
}

static corio_signal_watch *watch_open(uint64_t bits)
{
    corio_loop *l = corio__loop();
    if (!l || !l->current) {
        errno = EPERM;
        return NULL;
    }
    sig_loop *st = loop_state(l);
    if (!st)
        return NULL;
    corio_signal_watch *w = corio__calloc(1, sizeof *w);
    if (!w) {
        errno = ENOMEM;
        return NULL;
    }
    /* Arrivals so far belong to the watches already open. */
    collect(st);
    int r = use_set(st, bits);
    if (r < 0) {
        corio__free(w);
        errno = -r;
        return NULL;
    }
    w->st = st;
    w->set = bits;
    corio__list_push_back(&st->watches, &w->link);
    return w;
}

corio_signal_watch *corio_signal_watch_open(const sigset_t *set)
{
    /* not simulated: a sim run never reaches the real machine (corio/sim.h) */
    if (corio__sys_simulating()) {
        errno = EOPNOTSUPP;
        return NULL;
    }
    if (!set) {
        errno = EINVAL;
        return NULL;
    }
    int err = 0;
    uint64_t bits = set_bits(set, &err);
    if (!bits) {
        errno = err;
        return NULL;
    }
    return watch_open(bits);
}

int corio_signal_watch_wait(corio_signal_watch *w, uint64_t timeout_ms)
{
    if (!w || w->closed)
        return -EINVAL;
    if (!w->st)
        return -ESHUTDOWN;
    corio_loop *l = corio__loop();
    if (!l || !l->current || l != w->st->loop)
        return -EPERM;
    if (w->waiter)
        return -EBUSY;
    return watch_wait(w, timeout_ms);
}

unsigned corio_signal_watch_pending(const corio_signal_watch *w)
{
    if (!w)
        return 0;
    if (w->st && corio__loop() == w->st->loop)
        collect(w->st);
    return w->total > UINT_MAX ? UINT_MAX : (unsigned)w->total;
}

void corio_signal_watch_close(corio_signal_watch *w)
{
    if (!w || w->closed)
        return;
    sig_loop *st = w->st;
    if (!st) { /* its loop has ended */
        corio__free(w);
        return;
    }
    if (corio__loop() != st->loop)
        return; /* another loop's (or no loop's): not ours to touch */
    corio__list_remove(&w->link);
    unuse_set(st, w->set);
    if (w->waiter) {
        /* The waiter (parked or already woken) frees it when it runs. */
        w->closed = true;
        corio__wake(w->waiter, -EBADF);
        return;
    }
    corio__free(w);
}

int corio_signal_wait(const sigset_t *set, uint64_t timeout_ms)
{
    /* not simulated: a sim run never reaches the real machine (corio/sim.h) */
    if (corio__sys_simulating())
        return -EOPNOTSUPP;
    if (!set)
        return -EINVAL;
    corio_signal_watch *w = corio_signal_watch_open(set);
    if (!w)
        return -errno;
    int r = watch_wait(w, timeout_ms);
    corio_signal_watch_close(w);
    return r;
}

/* ------------------------------------------------------------------ */
/* Handlers (loop.add_signal_handler)                                   */
/* ------------------------------------------------------------------ */

static void *handler_main(void *arg)
{
    sig_handler *h = arg;
    while (!h->removed) { /* removed before this task first ran, or by fn */
        int r = watch_wait(h->w, CORIO_NO_TIMEOUT);
        if (h->removed)
            break; /* -EBADF: the watch was closed (and freed) by remove */
        if (r > 0) {
            h->fn(r, h->arg);
            continue;
        }
        /* Cancelled: the loop is ending (or its stack could not be had). */
        sig_loop *st = h->w->st;
        st->handlers[h->signo] = NULL;
        corio_signal_watch_close(h->w);
        break;
    }
    corio__free(h);
    return NULL;
}

int corio_signal_handler_add(int signo, corio_signal_fn fn, void *arg)
{
    /* not simulated: a sim run never reaches the real machine (corio/sim.h) */
    if (corio__sys_simulating())
        return -EOPNOTSUPP;
    if (!fn || !signal_ok(signo))
        return -EINVAL;
    corio_loop *l = corio__loop();
    if (!l || !l->current)
        return -EPERM;
    sig_loop *st = loop_state(l);
    if (!st)
        return -errno;
    sig_handler *h = st->handlers[signo];
    if (h) {
        h->fn = fn;
        h->arg = arg;
        return 0;
    }
    h = corio__calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    h->signo = signo;
    h->fn = fn;
    h->arg = arg;
    h->w = watch_open(SIGBIT(signo));
    if (!h->w) {
        int e = -errno;
        corio__free(h);
        return e;
    }
    corio_task *t = corio__spawn(l, "signal handler", 0, handler_main, h);
    if (!t) {
        int e = -errno;
        corio_signal_watch_close(h->w);
        corio__free(h);
        return e;
    }
    corio_task_detach(t);
    st->handlers[signo] = h;
    return 0;
}

int corio_signal_handler_remove(int signo)
{
    if (!signal_ok(signo))
        return -EINVAL;
    corio_loop *l = corio__loop();
    if (!l)
        return -EPERM;
    sig_loop *st = l->signals;
    sig_handler *h = st ? st->handlers[signo] : NULL;
    if (!h)
        return 0;
    st->handlers[signo] = NULL;
    h->removed = true;
    corio_signal_watch_close(h->w); /* its task, parked or in fn, sees `removed` and frees h */
    h->w = NULL;
    return 1;
}
