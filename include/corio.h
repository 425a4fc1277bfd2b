/*
 * corio — asyncio's model for C.
 *
 * One thread runs an event loop; work is written as straight-line tasks
 * (stackful coroutines) that suspend at every wait while the loop runs the
 * others.  This header is the core library: loop, tasks, time,
 * cancellation and deadlines, coordination (groups, locks, queues,
 * channels), streams, TCP and Unix sockets, datagrams, readiness waits on
 * any fd, socket activation, signals, subprocesses, the thread pool and
 * files; include/corio/http.h adds the HTTP/1.1 server.
 *
 * Names: a function that acts on an object is corio_<object>_<verb> and
 * takes the object first (corio_stream_read, corio_task_join,
 * corio_server_close, corio_http_response_send); a constructor is named for
 * the object it makes (corio_stream_connect, corio_server_start).
 * Functions that act on the calling task or its loop, with no object, are
 * corio_<verb> (corio_run, corio_spawn, corio_gather, corio_sleep_ms,
 * corio_yield, corio_cancelled, corio_to_thread).  Types are corio_<object>,
 * constants CORIO_*, and names with two underscores (corio__*) are
 * internal.
 *
 * Conventions, valid for every function below unless its comment says
 * otherwise:
 *  - Errors are returned as negative errno values (-ECANCELED, -ECONNRESET,
 *    -ETIMEDOUT, ...), exactly as io_uring completions report them, or as
 *    negative CORIO_E* codes of corio's own (below);
 *    corio_strerror() turns one into text.  Functions returning pointers
 *    return NULL and set errno.
 *  - Misuse is an error, never a crash.  A NULL handle, or NULL for any
 *    other pointer a function needs (a buffer counts only when its length
 *    is above 0; a pointer its comment calls optional may be NULL), is
 *    caught before anything else is done: functions returning int or
 *    ssize_t return -EINVAL, functions returning a pointer return NULL with
 *    errno EINVAL, queries answering bool or a number answer false / 0, and
 *    void functions do nothing (corio_stream_close(NULL) is a no-op, like
 *    free(NULL)).
 *  - "Suspends" means the calling task may be parked while the loop runs
 *    others.  Every suspending call must be made from inside a task, and
 *    every one of them honours cancellation (-ECANCELED) and the task's
 *    deadline (-CORIO_EDEADLINE).
 *  - A buffer handed to a suspending call must stay valid until the call
 *    returns; corio guarantees the kernel no longer touches it by then, also
 *    after cancellation or a deadline.
 *  - Objects are owned by whoever created them until handed to the matching
 *    close/free call.  Nothing is thread-safe unless stated: a loop and all
 *    its objects belong to the thread that runs it.
 *  - No SIGPIPE: a write to a pipe, FIFO, tty or socket whose reader is gone
 *    returns -EPIPE (or -ECONNRESET) and no SIGPIPE is ever delivered for
 *    it, while the process's signal dispositions are left alone.  Sends on
 *    sockets carry MSG_NOSIGNAL; for the calls that cannot (write(2) to a
 *    pipe, sendfile(2)), SIGPIPE is blocked in the loop thread's mask while
 *    corio_run runs.  That covers io_uring's writes too: the kernel issues
 *    them inline in this thread or on its io-wq workers, which block every
 *    signal, as the thread pool's workers do.  So
 *    while the run lasts, this thread's mask shows SIGPIPE blocked, a
 *    SIGPIPE raised there (also by the program's own write(2) calls in a
 *    task) is only marked pending, and threads created from a task inherit
 *    the blocked SIGPIPE.  When corio_run returns, a SIGPIPE left pending
 *    by those writes is consumed, unless one was already pending when the
 *    run began (that one is the caller's and stays), and SIGPIPE's place
 *    in the caller's mask is exactly what it was.
 */
#ifndef CORIO_H
#define CORIO_H

#include <errno.h> /* the E* codes the contracts below return */
#include <stdbool.h>
#include <stddef.h>
#include <signal.h> /* sigset_t (corio_signal_watch_open) */
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(CORIO_BUILDING) && defined(__GNUC__)
#define CORIO_API __attribute__((visibility("default")))
#else
#define CORIO_API
#endif

#define CORIO_VERSION_MAJOR 0
#define CORIO_VERSION_MINOR 1
#define CORIO_VERSION_PATCH 0

/* Error codes of corio's own (outside the errno range). */
#define CORIO_EINCOMPLETE 4096 /* readexactly hit EOF before n bytes */
#define CORIO_ELIMIT 4097      /* readuntil/readline: separator not found within the limit */
#define CORIO_EDEADLOCK 4098   /* every task is waiting and nothing can wake them */
/* The calling task's deadline (corio_deadline_push) passed.  Distinct from
 * -ETIMEDOUT, which only ever means the network or the kernel gave up (a
 * connect or a TCP keep-alive that timed out), so a caller can tell "my
 * own time budget ran out" from "the peer stopped answering". */
#define CORIO_EDEADLINE 4099
/* A barrier (corio_barrier) was aborted or reset while the task waited at
 * it, or is broken (aborted) for good. */
#define CORIO_EBROKEN 4100

/* "No time limit", for every timeout_ms parameter below. */
#define CORIO_NO_TIMEOUT UINT64_MAX

/* Text for an error code (negative or positive errno, or a CORIO_E* value).
 * Never NULL; the string is static. */
CORIO_API const char *corio_strerror(int err);

/* ------------------------------------------------------------------ */
/* Loop and tasks                                                      */
/* ------------------------------------------------------------------ */

typedef struct corio_task corio_task;

/* A task body: receives the argument given at spawn, returns the task's
 * result (read by corio_task_join / corio_gather).  A task that fails
 * says so with corio_fail before returning: `return corio_fail(-EIO);`. */
typedef void *(*corio_fn)(void *arg);

/* How a finished task ended: its return value, and 0 or the error it failed
 * with (corio_fail). */
typedef struct corio_outcome {
    void *result;
    int error;
} corio_outcome;

typedef enum corio_backend_kind {
    CORIO_BACKEND_AUTO = 0, /* io_uring when it works, else epoll; CORIO_BACKEND env var overrides */
    CORIO_BACKEND_EPOLL,
    CORIO_BACKEND_IO_URING,
    /* Deterministic simulation (corio/sim.h): virtual clock, network and
     * disk, one seed; CORIO_BACKEND=sim in the environment picks it too. */
    CORIO_BACKEND_SIM,
} corio_backend_kind;

struct corio_sim_config;

typedef struct corio_config {
    size_t stack_size;          /* per task; 0 = default (256 KiB, committed lazily); a task that
                                   overflows its stack aborts the process with a message naming it */
    corio_backend_kind backend; /* AUTO honours the CORIO_BACKEND environment variable */
    unsigned stack_pool_max;    /* stacks kept for reuse; 0 = default (1024) */
    unsigned ring_entries;      /* io_uring SQ size; 0 = default (1024) */
    unsigned threadpool_size;   /* worker threads (2..64); 0 = CORIO_THREADPOOL_SIZE or default (4) */
    /* Debug mode (asyncio's debug mode): 1 on, -1 off, 0 = on when the
     * environment has CORIO_DEBUG=1.  It warns on stderr, naming the task
     * and where it was spawned, about a task step that holds the loop
     * longer than slow_step_ms, and about a task handle never joined or
     * detached by the time its loop ends: "corio: task 'NAME' (spawned at
     * SITE) held the loop for N ms", "corio: task 'NAME' (spawned at SITE)
     * ended, but its handle was never joined or detached" ("was cancelled
     * and ended" for a task cancelled, as the leftovers are when the main
     * task returns; SITE as in corio_dump_tasks).  CORIO_DEBUG set to anything but "" or "0" turns
     * it on.  Off, it costs one predictable branch per task step. */
    int debug;
    unsigned slow_step_ms; /* 0 = CORIO_DEBUG_SLOW_MS from the environment, else 100 */
    /* The sim backend's settings (corio/sim.h); NULL: the seed comes from
     * CORIO_SIM_SEED (else 1) and the faults from the seed. */
    const struct corio_sim_config *sim;
} corio_config;

/* Run main_fn(arg) as the main task of a new loop on this thread (asyncio.run).
 * Returns when the main task has returned and every other task has ended;
 * tasks still alive when the main task returns are cancelled (as
 * asyncio.run does) and awaited.  If every live task is waiting and nothing
 * can wake any of them, the loop prints a report naming each live task and
 * what it waits for to stderr, cancels every task (their waits return
 * -ECANCELED, so their cleanup runs) and, once they have ended, returns
 * -CORIO_EDEADLOCK instead of hanging.  *result (if result is not NULL)
 * receives main_fn's return value.  cfg may be NULL for defaults.
 * Returns 0, -EBUSY if this thread already runs a loop, -ENOMEM, -EINVAL
 * for a config no loop can honour (stack_size above SIZE_MAX / 128, a
 * backend value outside the enum), or the backend's setup error. */
CORIO_API int corio_run(const corio_config *cfg, corio_fn main_fn, void *arg, void **result);

/* Name of the running loop's backend: "io_uring", "epoll" or "sim"; NULL outside a loop. */
CORIO_API const char *corio_backend_name(void);

/* Start fn(arg) as a new task, which first runs at the loop's next turn.
 * The caller keeps running.  The returned handle must be passed to exactly
 * one of corio_task_join, corio_gather or corio_task_detach.  Does not suspend.
 * Returns NULL with errno ENOMEM (or EAGAIN when no stack can be mapped).
 * The task runs on a stack of corio_config.stack_size bytes: if it
 * overflows it, the process aborts (SIGABRT) after printing "corio: stack
 * overflow in task '<name>'" to stderr (a task whose stack is gone cannot
 * be resumed); give deep recursion its own corio_spawn_named size. */
CORIO_API corio_task *corio_spawn(corio_fn fn, void *arg);

/* Start a task as corio_spawn does, with a name and a stack size of its own.
 * The name is copied (up to 31 bytes are kept; NULL for none) and shows in
 * stall reports and stack-overflow messages.  stack_size 0 means the loop's
 * default; others are rounded up to whole pages, at least 16 KiB.
 * Overflowing it aborts the process as for corio_spawn.  A size above
 * SIZE_MAX / 128, which no address space could hold, gives NULL with errno
 * EINVAL. */
CORIO_API corio_task *corio_spawn_named(const char *name, size_t stack_size, corio_fn fn, void *arg);

/* Wait for task t to end, store its return value in *result, and free t
 * (await task).
 * result may be NULL.  Suspends unless t has ended.  Returns 0 if t
 * succeeded, or the error t failed with (corio_fail).  If the *waiting*
 * task is cancelled or hits its deadline, t is cancelled too and awaited
 * (as asyncio's await does), then freed, and the interruption is returned
 * (-ECANCELED / -CORIO_EDEADLINE) in place of t's own outcome; *result still
 * receives t's return value.  So a task already cancelled (cancellation
 * stays in force) can still join its children from its cleanup code: each
 * is cancelled and waited for.  To wait without cancelling t, join inside a
 * shield (corio_shield_push) or use corio_wait.  t is freed in every case
 * but -EINVAL: t is the caller, already has a joiner, is detached or
 * belongs to a group (nothing changes). */
CORIO_API int corio_task_join(corio_task *t, void **result);

/* Join t, allowing it timeout_ms to end (asyncio.wait_for).
 * As corio_task_join; if t has not ended timeout_ms after the call, it is
 * cancelled and awaited (its cleanup runs), freed, and -CORIO_EDEADLINE is
 * returned (*result still receives its return value), unless t turned out
 * to have ended before it was cancelled: then its own outcome is returned.
 * CORIO_NO_TIMEOUT waits as long as it takes; 0 only takes a task that has
 * ended.  An enclosing deadline that passes first is the caller's own
 * interruption, as for corio_task_join.  Suspends unless t has ended. */
CORIO_API int corio_task_wait_for(corio_task *t, uint64_t timeout_ms, void **result);

/* Wait for all n tasks to end, then free them (asyncio.gather), stopping
 * at the first error.
 * results[i] (results may be NULL) receives task i's return value.  When a
 * task fails (corio_fail), the tasks not yet ended are cancelled and
 * awaited, all are freed, and the failure that came first is returned.  If
 * the waiting task is cancelled or hits its deadline, the same happens and
 * the interruption is returned; in a task cancelled before the call it
 * happens at once, which makes corio_gather the way for cleanup code to
 * stop its children and wait until their own cleanup has run.  Returns 0,
 * the first task error, or -ECANCELED / -CORIO_EDEADLINE; -EINVAL, with
 * nothing joined, cancelled or freed, if a task is listed twice, is the
 * caller, is detached, belongs to a group or already has a joiner.  While
 * the gather runs, the tasks are its own: corio_task_join on one of them
 * from another task is -EINVAL. */
CORIO_API int corio_gather(corio_task **tasks, size_t n, void **results);

/* Wait for all n tasks to end and report each one's outcome, then free
 * them (asyncio.gather with return_exceptions=True).
 * out[i] (out may be NULL) receives task i's return value and error; a
 * failing task does not stop the others.  If the waiting task is cancelled
 * or hits its deadline, the tasks not yet ended are cancelled and awaited,
 * every out[i] is still filled, and the interruption is returned.  Returns
 * 0 (whatever the tasks' own errors), -ECANCELED / -CORIO_EDEADLINE, or
 * -EINVAL as corio_gather. */
CORIO_API int corio_gather_outcomes(corio_task **tasks, size_t n, corio_outcome *out);

/* What corio_wait waits for. */
typedef enum corio_wait_mode {
    CORIO_WAIT_ALL_COMPLETED = 0, /* every task has ended */
    CORIO_WAIT_FIRST_COMPLETED,   /* at least one task has ended */
    CORIO_WAIT_FIRST_ERROR,       /* a task failed (corio_fail), or all have ended */
} corio_wait_mode;

/* Wait until the tasks satisfy mode, or timeout_ms passes (asyncio.wait).
 * Nothing is cancelled, joined or freed: the caller still owns every task
 * and learns which ended with corio_task_done, then joins them (a join of
 * an ended task does not suspend).  Several tasks may wait on the same
 * task.  A task counts as failed (FIRST_ERROR) if it ended with an error,
 * except a cancelled task's -ECANCELED.  More than 8 tasks still running
 * cost one allocation per call.  Suspends unless mode already holds.
 * Returns the number of tasks that have ended (which on a timeout may not
 * satisfy mode: a timeout is not an error), -ECANCELED / -CORIO_EDEADLINE,
 * -ENOMEM, or -EINVAL for a task listed twice, detached, in a group or the
 * caller itself, more than INT_MAX tasks, or a mode outside the enum. */
CORIO_API int corio_wait(corio_task **tasks, size_t n, corio_wait_mode mode, uint64_t timeout_ms);

/* An iterator over tasks in the order they end (asyncio.as_completed).
 * Lives wherever the caller puts it; the contents are private. */
typedef struct corio_as_completed {
    void *opaque[8];
} corio_as_completed;

/* Start iterating over n tasks as they end, within timeout_ms in all.
 * The caller keeps owning the tasks, but must not join one before the
 * iterator has returned it; *it must not move until corio_as_completed_end
 * (the tasks point to it).  Tasks that have ended already come first, in
 * the order they ended.  Allocates once (a few words per task).  Does not
 * suspend.  Returns 0, -ENOMEM, -EPERM outside a task, or -EINVAL (as
 * corio_wait). */
CORIO_API int corio_as_completed_init(corio_as_completed *it, corio_task **tasks, size_t n,
                                      uint64_t timeout_ms);

/* Wait for the next task to end and store it in *out.
 * Tasks come in the order they ended; each exactly once.  The task is not
 * joined: join it (that does not suspend) to get its outcome and free it.
 * Suspends unless a task has ended that was not returned yet.  Returns 1
 * with *out set, 0 once every task has been returned, -CORIO_EDEADLINE when
 * the iterator's timeout passes (or the task's deadline), -ECANCELED. */
CORIO_API int corio_as_completed_next(corio_as_completed *it, corio_task **out);

/* Finish iterating; the tasks not returned yet are left alone (still the
 * caller's).  Required once init has succeeded, before *it goes away
 * (tasks still running point to it), also after an error from next.
 * Does not suspend. */
CORIO_API void corio_as_completed_end(corio_as_completed *it);

/* Give up the handle: the task runs to completion and frees itself.
 * Does not suspend.  Returns 0, or -EINVAL (nothing changes) if t is NULL,
 * already detached, or being awaited by corio_task_join / corio_gather (the
 * waiter owns it). */
CORIO_API int corio_task_detach(corio_task *t);

/* Request cancellation of t.
 * Delivered as -ECANCELED at t's next suspension point, or at once if t is
 * suspended now (an I/O wait is aborted first, buffers stay safe); stays in
 * force until t returns, so every later suspending call in t also fails
 * with -ECANCELED.  Inside a shield (corio_shield_push) it is held back
 * until the shield ends.  (The one cancellation that is withdrawn: a group
 * cancelling its owner because a member failed, see corio_group_join.)
 * Does not suspend.  Returns 0, or -EALREADY if t has
 * already finished.  t may be the caller. */
