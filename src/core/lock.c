/*
 * Locks and conditions (asyncio.Lock, asyncio.Condition): mutual exclusion
 * between the tasks of one loop, and waiting for a change made under it.
 *
 * A lock is its owner and a wait queue (src/core/waitq.h).  It is free only
 * when nobody owns it, and then nobody waits either: release hands it
 * straight to the longest waiter (owner = that task, then wake it), so a
 * task that asks after the release finds it owned and queues behind, and
 * the free fast path is one compare and one store.
 *
 * A condition lives here too because its waits are made of the lock's.
 * notify does not wake anyone: it moves the waiter from the condition's
 * queue to the back of the lock's queue, where it stays parked until the
 * lock is handed to it.  So a notified task runs once, already holding the
 * lock, instead of waking only to queue for a lock its notifier still
 * holds.  A cancel or deadline that reaches a waiter still on the
 * condition's queue moves it the same way (or gives it the lock, if free)
 * and is returned once the lock is back; one that reaches a waiter already
 * notified changes nothing, so the notify is honoured and no wake-up is
 * lost.  Either way the task is not interrupted twice in one park
 * (src/core/task.c), so the re-acquisition cannot be cut short and every
 * corio_cond_wait returns holding the lock.
 */
#include "internal.h"
#include "waitq.h"

typedef struct lock_impl {
    corio_task *owner; /* NULL: free, and then nobody waits */
    corio__waitq waiters;
} lock_impl;

_Static_assert(sizeof(lock_impl) <= sizeof(corio_lock), "corio_lock too small for its implementation");
_Static_assert(_Alignof(lock_impl) <= _Alignof(corio_lock), "corio_lock under-aligned");

typedef struct cond_impl {
    lock_impl *lock; /* NULL after corio_cond_init(c, NULL): every call fails */
    corio__waitq waiters;
} cond_impl;

_Static_assert(sizeof(cond_impl) <= sizeof(corio_cond), "corio_cond too small for its implementation");
_Static_assert(_Alignof(cond_impl) <= _Alignof(corio_cond), "corio_cond under-aligned");

static inline lock_impl *lock_of(corio_lock *lk) { return (lock_impl *)(void *)lk; }
static inline cond_impl *cond_of(corio_cond *c) { return (cond_impl *)(void *)c; }

/* ------------------------------------------------------------------ */
/* Lock                                                                */
/* ------------------------------------------------------------------ */

void corio_lock_init(corio_lock *lk)
{
    if (!lk)
        return;
    lock_impl *L = lock_of(lk);
    L->owner = NULL;
    corio__waitq_init(&L->waiters);
}

/* Give L up: to the longest waiter if there is one (it owns L from now on,
 * before it even runs), else L becomes free. */
static inline void lock_pass(lock_impl *L)
{
    corio__waiter *w = corio__waitq_first(&L->waiters);
    if (CORIO__LIKELY(!w)) {
        L->owner = NULL;
        return;
    }
    L->owner = w->task;
    corio__waitq_unlink(w);
    corio__wake(w->task, 0);
}

/* The slow path of corio_lock_acquire: a pending cancel or deadline, or a
 * lock already owned.  Out of line, and everything the fast path would
 * otherwise keep across a call lives here, so that corio_lock_acquire needs
 * no stack frame (at about 5 ns a pair, a push and pop of two registers is
 * measurable). */
static __attribute__((noinline)) int lock_acquire_slow(lock_impl *L, corio_task *self)
{
    int r = corio__check_task(self);
    if (r)
        return r;
    if (!L->owner) {
        L->owner = self;
        return 0;
    }
    if (L->owner == self)
        return -EDEADLK;
    /* 0 means release handed L to us (L->owner is self already); an
     * interrupt before that unlinked us and we hold nothing.  One after it
     * finds us no longer parked: we return 0 holding L and the cancel
     * stays pending for the next wait. */
    corio__waiter w;
    return corio__waitq_wait(&L->waiters, &w, "lock");
}

int corio_lock_acquire(corio_lock *lk)
{
    if (CORIO__UNLIKELY(!lk))
        return -EINVAL;
    lock_impl *L = lock_of(lk);
    corio_task *self = corio__current_task();
    if (CORIO__UNLIKELY(!self))
        return -EPERM;
    /* The same test as corio__check_task, folded with the owner test so
     * that every other case is one tail call. */
    if (CORIO__LIKELY(!(self->flags & CORIO__T_CANCELLED) && self->deadline == CORIO__NO_DEADLINE &&
                      !L->owner)) {
        L->owner = self;
        return 0;
    }
    return lock_acquire_slow(L, self);
}

