/*
 * Loop references and corio_loop_ref_call_soon (asyncio's
 * call_soon_threadsafe): any thread queues a function for the loop and
 * wakes it through the backend's notify().
 *
 * The reference is a small refcounted object shared by the loop and every
 * holder, so that a thread may keep it after the loop has ended and get
 * -ESHUTDOWN instead of touching freed memory.  Queued calls run on the
 * loop thread, one after another in the order they were queued, inside one
 * dispatcher task that exists only while calls are waiting: a safe point
 * (never inside the backend's poll), where a call may suspend or spawn
 * tasks, at the cost of one task however many calls arrive.
 *
 * It lives in core because the loop itself asks it, each turn and at its
 * end, whether a call may still arrive (corio__loop_ref_busy and friends).
 */
#include "internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

/* ------------------------------------------------------------------ */
/* Loop references and call_soon_threadsafe                            */
/* ------------------------------------------------------------------ */

typedef struct call_node {
    struct call_node *next;
    void (*fn)(void *);
    void (*drop)(void *); /* called instead of fn if the call can never run (NULL: nothing to do) */
    void *arg;
} call_node;

typedef struct call_list {
    call_node *head, *tail;
} call_list;

struct corio_loop_ref {
    atomic_uint refs; /* the loop's own (while it runs) + one per corio_loop_ref_get */
    /* Of those, the ones held by a workers group (corio__loop_ref_get_weak):
     * they exist for as long as the group does, so they must not count as
     * "someone may still call in" for the stall detector, or no worker
     * could ever be reported stalled. */
    atomic_uint weak;
    pthread_mutex_t mu;
    corio_loop *loop; /* NULL once closed (under mu) */
    call_list queued; /* accepted calls, oldest first (under mu) */
    /* Loop thread only: */
    call_list local;        /* taken from queued, not started yet */
    corio_task *dispatcher; /* the task running `local`, NULL when none */
};

/* The dispatcher lets other tasks and I/O run after this many calls, so a
 * flood of calls from other threads cannot starve the loop. */
#define CALLS_PER_TURN 64

static void list_append(call_list *to, call_list *from)
{
    if (!from->head)
        return;
    if (to->tail)
        to->tail->next = from->head;
    else
        to->head = from->head;
    to->tail = from->tail;
    from->head = from->tail = NULL;
}

/* Calls that will never run: their drop hooks are told (outside every
 * lock: a hook may take its object's own). */
static void list_free(call_list *l)
{
    for (call_node *n = l->head, *next; n; n = next) {
        next = n->next;
        if (n->drop)
            n->drop(n->arg);
        free(n);
    }
    l->head = l->tail = NULL;
}

corio_loop_ref *corio_loop_ref_get(void)
{
    corio_loop *l = corio__loop();
    if (!l) {
        errno = EPERM;
        return NULL;
    }
    corio_loop_ref *ref = l->ref;
    if (!ref) {
        ref = calloc(1, sizeof *ref);
        if (!ref) {
            errno = ENOMEM;
            return NULL;
        }
        atomic_init(&ref->refs, 1);
        pthread_mutex_init(&ref->mu, NULL);
        ref->loop = l;
        l->ref = ref;
    }
    atomic_fetch_add_explicit(&ref->refs, 1, memory_order_relaxed);
    return ref;
}

static void ref_put(corio_loop_ref *ref)
{
    /* acq_rel: the last owner must see every other owner's writes before it
     * frees. */
    if (atomic_fetch_sub_explicit(&ref->refs, 1, memory_order_acq_rel) == 1) {
        pthread_mutex_destroy(&ref->mu);
        free(ref);
    }
}

void corio_loop_ref_release(corio_loop_ref *ref)
{
    if (!ref)
        return;
    /* The loop may be asleep in its backend precisely because this
     * reference was held (corio__loop_ref_busy): when the last one held
     * elsewhere goes, wake it so it can look for a stall again.  Under the
     * mutex, where a non-NULL loop is alive and still holds its own
     * reference, so this decrement cannot be the last. */
    pthread_mutex_lock(&ref->mu);
    corio_loop *l = ref->loop;
    if (l) {
        unsigned weak = atomic_load_explicit(&ref->weak, memory_order_relaxed);
        if (atomic_fetch_sub_explicit(&ref->refs, 1, memory_order_acq_rel) == 2 + weak)
            l->backend->notify(l);
        pthread_mutex_unlock(&ref->mu);
        return;
    }
    pthread_mutex_unlock(&ref->mu);
    ref_put(ref);
}

corio_loop_ref *corio__loop_ref_get_weak(void)
{
    corio_loop_ref *ref = corio_loop_ref_get();
    if (ref)
        atomic_fetch_add_explicit(&ref->weak, 1, memory_order_relaxed);
    return ref;
}

void corio__loop_ref_release_weak(corio_loop_ref *ref)
{
    if (!ref)
        return;
    atomic_fetch_sub_explicit(&ref->weak, 1, memory_order_relaxed);
    corio_loop_ref_release(ref);
}

void corio__loop_ref_hold(corio_loop_ref *ref)
{
    atomic_fetch_add_explicit(&ref->refs, 1, memory_order_relaxed);
}