CORIO_API int corio_task_cancel(corio_task *t);

/* True once the current task has been cancelled. */
CORIO_API bool corio_cancelled(void);

/* The running task, or NULL when called outside a task. */
CORIO_API corio_task *corio_current(void);

/* The task's name, "" if none was given.
 * The string is valid while the handle is. */
CORIO_API const char *corio_task_name(const corio_task *t);

/* True once t's function has returned. */
CORIO_API bool corio_task_done(const corio_task *t);

/* Mark the calling task as failed with err (a negative errno or -CORIO_E*
 * code), to be reported when it ends (join, gather, groups).
 * Returns NULL, so a task body can end with `return corio_fail(-EIO);`.
 * The last call before the task returns wins; corio_fail(0) clears it.
 * Does nothing outside a task.  Does not suspend. */
CORIO_API void *corio_fail(int err);

/* The error t failed with: 0 while t runs or if it succeeded. */
CORIO_API int corio_task_error(const corio_task *t);

/* t's return value: NULL while t runs. */
CORIO_API void *corio_task_result(const corio_task *t);

/* Let every other ready task run once, then continue.
 * Suspends.  Returns 0, -ECANCELED or -CORIO_EDEADLINE. */
CORIO_API int corio_yield(void);

/* Sleep for ms milliseconds.
 * 0 behaves like corio_yield.  The time is counted from a fresh clock
 * reading, so the sleep never ends early.  Suspends.  Returns 0,
 * -ECANCELED, or -CORIO_EDEADLINE if the task's deadline comes first. */
CORIO_API int corio_sleep_ms(uint64_t ms);

/* Sleep for ns nanoseconds; otherwise as corio_sleep_ms. */
CORIO_API int corio_sleep_ns(uint64_t ns);

/* The loop's time: monotonic nanoseconds, read once per loop turn.
 * Inside a loop this is the value read when the loop last polled for I/O
 * (it does so whenever no task is ready, and at least every 128 task
 * resumptions): the tasks run in one turn all see the same value, and it
 * does not move while a task computes or hands over to ready tasks without
 * waiting (corio_yield, spawn, join of a finished task).  That makes it
 * free to call and consistent across tasks, but stale by however long the
 * turn has run so far; it catches up at the next wait for I/O or a timer
 * (any corio_sleep_ms).  corio_clock_read_ns gives a fresh reading of the
 * same clock (CLOCK_MONOTONIC); outside a loop corio_now_ns is one too. */
CORIO_API uint64_t corio_now_ns(void);

/* A fresh reading of the monotonic clock (CLOCK_MONOTONIC) in nanoseconds.
 * Unlike corio_now_ns it is read at every call (a vDSO call, no system
 * call: tens of nanoseconds), so it measures time spent inside one turn,
 * e.g. the cost of a computation.  Works inside and outside a loop; does
 * not suspend. */
CORIO_API uint64_t corio_clock_read_ns(void);

/* ------------------------------------------------------------------ */
/* Deadlines (asyncio.timeout)                                         */
/* ------------------------------------------------------------------ */

/* Opaque token that restores the enclosing deadline. */
typedef struct corio_deadline {
    uint64_t prev_ns;
} corio_deadline;

/* Open a deadline scope of timeout_ms from now on the current task.
 * Every suspending call inside fails with -CORIO_EDEADLINE once it passes (a call
 * already suspended is woken with -CORIO_EDEADLINE).  A nested scope can only
 * shorten the enclosing one.  Pass the returned token to
 * corio_deadline_pop when the scope ends, in LIFO order. */
CORIO_API corio_deadline corio_deadline_push(uint64_t timeout_ms);

/* Close the scope opened by the matching push, restoring the enclosing deadline. */
CORIO_API void corio_deadline_pop(corio_deadline token);

/* True if the current task's deadline has passed. */
CORIO_API bool corio_deadline_expired(void);

/* ------------------------------------------------------------------ */
/* Shields (trio's shielded cancel scope, asyncio.shield)              */
/* ------------------------------------------------------------------ */

/* Opaque token that ends a shield. */
typedef struct corio_shield {
    uint64_t prev_deadline_ns;
    uint32_t prev_flags;
} corio_shield;

/* Hold back cancellation of the calling task until the matching pop, and
 * give the scope a deadline of its own, timeout_ms from now
 * (CORIO_NO_TIMEOUT for none).
 * Inside, a cancellation (earlier or arriving meanwhile) is not delivered
 * and the task's enclosing deadlines do not apply, so cleanup can still
 * wait: join its children, flush a stream, close a connection politely,
 * bounded by the shield's own deadline (-CORIO_EDEADLINE).  A deadline
 * pushed inside can only shorten the shield's.  Shields nest.  Does not
 * suspend.  Outside a task it does nothing. */
CORIO_API corio_shield corio_shield_push(uint64_t timeout_ms);

/* End the shield opened by the matching push (LIFO order).
 * A cancellation held back is delivered again, at the next suspension
 * point; the enclosing deadline applies again.  Does not suspend. */
CORIO_API void corio_shield_pop(corio_shield token);

/* ------------------------------------------------------------------ */
/* Task groups (asyncio.TaskGroup, trio nurseries)                     */
/* ------------------------------------------------------------------ */

/* A set of tasks that end together.  The task that initialises a group is
 * its owner and must end it with corio_group_join.  Lives wherever the
 * owner puts it (usually its own stack) until corio_group_join returns;
 * the contents are private. */
typedef struct corio_group {
    void *opaque[12];
} corio_group;

/* Open a group owned by the calling task.  Does not suspend.  Returns 0,
 * -EINVAL for a NULL g, -EPERM outside a task, -EOVERFLOW if the task
 * already owns 65,535 groups not joined yet.  An owner that ends without
 * joining (a bug) leaves its members running as detached tasks (cancelled
 * at the loop's end like every other task), so nothing touches g again. */
CORIO_API int corio_group_init(corio_group *g);

/* Start fn(arg) as a member of g.
 * Any task of the loop may spawn into g (members into their own group).
 * The group owns the member: the handle it returns may be used to cancel
 * it or read its name while it runs; joining, detaching, gathering or
 * waiting on it is -EINVAL; the group frees it when it ends (so the handle
 * is gone then).  Does not suspend.  Returns the member, or NULL with errno
 * ECANCELED once g is cancelled, a member has failed or the owner's join
 * was interrupted, ESHUTDOWN after corio_group_join returned, EINVAL for a
 * NULL or uninitialised g or NULL fn, ENOMEM / EAGAIN as corio_spawn. */
CORIO_API corio_task *corio_group_spawn(corio_group *g, corio_fn fn, void *arg);

/* As corio_group_spawn, with a name and stack size (see corio_spawn_named). */
CORIO_API corio_task *corio_group_spawn_named(corio_group *g, const char *name, size_t stack_size,
                                              corio_fn fn, void *arg);

/* Cancel every member of g; spawning into g fails from now on (ECANCELED).
 * The owner is not cancelled, and members that report the -ECANCELED
 * they get do not count as failures.  Does not suspend.  Returns 0 (also
 * once g is closed), or -EINVAL for a NULL or uninitialised g. */
CORIO_API int corio_group_cancel(corio_group *g);

/* Wait for every member of g to end, then close g (leaving async with).
 * The first member to fail (corio_fail with an error other than a
 * -ECANCELED it got from being cancelled) cancels the other members and,
 * unless it is already waiting here, the owner, so the owner's own waits
 * end and it reaches this call; that cancellation of the owner is
 * withdrawn when this call returns.  If the owner is cancelled or hits its
 * deadline, here or before, every member is cancelled and awaited.  Must
 * be called by the owner, once.  Suspends.  Returns 0; the first member's
 * error; else the owner's interruption (-ECANCELED / -CORIO_EDEADLINE);
 * -EINVAL (nothing happens) from a task that is not the owner or a second
 * call.  corio_group_failed tells how many members failed. */
CORIO_API int corio_group_join(corio_group *g);

/* How many members of g have failed so far. */
CORIO_API unsigned corio_group_failed(const corio_group *g);

/* How many members of g are still running. */
CORIO_API size_t corio_group_size(const corio_group *g);

/* ------------------------------------------------------------------ */
/* Events (asyncio.Event)                                              */
/* ------------------------------------------------------------------ */

/* A flag tasks can wait for.  Keep it anywhere (a task's stack, a struct)
 * for as long as tasks may wait on it; initialise with corio_event_init.
 * The size is fixed so it can live on the stack; the contents are
 * private. */
typedef struct corio_event {
    void *opaque[3];
} corio_event;

/* Initialise e as not set.  Does not suspend. */
CORIO_API void corio_event_init(corio_event *e);

/* Set e and wake every task waiting for it.
 * The waiters run in the order they started waiting.  Does not suspend;
 * callable from any task of the loop that owns e. */
CORIO_API void corio_event_set(corio_event *e);

/* Reset e to not set.
 * Tasks waiting keep waiting.  Does not suspend. */
CORIO_API void corio_event_clear(corio_event *e);

/* True while e is set. */
CORIO_API bool corio_event_is_set(const corio_event *e);

/* Wait until e is set.
 * Returns at once if it is.  Suspends.  Returns 0, -ECANCELED or
 * -CORIO_EDEADLINE. */
CORIO_API int corio_event_wait(corio_event *e);

/* ------------------------------------------------------------------ */
/* Locks, conditions, semaphores, barriers (asyncio.Lock and friends)  */
/* ------------------------------------------------------------------ */
/* Shared rules for the four below.  They belong to one loop and live
 * wherever the user puts them (a task's stack, a struct) for as long as a
 * task may use them; the contents are private.  Waiters are served in the
 * order they started waiting, and ownership is handed over directly: a
 * released lock or semaphore unit goes to the longest waiter at the moment
 * of the release, never to a task that asks later (even one that asks
 * before the woken waiter has run).  A waiter that is cancelled or hits
 * its deadline before anything was handed to it leaves the queue and
 * returns -ECANCELED / -CORIO_EDEADLINE holding nothing, and the next
 * release goes to the next waiter.  One whose cancel arrives after the
 * hand-over returns success holding what it was given (the lock, the unit,
 * its barrier index), so no wake-up is lost and nothing is left held by
 * nobody; the cancellation stays pending and ends its next wait.  Like
 * every suspending call, acquiring checks for a pending cancel or passed
 * deadline first, even when nothing is held.  Only tasks can own a lock.
 * None of them may be reinitialised while a task waits on it. */

/* A mutual-exclusion lock owned by a task. */
typedef struct corio_lock {
    void *opaque[4];
} corio_lock;

/* Initialise lk as unlocked.  Does not suspend. */
CORIO_API void corio_lock_init(corio_lock *lk);

/* Acquire lk, waiting while another task holds it.
 * Suspends while lk is held.  Returns 0, -ECANCELED, -CORIO_EDEADLINE, or
 * -EDEADLK if the caller holds lk already (it is not recursive). */
CORIO_API int corio_lock_acquire(corio_lock *lk);

/* Acquire lk if it is free and nobody waits for it.  Does not suspend.
 * Returns 0, -EBUSY (also if the caller holds it), or -EPERM outside a
 * task. */
CORIO_API int corio_lock_try_acquire(corio_lock *lk);

/* Release lk, handing it to the longest waiter if there is one.
 * Does not suspend.  Returns 0, or -EPERM if the caller does not hold it. */
CORIO_API int corio_lock_release(corio_lock *lk);

/* True while some task holds lk. */
CORIO_API bool corio_lock_locked(const corio_lock *lk);

/* A condition variable bound to a lock (asyncio.Condition). */
typedef struct corio_cond {
    void *opaque[4];
} corio_cond;

/* Initialise c over lk, which must outlive it.  Does not suspend. */
CORIO_API void corio_cond_init(corio_cond *c, corio_lock *lk);

/* Release the lock, wait for a notify, then take the lock back.
 * The caller must hold the lock; it holds it again when the call returns,
 * whatever the result: after a cancellation or deadline the lock is
 * re-acquired before returning (without giving up on that wait), as
 * asyncio does.  A notified task queues for the lock behind the tasks
 * already waiting for it; a cancel that arrives after the notify does not
 * undo it (the call returns 0, the cancel stays pending).  Suspends.
 * Returns 0, -ECANCELED, -CORIO_EDEADLINE, -EPERM if the caller does not
 * hold the lock (nothing waits), or -EINVAL (c NULL or made over a NULL
 * lock). */
CORIO_API int corio_cond_wait(corio_cond *c);

/* Wait until pred(arg) is true (asyncio's Condition.wait_for).
 * pred is called with the lock held, first before any waiting and again
 * after every wake-up.  Returns 0 once it is true (without suspending if it
 * is at once); otherwise as corio_cond_wait, and -EINVAL for a NULL pred. */
CORIO_API int corio_cond_wait_until(corio_cond *c, bool (*pred)(void *arg), void *arg);

/* Wake the longest-waiting task (it runs once it has the lock again).
 * With no task waiting it does nothing (a notify is not remembered).
 * The caller must hold the lock.  Does not suspend.  Returns 0 or -EPERM. */
CORIO_API int corio_cond_notify(corio_cond *c);

/* Wake every waiting task, in the order they started waiting.
 * The caller must hold the lock.  Does not suspend.  Returns 0 or -EPERM. */
CORIO_API int corio_cond_notify_all(corio_cond *c);

/* A counting semaphore (asyncio.Semaphore / BoundedSemaphore). */
typedef struct corio_sem {
    void *opaque[4];
} corio_sem;

/* Initialise s with value units.  Does not suspend. */
CORIO_API void corio_sem_init(corio_sem *s, unsigned value);

/* Initialise s as bounded: releasing it above its initial value is an
 * error.  Does not suspend. */
CORIO_API void corio_sem_init_bounded(corio_sem *s, unsigned value);

/* Take one unit, waiting while there is none.
 * Suspends while the value is 0 (or others wait first).  Returns 0,
 * -ECANCELED or -CORIO_EDEADLINE. */
CORIO_API int corio_sem_acquire(corio_sem *s);

/* Take one unit if one is free and nobody waits.  Does not suspend.
 * Returns 0 or -EAGAIN. */
CORIO_API int corio_sem_try_acquire(corio_sem *s);

/* Give one unit back, handing it to the longest waiter if there is one.
 * Does not suspend.  Returns 0, or -EOVERFLOW (nothing changes) for a
 * bounded semaphore already at its initial value, or at UINT_MAX. */
CORIO_API int corio_sem_release(corio_sem *s);

/* The units free now. */
CORIO_API unsigned corio_sem_value(const corio_sem *s);

/* A barrier for a fixed number of tasks (asyncio.Barrier). */
typedef struct corio_barrier {
    void *opaque[6];
} corio_barrier;

/* Initialise b for parties tasks.  Does not suspend.  Returns 0 or -EINVAL
 * (parties 0 or above INT_MAX; b then fails every wait with -EINVAL). */
CORIO_API int corio_barrier_init(corio_barrier *b, unsigned parties);

/* Wait until parties tasks are waiting, then release them all.
 * The barrier then starts over.  Suspends (except in the last task to
 * arrive).  Returns the task's arrival index, 0 .. parties-1: its place in
 * arrival order among the tasks released together (the last arrival gets
 * parties-1; a task that left does not leave a gap);
 * -CORIO_EBROKEN if the barrier is aborted or reset meanwhile, or is
 * broken; -ECANCELED / -CORIO_EDEADLINE (the task leaves the barrier, which
 * then waits for one more arrival). */
CORIO_API int corio_barrier_wait(corio_barrier *b);

/* Return b to its empty state; tasks waiting get -CORIO_EBROKEN.
 * Does not suspend.  Returns 0. */
CORIO_API int corio_barrier_reset(corio_barrier *b);

/* Break b for good: tasks waiting, and every later corio_barrier_wait, get
 * -CORIO_EBROKEN (until corio_barrier_reset).  Does not suspend.
 * Returns 0. */
CORIO_API int corio_barrier_abort(corio_barrier *b);

/* Tasks waiting at b now. */
CORIO_API unsigned corio_barrier_waiting(const corio_barrier *b);

/* ------------------------------------------------------------------ */
/* Queues (asyncio.Queue, LifoQueue, PriorityQueue)                    */
/* ------------------------------------------------------------------ */

typedef struct corio_queue corio_queue;

typedef enum corio_queue_kind {
    CORIO_QUEUE_FIFO = 0,
    CORIO_QUEUE_LIFO,
    CORIO_QUEUE_PRIORITY, /* smallest first by compare; equal items in put order */
} corio_queue_kind;

