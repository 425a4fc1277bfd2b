/*
 * Waiting on many tasks without owning them: corio_wait (asyncio.wait) and
 * corio_as_completed (asyncio.as_completed).
 *
 * Any number of tasks may watch the same task, so each watch is a node
 * (corio__watch) on the task's watcher list, which the task's end fires
 * (corio__watchers_fire, from corio__task_finished).  corio_wait keeps its
 * nodes on its own stack for a few tasks and allocates them once per call
 * for more; an as_completed iterator allocates its nodes once when it
 * starts.  A task's end costs one node visit per watcher and no
 * allocation.  Fired nodes of an iterator queue up in the order their tasks
 * ended; tasks that had ended before the iterator started are put first,
 * sorted by their end sequence number.
 */
#include "internal.h"

#include <limits.h>
#include <string.h>

typedef struct corio__watch corio__watch;
struct corio__watch {
    corio__watch *next;   /* on the task's list; an iterator's done queue once fired */
    corio__watch **pprev; /* NULL while not on a task's list */
    corio_task *task;
    void (*fire)(corio__watch *w);
    void *owner; /* the wait's state or the iterator */
};

static void watch_add(corio__watch *w, corio_task *t, void (*fire)(corio__watch *), void *owner)
{
    w->task = t;
    w->fire = fire;
    w->owner = owner;
    w->next = t->watchers;
    if (w->next)
        w->next->pprev = &w->next;
    w->pprev = &t->watchers;
    t->watchers = w;
}

static void watch_remove(corio__watch *w)
{
    if (!w->pprev)
        return;
    *w->pprev = w->next;
    if (w->next)
        w->next->pprev = w->pprev;
    w->pprev = NULL;
    w->next = NULL;
}

/* Fire in the order the watches were added (the list is newest first). */
void corio__watchers_fire(corio_task *t)
{
    corio__watch *rev = NULL, *w = t->watchers;
    t->watchers = NULL;
    while (w) {
        corio__watch *nx = w->next;
        w->next = rev;
        rev = w;
        w = nx;
    }
    while (rev) {
        corio__watch *nx = rev->next;
        rev->next = NULL;
        rev->pprev = NULL;
        rev->fire(rev);
        rev = nx;
    }
}

/* The list rules corio_wait and corio_as_completed_init share: no task
 * twice (the scratch mark, cleared again), none detached or in a group,
 * not the caller (it could never see itself end). */
static bool list_ok(corio_task *self, corio_task **tasks, size_t n)
{
    size_t i;
    bool ok = n <= INT_MAX;
    for (i = 0; ok && i < n; i++) {
        corio_task *t = tasks[i];
        if (!t || t == self || (t->flags & (CORIO__T_DETACHED | CORIO__T_GROUPED | CORIO__T_MARK))) {
            ok = false;
            break;
        }
        t->flags |= CORIO__T_MARK;
    }
    while (i--)
        tasks[i]->flags &= ~CORIO__T_MARK;
    return ok;
}

static uint64_t deadline_after(uint64_t timeout_ms)
{
    return timeout_ms == CORIO_NO_TIMEOUT ? CORIO__NO_DEADLINE
                                          : corio__ns_after_ms(corio__clock_ns(), timeout_ms);
}

/* ------------------------------------------------------------------ */
/* corio_wait                                                          */
/* ------------------------------------------------------------------ */

#define WAIT_NODES_ON_STACK 8

typedef struct wait_state {
    corio_task *waiter;
    size_t n, ended, failed;
    corio_wait_mode mode;
} wait_state;

static bool wait_satisfied(const wait_state *ws)
{
    switch (ws->mode) {
    case CORIO_WAIT_FIRST_COMPLETED:
        return ws->ended > 0 || ws->n == 0;
    case CORIO_WAIT_FIRST_ERROR:
        return ws->failed > 0 || ws->ended == ws->n;
    default:
        return ws->ended == ws->n;
    }
}

static void wait_fired(corio__watch *w)
{
    wait_state *ws = w->owner;
    ws->ended++;
    if (corio__task_failed(w->task))
        ws->failed++;
    if (wait_satisfied(ws))
        corio__wake(ws->waiter, 0);
}

