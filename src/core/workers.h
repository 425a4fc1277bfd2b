/*
 * The thread-and-loop plumbing behind every "one loop per core" API
 * (src/core/workers.c): corio_workers_run (src/io/workers_run.c, which adds
 * the SIGINT/SIGTERM watch) and the HTTP server's workers
 * (src/http/server.c) both start a group of loops with it.
 *
 * A group has N slots.  Slot 0 is the caller's loop: for corio_workers_run
 * a loop it starts on the calling thread, for the HTTP server the loop that
 * is already running.  Slots 1..N-1 are threads, each running corio_run
 * with the group's body as its main task.  Every body first calls
 * corio__workers_ready with how its own start went: start is all or
 * nothing, so ready returns an error to every worker if any one of them
 * failed (or a thread could not be created), and the bodies then undo what
 * they did and return without serving.  After that the workers run until
 * told to stop (corio__workers_stop: every corio_workers_wait_stop of every
 * worker is woken through the thread-safe wake, src/core/remote_wake.c).
 *
 * The group keeps a weak reference to each worker's loop
 * (corio__loop_ref_get_weak) for corio_worker_loop: valid for the group's
 * whole life, calls into a loop that has ended get -ESHUTDOWN, and the
 * stall detector of each loop still works.
 */
#ifndef CORIO_CORE_WORKERS_H
#define CORIO_CORE_WORKERS_H

#include "internal.h"

#include <pthread.h>
#include <stdatomic.h>

#define CORIO__WORKERS_MAX 1024

typedef struct corio__workers corio__workers;

typedef struct corio__worker corio__worker;
struct corio__worker {
    corio__workers *g;
    unsigned index;
    pthread_t thread;
    bool has_thread;             /* slots 1..N-1 whose thread was created (joined by corio__workers_join) */
    bool settled;                /* said how its start went (corio__workers_ready or a failed loop) */
    bool started;                /* ... and every worker started: it serves */
    corio_loop_ref *ref;         /* weak; NULL until the worker's loop is up (or if it never came up) */
    corio_outcome out;           /* the body's result and error */
    int loop_err;                /* corio_run's own error for a thread worker */
    struct corio__worker *saved; /* slot 0: the thread's previous worker (an HTTP group in a worker) */
    bool pinned0;                /* slot 0: the thread was pinned, old_cpus is its mask before */
    void *old_cpus;              /* slot 0: a cpu_set_t */
    void *user;                  /* the body's own state (the HTTP worker's server) */
};

/* A worker's body: the main task of its loop.  It calls corio__workers_ready
 * once, first; returns the result, failing with corio_fail as any task. */
typedef void *(*corio__worker_fn)(corio__worker *w);

struct corio__workers {
    unsigned n;
    bool pin;
    bool user_stop;    /* corio_workers_stop allowed (corio_workers_run; not an HTTP group) */
    const char *label; /* "worker" or "HTTP worker", for the failure report */
    corio_config loop_cfg;
    bool has_loop_cfg;
    corio__worker_fn body;
    void *arg; /* the body's shared argument */
    unsigned ncpus;
    int *cpus; /* the CPUs the process may use, in order (pinning) */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned settled;     /* workers that called ready (or will never) */
    int start_err;        /* the first start failure: every ready returns it */
    corio__rwake *ready0; /* slot 0 parked in ready (HTTP: the running loop) */
    unsigned running;     /* thread workers whose loop has not finished yet */
    corio__rwake *done0;  /* slot 0 parked in corio__workers_wait_threads */
    int first_err;        /* the first worker failure, for the run's result */
    corio__list stop_waiters;
    atomic_int stop_reason; /* -1 until stopped; then the signal number or 0 */

    corio__worker w[];
};

/* A group of n (1..1024) workers; no thread started yet.  cfg (may be NULL)
 * is copied.  NULL with errno ENOMEM. */
corio__workers *corio__workers_new(unsigned n, bool pin, const corio_config *cfg, corio__worker_fn body,
                                   void *arg, const char *label);
/* Free a group whose threads are all joined. */
void corio__workers_free(corio__workers *g);
/* The CPUs this process may use (sched_getaffinity), at least 1. */
unsigned corio__cpu_count(void);

/* Start the threads of slots 1..N-1.  Returns 0, or -EAGAIN / -ENOMEM when
 * one could not be created: the start then fails for every worker already
 * started (their ready returns that error); join them with
 * corio__workers_join. */
int corio__workers_start_threads(corio__workers *g);
/* Block until every thread worker has ended, and join them. */
void corio__workers_join(corio__workers *g);

/* Run on slot 0's thread before its body: make it worker 0 (for
 * corio_worker_index and friends) and pin it if asked; _leave undoes both.
 * For a thread already in another group, it stays in that one. */
void corio__workers_enter0(corio__workers *g);
void corio__workers_leave0(corio__workers *g);
/* corio_workers_run: run slot 0's loop (the body as its main task) on the
 * calling thread, to its end. */
void corio__workers_run0(corio__workers *g);
/* Slot 0 of a group whose loop is already running: take its loop reference. */
int corio__workers_attach0(corio__workers *g);

/* A body's start went as err (0 or -errno): record it, then wait until every
 * worker has said how its start went.  In slot 0 of an HTTP group (a task
 * of a running loop: suspend true) the task is parked, elsewhere the thread
 * blocks (its loop has nothing else to run yet).  Returns 0 when every
 * worker started, else the first failure. */
int corio__workers_ready(corio__worker *w, int err, bool suspend);

/* Tell every worker to stop: corio_workers_wait_stop returns reason in each
 * (the first call wins; later ones change nothing).  Any thread. */
void corio__workers_stop(corio__workers *g, int reason);

/* Slot 0's task: wait, parked, until every thread worker's loop has ended,
 * then join them.  Suspends (cannot be interrupted). */
void corio__workers_wait_threads(corio__workers *g);

/* A body failed (or its loop did): say so on stderr, note the first failure. */
void corio__workers_report(corio__worker *w, int err);

/* The calling thread's worker, NULL outside one. */
corio__worker *corio__worker_self(void);

#endif