typedef struct corio_queue_config {
    corio_queue_kind kind;
    size_t capacity; /* most items held; 0 = unbounded */
    /* 0: items are pointers, stored as given: corio_queue_put(q, p) and
     * corio_queue_get(q, &p).  Else every item is item_size bytes, copied
     * in from and out to the caller's memory: put(q, &v), get(q, &v). */
    size_t item_size;
    /* PRIORITY only (required there): < 0, 0, > 0 as a sorts before, with,
     * after b.  a and b are the items themselves for pointer queues, else
     * pointers to the copies. */
    int (*compare)(const void *a, const void *b);
    /* Optional: called for every item the queue throws away
     * (corio_queue_shutdown(q, true), corio_queue_free), with the item as
     * compare gets it, so pointer items are not leaked. */
    void (*drop)(void *item);
} corio_queue_config;

/* Create a queue.  cfg NULL means an unbounded FIFO of pointers.  Storage
 * grows in whole blocks, so a put costs no allocation of its own, and
 * capacity bounded queues allocate it all up front.  Does not suspend.
 * Returns the queue, or NULL with errno EINVAL (kind outside the enum,
 * PRIORITY without compare, sizes that overflow) or ENOMEM. */
CORIO_API corio_queue *corio_queue_new(const corio_queue_config *cfg);

/* Free q and the items still in it (drop is called for each).  No task may
 * be waiting on q (one that is wakes with -ESHUTDOWN and must not touch q
 * again).  Does not suspend. */
CORIO_API void corio_queue_free(corio_queue *q);

/* Put an item, waiting while q is full.
 * Putters waiting on a full queue are served in order: a get that frees a
 * slot moves the longest waiter's item in at once, so a putter cancelled
 * after that still returns 0.  Suspends while q is full.  A cancelled
 * task (or one past its deadline) gets -ECANCELED / -CORIO_EDEADLINE at
 * once, even when there is room, as from every suspending call; try_put
 * still works there.  Returns 0,
 * -ESHUTDOWN once q is shut down (also for a putter waiting when that
 * happens), -ENOMEM when an unbounded q cannot grow, -ECANCELED or
 * -CORIO_EDEADLINE (nothing is put in these cases), -EPERM if it would
 * wait outside a task. */
CORIO_API int corio_queue_put(corio_queue *q, const void *item);

/* Put an item if there is room.  Does not suspend.  Returns 0, -EAGAIN
 * when full, -ESHUTDOWN, -ENOMEM (as corio_queue_put). */
CORIO_API int corio_queue_try_put(corio_queue *q, const void *item);

/* Take the next item into *item, waiting while q is empty.
 * Getters are served in the order they started waiting: a put hands its
 * item to the longest waiter at once (copied into its *item), so a later
 * try_get cannot take it and a getter cancelled after that still returns
 * 0 with it.  Suspends while q is empty.  A cancelled task (or one past
 * its deadline) gets -ECANCELED / -CORIO_EDEADLINE at once, even when an
 * item is there; try_get still works there.  Returns 0, -ESHUTDOWN once q is shut down and
 * empty (also for a getter waiting then), -ECANCELED or -CORIO_EDEADLINE
 * (nothing is taken), -EPERM if it would wait outside a task. */
CORIO_API int corio_queue_get(corio_queue *q, void *item);

/* Take the next item if there is one.  Does not suspend.  Returns 0,
 * -EAGAIN when empty, -ESHUTDOWN when shut down and empty. */
CORIO_API int corio_queue_try_get(corio_queue *q, void *item);

/* Say that an item taken from q has been dealt with (Queue.task_done).
 * Does not suspend.  Returns 0, or -EOVERFLOW if called more times than
 * items were put. */
CORIO_API int corio_queue_task_done(corio_queue *q);

/* Wait until every item put has been taken and marked done (Queue.join).
 * Suspends unless that holds.  Returns 0, -ECANCELED or
 * -CORIO_EDEADLINE, -EPERM if it would wait outside a task. */
CORIO_API int corio_queue_join(corio_queue *q);

/* Shut q down (Python 3.13's Queue.shutdown).
 * Putters fail at once with -ESHUTDOWN from now on (waiting ones too);
 * getters take what is left, then fail with -ESHUTDOWN.  With immediate,
 * the items left are thrown away (drop is called for each, and each counts
 * as done for corio_queue_join), so getters fail at once too.  Calling it
 * again is harmless (immediate still empties q).  Does not suspend.
 * Returns 0. */
CORIO_API int corio_queue_shutdown(corio_queue *q, bool immediate);

/* Items in q now. */
CORIO_API size_t corio_queue_size(const corio_queue *q);

/* ------------------------------------------------------------------ */
/* Channels across threads and loops                                   */
/* ------------------------------------------------------------------ */

/* A bounded multi-producer, multi-consumer channel between any threads:
 * tasks on any loop, and plain threads.  A task that must wait suspends
 * (its loop runs the other tasks, and is woken through its usual wake-up,
 * as corio_loop_ref_call_soon does); a plain thread blocks.  No lock is
 * held while anyone waits.  Thread-safe, unlike the rest of this header.
 * Items come out in the order they went in (so each sender's items reach
 * the receivers in its order); waiting senders, and waiting receivers, are
 * served in the order they started waiting, and newcomers do not overtake
 * them.  A task waiting on a channel
 * is never reported as stalled (another thread may end its wait), and a
 * channel outlives the loops that used it: a task still waiting when its
 * loop ends is cancelled like any other.  Cancellation and deadlines are
 * exact: a waiting task that is cancelled just as another thread hands it
 * an item (or takes its item) either returns 0 with the hand-over done
 * (the cancellation stays pending for its next wait) or returns the
 * error with nothing taken or sent, never anything in between. */
typedef struct corio_channel corio_channel;

/* Create a channel holding up to capacity items (at least 1) of item_size
 * bytes each, or of pointers if item_size is 0 (as for queues).  The
 * storage is allocated up front, so sending allocates nothing.  Does not
 * suspend.  Returns NULL with errno EINVAL (capacity 0 or above 2^48,
 * item_size above 2^48) or ENOMEM. */
CORIO_API corio_channel *corio_channel_new(size_t capacity, size_t item_size);

/* Free ch.  Every thread and task must be done with it (none may be
 * waiting on it).  Items still in it are discarded. */
CORIO_API void corio_channel_free(corio_channel *ch);

/* Send an item, waiting while ch is full.
 * item points to the item_size bytes to copy in; for a pointer channel
 * (item_size 0) item is the pointer sent, NULL included.  From a task:
 * suspends; from a plain thread: blocks.  Returns 0, -ESHUTDOWN once ch
 * is closed (also for a sender waiting then), -ECANCELED /
 * -CORIO_EDEADLINE (tasks; nothing is sent), -EPERM on a loop's thread
 * outside any task (it would block the loop). */
CORIO_API int corio_channel_send(corio_channel *ch, const void *item);

/* Send if there is room.  Never waits.  Returns 0, -EAGAIN, -ESHUTDOWN. */
CORIO_API int corio_channel_try_send(corio_channel *ch, const void *item);

/* Receive the oldest item, waiting while ch is empty.
 * The item is copied to item (item_size bytes; for a pointer channel item
 * is a void ** that gets the pointer).  From a task: suspends; from a
 * plain thread: blocks.  Returns 0, -ESHUTDOWN once ch is closed and empty
 * (also for a receiver waiting then), -ECANCELED / -CORIO_EDEADLINE
 * (tasks; nothing is taken), -EPERM on a loop's thread outside any task. */
CORIO_API int corio_channel_recv(corio_channel *ch, void *item);

/* Receive if an item is there.  Never waits.  Returns 0, -EAGAIN,
 * -ESHUTDOWN (closed and empty). */
CORIO_API int corio_channel_try_recv(corio_channel *ch, void *item);

/* Close ch: senders fail with -ESHUTDOWN from now on (waiting ones too);
 * receivers take what is left, then get -ESHUTDOWN.  Idempotent.  Never
 * waits.  Returns 0. */
CORIO_API int corio_channel_close(corio_channel *ch);

/* ------------------------------------------------------------------ */
/* Introspection and debug mode                                        */
/* ------------------------------------------------------------------ */

/* The live tasks of the running loop (asyncio.all_tasks): stores up to
 * cap of them in out (out may be NULL when cap is 0) and returns how many
 * there are, which may exceed cap.  Live means spawned and not ended: the
 * caller, tasks not started yet and corio's own tasks count; a task that
 * has ended (even if its handle is not joined yet) does not.  0 outside a
 * loop, and for out NULL with cap above 0.  Does not suspend. */
CORIO_API size_t corio_all_tasks(corio_task **out, size_t cap);

/* Write a report of every live task of the running loop to fd: its name,
 * state (running, ready, waiting), what it waits on, where it was spawned,
 * and a backtrace of each suspended task's stack (what Go prints on
 * SIGQUIT).  Does not suspend.  Returns 0, -EPERM outside a loop, or the
 * write error.
 * The report starts with "corio: task dump (backend B): N live task(s)",
 * ends with "corio: end of task dump", and has per task a line
 * "task 'name' ADDR: STATE" ("task (unnamed) ..." without a name; STATE is
 * "running", "ready", "ready, not started yet" or "waiting on WHAT", with
 * the fd, the time left of a sleep, cancellation and deadline when they
 * apply), then "  spawned at SITE" and the frames, one per line
 * ("    #0 SITE"; a task not started yet shows the function it will run).
 * A SITE reads module(function+0xoff) [address], or module(+0xoff)
 * [address] for a function dladdr cannot name: link the program with
 * -rdynamic to see its own functions by name, or feed module and offset
 * to addr2line.  To take a suspended task's backtrace the dump resumes it
 * for an instant on its own stack (nothing about the task changes); one
 * with less than 8 KiB of stack left is listed without it.  Written with
 * write(2) as it goes, nothing allocated per task. */
CORIO_API int corio_dump_tasks(int fd);

/* Make signal signo write that report to stderr, at the loop's next turn,
 * for the loop running on this thread, while it runs; 0 turns it off.
 * Installs a handler for signo (the previous one is restored when turned
 * off or when the loop ends); the handler only sets a flag and wakes the
 * loop, so the report comes once the running task step ends.  Calling it
 * again with another signal moves the report to that one.  Does not
 * suspend.  Returns 0, -EINVAL for a signal that cannot be caught (and
 * for the faults SIGSEGV, SIGBUS, SIGILL, SIGFPE, whose handlers must not
 * simply return), -EPERM outside a loop, -EBUSY if another loop has it
 * on or signo is used by a signal watch or handler (corio_signal_*). */
CORIO_API int corio_dump_tasks_on_signal(int signo);

/* ------------------------------------------------------------------ */
/* Streams (asyncio StreamReader + StreamWriter in one object)         */
/* ------------------------------------------------------------------ */

typedef struct corio_stream corio_stream;

/* Wrap fd in a stream, which owns fd from then on.
 * On success fd is the stream's: corio_stream_close closes it.  On
 * failure (NULL) fd stays the caller's, open and unchanged.  A connected
 * stream socket is made non-blocking and close-on-exec.
 * Any other fd — a pipe, a tty, a regular file, /dev/null — works too and
 * keeps its O_NONBLOCK setting (its file description is often shared, as
 * stdin's is with the shell): each read and write is made non-blocking on
 * its own, waiting for readiness in between, so the loop never blocks.  On
 * such fds write_eof only flushes (there is no half-close), and a write to
 * a pipe whose reader is gone fails with -EPIPE (no SIGPIPE: see the
 * conventions above).  Does not suspend.  NULL with errno EBADF or ENOMEM. */
CORIO_API corio_stream *corio_stream_from_fd(int fd);

/* A new stream reading standard input (asyncio's connect_read_pipe on sys.stdin).
 * A task can await a line from the user while others run, whether stdin
 * is a tty, a pipe, a regular file or /dev/null.  It reads a duplicate of
 * fd 0, so closing the stream leaves fd 0 open.  Does not suspend.  NULL
 * with errno set. */
CORIO_API corio_stream *corio_stream_stdin(void);

/* Read up to n bytes.
 * Returns bytes read (>0), 0 at EOF, or -errno (-ECONNRESET, -ECANCELED,
 * -CORIO_EDEADLINE, ...).  Suspends only when nothing is buffered. */
CORIO_API ssize_t corio_stream_read(corio_stream *s, void *buf, size_t n);

/* Read exactly n bytes.
 * Returns n, or -CORIO_EINCOMPLETE when EOF came first: the bytes that did
 * arrive are in buf and their count is in *got (got may be NULL).
 * Suspends while fewer than n bytes are buffered.  Other errors as
 * corio_stream_read; when cancelled or
 * past its deadline, the bytes already taken go back into the stream (a
 * later read returns them) and *got is 0 — unless there is no memory to
 * put them back: then it returns -ENOMEM with the bytes in buf and their
 * count in *got, and the read side fails with -ENOMEM from then on. */
CORIO_API ssize_t corio_stream_readexactly(corio_stream *s, void *buf, size_t n, size_t *got);

/* Read through the first occurrence of a separator, without copying.
 * sep is sep_len bytes (1..64).  On success *out points at the data inside
 * the stream's buffer (not NUL-terminated), valid until the next call on
 * this stream, and the length including the separator is returned (> 0).
 * Suspends while no separator is buffered.  Errors, with *out NULL and
 * nothing consumed (everything read so far stays buffered, in order, for
 * the next call of any read function):
 *  - -CORIO_ELIMIT: the stream's limit (corio_stream_set_limit) was
 *    reached without a separator;
 *  - -CORIO_EINCOMPLETE: EOF came before a separator (corio_stream_read returns
 *    the partial data);
 *  - -EINVAL for a NULL sep or out, or sep_len outside 1..64; a read error,
 *    -ECANCELED or -CORIO_EDEADLINE. */
CORIO_API ssize_t corio_stream_readuntil(corio_stream *s, const void *sep, size_t sep_len, const char **out);

/* Copy one line into buf and NUL-terminate it.
 * The line ends in '\n' (included) and is copied into buf of size cap.
 * Returns the line's length; an unterminated tail at EOF is returned as a
 * line (as asyncio does); 0 at EOF with nothing buffered.  Suspends while
 * no full line is buffered.  Errors, with nothing consumed (the whole line
 * stays buffered, so a larger buffer, a higher limit or corio_stream_read gets it
 * all): -CORIO_ELIMIT when the line is longer than the stream's limit or
 * does not fit in cap with its NUL; otherwise a read error, -ECANCELED or
 * -CORIO_EDEADLINE. */
CORIO_API ssize_t corio_stream_readline(corio_stream *s, char *buf, size_t cap);

/* True once EOF was received and everything buffered has been consumed. */
CORIO_API bool corio_stream_at_eof(const corio_stream *s);

/* Set the most bytes buffered while searching for a separator (default 64 KiB).
 * It also bounds input nobody reads: a stream holds at most
 * max(limit, 64 KiB) + 16 KiB received and unread (on io_uring it keeps
 * receiving in the background up to that; elsewhere it receives only when
 * a read asks), then leaves the rest in the socket, where TCP flow control
 * slows the peer.  Does not suspend. */
CORIO_API void corio_stream_set_limit(corio_stream *s, size_t limit);

/* Queue n bytes for sending; never suspends.
 * The data is copied (or sent at once when nothing is queued).  Returns 0,
 * -EPIPE after write_eof/close, or the error that broke the connection
 * earlier. */
CORIO_API int corio_stream_write(corio_stream *s, const void *buf, size_t n);

/* Wait until the write buffer is below the low-water mark.
 * Returns at once if it is already below the high mark.  Suspends.
 * Returns 0 or the connection's error (-EPIPE, -ECONNRESET, -ECANCELED,
 * -CORIO_EDEADLINE). */
CORIO_API int corio_stream_drain(corio_stream *s);

/* Set the write buffer's water marks (defaults 64 KiB / 16 KiB). */
CORIO_API void corio_stream_set_write_limits(corio_stream *s, size_t high, size_t low);

/* Bytes queued for sending. */
CORIO_API size_t corio_stream_write_buffer_size(const corio_stream *s);

/* Flush what is buffered, then shut down the sending side (half-close).
 * Suspends while flushing.  Returns 0 or an error as corio_stream_drain. */
CORIO_API int corio_stream_write_eof(corio_stream *s);

/* Close the stream and give up the handle: s must not be used again.
 * Never fails, never suspends.  Data still queued keeps being sent in the
 * background (like an asyncio transport's close) for up to 10 s, after
 * which it is dropped; then the fd is closed and the memory freed.  Use
 * corio_stream_aclose to wait for the flush and learn its result.  Another
 * task still blocked reading or draining s is woken with an error (-EBADF
 * / -EPIPE). */
CORIO_API void corio_stream_close(corio_stream *s);

/* Flush buffered data, then close and free s as corio_stream_close does.
 * Suspends while flushing (and honours cancellation and deadlines); s is
 * closed whatever the result.  Returns the flush result. */
CORIO_API int corio_stream_aclose(corio_stream *s);

/* The underlying fd, still owned by the stream. */
CORIO_API int corio_stream_fd(const corio_stream *s);

/* Local / peer address of the stream's socket, into *addr.
 * *len (len may be NULL; it is only written) receives the address's
 * length.  Does not suspend.  Returns 0 or -errno (-ENOTSOCK when the
 * stream is not over a socket). */
