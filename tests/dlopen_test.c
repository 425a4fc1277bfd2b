/*
 * libcorio.so loaded with dlopen(3), on two threads at once.
 *
 * The library keeps the running loop in initial-exec thread-local storage
 * (CORIO__HOT_TLS in src/core/internal.h), so that its hot paths read it
 * with one load instead of calling __tls_get_addr.  Such a library takes
 * static TLS space, which glibc keeps a reserve of for dlopen; this test is
 * the proof that a program which loads corio at run time (a plugin host, a
 * language binding) still gets a working library, with each thread's loop
 * its own: two threads each run a loop whose tasks contend on a lock and
 * yield, and every task must see itself as the running task.
 *
 * Usage: dlopen_test PATH_TO_LIBCORIO_SO   (exit 0 on success)
 */
#include <corio.h>

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static struct {
    int (*run)(const corio_config *, corio_fn, void *, void **);
    corio_task *(*spawn)(corio_fn, void *);
    int (*join)(corio_task *, void **);
    int (*yield)(void);
    corio_task *(*current)(void);
    void (*lock_init)(corio_lock *);
    int (*lock_acquire)(corio_lock *);
    int (*lock_release)(corio_lock *);
} lib;

enum { TASKS = 4, ROUNDS = 1000 };

typedef struct shared {
    corio_lock lk;
    long inside; /* tasks between acquire and release: must stay 0 or 1 */
    long total;  /* critical sections completed */
    int failures;
} shared;

static void *contender(void *arg)
{
    shared *sh = arg;
    corio_task *self = lib.current();
    for (int i = 0; i < ROUNDS; i++) {
        if (lib.lock_acquire(&sh->lk) != 0) {
            sh->failures++;
            return NULL;
        }
        if (++sh->inside != 1)
            sh->failures++;
        lib.yield(); /* the others run and queue on the lock */
        if (lib.current() != self)
            sh->failures++;
        sh->inside--;
        sh->total++;
        if (lib.lock_release(&sh->lk) != 0)
            sh->failures++;
    }
    return NULL;
}

static void *main_task(void *arg)
{
    shared *sh = arg;
    lib.lock_init(&sh->lk);
    corio_task *t[TASKS];
    for (int i = 0; i < TASKS; i++)
        t[i] = lib.spawn(contender, sh);
    for (int i = 0; i < TASKS; i++)
        if (!t[i] || lib.join(t[i], NULL) != 0)
            sh->failures++;
    return NULL;
}

static void *thread_main(void *arg)
{
    shared *sh = arg;
    if (lib.current() != NULL) /* no loop on this thread yet */
        sh->failures++;
    if (lib.run(NULL, main_task, sh, NULL) != 0)
        sh->failures++;
    if (lib.current() != NULL)
        sh->failures++;
    return NULL;
}

#define LOAD(field, name)                                                                                    \
    do {                                                                                                     \
        *(void **)&lib.field = dlsym(h, name);                                                               \
        if (!lib.field) {                                                                                    \
            fprintf(stderr, "dlsym(%s): %s\n", name, dlerror());                                             \
            return 1;                                                                                        \
        }                                                                                                    \
    } while (0)

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: dlopen_test PATH_TO_LIBCORIO_SO\n");
        return 2;
    }
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    LOAD(run, "corio_run");
    LOAD(spawn, "corio_spawn");
    LOAD(join, "corio_task_join");
    LOAD(yield, "corio_yield");
    LOAD(current, "corio_current");
    LOAD(lock_init, "corio_lock_init");
    LOAD(lock_acquire, "corio_lock_acquire");
    LOAD(lock_release, "corio_lock_release");

    shared sh[2] = {0};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&th[i], NULL, thread_main, &sh[i]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    int bad = 0;
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        if (sh[i].failures || sh[i].total != (long)TASKS * ROUNDS) {
            fprintf(stderr, "thread %d: %d failures, %ld of %ld critical sections\n", i, sh[i].failures,
                    sh[i].total, (long)TASKS * ROUNDS);
            bad = 1;
        }
    }
    if (bad)
        return 1;
    printf("ok: %d threads x %ld critical sections through a dlopen'd libcorio\n", 2, (long)TASKS * ROUNDS);
    return 0;
}
