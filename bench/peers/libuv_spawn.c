/*
 * libuv_spawn — the libuv peer of bench/process_bench.c: spawn and wait for
 * /bin/true, CONC at a time, with uv_spawn and its exit callback.
 *
 * Usage: libuv_spawn [N [CONC]]   (defaults 2000 and 8): an untimed warm-up
 *        of N/10, then a timed pass; prints "spawn_wait WALL_NS CPU_NS
 *        CHILD_CPU_NS" per child, as process_bench does.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <uv.h>

static long left, running;
static int failed;
static uv_loop_t *loop;

static void start_one(void);

static void on_close(uv_handle_t *h) { free(h); }

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
    if (status != 0 || sig != 0)
        failed = 1;
    running--;
    uv_close((uv_handle_t *)p, on_close);
    if (left > 0 && !failed)
        start_one();
}

static void start_one(void)
{
    static char *args[] = {"/bin/true", NULL};
    uv_stdio_container_t io[3] = {{.flags = UV_INHERIT_FD, .data.fd = 0},
                                  {.flags = UV_INHERIT_FD, .data.fd = 1},
                                  {.flags = UV_INHERIT_FD, .data.fd = 2}};
    uv_process_options_t o = {
        .exit_cb = on_exit_cb, .file = args[0], .args = args, .stdio = io, .stdio_count = 3};
    uv_process_t *p = malloc(sizeof *p);
    left--;
    int r = uv_spawn(loop, p, &o);
    if (r) {
        fprintf(stderr, "libuv_spawn: %s\n", uv_strerror(r));
        failed = 1;
        free(p);
        return;
    }
    running++;
}

static void pass(long n, long conc)
{
    left = n;
    for (long i = 0; i < conc && left > 0; i++)
        start_one();
    uv_run(loop, UV_RUN_DEFAULT);
}

static uint64_t ns_of(struct timeval tv)
{
    return (uint64_t)tv.tv_sec * 1000000000u + (uint64_t)tv.tv_usec * 1000u;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 2000, conc = argc > 2 ? atol(argv[2]) : 8;
    if (n <= 0 || conc <= 0)
        return 2;
    loop = uv_default_loop();
    pass(n / 10 + 1, conc);
    struct rusage s0, c0, s1, c1;
    struct timespec t0, t1;
    getrusage(RUSAGE_SELF, &s0);
    getrusage(RUSAGE_CHILDREN, &c0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pass(n, conc);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    getrusage(RUSAGE_SELF, &s1);
    getrusage(RUSAGE_CHILDREN, &c1);
    if (failed)
        return 1;
    uint64_t wall = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000u + (uint64_t)(t1.tv_nsec - t0.tv_nsec);
    uint64_t cpu = ns_of(s1.ru_utime) + ns_of(s1.ru_stime) - ns_of(s0.ru_utime) - ns_of(s0.ru_stime);
    uint64_t ccpu = ns_of(c1.ru_utime) + ns_of(c1.ru_stime) - ns_of(c0.ru_utime) - ns_of(c0.ru_stime);
    printf("spawn_wait %llu %llu %llu\n", (unsigned long long)(wall / (uint64_t)n),
           (unsigned long long)(cpu / (uint64_t)n), (unsigned long long)(ccpu / (uint64_t)n));
    return 0;
}
