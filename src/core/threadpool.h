/*
 * The thread pool: where blocking work (DNS lookups, file I/O on epoll,
 * to_thread-style calls) runs so that the loop thread never blocks.
 *
 * A task hands a function to corio__pool_run() and parks; a worker thread
 * runs it, queues the finished item and wakes the loop through the
 * backend's notify(); the loop then wakes the task.  Work comes in two
 * classes so that slow, network-bound work (getaddrinfo can take seconds)
 * can never occupy every worker and starve quick file work.
 */
#ifndef CORIO_THREADPOOL_H
#define CORIO_THREADPOOL_H

#include "internal.h"

enum {
    CORIO__POOL_FAST = 0, /* file I/O, CPU work: short and bounded */
    CORIO__POOL_SLOW = 1, /* DNS and anything that waits on the network;
                             limited to half of the workers */
};

/* Run work(arg) on a pool worker and suspend the calling task until it has
 * run.  Must be called from a task.
 *
 * Returns 0 once work(arg) has finished: the caller owns arg again and
 * reads its results from it.
 *
 * Any other return (-ECANCELED / -CORIO_EDEADLINE when the task was interrupted
 * before or while waiting, -ENOMEM, -EAGAIN when no worker thread could be
 * started, -EPERM outside a task) means arg now belongs to abandon: the
 * pool calls abandon(arg) on the loop thread, either before returning or,
 * if a worker is still running work(arg), once it finishes (so
 * work(arg) may keep writing into arg after the caller has returned).  arg
 * must therefore be heap-allocated (or otherwise outlive the caller) and
 * abandon must release everything it owns, including results work put
 * there.  abandon may be NULL when arg needs no cleanup and outlives the
 * loop (static data).
 *
 * An item still queued when the task is interrupted is dropped without
 * running; one already finished when the interrupt arrives returns 0 (the
 * work is not lost; the cancellation stays sticky for the next wait).
 * Outstanding items, abandoned ones included, count in
 * loop->external_pending until they finish.  work runs on another thread:
 * it must not touch the loop or call corio functions.  The pool (default 4
 * workers; corio_config.threadpool_size, else CORIO_THREADPOOL_SIZE, overrides;
 * 2..64) starts lazily on first
 * use. */
int corio__pool_run(int cls, void (*work)(void *arg), void *arg, void (*abandon)(void *arg));

/* As corio__pool_run, but the caller keeps arg whatever happens, so arg
 * may live on its stack and point into a user's buffer: an interrupt drops
 * a still-queued item (returns -ECANCELED / -CORIO_EDEADLINE, work never runs)
 * but waits, uninterruptibly, for an item a worker already runs and then
 * returns 0 (the work's results are in arg; the cancellation stays sticky
 * for the next wait).  Returns 0 once work(arg) has run; -ECANCELED /
 * -CORIO_EDEADLINE (interrupted before it started), -ENOMEM, -EAGAIN, -EPERM
 * mean it never ran.  Use it for work that ends on its own in bounded
 * time (file I/O on regular files), never for work that may block
 * indefinitely: the task could not be cancelled out of it. */
int corio__pool_run_sync(int cls, void (*work)(void *arg), void *arg);

/* corio__pool_drain(l) (loop thread, from corio__loop_on_notify): wake the
 * tasks whose items finished and call abandon for abandoned ones.
 * corio__pool_shutdown(l) (at loop end, before the backend is destroyed):
 * waits for running items (abandoned ones) to finish, joins the workers
 * and frees the pool.  Both are declared in internal.h. */

#endif
