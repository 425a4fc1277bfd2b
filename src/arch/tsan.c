/*
 * ThreadSanitizer annotations: fibers for the coroutine switches, and
 * happens-before edges for the one ordering TSan cannot see.
 *
 * TSan keeps, per thread, a shadow call stack and a vector clock.  A
 * coroutine switch that TSan is not told about moves execution to another
 * stack in mid-function: the shadow call stack no longer matches the real
 * one (garbled reports, or a crash when it underflows) and every task of a
 * loop looks like one long sequential thread.  So each task gets a TSan
 * fiber of its own, the loop's context is the thread's original fiber, and
 * the core announces every corio__ctx_switch to TSan just before it
 * happens (protocol in arch.h).  Switches are announced with flags 0, which
 * makes each switch a happens-before edge: tasks of one loop really do run
 * one after another on one thread, so nothing they share needs a lock, and
 * TSan must not report it.  Races between threads are still seen.
 *
 * The second pair, release/acquire, states an ordering that exists but
 * happens where TSan does not look (in the kernel); see its one user,
 * src/backend/uring.c.
 *
 * Without TSan these are no-ops inline in arch.h (and the "fibers" are
 * NULL), so a switch pays nothing for them.
 */
#include "arch.h"

#ifdef CORIO__TSAN_ON
#include <sanitizer/tsan_interface.h>

#include <pthread.h>
#include <signal.h>

/* The fiber running now: at the start of a loop, the thread itself. */
void *corio__tsan_fiber_current(void) { return __tsan_get_current_fiber(); }

/* TSan queues a signal that arrives outside an intercepted call on the
 * fiber current at that instant, and runs it at that fiber's next
 * intercepted call.  Creating and destroying a fiber, TSan makes the new
 * or dying fiber current for a while (its thread state is set up or torn
 * down meanwhile, with mmap and munmap calls): a signal arriving then was
 * queued on a fiber about to be reset or freed, and lost.  A process that
 * spawned tasks while it waited for SIGTERM could miss it (CI saw
 * corio-serve do that; a test program spawning tasks in a loop lost one
 * SIGUSR1 in about 50).  So both run with every signal blocked: the kernel
 * keeps one that comes meanwhile pending, and delivers it when the
 * unblocking call (intercepted, on the caller's fiber) runs, which runs it
 * on that call's way out. */
static void signals_hold(sigset_t *old)
{
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, old);
}

/* sigprocmask (the calling thread's mask on Linux, as pthread_sigmask)
 * because tests/failinject.c makes pthread_sigmask fail on purpose, and a
 * failed release would leave every signal blocked for good. */
static void signals_release(const sigset_t *old) { sigprocmask(SIG_SETMASK, old, NULL); }

/* A new fiber for a context about to be made; named after its task so
 * reports say which task made an access (TSan copies the name). */
void *corio__tsan_fiber_create(const char *name)
{
    sigset_t old;
    signals_hold(&old);
    void *f = __tsan_create_fiber(0);
    signals_release(&old);
    if (name && *name)
        __tsan_set_fiber_name(f, name);
    return f;
}

/* The instrumentation TSan adds to an ordinary function (a push on the
 * current fiber's shadow call stack at entry, a pop at exit) must not run
 * here: the entry would push on the old fiber and the exit pop from the
 * new one, so every switch would leak a frame on one fiber and steal one
 * from another until a shadow stack under- or overflows.  The callers'
 * own push and pop stay paired: corio__ctx_switch returns to them on the
 * fiber they left. */
#if defined(__clang__) && defined(__has_attribute)
#if __has_attribute(disable_sanitizer_instrumentation)
#define CORIO_TSAN_NO_INSTRUMENT __attribute__((disable_sanitizer_instrumentation))
#endif
#elif defined(__GNUC__)
#define CORIO_TSAN_NO_INSTRUMENT __attribute__((no_sanitize_thread)) /* gcc drops entry/exit too */
#endif
#ifndef CORIO_TSAN_NO_INSTRUMENT
#error "TSan build: no attribute to keep the fiber switch uninstrumented (clang >= 14 or gcc needed)"
#endif

/* Flags 0: synchronise, i.e. everything done before the switch
 * happens-before everything the target does after it. */
CORIO_TSAN_NO_INSTRUMENT void corio__tsan_fiber_switch(void *to) { __tsan_switch_to_fiber(to, 0); }

/* The switch away from a task, which may never run again (it parked for a
 * signal, or it ended): TSan queues a signal on the fiber it arrives on,
 * so one arriving between this fiber's last intercepted call and the
 * switch would wait for a task that may wait for it, or be freed with its
 * fiber.  So signals are blocked around the switch: the blocking call
 * (intercepted) runs what this fiber holds; the kernel keeps anything
 * newer pending until the unblocking call, made on the new fiber, where
 * TSan takes it and runs it on that call's way out.  No window is left. */
CORIO_TSAN_NO_INSTRUMENT void corio__tsan_fiber_leave(void *to)
{
    sigset_t old;
    signals_hold(&old);
    __tsan_switch_to_fiber(to, 0);
    signals_release(&old);
}

/* Everything this thread did so far happens-before whatever a later
 * corio__tsan_acquire(addr) caller does next (releases accumulate). */
void corio__tsan_release(void *addr) { __tsan_release(addr); }

/* The other half: what follows happens-after every earlier
 * corio__tsan_release(addr), on any thread. */
void corio__tsan_acquire(void *addr) { __tsan_acquire(addr); }

/* Any intercepted call makes TSan run the signal handlers it holds for
 * this thread on the way out; this one changes nothing. */
void corio__tsan_run_signals(void)
{
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur); /* not injected: see signals_release */
}

/* Free a fiber that will never run again; never the current one (TSan
 * would have no state to continue with). */
void corio__tsan_fiber_destroy(void *fiber)
{
    if (!fiber)
        return;
    sigset_t old;
    signals_hold(&old); /* see signals_hold */
    __tsan_destroy_fiber(fiber);
    signals_release(&old);
}

#else

/* Nothing: arch.h has the no-ops inline. */
typedef int corio__tsan_off;

#endif
