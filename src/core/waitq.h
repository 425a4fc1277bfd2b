/*
 * Wait queues: the FIFO of parked tasks behind every coordination
 * primitive on one loop (locks, conditions, semaphores, barriers, queues,
 * task groups).
 *
 * A waiter is a node on the waiting task's own stack, so waiting allocates
 * nothing.  The waker removes the first node and hands it its result
 * directly (the lock, the semaphore unit, the queued item): ownership moves
 * at the moment of the wake, so a task that asks later can never overtake
 * a woken waiter that has not run yet, and a waiter cancelled after it was
 * handed something still returns success with it (the cancellation stays
 * pending for its next wait).  A waiter interrupted before anything was
 * handed to it unlinks itself and returns the reason, holding nothing: no
 * wake-up is lost because none was given to it.
 */
#ifndef CORIO_WAITQ_H
#define CORIO_WAITQ_H

#include "internal.h"

typedef struct corio__waitq {
    corio__list head;
    size_t len;
} corio__waitq;

typedef struct corio__waiter {
    corio__list link;
    corio_task *task;
    corio__waitq *q;
    void *data; /* the primitive's own: where a handed-over item goes, a priority */
} corio__waiter;

static inline void corio__waitq_init(corio__waitq *q)
{
    corio__list_init(&q->head);
    q->len = 0;
}

static inline bool corio__waitq_empty(const corio__waitq *q) { return q->len == 0; }

static inline corio__waiter *corio__waitq_first(const corio__waitq *q)
{
    return q->len ? CORIO__CONTAINER_OF(q->head.next, corio__waiter, link) : NULL;
}

static inline void corio__waitq_unlink(corio__waiter *w)
{
    corio__list_remove(&w->link);
    w->q->len--;
}

static inline void corio__waitq_interrupted(corio_task *t, int reason)
{
    corio__waiter *w = (corio__waiter *)t->wait_obj;
    corio__waitq_unlink(w);
    corio__wake(t, reason);
}

/* Append w (whose task is parked, or about to park) to the back of q.  A
 * waiter may move from one queue to another while its task stays parked
 * (a condition's notify moves it to the lock's queue); its interrupt hook
 * must then know which queue it is on (w->q). */
static inline void corio__waitq_push(corio__waitq *q, corio__waiter *w)
{
    w->q = q;
    w->link.prev = w->link.next = NULL;
    corio__list_push_back(&q->head, &w->link);
    q->len++;
}

/* Park the running task at the back of q until a waker hands it a result
 * (corio__waitq_wake_first: >= 0 by convention) or it is interrupted
 * (-ECANCELED / -CORIO_EDEADLINE, already unlinked, nothing handed over).
 * The caller has run corio__check() first.  w->data may be set before. */
static inline int corio__waitq_wait(corio__waitq *q, corio__waiter *w, const char *what)
{
    w->task = corio__current_task();
    corio__waitq_push(q, w);
    return corio__suspend(corio__waitq_interrupted, w, what, CORIO__NO_DEADLINE);
}

/* Remove the longest waiter and wake it with r.  Returns it (its data is
 * still valid: the task has not run yet) or NULL if q is empty. */
static inline corio__waiter *corio__waitq_wake_first(corio__waitq *q, int r)
{
    corio__waiter *w = corio__waitq_first(q);
    if (w) {
        corio__waitq_unlink(w);
        corio__wake(w->task, r);
    }
    return w;
}

/* Wake every waiter with r, oldest first. */
static inline void corio__waitq_wake_all(corio__waitq *q, int r)
{
    while (corio__waitq_wake_first(q, r))
        ;
}

#endif