CORIO_API int corio_stream_sockname(const corio_stream *s, struct sockaddr_storage *addr, socklen_t *len);
CORIO_API int corio_stream_peername(const corio_stream *s, struct sockaddr_storage *addr, socklen_t *len);

/* ------------------------------------------------------------------ */
/* TCP                                                                 */
/* ------------------------------------------------------------------ */

typedef struct corio_server corio_server;

/* A connection handler: runs as its own task, one per connection.  The
 * stream belongs to the handler; if it is still open when the handler
 * returns, corio closes it. */
typedef void (*corio_conn_fn)(corio_stream *s, void *arg);

typedef struct corio_server_config {
    int backlog;     /* listen(2) backlog; 0 = 4096 */
    bool reuse_port; /* SO_REUSEPORT */
    /* true: keep Nagle's algorithm (TCP_NODELAY off); default false: small writes leave at once */
    bool nagle;
    size_t stack_size; /* for handler tasks; 0 = the loop's default; above SIZE_MAX / 128: -EINVAL */
    unsigned mode;     /* Unix sockets: the socket file's permission bits (0 = as the umask leaves them) */
    /* Unix sockets: every connection's stream receives the fds its peer
     * passes (as after corio_stream_set_receive_fds(s, true)); default
     * false: passed fds are dropped by the kernel and receiving costs what
     * it costs on TCP.  Ignored for TCP sockets. */
    bool receive_fds;
    /* A server TLS configuration (corio_tls_server_new), or NULL for plain
     * TCP.  Each connection's task runs the handshake before handler is
     * called; a connection whose handshake fails is closed without calling
     * handler.  The server takes its own reference. */
    struct corio_tls *tls;
} corio_server_config;

/* Bind and listen on host:port and run handler(stream, arg) for every connection.
 * host NULL or "" means all interfaces, IPv6 and IPv4 where available; a
 * name is resolved without blocking the loop; port 0 picks an ephemeral
 * port.  Every connection runs handler in a new task.  Suspends (name resolution).
 * Returns 0 and *out, or -errno (-EADDRINUSE, -EACCES, -ENOENT for an
 * unknown host, ...).  cfg may be NULL. */
CORIO_API int corio_server_start(const char *host, uint16_t port, corio_conn_fn handler, void *arg,
                                 const corio_server_config *cfg, corio_server **out);

/* Wait until the server is closed by corio_server_close from another task.
 * Suspends.  Returns 0 once closed, or -ECANCELED / -CORIO_EDEADLINE. */
CORIO_API int corio_server_serve_forever(corio_server *srv);

/* Address of the server's i-th listening socket, into *addr.
 * A server started on port 0 shows the chosen port here.  *len (len may
 * be NULL; it is only written) receives the address's length.  Does not
 * suspend.  Returns 0, or -ENOENT past the last socket. */
CORIO_API int corio_server_sockname(const corio_server *srv, unsigned i, struct sockaddr_storage *addr,
                                    socklen_t *len);

/* The bound port of the first listening socket; 0 if there is none. */
CORIO_API uint16_t corio_server_port(const corio_server *srv);

/* Stop accepting, wait up to grace_ms for the handlers, cancel the rest, free srv.
 * Accepting stops at once (a connection whose accept completed as it
 * stopped gets its handler too, never dropped); handlers still running
 * after grace_ms are cancelled and awaited.  Suspends.  Returns 0, or -ECANCELED / -CORIO_EDEADLINE
 * if the calling task was interrupted (the handlers are cancelled and
 * awaited all the same before it returns).  May be called from one of the
 * server's own handlers, which is then neither waited for nor cancelled.
 * Several tasks may call it for the same server: the first one closes it,
 * the others wait until that is done and return 0 (srv is freed once). */
CORIO_API int corio_server_close(corio_server *srv, uint64_t grace_ms);

/* Connect to host:port and return a stream in *out.
 * The name is resolved without blocking the loop and every address is
 * tried in order.  TCP_NODELAY is set.  Suspends.  Returns 0 or -errno
 * (-ECONNREFUSED, -ENOENT for an unknown host, -ECANCELED,
 * -CORIO_EDEADLINE). */
CORIO_API int corio_stream_connect(const char *host, uint16_t port, corio_stream **out);

/* Format an address as "host:port" ("[v6]:port" for IPv6) into buf of size cap.
 * A Unix socket's address is its path, "@name" for an abstract one and
 * "(unnamed)" for an unbound one (a client's end).  Returns buf; NULL
 * with errno EINVAL if cap is 0. */
CORIO_API char *corio_addr_format(const struct sockaddr *addr, char *buf, size_t cap);

/* ------------------------------------------------------------------ */
/* Unix domain sockets (asyncio.start_unix_server)                    */
/* ------------------------------------------------------------------ */

/* Stream servers and clients over AF_UNIX, with the TCP API: a
 * corio_server and corio_streams.
 *
 * Addresses.  A path names a socket file ("/run/app.sock", "app.sock"
 * relative to the working directory).  A leading '@' names a socket in
 * Linux's abstract namespace instead, as Go and systemd write it ("@app"
 * is sun_path "\0app", with exactly that length): no file, nothing to
 * clean up, gone with the last socket, and no file permissions (anyone in
 * the network namespace may connect).  A file whose name starts with '@'
 * is "./@name".  A path, or an abstract name after its '@', has at most
 * 107 bytes (sun_path holds 108 with the terminating NUL or the leading
 * one): longer is -ENAMETOOLONG; "" is -EINVAL.
 *
 * Passing fds (SCM_RIGHTS).  Every Unix stream can send fds with its
 * data (corio_stream_write_fds).  Receiving them is opt-in, as with
 * libuv's ipc pipes and Go's ReadMsgUnix: a Unix stream receives as a TCP
 * stream does (a plain recv, io_uring's multishot recv), and the kernel
 * drops (closes) any fds a peer passes it; only a stream asked to
 * (corio_stream_set_receive_fds before its first read, or a server's
 * receive_fds) receives with recvmsg, so that passed fds are never
 * dropped: they wait in the stream until claimed (corio_stream_read_fds,
 * corio_stream_take_fds) and are closed with the stream if they never
 * are.  That costs some CPU per receive (a recvmsg, no multishot recv),
 * which is why it is not the default. */

/* Listen on a Unix stream socket and run handler(stream, arg) for every connection
 * (asyncio.start_unix_server). The server is a corio_server as for TCP: corio_server_serve_forever,
 * corio_server_sockname (an AF_UNIX address) and corio_server_close work
 * unchanged; corio_server_port is 0.  "@" alone asks the kernel for a
 * unique abstract name (the port 0 of Unix sockets; sockname shows it).
 * A socket file already at path is replaced if nobody listens on it (a
 * connect is refused: its server died without removing it); if a server
 * answers there, -EADDRINUSE and that file is left alone.  Anything else
 * at path (a regular file, a directory, a FIFO) is never removed:
 * -EADDRINUSE.  cfg (may be NULL): backlog and stack_size as for TCP;
 * receive_fds makes every connection's stream receive passed fds; mode,
 * when not 0, sets the socket file's permission bits (as chmod, before
 * listen(2), so nobody connects in between; connecting needs write
 * permission), otherwise the umask decides; reuse_port and nagle do not
 * apply and are ignored.  corio_server_close removes the socket file the
 * server created, if path still names that same file (a file another
 * server has put there since is left alone), as asyncio 3.13 does.
 * Does not suspend (must be called from a task).  Returns 0 and *out, or
 * -errno: -EINVAL (path "" or NULL), -ENAMETOOLONG, -EADDRINUSE, -EACCES,
 * -ENOENT (a directory of the path is missing), -EPERM outside a task. */
CORIO_API int corio_server_start_unix(const char *path, corio_conn_fn handler, void *arg,
                                      const corio_server_config *cfg, corio_server **out);

/* Connect to the Unix stream socket at path (asyncio.open_unix_connection).
 * path as for corio_server_start_unix ("@name" for the abstract
 * namespace).  While the server's backlog is full the connect is retried
 * (a blocking connect(2) would wait), backing off to every 10 ms, until it
 * succeeds, fails otherwise, or the task is cancelled or past its
 * deadline.  Suspends.  Returns 0 and *out, or -errno: -ENOENT (no such
 * socket), -ECONNREFUSED (nobody listens: a stale socket file),
 * -EACCES, -ENAMETOOLONG, -EINVAL, -ECANCELED, -CORIO_EDEADLINE. */
CORIO_API int corio_stream_connect_unix(const char *path, corio_stream **out);

/* Credentials of the process at the other end of a Unix stream (SO_PEERCRED).
 * The pid, uid and gid the peer had when it connected (or made the
 * socketpair), as the kernel recorded them: they cannot be forged by the
 * peer.  Each out pointer may be NULL.  Does not suspend.  Returns 0,
 * -EOPNOTSUPP for a socket that is not AF_UNIX, -ENOTSOCK for a stream
 * not over a socket. */
CORIO_API int corio_stream_peercred(const corio_stream *s, pid_t *pid, uid_t *uid, gid_t *gid);

/* Make a Unix stream receive the fds its peer passes (SCM_RIGHTS), or not.
 * on = true: from the first receive on, every receive is a recvmsg and
 * passed fds wait in the stream for corio_stream_read_fds /
 * corio_stream_take_fds (see there); false (the default, except for the
 * streams of a server with receive_fds): the kernel drops passed fds.
 * Call it before the stream's first read: fds that came with bytes
 * already received are gone.  Does not suspend.  Returns 0 (also when the
 * stream is already so), -EBUSY once a read has received (or waits to
 * receive) and on differs from the current setting, -EOPNOTSUPP for a
 * socket that is not AF_UNIX and for on = true on a TLS stream (TLS
 * carries no fds: its read_fds / take_fds are -EOPNOTSUPP whatever was
 * set before), -ENOTSOCK for a stream not over a socket, -EINVAL for
 * NULL. */
CORIO_API int corio_stream_set_receive_fds(corio_stream *s, bool on);

/* Queue n bytes with nfds file descriptors attached, passed to the peer (SCM_RIGHTS).
 * Like corio_stream_write (never suspends, the bytes keep their place in
 * the stream), with the fds travelling with the first of these bytes: the
 * peer's corio_stream_read_fds returns them with these bytes (see there),
 * if the peer receives fds; otherwise its kernel closes them.  Works on
 * every Unix stream, whether it receives fds or not.
 * The caller's fds stay the caller's: they are duplicated when the bytes
 * have to wait in the queue, so they may be closed as soon as this
 * returns.  The peer gets new fds for the same open files.  n must be at
 * least 1 (a stream cannot pass fds without a byte) and nfds 1..253 (the
 * kernel's SCM_MAX_FD).  Returns 0; -EINVAL for those limits or a NULL
 * pointer; -EBADF if one of fds is not open (nothing is sent); -EOPNOTSUPP
 * on a stream that is not a Unix socket; -ETOOMANYREFS when the kernel's
 * limit on fds in flight is reached (nothing is sent); otherwise as
 * corio_stream_write. */
CORIO_API int corio_stream_write_fds(corio_stream *s, const void *buf, size_t n, const int *fds, size_t nfds);

/* Read up to n bytes and the file descriptors that came with them (SCM_RIGHTS).
 * Only on a stream that receives fds (corio_stream_set_receive_fds, a
 * server's receive_fds): on any other, -EOPNOTSUPP and nothing is read
 * (its receives drop passed fds, so "none came" would be a guess).
 * *nfds is in: the room in fds, out: how many were stored (nfds is
 * required; fds may be NULL when *nfds is 0).  The fds belong to the
 * caller from then on and are close-on-exec.  A read takes the bytes of
 * at most one send that carried fds: it stops before bytes that carry fds
 * unless they are its first bytes.  The kernel may deliver a send's fds
 * along with bytes written just before that send (it joins them in one
 * receive); then they come with the read of those bytes: earlier than
 * their own bytes, never later.  Fds of bytes consumed by any other read
 * function (readline, readexactly, ...) wait in the stream; this call
 * (first) and corio_stream_take_fds hand them over, in arrival order;
 * fds beyond *nfds's room wait the same way.  Fds never handed over are
 * closed when the stream closes.  flags (may be NULL) gets MSG_CTRUNC when
 * fds sent with the data handed over were lost (the kernel could not
 * install them, e.g. at this process's RLIMIT_NOFILE), else 0.  Returns
 * bytes read (> 0), 0 at EOF (with any fds still waiting), or -errno as
 * corio_stream_read.  Suspends only when nothing is buffered. */
CORIO_API ssize_t corio_stream_read_fds(corio_stream *s, void *buf, size_t n, int *fds, size_t *nfds,
                                        int *flags);

/* Take file descriptors that came with bytes already read, in arrival order.
 * For fds whose bytes were read by readline, readuntil, readexactly or
 * read: up to cap of them into fds, owned by the caller, close-on-exec.
 * flags (may be NULL) as for corio_stream_read_fds.  Does not suspend.
 * Returns how many were stored (0 when none wait), -EOPNOTSUPP on a
 * stream that does not receive fds, -EINVAL (NULL s, or NULL fds with
 * cap > 0). */
CORIO_API int corio_stream_take_fds(corio_stream *s, int *fds, size_t cap, int *flags);

/* ------------------------------------------------------------------ */
/* TLS (asyncio's ssl=, tokio-rustls): TLS as a property of a stream  */
/* ------------------------------------------------------------------ */

/* A TLS stream is a corio_stream: read, readexactly, readuntil, readline,
 * write, drain, write_eof, close and aclose work unchanged and carry
 * plaintext; the socket sees only TLS records, sent and received by
 * corio's own I/O (io_uring or epoll; OpenSSL never touches the fd), and
 * drain means the ciphertext reached the kernel.  Built on OpenSSL 3
 * (libssl); a corio built without it has every call below return
 * -EOPNOTSUPP and corio_tls_available() false.
 *
 * Verification is on by default: a client checks the server's chain
 * against the system's CA store (or ca_file/ca_dir) and the server's name
 * against the name it connected to.  A failure is -CORIO_ETLSVERIFY, and
 * corio_stream_tls_error says why ("certificate has expired", "hostname
 * mismatch", "unable to get local issuer certificate", ...).
 *
 * Closing: corio_stream_write_eof and corio_stream_aclose send TLS's
 * close_notify before the TCP FIN (corio_stream_close sends it in the
 * background, as it flushes).  A read returns 0 (EOF) only after the
 * peer's close_notify; a connection that ends without one (a truncation
 * attack, or a peer that crashed) reads as -CORIO_ETLSTRUNC, never as EOF,
 * so a cut-off body cannot pass for a whole one. */

/* TLS errors (negative, as every error).  corio_stream_tls_error has the details. */
#define CORIO_ETLS 4101       /* TLS protocol error: bad record, handshake failure, alert from the peer */
#define CORIO_ETLSVERIFY 4102 /* the peer's certificate did not verify (chain, expiry, host name) */
#define CORIO_ETLSTRUNC 4103  /* the connection ended without TLS close_notify */

/* A TLS configuration (OpenSSL's SSL_CTX): certificates, trust, protocol
 * choices.  Made once, shared by every stream and server that uses it;
 * reference-counted, so corio_tls_free may come while streams still use
 * it.  Usable from any thread; a stream uses it on its loop. */
typedef struct corio_tls corio_tls;

/* One certificate chain and its private key, PEM files. */
typedef struct corio_tls_cert {
    const char *cert_file; /* the leaf first, then intermediates */
    const char *key_file;  /* unencrypted PEM private key (RSA, ECDSA, Ed25519) */
} corio_tls_cert;

/* Options of corio_tls_client_new / corio_tls_server_new (all zero = defaults). */
typedef struct corio_tls_options {
    /* Server: the certificates.  The first is the default; the others are
     * picked by SNI when the client's server name matches one of their
     * names (subjectAltName DNS entries, wildcards as RFC 6125).  Client:
     * at most one, sent when the server asks for it (mTLS). */
    const corio_tls_cert *certs;
    size_t n_certs;
    /* Trust anchors, PEM: a file and/or an OpenSSL hashed directory.
     * Both NULL: the system store (client), or no client verification
     * (server, unless verify_client). */
    const char *ca_file;
    const char *ca_dir;
    /* Server: ask every client for a certificate and refuse a handshake
     * without a valid one (mTLS).  Needs ca_file or ca_dir. */
    bool verify_client;
    /* Client: accept any certificate and any name.  For tests against
     * self-signed servers only: anyone on the path can read and change
     * the traffic. */
    bool insecure_no_verify;
    /* ALPN protocols in preference order ("h2", "http/1.1"); NULL = no
     * ALPN.  A server picks the first of its own that the client offers
     * and goes on without ALPN when none matches. */
    const char *const *alpn;
    size_t n_alpn;
    /* Lowest and highest TLS version: 0 = TLS 1.2 (lowest) / TLS 1.3
     * (highest); else 0x0303 (1.2) or 0x0304 (1.3). */
    int min_version;
    int max_version;
    /* Session resumption with tickets (RFC 8446 / 5077) is on: a server
     * issues them, a client keeps the last one per server name in this
     * config and offers it on its next connection to that name (a ticket
     * another server cannot use only costs a full handshake).  true turns
     * both off. */
    bool no_session_tickets;
    /* Most milliseconds a handshake may take before it fails with
     * -ETIMEDOUT (a stalled client frees its connection); 0 = 10 000,
     * CORIO_NO_TIMEOUT = none (the task's own deadline still applies). */
    uint64_t handshake_timeout_ms;
} corio_tls_options;

