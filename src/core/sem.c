/*
 * Semaphores (asyncio.Semaphore, asyncio.BoundedSemaphore): a count of
 * units that tasks take and give back, waiting while there is none.
 *
 * As with locks (src/core/lock.c), a unit given back while tasks wait is
 * handed straight to the longest waiter instead of being counted, so the
 * value is above 0 only when nobody waits, and a task that asks later can
 * never take the unit a woken waiter has not yet run to collect.  A
 * waiter interrupted after the hand-over returns 0 holding the unit (the
 * cancel stays pending for its next wait); one interrupted before it
 * leaves the queue holding nothing (src/core/waitq.h).
 */
#include "internal.h"
#include "waitq.h"

#include <limits.h>

typedef struct sem_impl {
    unsigned value; /* units free; > 0 only while nobody waits */
    unsigned bound; /* most units a release may reach: the initial value, or UINT_MAX */
    corio__waitq waiters;
} sem_impl;

_Static_assert(sizeof(sem_impl) <= sizeof(corio_sem), "corio_sem too small for its implementation");
_Static_assert(_Alignof(sem_impl) <= _Alignof(corio_sem), "corio_sem under-aligned");

static inline sem_impl *sem_of(corio_sem *s) { return (sem_impl *)(void *)s; }

static void sem_init(corio_sem *s, unsigned value, unsigned bound)
{
    if (!s)
        return;
    sem_impl *S = sem_of(s);
    S->value = value;
    S->bound = bound;
    corio__waitq_init(&S->waiters);
}

void corio_sem_init(corio_sem *s, unsigned value) { sem_init(s, value, UINT_MAX); }

void corio_sem_init_bounded(corio_sem *s, unsigned value) { sem_init(s, value, value); }

int corio_sem_acquire(corio_sem *s)
{
    if (CORIO__UNLIKELY(!s))
        return -EINVAL;
    sem_impl *S = sem_of(s);
    corio_task *self = corio__current_task();
    if (CORIO__UNLIKELY(!self))
        return -EPERM;
    int r = corio__check_task(self);
    if (CORIO__UNLIKELY(r))
        return r;
    if (CORIO__LIKELY(S->value > 0)) {
        S->value--;
        return 0;
    }
    corio__waiter w;
    return corio__waitq_wait(&S->waiters, &w, "semaphore");
}

int corio_sem_try_acquire(corio_sem *s)
{
    if (CORIO__UNLIKELY(!s))
        return -EINVAL;
    sem_impl *S = sem_of(s);
    if (S->value == 0)
        return -EAGAIN;
    S->value--;
    return 0;
}

int corio_sem_release(corio_sem *s)
{
    if (CORIO__UNLIKELY(!s))
        return -EINVAL;
    sem_impl *S = sem_of(s);
    /* Checked before any hand-over, as asyncio does: a bounded semaphore
     * made with 0 units refuses every release, waiters or not.  While
     * tasks wait the value is 0, below any other bound. */
    if (S->value >= S->bound)
        return -EOVERFLOW;
    if (CORIO__UNLIKELY(corio__waitq_wake_first(&S->waiters, 0) != NULL))
        return 0;
    S->value++;
    return 0;
}

unsigned corio_sem_value(const corio_sem *s) { return s ? ((const sem_impl *)(const void *)s)->value : 0; }
