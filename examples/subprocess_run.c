/*
 * subprocess_run: run a command, relay its output line by line, with a deadline.
 *
 *   subprocess_run [-t SECONDS] CMD [ARG...]
 *
 * Runs CMD (looked up in PATH) and prints each line of its stdout as
 * "out: LINE" and each line of its stderr as "err: LINE", as they arrive.
 * With -t, once SECONDS have passed the child's whole process group is
 * killed (so whatever it started dies with it).  Exits with the child's
 * exit code, or 128 + the signal's number if a signal ended it, as a shell
 * reports it; 127 if CMD cannot be run at all, 2 for a usage error.
 *
 * What it shows:
 *  - corio_process_spawn with two pipes and a process group of its own;
 *  - a task per pipe reading lines (corio_stream_readline), in a task
 *    group, so both pipes are drained at once and neither can fill up;
 *  - a deadline (corio_deadline_push) over the wait and the relays, and
 *    corio_process_signal_group to kill the group when it passes.
 */
#include <corio.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct relay {
    corio_stream *s;
    const char *prefix;
} relay;

/* Print every line of r->s with its prefix until EOF. */
static void *relay_lines(void *arg)
{
    relay *r = arg;
    char line[4096];
    for (;;) {
        ssize_t n = corio_stream_readline(r->s, line, sizeof line);
        if (n == -CORIO_ELIMIT) /* longer than line: print it in pieces */
            n = corio_stream_read(r->s, line, sizeof line - 1);
        if (n <= 0)
            return n < 0 ? corio_fail((int)n) : NULL;
        line[n] = '\0';
        printf("%s: %s%s", r->prefix, line, line[n - 1] == '\n' ? "" : "\n");
        fflush(stdout);
    }
}

typedef struct args {
    char **argv;
    uint64_t timeout_ms;
    int exit_code;
} args;

static void *run(void *arg)
{
    args *a = arg;
    corio_process_config cfg = {.argv = (const char *const *)a->argv, .new_process_group = true};
    cfg.stdio[1].kind = CORIO_STDIO_PIPE;
    cfg.stdio[2].kind = CORIO_STDIO_PIPE;
    corio_process *p;
    int r = corio_process_spawn(&cfg, &p);
    if (r < 0) {
        fprintf(stderr, "subprocess_run: %s: %s\n", a->argv[0], corio_strerror(r));
        a->exit_code = 127;
        return NULL;
    }

    relay out = {corio_process_stream(p, 1), "out"};
    relay err = {corio_process_stream(p, 2), "err"};
    corio_group g;
    corio_group_init(&g);
    corio_group_spawn(&g, relay_lines, &out);
    corio_group_spawn(&g, relay_lines, &err);

    /* The deadline covers the whole run: the child's exit and the end of
     * its output (a grandchild may hold the pipes open after it exits). */
    corio_process_status st;
    corio_deadline d = corio_deadline_push(a->timeout_ms);
    r = corio_process_wait(p, &st);
    int joined = r == 0 ? corio_group_join(&g) : 1;
    corio_deadline_pop(d);
    if (r == -CORIO_EDEADLINE || joined == -CORIO_EDEADLINE) {
        fprintf(stderr, "subprocess_run: %s: still running after %llu ms, killing its process group\n",
                a->argv[0], (unsigned long long)a->timeout_ms);
        corio_process_signal_group(p, SIGKILL);
        if (r < 0)
            r = corio_process_wait(p, &st);
    }
    if (joined == 1) /* the relays end once the killed group's pipes close */
        corio_group_join(&g);
    a->exit_code = r < 0 ? 1 : corio_process_status_code(&st);
    corio_process_free(p);
    return NULL;
}

int main(int argc, char **argv)
{
    args a = {.timeout_ms = CORIO_NO_TIMEOUT};
    int i = 1;
    if (i < argc && strcmp(argv[i], "-t") == 0) {
        char *end;
        double secs = i + 1 < argc ? strtod(argv[i + 1], &end) : -1;
        if (i + 1 >= argc || *end || end == argv[i + 1] || secs < 0) {
            fprintf(stderr, "usage: subprocess_run [-t SECONDS] CMD [ARG...]\n");
            return 2;
        }
        a.timeout_ms = (uint64_t)(secs * 1000);
        i += 2;
    }
    if (i >= argc) {
        fprintf(stderr, "usage: subprocess_run [-t SECONDS] CMD [ARG...]\n");
        return 2;
    }
    a.argv = argv + i;
    int r = corio_run(NULL, run, &a, NULL);
    if (r < 0) {
        fprintf(stderr, "subprocess_run: %s\n", corio_strerror(r));
        return 1;
    }
    return a.exit_code;
}