/* True if this corio was built with TLS (OpenSSL). */
CORIO_API bool corio_tls_available(void);

/* True if the kernel can take TLS records over (the "tls" ULP, kTLS).
 * A report only: this version of corio makes and reads every record in
 * user space (OpenSSL over corio's own socket I/O) whatever the answer,
 * so corio_stream_tls_offloaded is always false.  Checked once, at the
 * first call (a loopback TCP pair asked to take the ULP).  Does not
 * suspend. */
CORIO_API bool corio_tls_kernel_offload_available(void);

/* A client configuration.
 * Returns 0 and *out, or -errno: -EINVAL (a bad option), -ENOENT/-EACCES
 * (a file), -CORIO_ETLS (a file OpenSSL cannot parse, or a key that does
 * not match its certificate), -ENOMEM, -EOPNOTSUPP without TLS.  Does not
 * suspend. */
CORIO_API int corio_tls_client_new(const corio_tls_options *opt, corio_tls **out);

/* A server configuration: opt->certs must hold at least one certificate.
 * Errors as corio_tls_client_new.  Does not suspend. */
CORIO_API int corio_tls_server_new(const corio_tls_options *opt, corio_tls **out);

/* Replace a server configuration's certificates and keys (nginx's reload on SIGHUP).
 * New handshakes use the new ones; connections already up keep theirs.
 * All or nothing: on an error the old certificates stay in use.  Does not
 * suspend.  Returns 0 or an error as corio_tls_server_new. */
CORIO_API int corio_tls_reload_certs(corio_tls *tls, const corio_tls_cert *certs, size_t n_certs);

/* Drop the caller's reference; the config goes when its last stream does.  NULL: no-op. */
CORIO_API void corio_tls_free(corio_tls *tls);

/* Make s a TLS stream and run the handshake (asyncio's start_tls).
 * s must be a connected stream socket (STARTTLS: after a plain exchange
 * is fine): bytes still queued are sent first, and bytes already read
 * and not consumed are taken as the peer's first TLS records.
 * Client side (a client config): server_name is sent as SNI and checked
 * against the certificate; NULL skips both (only with
 * insecure_no_verify, else -EINVAL).  Server side: server_name must be
 * NULL.  The stream takes a reference on tls.  Suspends until the
 * handshake is done, failed, timed out (handshake_timeout_ms), cancelled
 * or past the task's deadline; on any error s is no longer usable and
 * must be closed.  Returns 0, -CORIO_ETLSVERIFY, -CORIO_ETLS, -ETIMEDOUT,
 * -ECONNRESET, -CORIO_ETLSTRUNC (the peer closed mid-handshake),
 * -ECANCELED, -CORIO_EDEADLINE, -EINVAL, -EOPNOTSUPP. */
CORIO_API int corio_stream_start_tls(corio_stream *s, corio_tls *tls, const char *server_name);

/* Connect to host:port and run a TLS handshake (asyncio.open_connection(ssl=)).
 * As corio_stream_connect followed by corio_stream_start_tls with
 * server_name = host.  Suspends.  Returns 0 and *out, or an error of
 * either. */
CORIO_API int corio_stream_connect_tls(const char *host, uint16_t port, corio_tls *tls, corio_stream **out);

/* Why the last TLS call on s failed, as text ("certificate has expired",
 * "hostname mismatch", "wrong version number", "peer sent alert: ...");
 * "" if none did.  Valid until the next call on s.  Never NULL.
 * s NULL: why the calling thread's last failed corio_stream_connect_tls
 * failed (its stream is gone), "" if it did not fail in TLS; read it
 * before the task suspends again. */
CORIO_API const char *corio_stream_tls_error(const corio_stream *s);

/* The protocol ALPN agreed on ("h2", "http/1.1"), or NULL (none, or not TLS). */
CORIO_API const char *corio_stream_tls_alpn(const corio_stream *s);

/* "TLSv1.3" or "TLSv1.2" once the handshake is done; NULL for a stream that is not TLS. */
CORIO_API const char *corio_stream_tls_version(const corio_stream *s);

/* True if the handshake resumed a session (a ticket), false if it was a full one. */
CORIO_API bool corio_stream_tls_resumed(const corio_stream *s);

/* The server name the client asked for (SNI), on a server's stream; NULL if none.
 * On a client's stream: the name it connected to. */
CORIO_API const char *corio_stream_tls_server_name(const corio_stream *s);

/* True if this stream's records are made by the kernel (kTLS), false in
 * user space: always false in this version (see
 * corio_tls_kernel_offload_available). */
CORIO_API bool corio_stream_tls_offloaded(const corio_stream *s);

/* ------------------------------------------------------------------ */
/* Datagrams: UDP and Unix datagram sockets                           */
/* ------------------------------------------------------------------ */

/* Endpoints that bind and/or connect; batches in one system call.
 * Declarations: issue 10, datagram helper.
 *
 * A corio_dgram is one datagram socket (asyncio's DatagramTransport,
 * tokio's UdpSocket / UnixDatagram): UDP over IPv4 or IPv6, or AF_UNIX
 * datagrams.  Receiving suspends until a datagram is queued; sending
 * suspends only while the socket's send buffer (for Unix datagrams: the
 * receiver's queue) is full.  Every call is made straight away and waits
 * for readiness only when the kernel says it would block, so a busy socket
 * costs one system call per call, or per batch with the _batch calls
 * (recvmmsg/sendmmsg).  Several tasks may receive or send on one endpoint
 * at once.  Loop thread only; an endpoint belongs to the loop that opened
 * it.
 *
 * Truncation: a datagram longer than the buffer it is received into is
 * cut to the buffer's size (the rest is lost, as in the kernel); the call
 * still succeeds, returns the bytes stored (never more than the buffer's
 * size) and reports the cut with CORIO_DGRAM_TRUNC in the flags.  A
 * received datagram is never an error, so a peer sending an oversized
 * one cannot stop a receive loop written as "while ((n = recv(...)) >= 0)".
 *
 * Errors from the network: on a connected UDP endpoint the kernel reports
 * ICMP errors (port unreachable: -ECONNREFUSED; -EHOSTUNREACH,
 * -ENETUNREACH...) on the next send or receive, once each.  An
 * unconnected endpoint never sees them (as in every UDP API on Linux). */

typedef struct corio_dgram corio_dgram;

/* Options of corio_dgram_open / corio_dgram_open_unix (all zero = defaults). */
typedef struct corio_dgram_config {
    /* AF_INET or AF_INET6 to use only that family; 0 = whatever the
     * addresses resolve to (an endpoint with neither address: IPv6
     * dual-stack, else IPv4).  Ignored by corio_dgram_open_unix. */
    int family;
    bool reuse_addr; /* SO_REUSEADDR before bind (several receivers of one multicast port) */
    bool reuse_port; /* SO_REUSEPORT before bind (load spread over sockets) */
    bool broadcast;  /* SO_BROADCAST: may send to broadcast addresses */
    int rcvbuf;      /* SO_RCVBUF in bytes; 0 = the system default */
    int sndbuf;      /* SO_SNDBUF in bytes; 0 = the system default */
} corio_dgram_config;

/* A received datagram was longer than its buffer and was cut (flags bit). */
#define CORIO_DGRAM_TRUNC 1

/* Open a UDP endpoint bound to local and/or connected to remote (asyncio.create_datagram_endpoint).
 * local_host/local_port: the address to bind.  local_host NULL or "" with
 * local_port 0 and a remote: no explicit bind (the kernel picks an address
 * and port at the first send or at connect).  local_host NULL or "" with a
 * port, or with no remote: every interface (dual-stack "::" where the
 * machine has IPv6, else 0.0.0.0; port 0: an ephemeral port).
 * remote_host NULL: unconnected (send with corio_dgram_send_to, receive
 * from anyone).  remote_host set: connected to remote_host:remote_port
 * (corio_dgram_send / _recv; only that peer's datagrams are received, and
 * ICMP errors are reported).  Names are resolved without blocking the
 * loop; the first address of the right family that works is used (IPv4
 * and IPv6 both fine).  cfg may be NULL.  Suspends (name resolution).
 * Returns 0 and the endpoint in *out (closed with corio_dgram_close), or
 * -errno (-EADDRINUSE, -EACCES, -ENOENT for an unknown host or no address
 * of cfg->family, -EAFNOSUPPORT, -ECANCELED, -CORIO_EDEADLINE); on error
 * *out is NULL and nothing is left open. */
CORIO_API int corio_dgram_open(const char *local_host, uint16_t local_port, const char *remote_host,
                               uint16_t remote_port, const corio_dgram_config *cfg, corio_dgram **out);

/* Open a Unix datagram endpoint bound to local_path and/or connected to remote_path.
 * A path starting with '@' names the abstract namespace (the rest, no
 * NUL, is the name; no file is created); a local_path of "@" alone lets
 * the kernel pick a unique abstract name (see corio_dgram_sockname), as
 * corio_server_start_unix does.  local_path NULL: unbound (a client that
 * wants replies binds a path of its own, "@" being the easiest: the
 * receiver answers to the sender's address, and an unbound sender has
 * none).  A stale
 * socket file at local_path (nobody receives on it) is replaced, a live
 * one is not (-EADDRINUSE); the file local_path made is unlinked by
 * corio_dgram_close.  remote_path NULL: unconnected.  cfg may be NULL
 * (only reuse_*, broadcast are ignored here; rcvbuf/sndbuf apply).
 * Does not suspend.  Returns 0 and *out, or -errno (-ENAMETOOLONG for a
 * path longer than sun_path, -EADDRINUSE, -ENOENT / -ECONNREFUSED when
 * remote_path has no receiver, -EACCES...); on error *out is NULL. */
CORIO_API int corio_dgram_open_unix(const char *local_path, const char *remote_path,
                                    const corio_dgram_config *cfg, corio_dgram **out);

/* Wrap an existing datagram socket fd (SOCK_DGRAM, any family) in an endpoint.
 * The endpoint takes ownership of fd (closed by corio_dgram_close; also
 * on an error other than -EINVAL for a NULL out or a negative fd) and
 * makes it non-blocking and close-on-exec.  Does not
 * suspend.  Returns 0 and *out, or -ENOTSOCK / -EPROTOTYPE (not a datagram
 * socket), -ENOMEM; on error *out is NULL. */
CORIO_API int corio_dgram_from_fd(int fd, corio_dgram **out);

/* Send one datagram to the connected peer.
 * The whole datagram goes or nothing does.  Suspends while the send
 * buffer (Unix: the peer's queue) is full.  Returns len, or -errno:
 * -EDESTADDRREQ when not connected, -EMSGSIZE when len is above what one
 * datagram can carry, -ECONNREFUSED (a previous datagram hit a closed
 * port), -EBADF after corio_dgram_close, -ECANCELED, -CORIO_EDEADLINE. */
CORIO_API ssize_t corio_dgram_send(corio_dgram *d, const void *buf, size_t len);

/* Send one datagram to the address to (to_len bytes long).
 * As corio_dgram_send, to any address (a connected UDP endpoint may
 * name its peer or another address).  Errors as corio_dgram_send plus
 * -EAFNOSUPPORT / -EINVAL for an address of the wrong family or length,
 * -EACCES for a broadcast address without the broadcast option. */
CORIO_API ssize_t corio_dgram_send_to(corio_dgram *d, const void *buf, size_t len, const struct sockaddr *to,
                                      socklen_t to_len);

/* Receive one datagram into buf of size cap.
 * Suspends until one is queued.  Returns the bytes stored in buf (0 for
 * an empty datagram; at most cap), *flags (optional) gets
 * CORIO_DGRAM_TRUNC if the datagram was longer than cap and was cut, else
 * 0.  Errors: -ECONNREFUSED and friends on a connected UDP endpoint (see
 * above), -EBADF once corio_dgram_close was called (also for a task
 * blocked here at that time), -ECANCELED, -CORIO_EDEADLINE (nothing was
 * received: the datagram stays queued). */
CORIO_API ssize_t corio_dgram_recv(corio_dgram *d, void *buf, size_t cap, int *flags);

/* Receive one datagram and its sender's address.
 * As corio_dgram_recv; from (optional) receives the sender's address and
 * from_len (optional) its length (0 for an unbound Unix sender, which
 * cannot be answered). */
CORIO_API ssize_t corio_dgram_recv_from(corio_dgram *d, void *buf, size_t cap, struct sockaddr_storage *from,
                                        socklen_t *from_len, int *flags);

/* One datagram of a batch (corio_dgram_recv_batch / corio_dgram_send_batch). */
typedef struct corio_dgram_msg {
    void *buf;          /* the datagram's bytes */
    size_t cap;         /* recv: buf's size (read only) */
    size_t len;         /* recv: bytes stored (<= cap); send: bytes to send */
    int flags;          /* recv: CORIO_DGRAM_TRUNC if the datagram was cut; send: ignored */
    socklen_t addr_len; /* recv: length of addr (0: unnamed Unix sender); send: 0 = the connected peer */
    struct sockaddr_storage addr; /* recv: the sender; send: the destination when addr_len > 0 */
} corio_dgram_msg;

/* Receive up to n datagrams in one system call (recvmmsg).
 * Suspends until at least one is queued, then takes the ones already
 * queued (up to n) without waiting for more.  Fills each msgs[i]'s len,
 * flags, addr and addr_len for i < the result; buf and cap are read.
 * Returns the number received (1..n), or -errno as corio_dgram_recv when
 * none was (an error that follows some datagrams is reported by the next
 * call).  n = 0 returns 0 at once. */
CORIO_API int corio_dgram_recv_batch(corio_dgram *d, corio_dgram_msg *msgs, unsigned n);

/* Send n datagrams in as few system calls as possible (sendmmsg).
 * Each goes to msgs[i].addr (or, with addr_len 0, to the connected peer)
 * with msgs[i].len bytes of msgs[i].buf.  Suspends while the send buffer
 * is full.  Returns n when all went; if a datagram fails, the number sent
 * before it (so msgs + result is the one that failed: skip it or retry),
 * or -errno (as corio_dgram_send_to) when it is the first.  n = 0
 * returns 0 at once.  On UDP, consecutive datagrams of one size (up to
 * 1452 bytes) to one address go out as one UDP GSO send (UDP_SEGMENT),
 * which walks the network stack once for the run; the receiver still
 * gets each datagram on its own.  Where the kernel or the route refuses
 * GSO, the endpoint sends one by one from then on. */
CORIO_API int corio_dgram_send_batch(corio_dgram *d, const corio_dgram_msg *msgs, unsigned n);

/* Socket options for corio_dgram_set_option / corio_dgram_get_option (values are ints). */
typedef enum corio_dgram_option {
    CORIO_DGRAM_BROADCAST = 1,  /* SO_BROADCAST: 0/1 */
    CORIO_DGRAM_REUSEADDR,      /* SO_REUSEADDR: 0/1 (matters only before bind: see corio_dgram_config) */
    CORIO_DGRAM_REUSEPORT,      /* SO_REUSEPORT: 0/1 (idem) */
    CORIO_DGRAM_RCVBUF,         /* SO_RCVBUF: bytes (the kernel doubles what is set, and reports that) */
    CORIO_DGRAM_SNDBUF,         /* SO_SNDBUF: bytes (idem) */
    CORIO_DGRAM_MULTICAST_TTL,  /* IP_MULTICAST_TTL / IPV6_MULTICAST_HOPS: 0..255 (default 1) */
    CORIO_DGRAM_MULTICAST_LOOP, /* IP_MULTICAST_LOOP / IPV6_MULTICAST_LOOP: 0/1 (default 1) */
    CORIO_DGRAM_MULTICAST_IF,   /* the interface multicast leaves by, as an index (if_nametoindex); 0 = the
                                   route's */
    CORIO_DGRAM_TTL,            /* IP_TTL / IPV6_UNICAST_HOPS for unicast: 1..255 */
} corio_dgram_option;

/* Set a socket option of d (integer value; the IP level follows d's family).
 * Does not suspend.  Returns 0 or -errno: -EINVAL for an unknown option or
 * a value out of range, -ENOPROTOOPT for an IP option on a Unix endpoint. */
CORIO_API int corio_dgram_set_option(corio_dgram *d, corio_dgram_option opt, int value);

/* Read a socket option of d into *value.  Returns 0 or -errno (as set). */
CORIO_API int corio_dgram_get_option(const corio_dgram *d, corio_dgram_option opt, int *value);

