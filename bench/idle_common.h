/*
 * What bench/idle_conns.c and bench/idle_tls.c share: their options, the
 * fd limit they need, and reading the server's memory from /proc.  Both
 * measure what an idle keep-alive connection costs a server; only the way
 * they open a connection (plain or TLS) differs.
 */
#ifndef CORIO_BENCH_IDLE_COMMON_H
#define CORIO_BENCH_IDLE_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

typedef struct idle_opts {
    int port, n, pid, settle_ms, batch;
} idle_opts;

/* Parse "-p PORT -n N --server-pid PID [--settle-ms MS] [--batch B]" into o
 * (whose fields hold the defaults).  Returns 0, or -1 for a usage error. */
static inline int idle_parse_opts(int argc, char **argv, idle_opts *o)
{
    /* Options come in "-x VALUE" pairs. */
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return -1;
        if (!strcmp(a, "-p"))
            o->port = atoi(v);
        else if (!strcmp(a, "-n"))
            o->n = atoi(v);
        else if (!strcmp(a, "--server-pid"))
            o->pid = atoi(v);
        else if (!strcmp(a, "--settle-ms"))
            o->settle_ms = atoi(v);
        else if (!strcmp(a, "--batch"))
            o->batch = atoi(v);
        else
            return -1;
    }
    return o->port > 0 && o->n > 0 && o->pid > 0 && o->batch > 0 ? 0 : -1;
}

/* Raise the soft fd limit to the hard one; 0 if n connections fit, else
 * -1 after saying so on stderr. */
static inline int idle_raise_nofile(int n, const char *prog)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)n + 16) {
        fprintf(stderr, "%s: fd limit %lu is below %d connections\n", prog, (unsigned long)rl.rlim_cur, n);
        return -1;
    }
    return 0;
}

/* The first number on the line of /proc/PID/FILE that starts with key (in
 * kB there); -1 when the process or the line is gone. */
static inline long proc_kib(int pid, const char *file, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/%s", pid, file);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl)) {
            v = strtol(line + kl, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

#endif
