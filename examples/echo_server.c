/*
 * TCP echo server: every connection gets back exactly what it sends.
 *
 *   echo_server [PORT]        (default 8888; binds 127.0.0.1)
 *
 * Prints "listening on 127.0.0.1:PORT" once it accepts connections (with
 * PORT 0, the port the system picked), so scripts can wait for that line.
 * The handler is the fast path of the stream API: read whatever arrived,
 * write it back (sent at once when the socket has room), and drain, which
 * only waits when the peer stops reading.
 *
 * Ctrl-C (SIGINT) or SIGTERM stops it gracefully: it stops accepting at
 * once, lets the connections still open carry on for up to GRACE_MS (their
 * clients may finish what they were sending and close), cancels the rest,
 * and exits 0.  A second signal during that time ends it at once.
 */
#include <corio.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Per-connection read size.  Large reads matter more than anything else
 * here: a 100 KiB message read in 16 KiB pieces costs several times the
 * system calls (and the CPU) of one read.  The buffer is allocated per
 * connection (not on the task stack) and its pages are only committed as
 * data actually arrives, so idle connections stay cheap. */
#define READ_SIZE (256 * 1024)
#define GRACE_MS 10000 /* how long open connections may go on after a stop signal */

static void echo(corio_stream *s, void *arg)
{
    (void)arg;
    char *buf = malloc(READ_SIZE);
    if (!buf)
        return;
    for (;;) {
        ssize_t n = corio_stream_read(s, buf, READ_SIZE);
        if (n <= 0)
            break; /* EOF, reset, or the server is closing */
        if (corio_stream_write(s, buf, (size_t)n) < 0 || corio_stream_drain(s) < 0)
            break;
    }
    free(buf);
}

static void *main_task(void *arg)
{
    uint16_t port = (uint16_t)(uintptr_t)arg;
    /* Take SIGINT and SIGTERM before saying we are up: from then on they
     * are queued for this task instead of killing the process. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    corio_signal_watch *stop = corio_signal_watch_open(&stop_signals);
    if (!stop) {
        fprintf(stderr, "echo_server: cannot watch for signals: %s\n", corio_strerror(-errno));
        return (void *)1;
    }
    corio_server *srv;
    int r = corio_server_start("127.0.0.1", port, echo, NULL, NULL, &srv);
    if (r < 0) {
        fprintf(stderr, "echo_server: cannot listen on 127.0.0.1:%u: %s\n", port, corio_strerror(r));
        corio_signal_watch_close(stop);
        return (void *)1;
    }
    printf("listening on 127.0.0.1:%u\n", corio_server_port(srv));
    fflush(stdout);
    /* The server's tasks serve the clients; this one waits for a signal. */
    int sig = corio_signal_watch_wait(stop, CORIO_NO_TIMEOUT);
    if (sig > 0)
        fprintf(stderr, "echo_server: %s, stopping\n", strsignal(sig));
    /* Give the signals back first: a second Ctrl-C during the grace
     * period then ends the process at once, as users expect. */
    corio_signal_watch_close(stop);
    corio_server_close(srv, GRACE_MS);
    return sig > 0 ? NULL : (void *)1;
}

int main(int argc, char **argv)
{
    unsigned long port = 8888;
    if (argc > 1) {
        char *end;
        port = strtoul(argv[1], &end, 10);
        if (*end || port > 65535) {
            fprintf(stderr, "usage: echo_server [PORT]\n");
            return 2;
        }
    }
    void *res = NULL;
    int r = corio_run(NULL, main_task, (void *)(uintptr_t)port, &res);
    if (r < 0) {
        fprintf(stderr, "echo_server: %s\n", corio_strerror(r));
        return 1;
    }
    return res ? 1 : 0;
}
