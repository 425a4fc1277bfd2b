/*
 * Tasks started on another loop and joined from anywhere
 * (corio_loop_ref_spawn, corio_remote_*, corio_loop_ref_call): tokio's
 * Handle::spawn and JoinHandle, asyncio's run_coroutine_threadsafe.
 *
 * A corio_remote is one small record shared by two sides on two threads:
 * the handle (whoever spawned it, then its joiner) and the target loop,
 * which starts the task through corio__loop_ref_post (call_soon with a
 * hook for a call that can never run) and reports its end.  A mutex
 * guards the shared fields and is never held across a wait or a call into
 * another object; the record is freed by whichever side lets go of it
 * last (refs, counted under the mutex).
 *
 * The joiner parks with a remote wake-up (src/core/remote_wake.c) when it
 * is a task, so its own loop goes on serving and counts the wait as
 * external (no stall report: another loop will end it), or blocks on a
 * semaphore in its stack record when it is a plain thread.  The target
 * side hands the result over under the mutex and wakes the joiner after
 * releasing it, as the channel does.  A cancelled or timed-out joiner
 * cancels the remote task (a call posted to its loop, where the task
 * pointer is valid) and waits for it to end, as corio_task_join does.
 *
 * While the handle exists and the task has not ended, the record holds a
 * reference on the target loop: its memory stays valid for a cancel, and
 * the target loop does not report a stall while a cancel may still
 * arrive.  The target loop keeps its running remote tasks on a list so
 * that a loop stopped by a stall or a fatal error can still tell their
 * joiners (corio__remote_loop_end) instead of leaving them waiting.
 */
#include "internal.h"

#include <pthread.h>
#include <semaphore.h>

enum {
    R_QUEUED,  /* the start call is on its way to the target loop */
    R_RUNNING, /* the task runs there (r->task valid on that loop's thread) */
    R_OVER     /* ended, or never started: result and error are final */
};

/* The joiner, on its own stack. */
typedef struct remote_waiter {
    bool is_task;
    corio__rwake rw; /* a task: woken on its loop */
    sem_t sem;       /* a plain thread: posted */
} remote_waiter;

struct corio_remote {
    pthread_mutex_t mu;
    corio_loop_ref *ref; /* target loop; our own reference while ref_held */
    corio_fn fn;
    void *arg;
    /* Under mu: */
    unsigned refs;         /* the handle + the target side + each cancel call in flight */
    unsigned char state;   /* R_* */
    bool ref_held;         /* ref counted for us: the handle lives and the task has not ended */
    bool handle_gone;      /* joined or detached */
    bool cancel_wanted;    /* corio_remote_cancel before the task started */
    bool cancel_sent;      /* a cancel call is on its way (one is enough) */
    remote_waiter *waiter; /* the joiner while parked/blocked, until handed the end */
    void *result;
    int error;
    /* Target loop's thread only: */
    corio_task *task; /* R_RUNNING */
    corio__list link; /* loop->remotes while R_RUNNING */
};

/* Drop one of r's references (under mu, which this releases); the last
 * frees it. */
static void put_unlock(corio_remote *r)
{
    bool last = --r->refs == 0;
    pthread_mutex_unlock(&r->mu);
    if (last) {
        pthread_mutex_destroy(&r->mu);
        corio__free(r);
    }
}

static void waiter_wake(remote_waiter *w)
{
    if (w->is_task)
        corio__rwake_post(&w->rw, 0);
    else
        sem_post(&w->sem);
}

/* Target side: the task is over (or will never start): record its
 * outcome, wake the joiner, let go.  Any thread for a task that never
 * started, else the target loop's thread. */
static void finish(corio_remote *r, void *result, int error)
{
    pthread_mutex_lock(&r->mu);
    r->state = R_OVER;
    r->result = result;
    r->error = error;
    remote_waiter *w = r->waiter;
    r->waiter = NULL;
    corio_loop_ref *rel = r->ref_held ? r->ref : NULL;
    r->ref_held = false;
    /* With a joiner waiting the handle still holds r: this is not the
     * last reference, and r may vanish once the joiner is woken. */
    put_unlock(r);
    if (rel)
        corio_loop_ref_release(rel);
    if (w)
        waiter_wake(w);
}

