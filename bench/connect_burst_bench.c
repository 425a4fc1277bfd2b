/*
 * connect_burst_bench — how long N clients take to connect to the HTTP
 * server on the same loop and each get one answer (issue 8).
 *
 * One loop runs both sides: corio_http_server_start on 127.0.0.1:0, then N
 * client tasks spawned at once, each connecting, sending one GET and
 * reading the answer.  This is the setup of tests/test_http_idle.c, and it
 * shows how the loop orders work that I/O makes ready against work that is
 * already queued.  Printed per run, then as medians:
 *
 *   first_answer_ms   from the first spawn to the first client's answer
 *   all_answered_ms   from the first spawn to the last client's answer
 *   cpu_ms            the process's CPU time (user + system) for the run,
 *                     which other load on a shared machine moves less
 *
 * Usage: connect_burst_bench [N [RUNS]]   (defaults 1000 and 7); the
 * backend is chosen as usual (CORIO_BACKEND=epoll / io_uring).  Needs
 * RLIMIT_NOFILE >= 2N + 100 (raised to the hard limit here).
 */
#define _GNU_SOURCE 1
#include <corio.h>
#include <corio/http.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

static int nclients = 1000;
static int nruns = 7;

static uint64_t cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000u +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000u;
}

static uint64_t t_start, t_first, t_last;
static int answered;

static void hello(corio_http_request *req, corio_http_response *resp, void *arg)
{
    (void)req;
    (void)arg;
    corio_http_response_send(resp, 200, "text/plain", "Hello, world!", 13);
}

static void *client(void *arg)
{
    uint16_t port = (uint16_t)(uintptr_t)arg;
    corio_stream *s;
    if (corio_stream_connect("127.0.0.1", port, &s) < 0)
        return NULL;
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    const char *answer;
    if (corio_stream_write(s, req, sizeof req - 1) == 0 && corio_stream_drain(s) == 0 &&
        corio_stream_readuntil(s, "Hello, world!", 13, &answer) > 0) {
        uint64_t now = corio_clock_read_ns();
        if (!answered++)
            t_first = now;
        t_last = now;
    }
    corio_stream_close(s);
    return NULL;
}

static void *run_once(void *arg)
{
    double *out = arg; /* [0] first answer, [1] all answered, [2] CPU time, in ms */
    corio_http_server *srv;
    if (corio_http_server_start("127.0.0.1", 0, hello, NULL, NULL, &srv) < 0)
        return NULL;
    corio_task **t = calloc((size_t)nclients, sizeof *t);
    answered = 0;
    uint64_t cpu0 = cpu_ns();
    t_start = corio_clock_read_ns();
    for (int i = 0; i < nclients; i++)
        t[i] = corio_spawn(client, (void *)(uintptr_t)corio_http_server_port(srv));
    corio_gather(t, (size_t)nclients, NULL);
    uint64_t cpu1 = cpu_ns();
    free(t);
    corio_http_server_close(srv, 1000);
    if (answered != nclients) {
        fprintf(stderr, "only %d of %d clients got their answer\n", answered, nclients);
        return NULL;
    }
    out[0] = (double)(t_first - t_start) / 1e6;
    out[1] = (double)(t_last - t_start) / 1e6;
    out[2] = (double)(cpu1 - cpu0) / 1e6;
    return out;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        nclients = atoi(argv[1]);
    if (argc > 2)
        nruns = atoi(argv[2]);
    if (nclients <= 0 || nruns <= 0 || nruns > 100) {
        fprintf(stderr, "usage: connect_burst_bench [N [RUNS]]\n");
        return 2;
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    double first[100], all[100], cpu[100];
    for (int i = 0; i < nruns; i++) {
        double r[3];
        void *ok = NULL;
        if (corio_run(NULL, run_once, r, &ok) < 0 || !ok)
            return 1;
        first[i] = r[0];
        all[i] = r[1];
        cpu[i] = r[2];
        printf("run %d: first_answer_ms %.1f all_answered_ms %.1f cpu_ms %.1f\n", i + 1, r[0], r[1], r[2]);
    }
    qsort(first, (size_t)nruns, sizeof *first, cmp);
    qsort(all, (size_t)nruns, sizeof *all, cmp);
    qsort(cpu, (size_t)nruns, sizeof *cpu, cmp);
    const char *backend = getenv("CORIO_BACKEND") ? getenv("CORIO_BACKEND") : "auto";
    printf("%s, %d clients, median of %d: first_answer_ms %.1f all_answered_ms %.1f cpu_ms %.1f\n", backend,
           nclients, nruns, first[nruns / 2], all[nruns / 2], cpu[nruns / 2]);
    return 0;
}
