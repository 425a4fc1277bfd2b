/*
 * TCP echo client: connects, sends each line, prints what comes back.
 *
 *   echo_client [PORT] [LINE...]    (PORT default 8888, host $HOST or 127.0.0.1)
 *
 * With LINE arguments each one is sent in turn; without, lines are read
 * from standard input until EOF.  Every echo is printed as it arrives.
 *
 * Standard input is a corio stream (corio_stream_stdin): waiting for the
 * user's next line is a suspension like any other, so the loop stays free
 * to run other tasks — here, the connection noticing that the server went
 * away.
 */
#include <corio.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct args {
    const char *host;
    uint16_t port;
    int nlines;
    char **lines;
} args;

/* Send one line (newline added if missing) and print its echo. */
static int round_trip(corio_stream *s, const char *line)
{
    size_t n = strlen(line);
    int r = corio_stream_write(s, line, n);
    if (r == 0 && (n == 0 || line[n - 1] != '\n'))
        r = corio_stream_write(s, "\n", 1);
    if (r == 0)
        r = corio_stream_drain(s);
    if (r < 0)
        return r;
    char buf[65536];
    ssize_t got = corio_stream_readline(s, buf, sizeof buf);
    if (got < 0)
        return (int)got;
    if (got == 0)
        return -ECONNRESET; /* the server went away */
    fputs(buf, stdout);
    fflush(stdout);
    return 0;
}

static void *main_task(void *arg)
{
    args *a = arg;
    corio_stream *s;
    int r = corio_stream_connect(a->host, a->port, &s);
    if (r < 0) {
        fprintf(stderr, "echo_client: cannot connect to %s:%u: %s\n", a->host, a->port, corio_strerror(r));
        return (void *)1;
    }
    if (a->nlines > 0) {
        for (int i = 0; i < a->nlines && r == 0; i++)
            r = round_trip(s, a->lines[i]);
    } else {
        corio_stream *in = corio_stream_stdin();
        if (!in) {
            r = -errno;
        } else {
            char line[65000];
            ssize_t n;
            while (r == 0 && (n = corio_stream_readline(in, line, sizeof line)) > 0)
                r = round_trip(s, line);
            if (r == 0 && n < 0)
                r = (int)n;
            corio_stream_close(in);
        }
    }
    if (r < 0)
        fprintf(stderr, "echo_client: %s\n", corio_strerror(r));
    int e = corio_stream_aclose(s);
    return r < 0 || e < 0 ? (void *)1 : NULL;
}

int main(int argc, char **argv)
{
    args a = {.host = getenv("HOST"), .port = 8888};
    if (!a.host || !*a.host)
        a.host = "127.0.0.1";
    int i = 1;
    if (argc > 1 && argv[1][0] && strspn(argv[1], "0123456789") == strlen(argv[1])) {
        unsigned long p = strtoul(argv[1], NULL, 10);
        if (p > 65535) {
            fprintf(stderr, "usage: echo_client [PORT] [LINE...]\n");
            return 2;
        }
        a.port = (uint16_t)p;
        i = 2;
    }
    a.nlines = argc - i;
    a.lines = argv + i;
    void *res = NULL;
    int r = corio_run(NULL, main_task, &a, &res);
    if (r < 0) {
        fprintf(stderr, "echo_client: %s\n", corio_strerror(r));
        return 1;
    }
    return res ? 1 : 0;
}
