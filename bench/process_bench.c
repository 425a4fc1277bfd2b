/*
 * process_bench — spawn and wait for /bin/true, CONC at a time, with corio.
 *
 * The corio side of bench/process_bench.sh, which runs it next to a libuv
 * uv_spawn program (bench/peers/libuv_spawn.c) and Python asyncio's
 * create_subprocess_exec (bench/peers/spawn_asyncio.py).  CONC tasks each
 * spawn /bin/true (stdio inherited), wait for it and free it, until N
 * children have run.
 *
 * Usage: process_bench [N [CONC]]   (defaults 2000 and 8): an untimed
 *        warm-up of N/10, then a timed pass; prints "spawn_wait WALL_NS
 *        CPU_NS CHILD_CPU_NS", wall-clock time, this process's CPU time
 *        (RUSAGE_SELF: the spawning and waiting) and the children's
 *        (RUSAGE_CHILDREN: exec and run of /bin/true), each per child --
 *        the format every peer prints.
 */
#include <corio.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static long left;
static int failed;

static void *worker(void *arg)
{
    (void)arg;
    static const char *const argv[] = {"/bin/true", NULL};
    corio_process_config cfg = {.argv = argv};
    while (left > 0) {
        left--;
        corio_process *p;
        int r = corio_process_spawn(&cfg, &p);
        corio_process_status st;
        if (r == 0)
            r = corio_process_wait(p, &st);
        if (r == 0 && st.exit_code != 0)
            r = -ECHILD;
        corio_process_free(p);
        if (r < 0) {
            fprintf(stderr, "process_bench: %s\n", corio_strerror(r));
            failed = 1;
            return NULL;
        }
    }
    return NULL;
}

static long conc;

static void *pass(void *arg)
{
    left = (long)(intptr_t)arg;
    corio_group g;
    corio_group_init(&g);
    for (long i = 0; i < conc; i++)
        corio_group_spawn(&g, worker, NULL);
    corio_group_join(&g);
    return NULL;
}

static uint64_t ns_of(struct timeval tv)
{
    return (uint64_t)tv.tv_sec * 1000000000u + (uint64_t)tv.tv_usec * 1000u;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 2000;
    conc = argc > 2 ? atol(argv[2]) : 8;
    if (n <= 0 || conc <= 0) {
        fprintf(stderr, "usage: process_bench [N [CONC]]\n");
        return 2;
    }
    if (corio_run(NULL, pass, (void *)(intptr_t)(n / 10 + 1), NULL) != 0 || failed)
        return 1;
    struct rusage s0, c0, s1, c1;
    struct timespec t0, t1;
    getrusage(RUSAGE_SELF, &s0);
    getrusage(RUSAGE_CHILDREN, &c0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (corio_run(NULL, pass, (void *)(intptr_t)n, NULL) != 0 || failed)
        return 1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    getrusage(RUSAGE_SELF, &s1);
    getrusage(RUSAGE_CHILDREN, &c1);
    uint64_t wall = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000u + (uint64_t)(t1.tv_nsec - t0.tv_nsec);
    uint64_t cpu = ns_of(s1.ru_utime) + ns_of(s1.ru_stime) - ns_of(s0.ru_utime) - ns_of(s0.ru_stime);
    uint64_t ccpu = ns_of(c1.ru_utime) + ns_of(c1.ru_stime) - ns_of(c0.ru_utime) - ns_of(c0.ru_stime);
    printf("spawn_wait %llu %llu %llu\n", (unsigned long long)(wall / (uint64_t)n),
           (unsigned long long)(cpu / (uint64_t)n), (unsigned long long)(ccpu / (uint64_t)n));
    return 0;
}