/* Join the multicast group (IPv4 or IPv6 address text) on interface ifname.
 * ifname NULL or "": the interface the kernel picks for the group.  An
 * IPv4 group on an IPv6 dual-stack endpoint works too.  Does not suspend.
 * Returns 0 or -errno: -EINVAL (group is not a multicast address),
 * -ENODEV (no such interface), -EADDRINUSE (already joined),
 * -EAFNOSUPPORT (an IPv6 group on an IPv4 endpoint, or a Unix one). */
CORIO_API int corio_dgram_join(corio_dgram *d, const char *group, const char *ifname);

/* Leave a group joined with corio_dgram_join (same arguments).
 * Returns 0 or -errno (-EADDRNOTAVAIL: not joined; else as join). */
CORIO_API int corio_dgram_leave(corio_dgram *d, const char *group, const char *ifname);

/* Local / peer address of d's socket, into *addr.
 * *len (len may be NULL; it is only written) receives the address's
 * length.  Does not suspend.  Returns 0 or -errno (peername: -ENOTCONN on
 * an unconnected endpoint). */
CORIO_API int corio_dgram_sockname(const corio_dgram *d, struct sockaddr_storage *addr, socklen_t *len);
CORIO_API int corio_dgram_peername(const corio_dgram *d, struct sockaddr_storage *addr, socklen_t *len);

/* The bound UDP port of d (host order); 0 when unbound or not UDP. */
CORIO_API uint16_t corio_dgram_port(const corio_dgram *d);

/* The underlying fd, still owned by d. */
CORIO_API int corio_dgram_fd(const corio_dgram *d);

/* Close d and give up the handle: d must not be used again.
 * Never fails, never suspends.  Tasks blocked in a call on d are woken
 * with -EBADF; the fd is closed (and a Unix path d bound unlinked) once
 * the last of them has left. */
CORIO_API void corio_dgram_close(corio_dgram *d);

/* ------------------------------------------------------------------ */
/* Readiness waits on any fd (trio.wait_readable, loop.add_reader)    */
/* ------------------------------------------------------------------ */

/* For driving libraries that own their sockets (libcurl, c-ares, libpq):
 * the library says which fd it wants to read or write, a task waits for
 * it here, then hands control back to the library.  events are poll(2)'s
 * bits, <poll.h>: POLLIN, POLLOUT, POLLPRI, POLLRDHUP, any mix of them;
 * results use the same bits.  The fd stays the caller's: corio never
 * reads, writes, changes or closes it.  Close it only once no wait on it
 * is in progress (stop its watch, or let the waiting task return first);
 * it may be closed with plain close(2), and a later fd with the same
 * number is a new file to corio.  Several tasks may wait on one fd at
 * once, for the same or different events; each is woken when its own
 * events are ready.  Waits are level-triggered, as poll(2): an fd that is
 * still readable answers at once. */

/* Wait until fd is ready for events, or timeout_ms passes (poll(2) on one fd).
 * Returns the ready set (> 0): the asked events that are ready, plus
 * POLLERR and POLLHUP, which are always reported and end any wait, as
 * poll(2) reports them.  A hung-up or failed fd therefore counts as ready
 * both ways: the next read returns EOF or the error, the next write the
 * error, without blocking (a pipe whose writers are gone gives POLLHUP
 * alone, without POLLIN, once drained).  Returns 0 if timeout_ms passed
 * first (CORIO_NO_TIMEOUT: no limit), -EBADF for an fd that is not open,
 * -EINVAL for events that hold no bit or a bit outside the four above,
 * -ECANCELED, -CORIO_EDEADLINE (the task's own deadline, which the
 * timeout does not replace), -EPERM outside a task.  Suspends (unless
 * the fd is ready at once on the epoll backend). */
CORIO_API int corio_fd_wait(int fd, int events, uint64_t timeout_ms);

/* Wait until fd is readable (trio.lowlevel.wait_readable): a read will not block.
 * "Readable" includes end of file, hang-up and a pending error (POLLHUP,
 * POLLERR): the read then returns 0 or the error.  Returns 0, or -EBADF,
 * -ECANCELED, -CORIO_EDEADLINE, -EPERM as corio_fd_wait.  Suspends. */
CORIO_API int corio_fd_wait_readable(int fd);

/* Wait until fd is writable (trio.lowlevel.wait_writable): a write will not block.
 * An fd whose reader is gone or that has an error counts as writable (the
 * write returns the error).  Returns 0, or -EBADF, -ECANCELED,
 * -CORIO_EDEADLINE, -EPERM as corio_fd_wait.  Suspends. */
CORIO_API int corio_fd_wait_writable(int fd);

/* A registration that calls a function whenever an fd is ready (loop.add_reader). */
typedef struct corio_fd_watch corio_fd_watch;

/* Called by a watch: revents is corio_fd_wait's ready set (> 0), or a
 * negative errno if waiting failed (-EBADF: the fd was closed while the
 * watch ran); after a failure fn is not called again, and the watch waits
 * for corio_fd_watch_stop.  Runs in the watch's own task: it may suspend
 * (the fd is not watched meanwhile) and may stop this or any other watch. */
typedef void (*corio_fd_watch_fn)(int fd, int revents, void *arg);

/* Call fn(fd, revents, arg) each time fd is ready for events, until stopped (loop.add_reader/add_writer).
 * Level-triggered, as asyncio's: while the fd stays ready (fn did not
 * read everything), fn is called again, once per loop turn at most.  The
 * watch is a task of the loop (named "fd watch"); calls for one watch
 * never overlap.  Several watches may share an fd (one for POLLIN, one
 * for POLLOUT: add_reader and add_writer).  The watch belongs to the loop
 * and is freed by corio_fd_watch_stop (or when the loop ends, if never
 * stopped).  Must run inside a loop; does not suspend.  Returns the
 * watch, or NULL with errno EINVAL (no fn, bad events), EBADF, ENOMEM, or
 * EPERM outside a loop. */
CORIO_API corio_fd_watch *corio_fd_watch_start(int fd, int events, corio_fd_watch_fn fn, void *arg);

/* Stop a watch (loop.remove_reader): fn is never called again, and w is freed.
 * Does not suspend; w must not be used afterwards.  Safe from fn itself
 * (the call in progress finishes normally) and from any task of the loop;
 * once it returns, the fd may be closed. */
CORIO_API void corio_fd_watch_stop(corio_fd_watch *w);

/* ------------------------------------------------------------------ */
/* Socket activation (systemd's LISTEN_FDS, sd_listen_fds)            */
/* ------------------------------------------------------------------ */

/* Listening sockets handed over by a supervisor instead of bound: systemd
 * (a .socket unit, or systemd-socket-activate), or any launcher that
 * speaks its protocol.  The supervisor opens the sockets, puts them at
 * fds 3, 4, ... and sets LISTEN_PID (the pid they are for), LISTEN_FDS
 * (how many) and optionally LISTEN_FDNAMES (their names, ':'-separated).
 * corio_listen_fds reads that; corio_server_start_fds and
 * corio_http_server_start_fds (corio/http.h) serve the sockets;
 * corio-serve does both by itself when LISTEN_FDS is set. */

/* The first passed fd (SD_LISTEN_FDS_START). */
#define CORIO_LISTEN_FDS_START 3

/* One socket passed by the supervisor. */
typedef struct corio_listen_fd {
    int fd;
    char name[256]; /* its LISTEN_FDNAMES entry (FileDescriptorName=); "unknown" without one */
} corio_listen_fd;

/* Read the sockets passed by socket activation (systemd's sd_listen_fds_with_names).
 * With sd_listen_fds' rules: none (0) unless LISTEN_PID is this process's
 * pid (variables inherited from a parent do not count) and LISTEN_FDS is
 * set; then LISTEN_FDS fds from CORIO_LISTEN_FDS_START on are the
 * caller's, each is made close-on-exec (so no child inherits it), and the
 * first max of them go to out[] with their names.  unset_env: remove the
 * three variables before returning, whatever the outcome (so a child
 * started later does not see them; sd_listen_fds(1)).  The fds are not
 * checked further: corio_server_start_fds checks what it is given.  Does
 * not suspend; needs no loop (callable before corio_run).  Returns the
 * number passed (> max: only max are described; the fds are still
 * consecutive), 0 when there are none for this process, -EINVAL for
 * malformed variables (a count or pid that is not a number, a name count
 * that differs from LISTEN_FDS) or out NULL with max > 0, -EBADF if one of
 * the fds is not open. */
CORIO_API int corio_listen_fds(corio_listen_fd *out, unsigned max, bool unset_env);

/* Serve already listening stream sockets: corio_server_start without the bind.
 * fds[0..n) are listening SOCK_STREAM sockets (TCP or Unix: from
 * corio_listen_fds, or opened by the caller); on success the server owns
 * them (corio_server_close closes them) and has made them non-blocking
 * and close-on-exec; the rest is corio_server_start's (one accept task
 * per socket, handler per connection, corio_server_sockname).  From cfg
 * only nagle, stack_size and (for Unix sockets) receive_fds apply
 * (backlog and reuse_port belong to whoever opened the sockets).  Every fd is checked first and, on any
 * error, none is changed and all stay the caller's: -EBADF (not open),
 * -ENOTSOCK (not a socket), -EOPNOTSUPP (not a stream socket), -EINVAL (a
 * socket that is not listening, an fd listed twice, n == 0, NULL fds or
 * handler or out), -E2BIG (n above 16), -ENOMEM.  Must run in a task;
 * does not suspend.  cfg may be NULL. */
CORIO_API int corio_server_start_fds(const int *fds, unsigned n, corio_conn_fn handler, void *arg,
                                     const corio_server_config *cfg, corio_server **out);

/* ------------------------------------------------------------------ */
/* Handing listening sockets to a successor (zero-downtime reload)    */
/* ------------------------------------------------------------------ */

/* A new version of a server takes over the running one's listening
 * sockets themselves, passed over a Unix socket (SCM_RIGHTS), as nginx's
 * binary upgrade and Envoy's hot restart do: the same sockets, so their
 * kernel accept queues carry over and no connection is refused or reset
 * (a SO_REUSEPORT overlap instead resets whatever waits in the queue of
 * the listener that closes).  The running process calls
 * corio_handover_listen(path, ...) in a task of its own; the new one calls
 * corio_handover_take(path, ...) at start, serves the sockets
 * (corio_server_start_fds, corio_http_server_start_fds), then
 * corio_handover_ready; corio_handover_listen then returns in the old
 * process, which closes its servers with a grace period (their accepting
 * stops at once; every connection already accepted is served) and exits,
 * while the new one calls corio_handover_listen(path, ...) for its own
 * successor.  Until the successor is ready, both serve the sockets; a
 * successor that fails or dies before corio_handover_ready changes
 * nothing: the old process keeps serving and waits for the next one.
 * Each socket travels with a label (corio_listen_fd's name: "http",
 * "https", an address...) so the successor knows which is which.
 *
 * Only a process of the same user (or root) may take the sockets: the
 * socket file is made 0600 and, for an abstract "@name" (which has no
 * permissions), the peer's uid (SO_PEERCRED) is checked too.  One
 * handover at a time: a successor that connects while another is being
 * served waits its turn, and is turned away (its take fails with
 * -ECONNRESET) once the sockets are gone.  A take blocks for as long as
 * the predecessor takes to answer: bound it with corio_deadline_push. */

/* A successor's side of a handover in progress (corio_handover_take). */
typedef struct corio_handover corio_handover;

/* Wait on the Unix socket at path for a successor and hand it fds[0..n).
 * path as for corio_server_start_unix ("@name": abstract); a stale socket
 * file there is replaced, a live one is -EADDRINUSE.  For each successor
 * that connects, in turn: the fds and their labels (fds[i].name) are
 * sent, then its corio_handover_ready awaited; a successor that hangs up
 * first (it failed, or died) is dropped and the next one awaited.  Once
 * one is ready, the socket at path is closed (its file removed) and its
 * corio_handover_ready answered, so it can listen at path in turn; then
 * this returns 0, *successor (may be NULL) its pid, and the caller
 * should stop accepting and drain (close its servers with a grace).  The
 * fds stay the caller's throughout (the successor gets duplicates).
 * Runs until then: call it in a task of its own, and cancel that task to
 * stop offering the sockets.  Suspends.  Returns 0, or -errno: -EINVAL
 * (NULL, "" or "@" path, NULL fds, n == 0 or above 253, a label with a
 * newline), -EBADF (an fd that is not open), as corio_server_start_unix
 * (-EADDRINUSE, -ENAMETOOLONG, -EACCES, -ENOENT...), -ECANCELED /
 * -CORIO_EDEADLINE (the socket is closed and removed; a successor being
 * served sees its take or ready fail with -ECONNRESET), -EPERM outside a
 * task. */
CORIO_API int corio_handover_listen(const char *path, const corio_listen_fd *fds, unsigned n,
                                    pid_t *successor);

/* Take the listening sockets of the process offering them at path (corio_handover_listen).
 * On success the sockets are the caller's (close-on-exec; not yet
 * non-blocking: corio_server_start_fds and corio_http_server_start_fds
 * make them so), out[0..n) has them with their labels in the order the
 * predecessor listed them, and *h holds the exchange open: serve the
 * sockets, then corio_handover_ready(*h), or corio_handover_abort(*h)
 * to leave the predecessor serving.  Suspends.  Returns n >= 1, or -errno
 * with nothing taken: -ENOENT or -ECONNREFUSED (nobody offers sockets at
 * path: a first start binds its own), -E2BIG (more than max sockets
 * offered; the predecessor keeps them), -EACCES (the predecessor runs as
 * another user), -ECONNRESET (the predecessor hung up: it was stopping,
 * or handed its sockets to another successor first), -EPROTO (what came
 * is not a handover), -EMFILE (the fds could not all be received), -EINVAL
 * (NULL or "" path, NULL out or h, max == 0), -ECANCELED /
 * -CORIO_EDEADLINE, -EPERM outside a task. */
CORIO_API int corio_handover_take(const char *path, corio_listen_fd *out, unsigned max, corio_handover **h);

/* Tell the predecessor that the sockets are served, and wait until it has let go of path.
 * Then the predecessor stops accepting and drains, and the caller may
 * call corio_handover_listen(path, ...) for its own successor.  Frees h
 * whatever the result.  Suspends.  Returns 0; -ECONNRESET if the
 * predecessor hung up before confirming (it may have died: the sockets
 * are the caller's either way; its socket at path may still be there,
 * stale, which corio_handover_listen replaces); -ECANCELED /
 * -CORIO_EDEADLINE (the predecessor may or may not have seen the
 * message); -EPROTO for an answer that is not the handover's; -EINVAL
 * for NULL h. */
CORIO_API int corio_handover_ready(corio_handover *h);

/* Give up a handover: the predecessor keeps serving and waits for another successor.
 * For a successor that can not serve what it took (a configuration
 * error).  The fds taken stay the caller's, to close.  Frees h (NULL:
 * no-op).  Does not suspend. */
CORIO_API void corio_handover_abort(corio_handover *h);

/* ------------------------------------------------------------------ */
/* Signals (asyncio's add_signal_handler, tokio::signal)              */
/* ------------------------------------------------------------------ */

/* A task waits for signals as it waits for data (tokio::signal, signalfd):
 * a watch receives every arrival of the signals in its set from the
 * moment it is opened, queued until a task takes them, so no signal is
 * lost between two waits.  Several watches (and handlers) on one loop may
 * share signals: each receives every arrival.  A signal belongs to one loop
 * at a time process-wide; another loop asking for it gets -EBUSY until
 * every watch and handler using it on the owning loop is gone (so does
 * any loop asking for corio_dump_tasks_on_signal's signal).
 *
 * While a loop uses a signal, corio's own handler (async-signal safe: it
 * counts the arrival and wakes the loop) is its disposition and the signal
 * is unblocked in the loop thread's mask; when the last watch or handler
 * using it on that loop goes, or the loop ends, the previous disposition
 * (handler, flags, mask) and the loop thread's mask for that signal are
 * exactly what they were.  Signals nobody asked for are never touched; in
 * particular corio never takes SIGCHLD by itself.  The kernel merges
 * arrivals of a standard signal that is already pending, so a burst of
 * the same signal may be received fewer times than it was sent (never
 * zero times).  A signal sent with raise() or pthread_kill() to a thread
 * that blocks it (the thread pool's workers block every signal) stays
 * pending there and is not seen: use kill(getpid(), sig) from such threads.
 *
 * Signals no handler may take are refused with -EINVAL: SIGKILL and
 * SIGSTOP, and the faults SIGSEGV, SIGBUS, SIGILL and SIGFPE, as are
 * numbers outside 1..NSIG-1 (glibc's reserved real-time signals are
 * refused by the kernel, also -EINVAL). */

/* A queue of received signals (asyncio's add_signal_handler as a stream). */
typedef struct corio_signal_watch corio_signal_watch;

