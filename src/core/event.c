/*
 * Events (asyncio.Event): a flag that tasks can wait for.
 *
 * corio_event lives wherever the user puts it (often on a task's stack), so
 * its public type is an opaque block of fixed size that the real structure
 * is asserted to fit.  Waiters are linked through nodes on their own stacks:
 * setting the event moves every waiter to the run queue at once, in the
 * order they started waiting, and never suspends the setter.
 */
#include "internal.h"

typedef struct event_impl {
    corio__list waiters;
    bool is_set;
} event_impl;

_Static_assert(sizeof(event_impl) <= sizeof(corio_event), "corio_event too small for its implementation");
_Static_assert(_Alignof(event_impl) <= _Alignof(corio_event), "corio_event under-aligned");

typedef struct event_waiter {
    corio__list link;
    corio_task *task;
} event_waiter;

static inline event_impl *impl(corio_event *e) { return (event_impl *)(void *)e; }

void corio_event_init(corio_event *e)
{
    if (!e)
        return;
    event_impl *ev = impl(e);
    corio__list_init(&ev->waiters);
    ev->is_set = false;
}

void corio_event_set(corio_event *e)
{
    if (!e)
        return;
    event_impl *ev = impl(e);
    ev->is_set = true;
    while (!corio__list_empty(&ev->waiters)) {
        event_waiter *w = CORIO__CONTAINER_OF(ev->waiters.next, event_waiter, link);
        corio__list_remove(&w->link);
        corio__wake(w->task, 0);
    }
}

void corio_event_clear(corio_event *e)
{
    if (e)
        impl(e)->is_set = false;
}

bool corio_event_is_set(const corio_event *e) { return e && ((const event_impl *)(const void *)e)->is_set; }

static void event_wait_interrupted(corio_task *t, int reason)
{
    event_waiter *w = t->wait_obj;
    corio__list_remove(&w->link);
    corio__wake(t, reason);
}

int corio_event_wait(corio_event *e)
{
    if (!e)
        return -EINVAL;
    event_impl *ev = impl(e);
    int r = corio__check();
    if (r)
        return r;
    if (ev->is_set)
        return 0;
    event_waiter w = {.task = corio__current_task()};
    corio__list_push_back(&ev->waiters, &w.link);
    return corio__suspend(event_wait_interrupted, &w, "event", CORIO__NO_DEADLINE);
}
