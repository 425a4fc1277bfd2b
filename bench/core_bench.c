/*
 * core_bench — the cost of a task, measured through the public API only.
 *
 * Two figures, each printed as `name: value unit`:
 *
 *   spawn_join_ns    time for corio_spawn + first run + corio_task_join of an
 *                    empty task, averaged over ITER iterations (default
 *                    1,000,000); the median of 5 such runs is printed, so
 *                    one descheduled run on a shared machine does not move
 *                    it.  This is the whole life of a short task: stack
 *                    from the pool, two context switches, the join wakeup.
 *
 *   task_rss_bytes   resident memory per parked task: TASKS tasks (default
 *                    100,000) each sleeping 60 s, RSS (from /proc/self/statm)
 *                    after all of them have reached their sleep minus RSS
 *                    before the first spawn, divided by TASKS.  It includes
 *                    the task object, its timer and the touched stack pages
 *                    -- what a server with that many idle connections pays.
 *                    The sleepers are then cancelled and gathered, which
 *                    also exercises mass cancellation.
 *
 * Usage: core_bench [ITER [TASKS]]   (smaller numbers for a quick check)
 */
#define _GNU_SOURCE 1
#include <corio.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RUNS 5

static long iterations = 1000000;
static long ntasks = 100000;

static uint64_t clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Resident set size in bytes (second field of /proc/self/statm), or -1. */
static long rss_bytes(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    long size, resident;
    if (sscanf(buf, "%ld %ld", &size, &resident) != 2)
        return -1;
    return resident * sysconf(_SC_PAGESIZE);
}

static void *empty_task(void *arg) { return arg; }

static void *sleeper(void *arg)
{
    (void)arg;
    int r = corio_sleep_ms(60000);
    /* Anything but a cancellation means the measurement is wrong. */
    return (void *)(intptr_t)r;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int bench_spawn_join(void)
{
    uint64_t per[RUNS];
    /* One untimed round warms the stack pool and the allocator. */
    for (int run = -1; run < RUNS; run++) {
        uint64_t t0 = clock_ns();
        for (long i = 0; i < iterations; i++) {
            corio_task *t = corio_spawn(empty_task, NULL);
            if (!t) {
                fprintf(stderr, "core_bench: corio_spawn: %s\n", strerror(errno));
                return -1;
            }
            int r = corio_task_join(t, NULL);
            if (r < 0) {
                fprintf(stderr, "core_bench: corio_task_join: %s\n", corio_strerror(r));
                return -1;
            }
        }
        if (run >= 0)
            per[run] = (clock_ns() - t0) / (uint64_t)iterations;
    }
    qsort(per, RUNS, sizeof per[0], cmp_u64);
    printf("spawn_join_ns: %llu ns\n", (unsigned long long)per[RUNS / 2]);
    return 0;
}

static int bench_task_rss(void)
{
    corio_task **tasks = malloc((size_t)ntasks * sizeof *tasks);
    void **results = malloc((size_t)ntasks * sizeof *results);
    if (!tasks || !results) {
        fprintf(stderr, "core_bench: out of memory\n");
        return -1;
    }
    /* Fault the arrays in first so they are not charged to the tasks. */
    memset(tasks, 0, (size_t)ntasks * sizeof *tasks);
    memset(results, 0, (size_t)ntasks * sizeof *results);

    long before = rss_bytes();
    for (long i = 0; i < ntasks; i++) {
        tasks[i] = corio_spawn(sleeper, NULL);
        if (!tasks[i]) {
            fprintf(stderr, "core_bench: corio_spawn #%ld: %s\n", i, strerror(errno));
            for (long j = 0; j < i; j++)
                corio_task_cancel(tasks[j]);
            corio_gather(tasks, (size_t)i, NULL);
            return -1;
        }
    }
    /* Let every new task run up to its sleep. */
    corio_yield();
    long after = rss_bytes();

    for (long i = 0; i < ntasks; i++)
        corio_task_cancel(tasks[i]);
    int r = corio_gather(tasks, (size_t)ntasks, results);
    if (r < 0) {
        fprintf(stderr, "core_bench: corio_gather: %s\n", corio_strerror(r));
        return -1;
    }
    long wrong = 0;
    for (long i = 0; i < ntasks; i++)
        wrong += (intptr_t)results[i] != -ECANCELED;
    if (wrong) {
        fprintf(stderr, "core_bench: %ld sleepers ended with something other than -ECANCELED\n", wrong);
        return -1;
    }
    if (before < 0 || after < 0) {
        fprintf(stderr, "core_bench: cannot read /proc/self/statm\n");
        return -1;
    }
    printf("task_rss_bytes: %ld bytes\n", (after - before) / ntasks);
    free(tasks);
    free(results);
    return 0;
}

static void *bench_main(void *arg)
{
    (void)arg;
    if (bench_spawn_join() < 0)
        return (void *)1;
    fflush(stdout);
    if (bench_task_rss() < 0)
        return (void *)1;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        iterations = strtol(argv[1], NULL, 10);
    if (argc > 2)
        ntasks = strtol(argv[2], NULL, 10);
    if (iterations <= 0 || ntasks <= 0) {
        fprintf(stderr, "usage: core_bench [ITER [TASKS]]\n");
        return 2;
    }
    void *res = NULL;
    int r = corio_run(NULL, bench_main, NULL, &res);
    if (r < 0) {
        fprintf(stderr, "core_bench: corio_run: %s\n", corio_strerror(r));
        return 1;
    }
    return res ? 1 : 0;
}