static void *remote_task(void *p)
{
    corio_remote *r = p;
    void *res = r->fn(r->arg);
    corio_task *self = corio__current_task();
    corio__list_remove(&r->link);
    finish(r, res, self->error);
    return NULL;
}

/* The start call, on the target loop's thread. */
static void remote_start(void *p)
{
    corio_remote *r = p;
    corio_loop *l = corio__loop();
    if (l->main_task->flags & CORIO__T_DONE) {
        /* The loop is ending: a task started now would only be
         * cancelled.  Its joiner hears that fn never ran. */
        finish(r, NULL, -ESHUTDOWN);
        return;
    }
    corio_task *t = corio__spawn(l, "remote", 0, remote_task, r);
    if (!t) {
        finish(r, NULL, -ENOMEM);
        return;
    }
    r->task = t;
    corio__list_push_back(&l->remotes, &r->link);
    pthread_mutex_lock(&r->mu);
    r->state = R_RUNNING;
    bool cancel = r->cancel_wanted;
    pthread_mutex_unlock(&r->mu);
    corio_task_detach(t);
    if (cancel)
        corio_task_cancel(t);
}

/* The start call can never run (its loop stopped abnormally). */
static void remote_start_dropped(void *p) { finish(p, NULL, -ESHUTDOWN); }

/* The cancel call, on the target loop's thread.  Only this thread moves
 * the task on from R_RUNNING, so reading state and task here without the
 * mutex is exact, and the cancel itself runs without it: the task's
 * interrupt hook may take other objects' locks (a remote join of its
 * own). */
static void remote_cancel_run(void *p)
{
    corio_remote *r = p;
    pthread_mutex_lock(&r->mu);
    bool running = r->state == R_RUNNING;
    corio_task *t = r->task;
    r->cancel_sent = false;
    pthread_mutex_unlock(&r->mu);
    if (running)
        corio_task_cancel(t);
    pthread_mutex_lock(&r->mu);
    put_unlock(r);
}

static void remote_cancel_dropped(void *p)
{
    corio_remote *r = p;
    pthread_mutex_lock(&r->mu);
    put_unlock(r);
}

void corio__remote_loop_end(corio_loop *l, int err)
{
    while (!corio__list_empty(&l->remotes)) {
        corio_remote *r = CORIO__CONTAINER_OF(l->remotes.next, corio_remote, link);
        corio__list_remove(&r->link);
        finish(r, NULL, err);
    }
}

int corio_loop_ref_spawn(corio_loop_ref *ref, corio_fn fn, void *arg, corio_remote **out)
{
    if (!ref || !fn || !out)
        return -EINVAL;
    corio_remote *r = corio__calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    pthread_mutex_init(&r->mu, NULL);
    r->ref = ref;
    r->fn = fn;
    r->arg = arg;
    r->refs = 2;
    r->state = R_QUEUED;
    r->ref_held = true;
    corio__list_init(&r->link);
    corio__loop_ref_hold(ref);
    int e = corio__loop_ref_post(ref, remote_start, remote_start_dropped, r);
    if (e < 0) {
        corio_loop_ref_release(ref);
        pthread_mutex_destroy(&r->mu);
        corio__free(r);
        return e;
    }
    *out = r;
    return 0;
}

/* Ask for the cancel (under mu, which stays held). */
static void cancel_locked(corio_remote *r)
{
    if (r->state == R_OVER)
        return;
    if (r->state == R_QUEUED) {
        /* remote_start reads it under mu, after this */
        r->cancel_wanted = true;
        return;
    }
    if (r->cancel_sent)
        return;
    /* ref_held: a task not over with a live handle. */
    CORIO__ASSERT(r->ref_held);
    if (corio__loop_ref_post(r->ref, remote_cancel_run, remote_cancel_dropped, r) == 0) {
        r->refs++;
        r->cancel_sent = true;
    }
    /* else: out of memory, or the loop is ending -- when it cancels every
     * task left, this one included. */
}

