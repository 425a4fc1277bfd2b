/*
 * No SIGPIPE from corio's writes, without touching the process's signal
 * dispositions.
 *
 * Sockets are easy: every send carries MSG_NOSIGNAL.  But write(2) to a
 * pipe, FIFO or tty and sendfile(2) to a socket have no such flag: when the
 * reader is gone the kernel sends SIGPIPE to the writing thread, whose
 * default action kills the whole process.  Ignoring SIGPIPE for the process
 * (what most servers do) would change a setting that belongs to the
 * program.  Instead, while corio_run runs, SIGPIPE is blocked in the loop
 * thread's own mask: a SIGPIPE raised there by a write (the loop's own
 * calls, and io_uring's, which the kernel issues inline or as task work in
 * this thread) is then only marked pending, the call returns EPIPE as
 * usual, and nothing is delivered.  The other writers cannot raise one
 * either: the thread pool's workers block every signal from birth
 * (threadpool.c), and io_uring's io-wq workers are kernel threads that do
 * the same.
 *
 * When the run ends, a SIGPIPE still pending is one of those writes' (the
 * signal is standard: many coalesce into one) and is consumed with a
 * zero-timeout sigtimedwait before the caller's mask comes back, so it is
 * never delivered later.  Exception: a SIGPIPE that was already pending
 * when the run began (the caller had it blocked) is the caller's and is
 * left alone; ours are then indistinguishable from it and merged into it,
 * as the kernel would have merged them anyway.  (A SIGPIPE sent to the
 * process with kill(2) during the run while every thread blocks it cannot
 * be told from ours and is consumed too.)
 *
 * Threads created from inside a task inherit the blocked SIGPIPE, as any
 * thread inherits its creator's mask.
 */
#include "internal.h"

#include <signal.h>
#include <time.h>

static void sigpipe_only(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGPIPE);
}

void corio__sigpipe_block(corio__sigpipe_state *st)
{
    sigset_t pipe_set, old, pending;
    sigpipe_only(&pipe_set);
    /* pthread_sigmask fails only for a bad `how`; if it ever did,
     * was_blocked stays true and the restore unblocks nothing. */
    st->was_blocked = true;
    if (pthread_sigmask(SIG_BLOCK, &pipe_set, &old) == 0)
        st->was_blocked = sigismember(&old, SIGPIPE) == 1;
    st->was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
}

void corio__sigpipe_restore(const corio__sigpipe_state *st)
{
    sigset_t pipe_set;
    sigpipe_only(&pipe_set);
    if (!st->was_pending) {
        const struct timespec zero = {0, 0};
        /* at most one in this thread's queue and one in the process's */
        for (int taken = 0; taken < 2;) {
            if (sigtimedwait(&pipe_set, NULL, &zero) == SIGPIPE)
                taken++;
            else if (errno != EINTR)
                break;
        }
    }
    if (!st->was_blocked)
        pthread_sigmask(SIG_UNBLOCK, &pipe_set, NULL);
}