/* Start receiving the signals in set on the calling task's loop.
 * The watch is the caller's until corio_signal_watch_close; if the loop
 * ends first, the signals are released then and the watch only waits to
 * be closed (which works outside a loop too).  Arrivals before this call
 * are not received.  Does not suspend.  NULL with errno EINVAL (an empty
 * set, or one holding a signal refused above), EBUSY (another loop owns
 * one of the signals: nothing changes), EPERM (outside a task), ENOMEM, or
 * the error of eventfd(2) or sigaction(2). */
CORIO_API corio_signal_watch *corio_signal_watch_open(const sigset_t *set);

/* Take the next signal w received, waiting up to timeout_ms for one.
 * Arrivals are returned one per call, oldest first (of several signals
 * pending at once, each in the order it first arrived).  A signal that
 * arrives while the task is being cancelled is still returned (the
 * cancellation stays pending for the next call).  One task waits on a
 * watch at a time.  Suspends when nothing is queued and timeout_ms > 0
 * (0 only takes what is queued; CORIO_NO_TIMEOUT waits as long as it
 * takes).  Returns the signal number, 0 if timeout_ms passed, -ECANCELED /
 * -CORIO_EDEADLINE, -EBADF if the watch was closed while the task waited
 * (by another task), -EBUSY if another task is waiting on w, -EPERM
 * outside a task or on another loop's watch, -ESHUTDOWN if w's loop has
 * ended. */
CORIO_API int corio_signal_watch_wait(corio_signal_watch *w, uint64_t timeout_ms);

/* How many arrivals w holds that no wait has taken yet.  Does not suspend. */
CORIO_API unsigned corio_signal_watch_pending(const corio_signal_watch *w);

/* Stop receiving and free w.
 * Signals no other watch or handler of the loop uses get their previous
 * disposition and mask back before it returns; queued arrivals are
 * dropped.  A task waiting on w returns -EBADF.  Call it from w's loop
 * (or from anywhere once that loop has ended).  NULL is a no-op.  Does not
 * suspend. */
CORIO_API void corio_signal_watch_close(corio_signal_watch *w);

/* Wait for one of the signals in set, for up to timeout_ms (open, wait, close).
 * Only signals arriving after the call count.  Suspends (unless timeout_ms
 * is 0).  Returns the signal number, 0 if timeout_ms passed, or an error
 * of corio_signal_watch_open (negative) or _wait. */
CORIO_API int corio_signal_wait(const sigset_t *set, uint64_t timeout_ms);

/* What corio_signal_handler_add runs for each arrival of its signal. */
typedef void (*corio_signal_fn)(int signo, void *arg);

/* Run fn(signo, arg) in a task of the calling loop at each arrival of signo (loop.add_signal_handler).
 * The calls are made one after another by a task of their own, which may
 * suspend; arrivals during a call are queued for the next.  A second add
 * for the same signal on the same loop replaces fn and arg (as asyncio
 * does).  The handler lives until corio_signal_handler_remove or the
 * loop's end (its task is then cancelled like any other).  Does not
 * suspend.  Returns 0, -EINVAL (NULL fn, a refused signal), -EBUSY
 * (another loop owns signo), -EPERM (outside a task), -ENOMEM, or the
 * error of eventfd(2) / sigaction(2). */
CORIO_API int corio_signal_handler_add(int signo, corio_signal_fn fn, void *arg);

/* Remove the calling loop's handler for signo (loop.remove_signal_handler).
 * Unless a watch still uses signo, its previous disposition and mask are
 * back when this returns.  A call of fn in progress (even the caller
 * itself) finishes; no other is made.  Does not suspend.  Returns 1 if a
 * handler was removed, 0 if there was none, -EINVAL for a refused signal,
 * -EPERM outside a loop. */
CORIO_API int corio_signal_handler_remove(int signo);

/* ------------------------------------------------------------------ */
/* Subprocesses (asyncio's create_subprocess_exec, tokio::process)    */
/* ------------------------------------------------------------------ */

/* Declarations: issue 10, subprocess helper. */

/* A child process started by corio_process_spawn or corio_process_shell.
 * Its exit is learnt through a pidfd that the loop polls like any other
 * fd (both backends): corio installs no SIGCHLD handler, never calls
 * waitpid(-1) and ties up no thread per child.  Children are reaped by
 * waitid(P_PIDFD), so the program must not reap them behind corio's back
 * (a waitpid(-1) loop of its own, or SIGCHLD set to SIG_IGN: their
 * corio_process_wait then fails with -ECHILD). */
typedef struct corio_process corio_process;

/* What one of the child's fds 0, 1 and 2 is connected to. */
typedef enum corio_stdio_kind {
    CORIO_STDIO_INHERIT = 0, /* the parent's own fd 0/1/2 (the default) */
    CORIO_STDIO_PIPE,        /* a pipe; the parent's end is a corio_stream (corio_process_stream) */
    CORIO_STDIO_DEVNULL,     /* /dev/null */
    CORIO_STDIO_FD,     /* the caller's open fd in .fd (a file, socket, pipe...); it stays the caller's */
    CORIO_STDIO_STDOUT, /* stderr only: wherever the child's stdout goes (2>&1) */
} corio_stdio_kind;

typedef struct corio_stdio {
    corio_stdio_kind kind;
    int fd; /* CORIO_STDIO_FD only */
} corio_stdio;

/* How to start a child.  Zero-initialise it and fill what you need: the
 * zero value inherits fds 0-2, the environment and the working directory
 * (asyncio's create_subprocess_exec defaults). */
typedef struct corio_process_config {
    /* The program and its arguments, NULL-terminated; argv[0] is the
     * program, looked up in the parent's PATH unless it contains a '/'
     * (posix_spawnp).  Required by corio_process_spawn; must be NULL for
     * corio_process_shell. */
    const char *const *argv;
    /* The child's environment, "NAME=value" strings, NULL-terminated;
     * NULL: the parent's environ. */
    const char *const *env;
    const char *cwd;      /* the child's working directory; NULL: the parent's */
    corio_stdio stdio[3]; /* the child's stdin, stdout, stderr */
    /* Extra fds for the child: pass_fds[i] becomes the child's fd 3 + i
     * (systemd's and Go's ExtraFiles convention).  They stay the caller's. */
    const int *pass_fds;
    size_t n_pass_fds;
    /* false (default): the child gets fds 0-2 and pass_fds only; every other
     * fd is closed in it (Python's close_fds=True).  corio's own fds are
     * close-on-exec anyway, so true only lets through the program's own
     * fds opened without O_CLOEXEC. */
    bool inherit_fds;
    bool new_process_group; /* the child leads a new process group (setpgid(0, 0)) */
    bool new_session;       /* the child leads a new session (setsid); implies its own group */
    /* What corio_process_free does to a child still running: false
     * (default, as asyncio) leaves it running; true (tokio's kill_on_drop)
     * sends it SIGKILL.  Either way corio reaps it in the background once
     * it exits, while the loop runs, so it never lingers as a zombie. */
    bool kill_on_free;
} corio_process_config;

/* How a child ended. */
typedef struct corio_process_status {
    int exit_code;    /* 0..255 when it exited, -1 when a signal ended it */
    int signal;       /* the signal that ended it, 0 when it exited */
    bool core_dumped; /* ended by a signal and dumped core */
} corio_process_status;

/* Start a child process (asyncio.create_subprocess_exec).
 * The child runs cfg->argv with the environment, working directory, fds
 * and group cfg asks for.  It is started with posix_spawn (a vfork-style
 * clone: nothing of the parent's memory is copied), with every signal
 * unblocked (corio blocks SIGPIPE in the loop thread; the child does not
 * inherit that) and SIGPIPE at its default disposition, as Python and
 * Rust do; other ignored signals stay ignored, caught ones become default
 * (exec's rule).  Must run inside a loop.  Does not suspend: the loop
 * thread waits the moment the kernel takes to start the program.  Returns
 * 0 with *out (free it with corio_process_free), or -errno with *out NULL
 * and nothing left behind: -ENOENT (no such program or cwd), -EACCES (not
 * executable), -ENOEXEC, -E2BIG..., as execve or chdir reported them in
 * the child, which is already gone; -EMFILE, -EAGAIN (fork limits),
 * -ENOMEM; -EBADF for a CORIO_STDIO_FD or pass_fds entry that is not open;
 * -ENOSYS without pidfds (Linux before 5.3; valgrind 3.19), the child then
 * killed and reaped; -ECHILD when the child had already ended and been
 * reaped by someone else (SIGCHLD set to SIG_IGN);
 * -EINVAL for a NULL or empty argv, a kind outside the enum or
 * CORIO_STDIO_STDOUT anywhere but stdio[2]; -EPERM outside a loop. */
CORIO_API int corio_process_spawn(const corio_process_config *cfg, corio_process **out);

/* Start cmd under /bin/sh -c (asyncio.create_subprocess_shell).
 * cfg may be NULL (all defaults); cfg->argv must be NULL.  As
 * corio_process_spawn otherwise; a command the shell cannot find is the
 * shell's exit code 127, not -ENOENT. */
CORIO_API int corio_process_shell(const char *cmd, const corio_process_config *cfg, corio_process **out);

/* The child's process id (also after it is reaped; 0 for NULL). */
CORIO_API pid_t corio_process_pid(const corio_process *p);

/* The parent's end of the child's fd 0, 1 or 2 (asyncio's proc.stdin /
 * proc.stdout / proc.stderr): a stream over the pipe, or NULL when that fd
 * is not a CORIO_STDIO_PIPE (or was taken).  The stream stays p's: do not
 * close it (corio_process_free does); to close the child's stdin (so it
 * sees EOF), take it with corio_process_take_stream and close that. */
CORIO_API corio_stream *corio_process_stream(corio_process *p, int child_fd);

/* Take the pipe stream of the child's fd 0, 1 or 2 from p (tokio's
 * child.stdin.take()): the caller owns it from now on and closes it with
 * corio_stream_close / corio_stream_aclose; p forgets it.  NULL with errno
 * ENOENT when there is none (not a pipe, or taken already). */
CORIO_API corio_stream *corio_process_take_stream(corio_process *p, int child_fd);

/* Wait for the child to end and reap it (asyncio's proc.wait()).
 * *st (optional) receives how it ended.  Any number of tasks may wait on
 * one process; once it is reaped, every later call returns its status at
 * once.  Suspends until the child ends.  Returns 0, -ECANCELED /
 * -CORIO_EDEADLINE (the child is untouched and can be waited for again),
 * -ECHILD if someone else reaped it. */
CORIO_API int corio_process_wait(corio_process *p, corio_process_status *st);

/* As corio_process_wait, giving up after timeout_ms: then -CORIO_EDEADLINE
 * and the child runs on untouched (asyncio.wait_for(proc.wait(), t)
 * without the cancel: kill it yourself if that is what you want).
 * CORIO_NO_TIMEOUT waits as long as it takes, 0 only reaps a child that
 * has ended. */
CORIO_API int corio_process_wait_for(corio_process *p, uint64_t timeout_ms, corio_process_status *st);

/* Reap the child if it has ended, without waiting (tokio's try_wait).
 * Does not suspend.  Returns 0 with *st (optional), -EAGAIN while it runs,
 * -ECHILD as corio_process_wait. */
CORIO_API int corio_process_try_wait(corio_process *p, corio_process_status *st);

/* The status of a child that was reaped: 0 and *st, or -EAGAIN if not yet.
 * Does not suspend and reaps nothing (asyncio's proc.returncode). */
CORIO_API int corio_process_status_get(const corio_process *p, corio_process_status *st);

/* The status as a shell's $? (and subprocess_run's exit code): the exit
 * code, or 128 + the signal's number. */
CORIO_API int corio_process_status_code(const corio_process_status *st);

/* Send signal sig to the child (asyncio's send_signal), through its pidfd
 * so it can never reach a process that reused its pid.  Does not suspend.
 * Returns 0, -ESRCH once the child has been reaped, -EINVAL for a bad
 * signal number, -EPERM. */
CORIO_API int corio_process_send_signal(corio_process *p, int sig);

/* corio_process_send_signal(p, SIGTERM). */
CORIO_API int corio_process_terminate(corio_process *p);

/* corio_process_send_signal(p, SIGKILL). */
CORIO_API int corio_process_kill(corio_process *p);

/* Send sig to the child's whole process group (killpg), grandchildren
 * included.  Only for a child started with new_process_group or
 * new_session (else the group is the caller's own): -EINVAL otherwise.
 * Works after the child is reaped, as long as a member of its group
 * lives.  Does not suspend.  Returns 0, -ESRCH when no member is left,
 * -EINVAL, -EPERM. */
CORIO_API int corio_process_signal_group(corio_process *p, int sig);

/* What corio_process_communicate collected.  out / err are NUL-terminated
 * (the length excludes the NUL), malloc'd and the caller's to free(); NULL
 * for an fd that is not a pipe. */
typedef struct corio_process_output {
    char *out;
    size_t out_len;
    char *err;
    size_t err_len;
    corio_process_status status;
} corio_process_output;

/* Feed input to the child's stdin, read its stdout and stderr to the end,
 * and wait for it (asyncio's proc.communicate(input)).
 * The three run concurrently, so neither side can deadlock whatever the
 * sizes.  input (input_len bytes) needs stdin to be a pipe (else -EINVAL
 * when input_len > 0); stdin is closed after it (also with no input), and
 * a child that stops reading early (-EPIPE) is not an error, as in
 * asyncio.  The pipe streams are used up (taken and closed).  Suspends.
 * Returns 0 with *res filled, or -errno with *res zeroed and nothing
 * allocated: -ENOMEM, a read error, -ECANCELED / -CORIO_EDEADLINE (the
 * child is not signalled: kill it if you want; it can still be waited
 * for). */
CORIO_API int corio_process_communicate(corio_process *p, const void *input, size_t input_len,
                                        corio_process_output *res);

/* Free p and close its pipe streams.  A child still running is left to run
 * (or killed, with kill_on_free) and reaped in the background once it
 * exits, while the loop runs; one still running when the loop ends is
 * left to init.  Does not suspend.  No other task may still be waiting on
 * p. */
CORIO_API void corio_process_free(corio_process *p);

/* ------------------------------------------------------------------ */
/* Threads (asyncio.to_thread, loop.call_soon_threadsafe)              */
/* ------------------------------------------------------------------ */

/* Run fn(arg) on a worker thread and wait for it to return (asyncio.to_thread).
 * The task is suspended meanwhile.  fn runs on another thread: it
 * must not call corio functions or touch the loop's objects.  The pool is
 * bounded (corio_config.threadpool_size, else CORIO_THREADPOOL_SIZE, else 4
 * workers; at least 2) and started on first use; calls beyond its size
 * queue in FIFO order.
 * Returns 0 with fn's return value in *result (result may be NULL).
 * Cancellation and deadlines:
 *  - fn not started yet: the call is dropped, fn never runs, *result is
 *    NULL, and -ECANCELED / -CORIO_EDEADLINE is returned at once;
 *  - fn already running: unlike Python, the call does NOT return early.  A
 *    running fn usually works on memory the caller owns (arg, buffers on
 *    its stack), so the task waits, uninterruptibly, until fn returns; then
 *    *result receives fn's return value (free what it owns) and
 *    -ECANCELED / -CORIO_EDEADLINE is returned.  A long fn therefore delays the
 *    cancel by its own duration: keep fn bounded, or give it a stop flag
 *    in arg that the task sets before cancelling.
 *  - the same holds for an interrupt that arrives after fn returned but
 *    before the task resumed: whenever fn ran, *result is its value, and
 *    the return value says whether the task was interrupted meanwhile.
 * Other errors (fn did not run, *result is NULL): -EINVAL if fn is NULL,
 * -EPERM outside a task, -ENOMEM, -EAGAIN if no worker thread could be
 * started.  While a call is in flight the loop never reports its task as
 * stalled.  Suspends. */
CORIO_API int corio_to_thread(void *(*fn)(void *), void *arg, void **result);

/* A handle on a running loop that other threads may hold (for
 * corio_loop_ref_call_soon).  Opaque and reference counted. */
typedef struct corio_loop_ref corio_loop_ref;

/* A new reference to the running loop, for other threads to hold.
 * Call it from inside a loop (a task, or a function it calls).  Every
 * reference must be given back exactly once with
 * corio_loop_ref_release, from any thread, at any time -- also after the
 * loop has ended: the handle stays valid memory until its last release,
 * and calls through it after the loop ended fail with -ESHUTDOWN.  While
 * another thread may still hold a reference, the loop does not report a
 * stall (a call may yet arrive), so release references that will not be
 * used any more.  Returns NULL with errno EPERM outside a loop, ENOMEM. */
CORIO_API corio_loop_ref *corio_loop_ref_get(void);

/* Give back a reference from corio_loop_ref_get.
 * NULL is ignored.  Thread-safe; never blocks on the loop. */
CORIO_API void corio_loop_ref_release(corio_loop_ref *ref);