int corio_wait(corio_task **tasks, size_t n, corio_wait_mode mode, uint64_t timeout_ms)
{
    corio_task *self = corio__current_task();
    if ((!tasks && n) || (unsigned)mode > CORIO_WAIT_FIRST_ERROR)
        return -EINVAL;
    if (!self)
        return -EPERM;
    if (!list_ok(self, tasks, n))
        return -EINVAL;
    wait_state ws = {self, n, 0, 0, mode};
    for (size_t i = 0; i < n; i++)
        if (tasks[i]->flags & CORIO__T_DONE) {
            ws.ended++;
            ws.failed += corio__task_failed(tasks[i]);
        }
    if (wait_satisfied(&ws))
        return (int)ws.ended;
    int r = corio__check();
    if (r)
        return r;
    size_t pending = n - ws.ended;
    corio__watch local[WAIT_NODES_ON_STACK];
    corio__watch *nodes = pending <= WAIT_NODES_ON_STACK ? local : corio__malloc(pending * sizeof *nodes);
    if (!nodes)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!(tasks[i]->flags & CORIO__T_DONE))
            watch_add(&nodes[k++], tasks[i], wait_fired, &ws);
    r = corio__suspend(NULL, &ws, "wait", deadline_after(timeout_ms));
    for (size_t i = 0; i < k; i++)
        watch_remove(&nodes[i]);
    if (nodes != local)
        corio__free(nodes);
    return r < 0 ? r : (int)ws.ended;
}

/* ------------------------------------------------------------------ */
/* corio_as_completed                                                  */
/* ------------------------------------------------------------------ */

typedef struct as_completed {
    corio__watch *nodes; /* one per task, allocated at init */
    size_t n, returned;
    corio__watch *head, *tail; /* fired, not returned yet: in the order the tasks ended */
    uint64_t deadline;
    corio_task *waiter; /* parked in corio_as_completed_next */
} as_completed;

_Static_assert(sizeof(as_completed) <= sizeof(corio_as_completed), "corio_as_completed too small");

static void done_push(as_completed *it, corio__watch *w)
{
    w->next = NULL;
    if (it->tail)
        it->tail->next = w;
    else
        it->head = w;
    it->tail = w;
}

static void ac_fired(corio__watch *w)
{
    as_completed *it = w->owner;
    done_push(it, w);
    if (it->waiter)
        corio__wake(it->waiter, 0);
}

static int by_end_seq(const void *a, const void *b)
{
    uint64_t x = (*(corio__watch *const *)a)->task->end_seq, y = (*(corio__watch *const *)b)->task->end_seq;
    return x < y ? -1 : x > y;
}

int corio_as_completed_init(corio_as_completed *itp, corio_task **tasks, size_t n, uint64_t timeout_ms)
{
    corio_task *self = corio__current_task();
    if (!itp || (!tasks && n))
        return -EINVAL;
    as_completed *it = (as_completed *)(void *)itp;
    memset(itp, 0, sizeof *itp);
    if (!self)
        return -EPERM;
    if (!list_ok(self, tasks, n))
        return -EINVAL;
    if (n) {
        /* The nodes, then room to sort the ones already ended. */
        it->nodes = corio__malloc(n * (sizeof(corio__watch) + sizeof(corio__watch *)));
        if (!it->nodes)
            return -ENOMEM;
    }
    it->n = n;
    it->deadline = deadline_after(timeout_ms);
    corio__watch **ended = n ? (corio__watch **)(void *)(it->nodes + n) : NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        corio__watch *w = &it->nodes[i];
        if (tasks[i]->flags & CORIO__T_DONE) {
            w->task = tasks[i];
            w->pprev = NULL;
            w->owner = it;
            ended[k++] = w;
        } else {
            watch_add(w, tasks[i], ac_fired, it);
        }
    }
    if (k > 1)
        qsort(ended, k, sizeof *ended, by_end_seq);
    for (size_t i = 0; i < k; i++)
        done_push(it, ended[i]);
    return 0;
}

int corio_as_completed_next(corio_as_completed *itp, corio_task **out)
{
    if (!itp || !out)
        return -EINVAL;
    as_completed *it = (as_completed *)(void *)itp;
    corio_task *self = corio__current_task();
    if (!self)
        return -EPERM;
    if (it->returned == it->n)
        return 0;
    for (;;) {
        corio__watch *w = it->head;
        if (w) {
            it->head = w->next;
            if (!it->head)
                it->tail = NULL;
            it->returned++;
            *out = w->task;
            return 1;
        }
        int r = corio__check();
        if (r)
            return r;
        if (it->deadline != CORIO__NO_DEADLINE && it->deadline <= corio__clock_ns())
            return -CORIO_EDEADLINE;
        it->waiter = self;
        r = corio__suspend(NULL, it, "as_completed", it->deadline);
        it->waiter = NULL;
        if (r < 0)
            return r;
    }
}

void corio_as_completed_end(corio_as_completed *itp)
{
    if (!itp)
        return;
    as_completed *it = (as_completed *)(void *)itp;
    for (size_t i = 0; i < it->n; i++)
        watch_remove(&it->nodes[i]);
    corio__free(it->nodes);
    memset(itp, 0, sizeof *itp);
}