int corio_remote_cancel(corio_remote *r)
{
    if (!r)
        return -EINVAL;
    pthread_mutex_lock(&r->mu);
    if (r->handle_gone) {
        pthread_mutex_unlock(&r->mu);
        return -EINVAL;
    }
    cancel_locked(r);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

int corio_remote_detach(corio_remote *r)
{
    if (!r)
        return -EINVAL;
    pthread_mutex_lock(&r->mu);
    if (r->handle_gone) {
        pthread_mutex_unlock(&r->mu);
        return -EINVAL;
    }
    r->handle_gone = true;
    /* Nobody can cancel it any more: the target loop may report a stall
     * again. */
    corio_loop_ref *rel = r->ref_held ? r->ref : NULL;
    r->ref_held = false;
    put_unlock(r);
    if (rel)
        corio_loop_ref_release(rel);
    return 0;
}

/* A joining task was cancelled or hit its deadline (its loop's thread).
 * Still registered: nobody has handed it the end, so it leaves with the
 * reason.  Taken: the target side's wake-up is on its way. */
static void join_interrupted(corio_task *t, int reason)
{
    corio_remote *r = t->wait_obj;
    pthread_mutex_lock(&r->mu);
    remote_waiter *w = r->waiter;
    bool mine = w != NULL;
    if (mine)
        r->waiter = NULL;
    pthread_mutex_unlock(&r->mu);
    if (mine)
        corio__rwake_end(&w->rw, reason);
}

/* Wait until r is over (under mu, which is held again on return).  A task
 * parks (interruptibly unless told otherwise) and returns the
 * interruption, if any; a plain thread blocks. */
static int wait_over(corio_remote *r, corio_task *t, bool interruptible)
{
    remote_waiter w;
    w.is_task = t != NULL;
    r->waiter = &w;
    int rc = 0;
    if (t) {
        corio__rwake_arm(&w.rw);
        pthread_mutex_unlock(&r->mu);
        if (interruptible)
            rc = corio__suspend(join_interrupted, r, "remote join", CORIO__NO_DEADLINE);
        else
            rc = corio__suspend_uninterruptible(r, "remote join (cancelled)");
    } else {
        sem_init(&w.sem, 0, 0);
        pthread_mutex_unlock(&r->mu);
        while (sem_wait(&w.sem) != 0)
            ; /* EINTR */
        sem_destroy(&w.sem);
    }
    pthread_mutex_lock(&r->mu);
    return rc;
}

int corio_remote_join(corio_remote *r, void **result)
{
    if (!r)
        return -EINVAL;
    corio_task *self = corio__current_task();
    /* Blocking this thread's loop for a task it would have to run itself
     * can never end. */
    int intr = self ? corio__check() : 0;
    pthread_mutex_lock(&r->mu);
    if (r->handle_gone) {
        pthread_mutex_unlock(&r->mu);
        return -EINVAL;
    }
    /* Not over: r->ref is still ours (ref_held), and its lock nests in
     * r's (as for a cancel). */
    if (!self && r->state != R_OVER && corio__loop() && corio__loop_ref_is_current(r->ref)) {
        pthread_mutex_unlock(&r->mu);
        return -EDEADLK;
    }
    r->handle_gone = true;
    if (r->state != R_OVER && !intr)
        intr = wait_over(r, self, true);
    if (r->state != R_OVER) {
        /* Interrupted: as corio_task_join, the task is cancelled and
         * awaited; its cleanup runs before the joiner goes on. */
        cancel_locked(r);
        while (r->state != R_OVER)
            (void)wait_over(r, self, false);
    }
    if (result)
        *result = r->result;
    int err = r->error;
    CORIO__ASSERT(!r->ref_held);
    put_unlock(r);
    return intr ? intr : err;
}

int corio_loop_ref_call(corio_loop_ref *ref, corio_fn fn, void *arg, void **result)
{
    if (result)
        *result = NULL;
    if (!ref || !fn)
        return -EINVAL;
    if (!corio__current_task() && corio__loop_ref_is_current(ref))
        return -EDEADLK;
    corio_remote *r;
    int e = corio_loop_ref_spawn(ref, fn, arg, &r);
    if (e < 0)
        return e;
    return corio_remote_join(r, result);
}