int corio_lock_try_acquire(corio_lock *lk)
{
    if (CORIO__UNLIKELY(!lk))
        return -EINVAL;
    lock_impl *L = lock_of(lk);
    if (L->owner)
        return -EBUSY;
    corio_task *self = corio__current_task();
    if (CORIO__UNLIKELY(!self))
        return -EPERM; /* only a task can own it: the loop's context is nobody */
    L->owner = self;
    return 0;
}

/* The slow path of corio_lock_release: hand L to its longest waiter. */
static __attribute__((noinline)) void lock_release_slow(lock_impl *L) { lock_pass(L); }

int corio_lock_release(corio_lock *lk)
{
    if (CORIO__UNLIKELY(!lk))
        return -EINVAL;
    lock_impl *L = lock_of(lk);
    if (CORIO__UNLIKELY(!L->owner || L->owner != corio__current_task()))
        return -EPERM;
    if (CORIO__LIKELY(corio__waitq_empty(&L->waiters)))
        L->owner = NULL;
    else
        lock_release_slow(L);
    return 0;
}

bool corio_lock_locked(const corio_lock *lk)
{
    return lk && ((const lock_impl *)(const void *)lk)->owner != NULL;
}

/* ------------------------------------------------------------------ */
/* Condition                                                           */
/* ------------------------------------------------------------------ */

/* A task parked in corio_cond_wait, on the condition's queue until
 * notified or interrupted, then on the lock's. */
typedef struct cond_waiter {
    corio__waiter w;
    cond_impl *c;
    int reason; /* the interrupt that ended the wait for a notify, else 0 */
} cond_waiter;

void corio_cond_init(corio_cond *c, corio_lock *lk)
{
    if (!c)
        return;
    cond_impl *C = cond_of(c);
    C->lock = lk ? lock_of(lk) : NULL;
    corio__waitq_init(&C->waiters);
}

/* The waiter leaves the condition's queue and wants the lock back: it
 * takes a free lock at once (woken with r), else queues for it, still
 * parked, to be woken when release hands it over. */
static void cond_to_lock(cond_impl *C, corio__waiter *w, int r)
{
    lock_impl *L = C->lock;
    corio__waitq_unlink(w);
    if (!L->owner) {
        L->owner = w->task;
        corio__wake(w->task, r);
        return;
    }
    corio__waitq_push(&L->waiters, w);
    w->task->wait_what = "lock (condition)";
}

static void cond_interrupted(corio_task *t, int reason)
{
    cond_waiter *cw = CORIO__CONTAINER_OF(t->wait_obj, cond_waiter, w);
    /* Already notified and queued for the lock: the notify stands, the
     * reason waits for the task's next wait (it is sticky), and release
     * will wake us.  The hook runs once per park, so nothing can pull us
     * out of the lock's queue now. */
    if (cw->w.q != &cw->c->waiters)
        return;
    cw->reason = reason;
    cond_to_lock(cw->c, &cw->w, reason);
}

/* The checks every condition call starts with: c is usable and the
 * calling task holds its lock. */
static inline int cond_check(corio_cond *c, cond_impl **out)
{
    if (CORIO__UNLIKELY(!c))
        return -EINVAL;
    cond_impl *C = cond_of(c);
    if (CORIO__UNLIKELY(!C->lock))
        return -EINVAL;
    corio_task *self = corio__current_task();
    if (!self || C->lock->owner != self)
        return -EPERM;
    *out = C;
    return 0;
}

int corio_cond_wait(corio_cond *c)
{
    cond_impl *C;
    int r = cond_check(c, &C);
    if (r)
        return r;
    r = corio__check();
    if (r)
        return r; /* the lock was never let go */
    cond_waiter cw = {.c = C, .reason = 0};
    cw.w.task = corio__current_task();
    corio__waitq_push(&C->waiters, &cw.w);
    lock_pass(C->lock);
    r = corio__suspend(cond_interrupted, &cw.w, "condition", CORIO__NO_DEADLINE);
    CORIO__ASSERT(C->lock->owner == cw.w.task);
    return cw.reason ? cw.reason : r;
}

int corio_cond_wait_until(corio_cond *c, bool (*pred)(void *arg), void *arg)
{
    cond_impl *C;
    int r = cond_check(c, &C);
    if (r)
        return r;
    if (!pred)
        return -EINVAL;
    while (!pred(arg)) {
        r = corio_cond_wait(c);
        if (r)
            return r;
    }
    return 0;
}

int corio_cond_notify(corio_cond *c)
{
    cond_impl *C;
    int r = cond_check(c, &C);
    if (r)
        return r;
    corio__waiter *w = corio__waitq_first(&C->waiters);
    if (w)
        cond_to_lock(C, w, 0);
    return 0;
}

int corio_cond_notify_all(corio_cond *c)
{
    cond_impl *C;
    int r = cond_check(c, &C);
    if (r)
        return r;
    corio__waiter *w;
    while ((w = corio__waitq_first(&C->waiters)))
        cond_to_lock(C, w, 0);
    return 0;
}