bool corio__loop_ref_is_current(corio_loop_ref *ref)
{
    corio_loop *l = corio__loop();
    if (!l)
        return false;
    pthread_mutex_lock(&ref->mu);
    bool mine = ref->loop == l;
    pthread_mutex_unlock(&ref->mu);
    return mine;
}

int corio_loop_ref_call_soon(corio_loop_ref *ref, void (*fn)(void *arg), void *arg)
{
    return corio__loop_ref_post(ref, fn, NULL, arg);
}

int corio__loop_ref_post(corio_loop_ref *ref, void (*fn)(void *arg), void (*drop)(void *arg), void *arg)
{
    if (!ref || !fn)
        return -EINVAL;
    call_node *n = malloc(sizeof *n);
    if (!n)
        return -ENOMEM;
    n->next = NULL;
    n->fn = fn;
    n->drop = drop;
    n->arg = arg;
    pthread_mutex_lock(&ref->mu);
    corio_loop *l = ref->loop;
    if (!l) {
        pthread_mutex_unlock(&ref->mu);
        free(n);
        return -ESHUTDOWN;
    }
    call_list one = {n, n};
    list_append(&ref->queued, &one);
    /* Notified under the mutex: the loop closes the queue under it before
     * destroying its backend, so l is alive here.  The backend collapses
     * repeated notifies into one wake-up. */
    l->backend->notify(l);
    pthread_mutex_unlock(&ref->mu);
    return 0;
}

/* Run the local calls in order (loop thread).  In the dispatcher task,
 * yielding now and then; outside a task (no dispatcher could be created),
 * all at once. */
static void run_local(corio_loop_ref *ref, bool in_task)
{
    unsigned ran = 0;
    while (ref->local.head) {
        call_node *n = ref->local.head;
        ref->local.head = n->next;
        if (!ref->local.head)
            ref->local.tail = NULL;
        void (*fn)(void *) = n->fn;
        void *arg = n->arg;
        free(n);
        fn(arg);
        if (in_task && ++ran % CALLS_PER_TURN == 0)
            (void)corio_yield(); /* fails at once when cancelled: fine, just no pause */
    }
}

static void *dispatch_task(void *p)
{
    corio_loop_ref *ref = p; /* the loop's own reference keeps it alive */
    run_local(ref, true);
    ref->dispatcher = NULL;
    return NULL;
}

/* Make sure the local calls will run (loop thread). */
static void start_calls(corio_loop *l, corio_loop_ref *ref)
{
    if (ref->dispatcher || !ref->local.head)
        return; /* the running dispatcher picks new calls up before it ends */
    corio_task *t = corio__spawn(l, "call_soon_threadsafe", 0, dispatch_task, ref);
    if (!t) {
        /* No task can be created (out of memory): the calls must still run
         * exactly once, so run them here, outside any task. */
        run_local(ref, false);
        return;
    }
    /* Like every task alive after the main task returned: it runs, but its
     * waits fail with -ECANCELED, so it cannot hold the loop's end back. */
    if (l->main_task && (l->main_task->flags & CORIO__T_DONE))
        corio_task_cancel(t);
    ref->dispatcher = t;
    corio_task_detach(t);
}

void corio__loop_ref_drain(corio_loop *l)
{
    corio_loop_ref *ref = l->ref;
    if (!ref)
        return;
    pthread_mutex_lock(&ref->mu);
    list_append(&ref->local, &ref->queued);
    pthread_mutex_unlock(&ref->mu);
    start_calls(l, ref);
}

bool corio__loop_ref_busy(corio_loop *l)
{
    corio_loop_ref *ref = l->ref;
    if (!ref)
        return false;
    pthread_mutex_lock(&ref->mu);
    bool busy = ref->queued.head != NULL ||
                (ref->loop && atomic_load_explicit(&ref->refs, memory_order_relaxed) >
                                  1 + atomic_load_explicit(&ref->weak, memory_order_relaxed));
    pthread_mutex_unlock(&ref->mu);
    return busy;
}

bool corio__loop_ref_close(corio_loop *l)
{
    corio_loop_ref *ref = l->ref;
    if (!ref)
        return true;
    /* Closed first, then drained: a thread that keeps posting cannot hold
     * the loop's end back, and nothing accepted is left behind. */
    pthread_mutex_lock(&ref->mu);
    ref->loop = NULL;
    list_append(&ref->local, &ref->queued);
    pthread_mutex_unlock(&ref->mu);
    if (!ref->local.head)
        return true;
    start_calls(l, ref);
    return false;
}

void corio__loop_ref_shutdown(corio_loop *l)
{
    corio_loop_ref *ref = l->ref;
    if (!ref)
        return;
    pthread_mutex_lock(&ref->mu);
    ref->loop = NULL;
    /* Left only when the loop ended without its normal close (a stall, a
     * fatal backend error): nothing can run them any more.  Dropped after
     * the mutex is released (see list_free). */
    list_append(&ref->local, &ref->queued);
    pthread_mutex_unlock(&ref->mu);
    list_free(&ref->local);
    l->ref = NULL;
    ref_put(ref);
}
