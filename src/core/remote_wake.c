/*
 * Remote wake-ups: ending a parked task's wait from another thread (the
 * protocol is in internal.h, "Remote wake-ups").
 *
 * Each loop has an inbox, a lock-free stack of posted nodes.  A poster
 * pushes its node and, only when the inbox was empty, wakes the loop
 * through the backend's notify() (which itself collapses repeated calls
 * into one system call): a burst of wake-ups costs one.  The loop takes
 * the whole stack at once in corio__rwake_drain (from
 * corio__loop_on_notify), puts it back in posting order and wakes each
 * task.
 *
 * The only delicate point is the loop's lifetime.  Once a node is in the
 * inbox, the loop may drain it, wake the task, finish and free itself
 * while the poster is still about to call notify().  So a poster counts
 * itself in rwake_posting before it pushes and out after its last access
 * to the loop, and the loop's shutdown waits for that count to reach zero.
 * No poster can arrive after that check: a post needs a parked task, and
 * the loop ends only when no task is left, each one woken through the
 * inbox it drained, which orders the poster's count before the check.
 */
#include "internal.h"

#include <sched.h>

void corio__rwake_arm(corio__rwake *w)
{
    corio_task *t = corio__current_task();
    w->next = NULL;
    w->task = t;
    w->result = 0;
    t->loop->external_pending++;
}

void corio__rwake_end(corio__rwake *w, int r)
{
    corio_task *t = w->task;
    CORIO__ASSERT(t->loop == corio__loop() && t->loop->external_pending > 0);
    t->loop->external_pending--;
    corio__wake(t, r);
}

void corio__rwake_post(corio__rwake *w, int r)
{
    corio_loop *l = w->task->loop;
    if (l == corio__loop()) {
        /* The loop's own thread (a task or a callback there): no need
         * for the inbox or a system call. */
        corio__rwake_end(w, r);
        return;
    }
    w->result = r;
    /* Relaxed is enough: the push below releases it, and the drain that
     * takes this node acquires, so shutdown's check comes after it. */
    atomic_fetch_add_explicit(&l->rwake_posting, 1, memory_order_relaxed);
    corio__rwake *old = atomic_load_explicit(&l->rwake_inbox, memory_order_relaxed);
    do
        w->next = old;
    while (!atomic_compare_exchange_weak_explicit(&l->rwake_inbox, &old, w, memory_order_release,
                                                  memory_order_relaxed));
    /* w may be woken and gone from here on: only l is used.  A non-empty
     * inbox means its first poster notifies (or has), and the drain takes
     * everything pushed before it runs. */
    if (!old)
        l->backend->notify(l);
    atomic_fetch_sub_explicit(&l->rwake_posting, 1, memory_order_release);
}

void corio__rwake_drain(corio_loop *l)
{
    if (!atomic_load_explicit(&l->rwake_inbox, memory_order_relaxed))
        return;
    corio__rwake *w = atomic_exchange_explicit(&l->rwake_inbox, NULL, memory_order_acquire);
    /* Newest first: reverse, so tasks run in the order they were posted. */
    corio__rwake *fifo = NULL;
    while (w) {
        corio__rwake *next = w->next;
        w->next = fifo;
        fifo = w;
        w = next;
    }
    while (fifo) {
        corio__rwake *next = fifo->next;
        corio_task *t = fifo->task;
        int r = fifo->result;
        /* fifo belongs to t, which may run (and return) once woken. */
        CORIO__ASSERT(l->external_pending > 0);
        l->external_pending--;
        corio__wake(t, r);
        fifo = next;
    }
}

void corio__rwake_shutdown(corio_loop *l)
{
    /* Every post for l has pushed its node already (see above); what is
     * left is at most a notify() in progress. */
    while (atomic_load_explicit(&l->rwake_posting, memory_order_acquire) != 0)
        sched_yield();
}
