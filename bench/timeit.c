/*
 * timeit: run one command and report its wall and CPU time precisely, the
 * same way for every program a benchmark compares (corio, dd, libuv,
 * Python), so that runs of a few tens of milliseconds are measured without
 * the 10 ms granularity of /usr/bin/time.
 *
 *   timeit OUT CMD [ARG...]
 *
 * Wall time is CLOCK_MONOTONIC from just before fork to just after the
 * child is reaped (so it includes exec and the program's start-up, as any
 * external timer would); CPU time is the child's user and system time from
 * wait4(2), which sums all of its threads (microsecond resolution).  On
 * success OUT receives one line "wall user sys" in seconds and timeit exits
 * with the command's status; the command's stdout and stderr are passed
 * through untouched.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double tv_s(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec / 1e6; }

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: timeit OUT CMD [ARG...]\n");
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("timeit: fork");
        return 2;
    }
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        fprintf(stderr, "timeit: %s: %s\n", argv[2], strerror(errno));
        _exit(127);
    }
    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0)
        if (errno != EINTR) {
            perror("timeit: wait4");
            return 2;
        }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    FILE *f = fopen(argv[1], "w");
    if (!f) {
        perror("timeit: OUT");
        return 2;
    }
    fprintf(f, "%.6f %.6f %.6f\n", wall, tv_s(ru.ru_utime), tv_s(ru.ru_stime));
    fclose(f);
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}
