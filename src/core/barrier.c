/*
 * Barriers (asyncio.Barrier): a meeting point where a fixed number of
 * tasks wait for each other, round after round.
 *
 * The arrivals of the current round are the barrier's wait queue
 * (src/core/waitq.h).  The last one to arrive wakes every other with its
 * arrival index and empties the queue, so the barrier starts the next
 * round at once: the released tasks already hold their results, and
 * unlike asyncio no "draining" state is needed to keep a fast task from
 * mixing into the round it just left.  A waiter that is cancelled or hits
 * its deadline leaves the queue, so the round waits for one more arrival.
 *
 * The index is the task's place among the round's parties in arrival
 * order (0 for the first still waiting, parties-1 for the last arrival),
 * given at release: a task that left does not leave a gap, and no two
 * tasks of a round share an index.
 */
#include "internal.h"
#include "waitq.h"

#include <limits.h>

typedef struct barrier_impl {
    corio__waitq waiters; /* this round's arrivals, in order */
    unsigned parties;     /* 0 only after a failed init: every call fails */
    bool broken;          /* aborted: every wait fails until reset */
} barrier_impl;

_Static_assert(sizeof(barrier_impl) <= sizeof(corio_barrier),
               "corio_barrier too small for its implementation");
_Static_assert(_Alignof(barrier_impl) <= _Alignof(corio_barrier), "corio_barrier under-aligned");

static inline barrier_impl *barrier_of(corio_barrier *b) { return (barrier_impl *)(void *)b; }

int corio_barrier_init(corio_barrier *b, unsigned parties)
{
    if (!b)
        return -EINVAL;
    barrier_impl *B = barrier_of(b);
    corio__waitq_init(&B->waiters);
    /* An index must fit the int corio_barrier_wait returns. */
    bool ok = parties > 0 && parties <= INT_MAX;
    B->parties = ok ? parties : 0;
    B->broken = false;
    return ok ? 0 : -EINVAL;
}

int corio_barrier_wait(corio_barrier *b)
{
    if (!b)
        return -EINVAL;
    barrier_impl *B = barrier_of(b);
    if (!B->parties)
        return -EINVAL;
    int r = corio__check();
    if (r)
        return r;
    if (B->broken)
        return -CORIO_EBROKEN;
    if (B->waiters.len + 1 < B->parties) {
        corio__waiter w;
        return corio__waitq_wait(&B->waiters, &w, "barrier");
    }
    /* The last arrival: release the round, oldest first. */
    int index = 0;
    while (corio__waitq_wake_first(&B->waiters, index))
        index++;
    return index;
}

int corio_barrier_reset(corio_barrier *b)
{
    if (!b)
        return -EINVAL;
    barrier_impl *B = barrier_of(b);
    corio__waitq_wake_all(&B->waiters, -CORIO_EBROKEN);
    B->broken = false;
    return 0;
}

int corio_barrier_abort(corio_barrier *b)
{
    if (!b)
        return -EINVAL;
    barrier_impl *B = barrier_of(b);
    B->broken = true;
    corio__waitq_wake_all(&B->waiters, -CORIO_EBROKEN);
    return 0;
}

unsigned corio_barrier_waiting(const corio_barrier *b)
{
    return b ? (unsigned)((const barrier_impl *)(const void *)b)->waiters.len : 0;
}