/* Queue fn(arg) to run on the loop's thread, from any thread (call_soon_threadsafe).
 * Callable from the loop's own thread too; the loop is woken.  Calls
 * run one after another, in the order they were queued (all threads
 * together), inside a task named "call_soon_threadsafe" that the loop keeps
 * while calls are waiting.  fn may suspend, but the calls queued behind it
 * wait until it returns: for anything long, spawn a task from fn
 * (corio_spawn + corio_task_detach) and return.
 * Returns 0: fn(arg) will run exactly once (the loop does not end before
 * every accepted call has started; a call starting after the main task
 * returned runs in a cancelled task: its waits fail with -ECANCELED, as for
 * every task still alive then).  Otherwise fn will never run and arg stays
 * the caller's: -ESHUTDOWN once the loop is ending (the main task has
 * returned and every task has ended) or has ended, -ENOMEM, -EINVAL for a
 * NULL ref or fn.  Thread-safe but not
 * async-signal-safe (it takes a mutex and allocates); from a signal handler,
 * write to a pipe that a task reads instead.  Does not suspend. */
CORIO_API int corio_loop_ref_call_soon(corio_loop_ref *ref, void (*fn)(void *arg), void *arg);

/* A task started on another loop by corio_loop_ref_spawn (tokio's JoinHandle
 * for Handle::spawn).  Pass it to exactly one of corio_remote_join or
 * corio_remote_detach; after that the handle is gone, like freed memory
 * (corio_remote_cancel must not race with them either). */
typedef struct corio_remote corio_remote;

/* Start fn(arg) as a task on the loop behind ref, from any thread (tokio's Handle::spawn).
 * The task is spawned on that loop at its next turn (through
 * corio_loop_ref_call_soon) and runs there like any of its tasks; fn and
 * arg must be safe to use from that loop's thread.  Until the task has
 * ended (or the handle is detached), the target loop does not report a
 * stall: the handle may still cancel its task.  Returns 0 and *out, the
 * handle to join or detach; or -EINVAL (NULL ref, fn or out), -ESHUTDOWN
 * (the loop is ending or has ended), -ENOMEM: fn will then never run and
 * *out is untouched.  Thread-safe; does not suspend. */
CORIO_API int corio_loop_ref_spawn(corio_loop_ref *ref, corio_fn fn, void *arg, corio_remote **out);

/* Wait for a task started by corio_loop_ref_spawn, take its result and free the handle.
 * In a task it suspends (the caller's own loop is woken through its
 * thread-safe wake, so the loop keeps serving meanwhile); on a plain thread
 * it blocks.  *result (may be NULL) receives fn's return value (NULL if
 * fn never ran).  Returns 0 or the error the task failed with
 * (corio_fail); -ESHUTDOWN if its loop was ending or ended before the task
 * could start (fn never ran); -ENOMEM if the task could not be created
 * there (fn never ran); the loop's own error (-CORIO_EDEADLOCK) if that
 * loop was stopped by a stall with the task still waiting.  If the
 * waiting task is cancelled or hits its deadline, the remote task is
 * cancelled and awaited, as corio_task_join does, and the interruption is
 * returned (*result still receives fn's value).  The handle is freed in
 * every case but -EINVAL (NULL, or a detached handle whose task still
 * runs) and -EDEADLK (called outside a task on the thread of the loop
 * that must run the task: it could never end; the handle stays yours). */
CORIO_API int corio_remote_join(corio_remote *r, void **result);

/* Let a task started by corio_loop_ref_spawn run on without a joiner, and free the handle.
 * Its result is dropped when it ends.  Returns 0, or -EINVAL for NULL or
 * a handle already joined or detached.  Thread-safe; does not suspend. */
CORIO_API int corio_remote_detach(corio_remote *r);

/* Ask a task started by corio_loop_ref_spawn to stop (corio_task_cancel on its own loop).
 * Its waits there fail with -ECANCELED; a join still waits for it to end.
 * Returns 0, or -EINVAL for NULL or a handle already joined or detached.
 * Thread-safe; does not suspend. */
CORIO_API int corio_remote_cancel(corio_remote *r);

/* Run fn(arg) on the loop behind ref and wait for its answer: corio_loop_ref_spawn, then corio_remote_join.
 * Same errors as the two (*result is NULL when fn never ran); suspends in
 * a task, blocks on a plain thread.  Calling it for the caller's own loop
 * from a plain function running on that loop's context (not a task) is
 * -EDEADLK (nothing is started). */
CORIO_API int corio_loop_ref_call(corio_loop_ref *ref, corio_fn fn, void *arg, void **result);

/* ------------------------------------------------------------------ */
/* Workers: one loop per core                                          */
/* ------------------------------------------------------------------ */

/*
 * The model nginx, h2o and lwan scale with: N loops on N threads, each
 * with its own listening sockets on the same port (SO_REUSEPORT: the
 * kernel spreads new connections over them) and nothing shared on the
 * hot path.  corio_workers_run starts the loops and waits for them;
 * corio_http_server_config.workers does the same for one HTTP server.
 * Loops reach each other through corio_worker_loop and the corio_loop_ref
 * calls above, or through a corio_channel.
 */

typedef struct corio_workers_config {
    unsigned count; /* loops, one thread each: 0 = the CPUs this process may use
                       (sched_getaffinity); at most 1024 */
    bool pin_cpus;  /* pin worker i to the i-th CPU the process may use (modulo their number) */
    /* false (default): SIGINT or SIGTERM tells every worker to stop (see
     * corio_workers_wait_stop); the signals are watched by worker 0's loop
     * while corio_workers_run runs.  true: the signals are left alone. */
    bool keep_signals;
    corio_config loop; /* each worker's loop, as for corio_run (zero = defaults) */
} corio_workers_config;

/* Run main_fn(arg) as the main task of cfg->count loops, one per thread, and wait for them all.
 * Worker 0 runs on the calling thread, the others on threads started for
 * them (and joined before the return).  Each worker is a loop of its own,
 * exactly as if corio_run(&cfg->loop, main_fn, arg, NULL) ran on its
 * thread: main_fn runs once per worker, typically opening its own
 * listener with reuse_port, serving until corio_workers_wait_stop returns,
 * then closing it gracefully.  main_fn and arg must be thread-safe.
 * Start is all or nothing: main_fn runs only once every worker's loop is
 * up (and worker 0 watches the signals); a loop that cannot start fails
 * the run with its error before any main_fn runs.  A worker that fails
 * later -- its main task fails (corio_fail) or its loop ends with an error
 * (-CORIO_EDEADLOCK) -- is reported on stderr the moment it ends ("corio:
 * worker I of N failed: TEXT") and in outcomes; the others keep running
 * until told to stop.
 * outcomes (may be NULL) must have room for count entries: outcomes[i]
 * receives worker i's main task result and error (or its loop's error).
 * Returns 0 when every worker succeeded, else the error of the worker that
 * failed first; -EINVAL for a NULL main_fn or count above 1024 (nothing
 * started), -EBUSY if this thread already runs a loop or (without
 * keep_signals) another loop uses SIGINT or SIGTERM, -EAGAIN / -ENOMEM
 * if a thread could not be started (the workers already started are told
 * to stop and joined), -EOPNOTSUPP for the sim backend (a simulation runs
 * on one thread).  Blocks the calling thread. */
CORIO_API int corio_workers_run(const corio_workers_config *cfg, corio_fn main_fn, void *arg,
                                corio_outcome *outcomes);

/* The calling worker's index, 0 to count - 1; -1 outside a corio_workers_run loop. */
CORIO_API int corio_worker_index(void);

/* The number of workers of the calling worker's corio_workers_run; 0 outside one. */
CORIO_API unsigned corio_worker_count(void);

/* Worker i's loop, for corio_loop_ref_call_soon, _spawn and _call.
 * A borrowed reference, valid until corio_workers_run returns (do not
 * release it).  NULL outside a worker or for i out of range.  Does not
 * suspend. */
CORIO_API corio_loop_ref *corio_worker_loop(unsigned i);

/* Wait until the workers are told to stop: SIGINT, SIGTERM or corio_workers_stop.
 * Every task of every worker that waits is woken, and one that calls after
 * the stop returns at once.  Suspends.  Returns the signal number, 0 for
 * corio_workers_stop, -ECANCELED / -CORIO_EDEADLINE if the task was
 * interrupted, -EPERM outside a worker's task. */
CORIO_API int corio_workers_wait_stop(void);

/* Tell every worker of the calling worker's corio_workers_run to stop.
 * Wakes every corio_workers_wait_stop (they return 0).  Callable from any
 * task of any worker; idempotent.  Returns 0, or -EPERM outside a worker.
 * Does not suspend. */
CORIO_API int corio_workers_stop(void);

/* ------------------------------------------------------------------ */
/* Files (aiofiles without the threads, where the kernel allows)       */
/* ------------------------------------------------------------------ */

/* Asynchronous file system calls.  On io_uring they are native kernel
 * operations; on epoll (or a kernel lacking an opcode) the blocking call
 * runs on corio's thread pool while the task is parked.  File descriptors
 * are plain ints: corio_file_* works on any fd (regular files, FIFOs,
 * ttys, block devices), and the fds from corio_file_open work with plain
 * POSIX calls too.
 *
 * All of them suspend and honour cancellation and deadlines like every
 * other corio call: an interrupted call returns -ECANCELED / -CORIO_EDEADLINE,
 * and its buffer (and path) are no longer touched by the kernel or a
 * worker once it returns.  An operation already running when the
 * interrupt arrives is waited for; if it had succeeded its real result is
 * returned (nothing is lost, the cancellation stays in force for the next
 * call).  A call interrupted before it started had no effect.  Results of
 * read/write may be short (as read(2)/write(2)); -EPERM outside a task.
 *
 * Closing on every path out of a task (the role of `async with` in
 * Python): keep the fd in one place and route every exit through one
 * corio_file_close, which closes even when the task is cancelled:
 *
 *     int fd = corio_file_open(path, O_RDONLY, 0);
 *     if (fd < 0) return fd;
 *     ssize_t n = corio_file_read(fd, buf, sizeof buf);   // may fail: -ECANCELED, ...
 *     int c = corio_file_close(fd);                        // always runs, always closes
 *     return n < 0 ? (int)n : c;
 *
 * Pipes, FIFOs, ttys, pty masters, sockets and other pollable fds: a read
 * or write on them never occupies a worker or blocks the loop, whether the
 * fd is in blocking mode or not.  The task waits for readiness (a wait
 * that cancellation and deadlines end at once), then the call is made on
 * the loop thread in a way that cannot block, and if another reader took
 * the data first, or a write finds less room than it wants, it waits
 * again.  The fd's own file description is never changed (it is often
 * shared, e.g. a terminal with the shell): a tty or FIFO is opened again
 * privately through /proc/self/fd for the call; an fd that cannot be
 * opened again and lacks RWF_NOWAIT (a pty master, inotify) gets
 * O_NONBLOCK only for the duration of the call.  A tty or FIFO that
 * cannot be opened again (no /proc, an exclusive tty, no permission)
 * falls back to waiting for readiness and then a blocking call on a
 * worker.
 *
 * Caveats: a FIFO opened without O_NONBLOCK (or O_RDWR) blocks in open
 * until the other end appears; on the thread pool such an open cannot be
 * cancelled. */

struct stat;
struct iovec;

/* Open path with flags and mode, as open(2) does.
 * mode is used with O_CREAT/O_TMPFILE; O_CLOEXEC is always added.
 * Returns the new fd (owned by the caller, release it with
 * corio_file_close) or -errno: -ENOENT, -EISDIR (a directory opened for
 * writing), -EACCES, -EEXIST (O_CREAT|O_EXCL), ...  Suspends. */
CORIO_API int corio_file_open(const char *path, int flags, mode_t mode);

/* Close fd, on every path: also when the calling task is interrupted.
 * The fd is released on every path, also when the calling task
 * is cancelled or past its deadline (then it is closed without waiting in
 * the loop): so it is safe as the single exit of a task.  Returns 0 or the
 * error close(2) reports (-EIO, -ENOSPC on some file systems: data may
 * have been lost; -EBADF); never -ECANCELED / -CORIO_EDEADLINE.  Suspends (only
 * when not interrupted). */
CORIO_API int corio_file_close(int fd);

/* Read up to n bytes at the file position (advancing it) into buf.
 * Returns the bytes read (short only at end of file or, for pipes and
 * ttys, when less is available), 0 at end of file, or -errno (-EISDIR,
 * -EBADF, -ECANCELED, -CORIO_EDEADLINE, ...).  Suspends; buf is the caller's
 * and is no longer written once the call returns. */
CORIO_API ssize_t corio_file_read(int fd, void *buf, size_t n);

/* Write up to n bytes from buf at the file position (at the end with O_APPEND).
 * Returns the bytes written (may be short: a full disk or
 * RLIMIT_FSIZE stop it part-way, and the next write reports -ENOSPC /
 * -EFBIG) or -errno.  On a pipe, FIFO, tty or socket it returns, as
 * write(2) would: in blocking mode once all n bytes are written (waiting
 * for room as often as needed), in non-blocking mode once some are.  If
 * it is cancelled, passes its deadline or fails after part of the data
 * went out, it returns that count; the interrupt or error comes with the
 * next call.  Suspends.  Writing to a pipe whose reader is gone
 * gives -EPIPE, without SIGPIPE (see the conventions above). */
CORIO_API ssize_t corio_file_write(int fd, const void *buf, size_t n);

/* Read / write at byte offset off, leaving the file position alone (pread/pwrite).
 * Otherwise as corio_file_read / corio_file_write.  -ESPIPE on pipes,
 * -EINVAL for a negative offset. */
CORIO_API ssize_t corio_file_pread(int fd, void *buf, size_t n, int64_t off);
CORIO_API ssize_t corio_file_pwrite(int fd, const void *buf, size_t n, int64_t off);

/* Read / write into several buffers at once (readv/writev, preadv/pwritev).
 * The p variants work at offset off (>= 0).  iov (and every buffer it
 * names) must stay valid until the call returns; iovcnt 1..IOV_MAX.
 * Results as the single-buffer calls (a vectored read may also be short
 * before the end of a regular file). */
CORIO_API ssize_t corio_file_readv(int fd, const struct iovec *iov, int iovcnt);
CORIO_API ssize_t corio_file_writev(int fd, const struct iovec *iov, int iovcnt);
CORIO_API ssize_t corio_file_preadv(int fd, const struct iovec *iov, int iovcnt, int64_t off);
CORIO_API ssize_t corio_file_pwritev(int fd, const struct iovec *iov, int iovcnt, int64_t off);

/* Flush fd's data and metadata (fsync) or data only (fdatasync) to stable storage.
 * Returns 0 or -errno (-EIO, -ENOSPC, -EINVAL for fds
 * that cannot be synced).  Suspends. */
CORIO_API int corio_file_fsync(int fd);
CORIO_API int corio_file_fdatasync(int fd);

/* Fill *st for fd (fstat) or path (stat, following symlinks).
 * Returns 0 or -errno (-ENOENT, -ENOTDIR, -EBADF, ...).  Suspends. */
CORIO_API int corio_file_fstat(int fd, struct stat *st);
CORIO_API int corio_file_stat(const char *path, struct stat *st);

/* Remove a file, remove a directory, rename, make a directory.
 * As unlink(2), rmdir(2), rename(2) (replacing `to` atomically if it
 * exists) and mkdir(2) (mode filtered by the umask).  Return 0 or -errno (-ENOENT,
 * -EISDIR / -ENOTDIR, -ENOTEMPTY, -EEXIST for an existing directory, ...).
 * Suspend. */
CORIO_API int corio_file_unlink(const char *path);
CORIO_API int corio_file_rmdir(const char *path);
CORIO_API int corio_file_rename(const char *from, const char *to);
CORIO_API int corio_file_mkdir(const char *path, mode_t mode);

/* Read the whole file at path into a new buffer.
 * On success returns 0,
 * *out is a malloc'd buffer the caller releases with free() (NUL
 * terminated for convenience, the terminator not counted) and *len its
 * length.  On failure *out is NULL and nothing needs freeing: -EFBIG if
 * the file holds more than cap bytes, -ENOMEM, or any error of open/read
 * (-ENOENT, -EISDIR, -ECANCELED, ...).  The file is closed on every path.
 * Suspends. */
CORIO_API int corio_file_read_all(const char *path, size_t cap, char **out, size_t *len);

/* Write the len bytes of buf as the whole file at path, or append them to it.
 * corio_file_write_all creates or truncates path (mode as open(2) with
 * O_CREAT); corio_file_append adds the bytes at the end (created with mode
 * 0666 if missing).  Both continue after short writes.
 * Returns 0 only when every byte was written and the close succeeded;
 * else -errno (-ENOSPC, -EFBIG, -EIO, -ECANCELED, ...), in which case the
 * file may hold a prefix of the data.  buf stays the caller's.  Suspends. */
CORIO_API int corio_file_write_all(const char *path, const void *buf, size_t len, mode_t mode);
CORIO_API int corio_file_append(const char *path, const void *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* CORIO_H */
