/*
 * Context switch micro-benchmark: corio's switch against glibc swapcontext.
 *
 * Two contexts ping-pong (main -> coroutine -> main ...) for 10M round
 * trips; every corio__ctx_switch call counts as one switch, so a round trip
 * is two.  Each measurement is repeated 5 times and the median reported, to
 * shrug off a descheduling on this shared 2-core machine.  Output lines:
 *     switch_ns: X ns
 *     switch_ns_swapcontext: Y ns
 *     swapcontext_over_corio_ratio: Y/X
 * Uses only src/arch/arch.h (plus <ucontext.h> for the comparison); the
 * stack comes from the arch layer's pool.  When built with
 * CORIO_FORCE_UCONTEXT both lines measure swapcontext.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include "arch/arch.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <ucontext.h>

#define ITERS 10000000L
#define RUNS 5

/* The arch layer's SIGSEGV handler asks the core for a task name; this
 * program has no tasks.  Weak so linking the full library (whose core
 * defines it) still works. */
__attribute__((weak)) const char *corio__stack_owner_name(void *fault_addr, size_t *stack_size)
{
    (void)fault_addr;
    (void)stack_size;
    return NULL;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

/* ---- corio ---- */

static corio__ctx main_ctx, co_ctx;

static void co_entry(void *arg)
{
    (void)arg;
    for (;;)
        corio__ctx_switch(&co_ctx, &main_ctx);
}

static double run_corio(corio__stack *st)
{
    corio__ctx_make(&co_ctx, st->lo, st->size, co_entry, NULL);
    corio__ctx_switch(&main_ctx, &co_ctx); /* warm: first entry */
    double t0 = now_ns();
    for (long i = 0; i < ITERS; i++)
        corio__ctx_switch(&main_ctx, &co_ctx);
    double t1 = now_ns();
    return (t1 - t0) / (2.0 * ITERS);
}

/* ---- swapcontext ---- */

static ucontext_t uc_main, uc_co;

static void uc_entry(void)
{
    for (;;)
        swapcontext(&uc_co, &uc_main);
}

static double run_uc(corio__stack *st)
{
    getcontext(&uc_co);
    uc_co.uc_stack.ss_sp = st->lo;
    uc_co.uc_stack.ss_size = st->size;
    uc_co.uc_link = NULL;
    makecontext(&uc_co, uc_entry, 0);
    swapcontext(&uc_main, &uc_co);
    double t0 = now_ns();
    for (long i = 0; i < ITERS; i++)
        swapcontext(&uc_main, &uc_co);
    double t1 = now_ns();
    return (t1 - t0) / (2.0 * ITERS);
}

int main(void)
{
    corio__stack_pool *pool = corio__stack_pool_new(64 * 1024, 4);
    corio__stack *st = pool ? corio__stack_get(pool, 0) : NULL;
    if (!st) {
        perror("stack");
        return 1;
    }
    double a[RUNS], b[RUNS];
    for (int r = 0; r < RUNS; r++)
        a[r] = run_corio(st);
    for (int r = 0; r < RUNS; r++)
        b[r] = run_uc(st);
    double ma = median(a, RUNS), mb = median(b, RUNS);
    printf("switch_ns: %.2f ns\n", ma);
    printf("switch_ns_swapcontext: %.2f ns\n", mb);
    printf("swapcontext_over_corio_ratio: %.1f\n", mb / ma);
    corio__stack_put(pool, st);
    corio__stack_pool_free(pool);
    return 0;
}
